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

from relnb.checks.ops.observability import check_observability
from relnb.redact import Secret
from relnb.results import Status

from ...conftest import need_debian, unused_port

DSN = "https://abcdef0123456789@o1.ingest.sentry.test/42"


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
    urls = {"am": f"http://127.0.0.1:{am_port}"}
    for name, rules, dead in (("good", GOOD_RULES, None), ("bad", BAD_RULES, unused_port())):
        p = unused_port()
        (tmp / f"{name}-rules.yml").write_text(rules)
        (tmp / f"{name}.yml").write_text(_prom_config(p, am_port, tmp / f"{name}-rules.yml", dead))
        procs.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={tmp / f'{name}.yml'}",
                    f"--storage.tsdb.path={tmp / name}",
                    f"--web.listen-address=127.0.0.1:{p}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        urls[name] = f"http://127.0.0.1:{p}"
    try:
        for u in urls.values():
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


def test_healthy_stack_passes(stack) -> None:
    out = check_observability(
        stack["good"],
        expected_jobs=["prometheus", "alertmanager"],
        expected_alerts=["HighErrorRate", "WorkerDLQGrowing"],
        alertmanager_url=stack["am"],
        error_tracking_dsn=Secret("SENTRY_DSN", DSN),
        settle_s=30,
        poll_s=0.5,
    )
    assert out.status is Status.PASSED, out.summary
    ev = out.evidence
    assert ev["targets"]["jobs"]["prometheus"]["up"] == 1
    assert ev["rules"]["alerting_rules"] == 2 and ev["rules"]["errors"] == []
    assert ev["alertmanager"]["ready"] and ev["alertmanager"]["wired"]
    assert ev["alertmanager"]["cluster"] == "disabled"
    assert ev["error_tracking"] == {"configured": True, "well_formed": True, "sentry_style": True}
    assert "abcdef0123456789" not in str(ev) + out.summary


def test_down_job_and_rule_error_fail(stack) -> None:
    out = check_observability(
        stack["bad"], alertmanager_url=stack["am"], error_tracking_dsn=DSN, settle_s=30, poll_s=0.5
    )
    # every configured job must be up: the dead "api" job fails; the broken rule is named too
    end = time.monotonic() + 30
    while "BrokenRule" not in out.summary and time.monotonic() < end:
        time.sleep(1)
        out = check_observability(
            stack["bad"], alertmanager_url=stack["am"], error_tracking_dsn=DSN
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
        error_tracking_dsn=DSN,
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
        error_tracking_dsn=DSN,
        settle_s=30,
        poll_s=0.5,
    )
    assert out.status is Status.FAILED and "Alertmanager not ready" in out.summary
    assert "does not send alerts to" in out.summary
    out = check_observability(dead, error_tracking_dsn=DSN)
    assert out.status is Status.FAILED and "Prometheus targets unavailable" in out.summary
