"""C5 against a real Prometheus and Alertmanager (Debian packages, installed when missing)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import relnb
from relnb import Release
from relnb.checks.ops.gates import dashboards_alerts
from relnb.checks.ops.observability import check_observability
from relnb.gatecontext import GateContext
from relnb.redact import Secret
from relnb.results import Status

from ...conftest import need_debian, unused_port
from ...core.helpers import make_project

KEY = "abcdef0123456789"


def _dsn(stack: dict[str, str]) -> str:
    """A Sentry-style DSN whose host answers HTTP (the test's Alertmanager stands in for it)."""
    return stack["am"].replace("http://", f"http://{KEY}@") + "/42"


def _wait_http(url: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


GOOD_RULES = """
groups:
  - name: api
    rules:
      - alert: HighErrorRate
        expr: sum(rate(prometheus_http_requests_total{code=~"5.."}[1m])) > 100
        for: 5m
      - alert: WorkerDLQGrowing
        expr: vector(0) > 1
"""

BAD_RULES = (
    GOOD_RULES
    + """
      - alert: BrokenRule
        expr: up + ignoring(job, instance) up
"""
)


def _prom_config(prom_port: int, am_port: int, rules: Path, dead_port: int | None) -> str:
    extra = ""
    if dead_port:
        extra = f"""
  - job_name: api
    static_configs: [{{targets: ["127.0.0.1:{dead_port}"]}}]"""
    return f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]}}]
rule_files: ["{rules}"]
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{prom_port}"]}}]
  - job_name: alertmanager
    static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]{extra}
