"""A real Prometheus and the /metrics scrape, watching the same app, must give the same verdicts.

Prometheus (Debian package `prometheus`) is started on a free 127.0.0.1 port with a temporary
config and TSDB, scraping a local prometheus_client app every second; the app's error rate and
latency are switched by the test. Each scenario runs both windows at the same time, in threads.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from relnb.metrics import Baseline, PrometheusSource, Rule, ScrapeSource, run_window
from relnb.results import Status

from ..conftest import need_debian, unused_port
from ._app import FaultyApp

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def app():
    a = FaultyApp(rps=200)
    yield a
    a.close()


@pytest.fixture(scope="module")
def prom(app, tmp_path_factory):
    binary = need_debian("prometheus")["prometheus"]
    work: Path = tmp_path_factory.mktemp("prom")
    port = unused_port()
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: app\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{app.port}']\n"
    )
    log = open(work / "prometheus.log", "w")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    ready = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            r = httpx.get(
                f"{url}/api/v1/query",
                params={"query": "count_over_time(up{job='app'}[1m])"},
                timeout=2,
            )
            result = r.json()["data"]["result"]
            if result and float(result[0]["value"][1]) >= 6:  # enough scrapes for rate([5s])
                ready = True
                break
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    if not ready:
        proc.terminate()
        log.close()
        pytest.fail(
            f"prometheus did not scrape the app within 60 s: {(work / 'prometheus.log').read_text()[-1500:]}"
        )
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


RULES = [
    Rule("error_rate", max=0.05, failure_limit=2, min_samples=6, max_gap_s=3),
    Rule("latency_p95", max=0.5, failure_limit=2, min_samples=6, max_gap_s=3),
]


def both(prom_url, app, rules, duration, *, baselines=(None, None), settle=0.0):
    """Run the Prometheus window and the scrape window concurrently; return both outcomes."""
    if settle:
        time.sleep(settle)
    sources = [
        PrometheusSource(
            prom_url, rate_window="5s", metrics=("error_rate", "latency_p95"), timeout_s=3
        ),
        ScrapeSource([app.url], timeout_s=3),
    ]
    outcomes: list = [None, None]
    records: list[list[dict]] = [[], []]

    def run(i):
        outcomes[i] = run_window(
            sources[i], rules, duration, 0.5, record=records[i].append, baseline=baselines[i]
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 30)
    return outcomes, records


def set_fault(app, error_rate=0.0, latency_s=0.04):
    app.error_rate = error_rate
    app.latency_s = latency_s


def wait_clean(prom_url, timeout=30.0):
    """Prometheus' 5 s rate window still sees the previous scenario's fault for a few seconds."""
    src = PrometheusSource(prom_url, rate_window="5s", metrics=("error_rate", "latency_p95"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = src.poll(time.time()).values
        if v.get("error_rate") == 0.0 and (v.get("latency_p95") or 1) < 0.05:
            return
        time.sleep(0.5)
    pytest.fail(f"prometheus still sees the previous fault after {timeout} s: {v}")


def test_healthy_app_passes_on_both_sources(prom, app):
    set_fault(app)
    wait_clean(prom)
    (p, s), (rp, rs) = both(prom, app, RULES, 5.0)
    assert p.status == s.status == Status.PASSED, (p.summary, s.summary)
    assert p.evidence["metrics"]["error_rate"]["max"] == 0.0
    assert s.evidence["metrics"]["latency_p95"]["max"] < 0.05
    assert len(rp) >= 9 and len(rs) >= 9
    assert p.evidence["source"]["kind"] == "prometheus"


def test_error_rate_fault_fails_on_both_sources(prom, app):
    wait_clean(prom)
    set_fault(app, error_rate=0.3)
    try:
        (p, s), _ = both(prom, app, RULES, 15.0)
    finally:
        set_fault(app)
    for out in (p, s):
        assert out.status == Status.FAILED, out.summary
        assert out.evidence["breaches"][0]["metric"] == "error_rate"
        assert not out.evidence["window"]["completed"]  # ended early
    assert s.evidence["breaches"][0]["value"] == pytest.approx(0.3, abs=0.02)


def test_latency_fault_fails_on_both_sources(prom, app):
    wait_clean(prom)
    set_fault(app, latency_s=0.8)
    try:
        (p, s), _ = both(prom, app, RULES, 15.0)
    finally:
        set_fault(app)
    for out in (p, s):
        assert out.status == Status.FAILED, out.summary
        assert {b["metric"] for b in out.evidence["breaches"]} == {"latency_p95"}


def test_relative_rule_with_baselines_from_history_and_from_recorded_window(prom, app):
    """0.2 s latency is under the 0.5 s SLO but 4× the pre-deploy baseline: both must fail it."""
    set_fault(app)
    wait_clean(prom)
    time.sleep(3)  # a healthy pre-deploy period in Prometheus
    pre_rule = [Rule("latency_p95", max=0.5, min_samples=4, max_gap_s=3)]
    (_, pre_scrape), (_, recorded) = both(prom, app, pre_rule, 3.0)
    assert pre_scrape.status == Status.PASSED
    end = time.time()
    prom_source = PrometheusSource(prom, rate_window="5s")
    points = prom_source.history("latency_p95", end - 6, end, 1)
    assert points and all(ts == int(ts) for ts, _ in points)  # aligned to the 1 s step
    base_prom = Baseline.from_source(prom_source, ["latency_p95"], end - 6, end, 1, "pre-deploy")
    base_scrape = Baseline.from_samples(recorded, "pre-deploy")
    assert base_prom.reference("latency_p95") < 0.05 and base_scrape.reference("latency_p95") < 0.05
    rel = [
        Rule(
            "latency_p95",
            max=0.5,
            max_ratio=2.0,
            ratio_min_delta=0.02,
            failure_limit=2,
            min_samples=4,
            max_gap_s=3,
        )
    ]
    set_fault(app, latency_s=0.2)
    try:
        (p, s), _ = both(prom, app, rel, 15.0, baselines=(base_prom, base_scrape))
    finally:
        set_fault(app)
    for out in (p, s):
        assert out.status == Status.FAILED, out.summary
        assert out.evidence["breaches"][0]["kind"] == "ratio"
        assert out.evidence["metrics"]["latency_p95"]["max"] < 0.5


def test_unreachable_sources_are_inconclusive_on_both(free_port):
    rules = [Rule("error_rate", max=0.05, min_samples=3, max_gap_s=1)]
    outs = [
        run_window(PrometheusSource(f"http://127.0.0.1:{free_port}", timeout_s=1), rules, 2.0, 0.5),
        run_window(
            ScrapeSource([f"http://127.0.0.1:{free_port}/metrics"], timeout_s=1), rules, 2.0, 0.5
        ),
    ]
    for out in outs:
        assert out.status == Status.INCONCLUSIVE, out.summary
        assert out.evidence["errors"]


def test_prometheus_query_errors_and_empty_results_are_gaps(prom):
    src = PrometheusSource(
        prom,
        queries={"error_rate": "sum(rate(", "nothing": "absent_metric_xyz"},
        metrics=("error_rate", "nothing"),
    )
    s = src.poll(time.time())
    assert s.values == {"error_rate": None, "nothing": None}
    assert "bad_data" in s.errors[0]
    assert s.ok  # one query answered (empty): the source itself is up