"""


def _prometheus(tmp: Path, name: str, config: str, *, lifecycle: bool = False) -> tuple[list[str], str]:
    port = unused_port()
    (tmp / f"{name}.yml").write_text(config.replace("{self}", f"127.0.0.1:{port}"))
    args = [
        "prometheus",
        f"--config.file={tmp / f'{name}.yml'}",
        f"--storage.tsdb.path={tmp / name}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return args + (["--web.enable-lifecycle"] if lifecycle else []), f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, str]]:
    need_debian("prometheus", "prometheus-alertmanager")
    tmp = Path(tempfile.mkdtemp(prefix="relnb-c5-"))
    procs: list[subprocess.Popen[bytes]] = []
    am_port = unused_port()
    (tmp / "am.yml").write_text("route:\n  receiver: default\nreceivers:\n  - name: default\n")
    procs.append(
        subprocess.Popen(
            [
                "prometheus-alertmanager",
                f"--config.file={tmp / 'am.yml'}",
                f"--storage.path={tmp / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    urls = {"am": f"http://127.0.0.1:{am_port}", "tmp": str(tmp)}
    servers = {}
    for name, rules, dead in (("good", GOOD_RULES, None), ("bad", BAD_RULES, unused_port())):
        p = unused_port()
        (tmp / f"{name}-rules.yml").write_text(rules)
        (tmp / f"{name}.yml").write_text(_prom_config(p, am_port, tmp / f"{name}-rules.yml", dead))
        servers[name] = (
            [
                "prometheus",
                f"--config.file={tmp / f'{name}.yml'}",
                f"--storage.tsdb.path={tmp / name}",
                f"--web.listen-address=127.0.0.1:{p}",
            ],
            f"http://127.0.0.1:{p}",
        )
    # a Prometheus each test reconfigures (POST /-/reload): no rules, no Alertmanager, ...
    servers["scratch"] = _prometheus(tmp, "scratch", _scratch_config(None, None), lifecycle=True)
    for name, (args, url) in servers.items():
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls[name] = url
    try:
        for name, u in urls.items():
            if name != "tmp":
                _wait_http(u + "/-/ready")
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _scratch_config(rules: Path | None, am_target: str | None) -> str:
    """The scratch Prometheus scrapes itself; rules and an Alertmanager only when given."""
    alerting = (
        f"alerting:\n  alertmanagers: [{{static_configs: [{{targets: [\"{am_target}\"]}}]}}]\n"
        if am_target
        else ""
    )
    rule_files = f'rule_files: ["{rules}"]\n' if rules else ""
    return (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        + alerting
        + rule_files
        + "scrape_configs:\n  - job_name: prometheus\n"
        + '    static_configs: [{targets: ["{self}"]}]\n'
    )


def _reconfigure(stack: dict[str, str], *, rules: bool, am_target: str | None) -> str:
    """Point the scratch Prometheus at (no) rules and (no) Alertmanager; returns its URL."""
    tmp = Path(stack["tmp"])
    url = stack["scratch"]
    rules_file = None
    if rules:
        rules_file = tmp / "scratch-rules.yml"
        rules_file.write_text(GOOD_RULES)
    text = _scratch_config(rules_file, am_target).replace("{self}", url.removeprefix("http://"))
    (tmp / "scratch.yml").write_text(text)
    assert httpx.post(url + "/-/reload", timeout=10).status_code == 200
    return url


def test_healthy_stack_passes(stack) -> None:
    out = check_observability(
        stack["good"],
        expected_jobs=["prometheus", "alertmanager"],
        expected_alerts=["HighErrorRate", "WorkerDLQGrowing"],
        alertmanager_url=stack["am"],
        error_tracking_dsn=Secret("SENTRY_DSN", _dsn(stack)),
        settle_s=30,
        poll_s=0.5,
    )
    assert out.status is Status.PASSED, out.summary
    ev = out.evidence
    assert ev["targets"]["jobs"]["prometheus"]["up"] == 1
    assert ev["rules"]["alerting_rules"] == 2 and ev["rules"]["errors"] == []
    assert ev["alertmanager"]["ready"] and ev["alertmanager"]["wired"]
    assert ev["alertmanager"]["cluster"] == "disabled"
    dsn = ev["error_tracking"]
    assert dsn["configured"] and dsn["well_formed"] and dsn["sentry_style"]
    assert dsn["probe"] == "reachability" and dsn["origin"] == stack["am"].replace("localhost", "127.0.0.1")
    assert "reachability only, no event sent" in out.summary
    assert KEY not in str(ev) + out.summary


def test_down_job_and_rule_error_fail(stack) -> None:
    out = check_observability(
        stack["bad"], alertmanager_url=stack["am"], error_tracking_dsn=_dsn(stack), settle_s=30, poll_s=0.5
    )
    # every configured job must be up: the dead "api" job fails; the broken rule is named too
    end = time.monotonic() + 30
    while "BrokenRule" not in out.summary and time.monotonic() < end:
        time.sleep(1)
        out = check_observability(
            stack["bad"], alertmanager_url=stack["am"], error_tracking_dsn=_dsn(stack)
        )
    assert out.status is Status.FAILED
    assert "targets down in jobs api" in out.summary
    assert "rule BrokenRule fails to evaluate" in out.summary
    assert "duplicate series" in out.evidence["rules"]["errors"][0]["error"]


def test_missing_alert_job_dsn_and_alertmanager(stack, tmp_path) -> None:
    out = check_observability(
        stack["good"],
        expected_jobs=["prometheus", "worker"],
        expected_alerts=["HighErrorRate", "QueueStuck"],
        error_tracking_dsn=_dsn(stack),
        settle_s=30,
        poll_s=0.5,
    )
    assert out.status is Status.FAILED
    assert "scrape jobs not configured: worker" in out.summary
    assert "alert rules not loaded: QueueStuck" in out.summary
    out = check_observability(stack["good"], expected_jobs=["prometheus"], settle_s=30, poll_s=0.5)
    assert out.status is Status.FAILED and out.summary == "C5: no error-tracking DSN configured"
    out = check_observability(
        stack["good"],
        expected_jobs=["prometheus"],
        error_tracking_dsn="not a url",
        settle_s=30,
        poll_s=0.5,
    )
    assert out.status is Status.FAILED and "DSN is not a URL" in out.summary
    dead = f"http://127.0.0.1:{unused_port()}"
    out = check_observability(
        stack["good"],
        expected_jobs=["prometheus"],
        alertmanager_url=dead,
        error_tracking_dsn=_dsn(stack),
        settle_s=30,
        poll_s=0.5,
    )
    # relnb cannot reach it (inconclusive on its own), and Prometheus does not send to it (failed)
    assert out.status is Status.FAILED and "does not send alerts to" in out.summary
    out = check_observability(dead, error_tracking_dsn=_dsn(stack))
    assert out.status is Status.INCONCLUSIVE and "Prometheus targets unavailable" in out.summary


def test_no_alert_rules_and_no_alertmanager_fail(stack) -> None:
    """issue 19 item 10: a Prometheus with zero alert rules that sends to no Alertmanager passed."""
    prom = _reconfigure(stack, rules=False, am_target=None)
    out = check_observability(
        prom, expected_jobs=["prometheus"], error_tracking_dsn=_dsn(stack), settle_s=3, poll_s=0.5
    )
    assert out.status is Status.FAILED, out.summary
    assert "Prometheus has no alert rules loaded" in out.summary
    assert "Prometheus sends alerts to no Alertmanager" in out.summary
    # an Alertmanager that answers and is ready, but Prometheus does not send to it: failed
    out = check_observability(
        prom,
        expected_jobs=["prometheus"],
        alertmanager_url=stack["am"],
        error_tracking_dsn=_dsn(stack),
        settle_s=3,
        poll_s=0.5,
    )
    assert out.status is Status.FAILED, out.summary
    assert f"Prometheus does not send alerts to {stack['am']}" in out.summary
    assert out.evidence["alertmanager"]["ready"] is True


def test_alertmanager_prometheus_sends_to_is_checked_without_a_configured_url(stack) -> None:
    """issue 19 item 10: the Alertmanager Prometheus sends to is asked directly: ready passes;
    one relnb cannot reach is inconclusive (relnb's network is not production's), never passed."""
    am_target = stack["am"].removeprefix("http://")
    prom = _reconfigure(stack, rules=True, am_target=am_target)
    out = check_observability(
        prom, expected_jobs=["prometheus"], error_tracking_dsn=_dsn(stack), settle_s=30, poll_s=0.5
    )
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["alertmanager"]["checked"][0]["ready"] is True
    assert f"Prometheus sends to ready Alertmanager {stack['am']}" in out.summary
    dead = f"127.0.0.1:{unused_port()}"
    prom = _reconfigure(stack, rules=True, am_target=dead)
    out = check_observability(
        prom, expected_jobs=["prometheus"], error_tracking_dsn=_dsn(stack), settle_s=8, poll_s=0.5
    )
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert f"Alertmanager http://{dead} unreachable from relnb" in out.summary
    # the same Alertmanager named in the config: wired, still unreachable, still inconclusive
    out = check_observability(
        prom,
        expected_jobs=["prometheus"],
        alertmanager_url=f"http://{dead}",
        error_tracking_dsn=_dsn(stack),
        settle_s=8,
        poll_s=0.5,
    )
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert out.evidence["alertmanager"]["wired"] is True


def test_dsn_checked_for_syntax_only_is_not_passed(stack) -> None:
    """issue 19 item 10: a well-formed DSN whose host nobody answers passed as "error tracking
    configured"; now the DSN's host must answer, and a syntax-only check says so, inconclusive."""
    common = {
        "expected_jobs": ["prometheus", "alertmanager"],
        "alertmanager_url": stack["am"],
        "settle_s": 30,
        "poll_s": 0.5,
    }
    dead = f"https://{KEY}@127.0.0.1:{unused_port()}/42"
    out = check_observability(stack["good"], error_tracking_dsn=dead, **common)
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "error-tracking host https://127.0.0.1:" in out.summary and "did not answer" in out.summary
    assert out.evidence["error_tracking"]["proved"] == "nothing: the host did not answer"
    out = check_observability(stack["good"], error_tracking_dsn=_dsn(stack), dsn_probe="none", **common)
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "error-tracking DSN: syntax only, not delivered" in out.summary
    assert out.evidence["error_tracking"]["proved"] == "syntax only, not delivered"
    assert KEY not in out.summary + str(out.evidence)


def test_c5_gate_reads_the_probe_from_the_config(stack, tmp_path, monkeypatch) -> None:
    """issue 19 item 10: C5's provider passes observability.error_tracking_probe; `none` is the
    syntax-only check, which the summary names and which cannot pass."""
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    monkeypatch.setenv("APP_SENTRY_DSN", _dsn(stack))
    r = Release.create("1.1.0", root=make_project(tmp_path / "app"))
    try:
        for probe, status in (("reachability", Status.PASSED), ("none", Status.INCONCLUSIVE)):
            (r.config.root / "relnb.toml").write_text(
                '[environments.production]\nbase_url = "http://127.0.0.1:9"\n'
                "[environments.production.observability]\n"
                f'prometheus_url = "{stack["good"]}"\nalertmanager_url = "{stack["am"]}"\n'
                'expected_alerts = ["HighErrorRate"]\nerror_tracking_dsn_env = "APP_SENTRY_DSN"\n'
                f'error_tracking_probe = "{probe}"\n'
            )
            r.config = relnb.load_config(r.config.root / "relnb.toml")
            out = dashboards_alerts(GateContext(r, "C5"))
            assert out.status is status, out.summary
            assert out.evidence["error_tracking"]["probe"] == probe
    finally:
        r.close()
    assert out.summary == "C5: error-tracking DSN: syntax only, not delivered (observability.error_tracking_probe = none)"
