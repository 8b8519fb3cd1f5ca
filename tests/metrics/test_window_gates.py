"""B8, C1 and D7 as gates: a shortened window never passes; C1's soak starts when B1 saw staging
serve the release (issue 19 items 9 and 11).

D7/B8 watch a real app's /metrics (FaultyApp) for a second or two; C1's history cases use a
`relnb.metric_sources` plug-in with a history, as Prometheus has one, and B1 runs for real against
a version endpoint that reports its uptime.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relnb import Outcome, Release, Status, git
from relnb.gatecontext import GateContext
from relnb.metrics import Rule, run_window
from relnb.metrics.samples import Sample
from relnb.metrics.sources import METRIC_SOURCES, FunctionSource
from relnb.metrics.verdict import evaluate_samples
from relnb.watch import monitor_production, no_error_spikes, staging_soak

from ..core.helpers import make_project
from ._app import FaultyApp
from ._fakes import FakeClock

ERR = Rule("error_rate", max=0.01, failure_limit=2, min_samples=10, max_gap_s=30)
SHORT_SUMMARY = "window 2m shorter than the configured 30m: samples within limits (would pass on a full window)"


# -- the engine ------------------------------------------------------------------------------


def _window(value: Callable[[float], float], duration: float, configured: float | None) -> Any:
    clock = FakeClock()
    source = FunctionSource({"error_rate": value})
    return run_window(
        source, [ERR], duration, 5.0, configured_s=configured, clock=clock, sleep=clock.sleep
    )


def test_a_clean_window_shorter_than_configured_is_inconclusive_with_shortened():
    """issue 19 item 11: 2 minutes of a 30-minute window is not a pass, whatever the samples."""
    out = _window(lambda t: 0.001, 120, 1800)
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert out.summary == SHORT_SUMMARY
    assert out.evidence["shortened"] == {"configured": "30m", "used": "2m", "configured_s": 1800, "used_s": 120, "would_pass": True}
    assert out.evidence["metrics"]["error_rate"]["count"] == 24  # enough samples: only the length decides
    json.dumps(out.evidence)


def test_a_breaching_shortened_window_still_fails_and_says_it_was_short():
    """issue 19 item 11: a breach in a rehearsal fails; `shortened` rides along."""
    out = _window(lambda t: 0.2 if t >= 30 else 0.0, 120, 1800)
    assert out.status is Status.FAILED
    assert out.evidence["shortened"]["used_s"] == 120
    assert "error_rate" in out.summary


def test_a_full_or_longer_window_passes_without_shortened():
    for duration in (1800, 2400):
        out = _window(lambda t: 0.001, duration, 1800)
        assert out.status is Status.PASSED, out.summary
        assert "shortened" not in out.evidence


def test_samples_before_the_windows_start_never_count():
    """issue 19 item 9: a window with a fixed start drops earlier samples, live and replayed."""
    t0 = 1_700_000_000.0
    before = [Sample.build(t0 - 100 + i * 5, {"error_rate": 0.5}) for i in range(20)]
    after = [Sample.build(t0 + i * 5, {"error_rate": 0.0}) for i in range(20)]
    out = evaluate_samples([*before, *after], [ERR], duration_s=95, start_ts=t0, end_ts=t0 + 95)
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["metrics"]["error_rate"]["count"] == 20
    clock = FakeClock(t0 + 50)
    out = run_window(
        FunctionSource({"error_rate": lambda t: 0.0}), [ERR], 100, 5.0, start_ts=t0,
        resume_samples=[*before, *after[:10]], clock=clock, sleep=clock.sleep,
    )
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["window"]["start_ts"] == t0 and out.evidence["excluded_samples"] == 20
    assert out.evidence["breaches"] == []


# -- D7 and B8 against a real /metrics ------------------------------------------------------


@pytest.fixture
def app() -> Iterator[FaultyApp]:
    a = FaultyApp(rps=200)
    yield a
    a.close()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """`project(toml)` → a Release in a fresh git project with that relnb.toml."""
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    for var in ("RELNB_CONFIRM", "RELNB_SIGNOFFS", "RELNB_RERUN", "RELNB_SKIPS", "RELNB_HEADLESS", "RELNB_WINDOW"):
        monkeypatch.delenv(var, raising=False)
    made: list[Release] = []

    def make(toml: str) -> Release:
        root = make_project(tmp_path / f"p{len(made)}", toml)
        made.append(Release.create("1.4.0", root=root))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def queue(redis_url, key_prefix, monkeypatch) -> str:
    """Production's (empty, real) BullMQ queue in Redis: D7 watches its DLQ."""
    monkeypatch.setenv("RELNB_TEST_PROD_REDIS", redis_url)
    return (
        'redis_url_env = "RELNB_TEST_PROD_REDIS"\n'
        f'[environments.production.queue]\nkind = "bullmq"\nnames = ["extraction"]\nprefix = "{key_prefix}"\n'
    )


def _monitor_toml(app: FaultyApp, *, window: str = "3s", soak: str = "2s", queue: str = "") -> str:
    return (
        f'[monitor]\nwindow = "{window}"\ninterval = "0.25s"\nsoak = "{soak}"\nmin_samples = 3\nfailure_limit = 1\n'
        f'[environments.production]\nbase_url = "http://127.0.0.1:9"\n{queue}'
        f'[environments.production.metrics]\nkind = "scrape"\nurls = ["{app.url}"]\n'
        f'[environments.staging]\nbase_url = "http://127.0.0.1:9"\n'
        f'[environments.staging.metrics]\nkind = "scrape"\nurls = ["{app.url}"]\n'
    )


def test_d7_shortened_by_release_monitor_with_clean_samples_is_inconclusive(project, app, queue):
    """issue 19 item 11: `release.monitor(window=...)` shorter than configured ended "passed"."""
    r = project(_monitor_toml(app, queue=queue))
    out = monitor_production(GateContext(r, "D7"), "1.5s")
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert out.summary == "window 1.5s shorter than the configured 3s: samples within limits (would pass on a full window)"
    assert out.evidence["shortened"] == {"configured": "3s", "used": "1.5s", "configured_s": 3, "used_s": 1.5, "would_pass": True}
    assert out.evidence["window_override"]["from"] == "release.monitor(window=...)"
    assert out.evidence["metrics"]["error_rate"]["count"] >= 3  # min_samples met: not what decided


def test_d7_shortened_by_relnb_window_with_breaching_samples_fails(project, app, queue, monkeypatch):
    """issue 19 item 11: `relnb run --window` (RELNB_WINDOW) and a breach: failed, with `shortened`."""
    r = project(_monitor_toml(app, queue=queue))
    monkeypatch.setenv("RELNB_WINDOW", "1.5s")
    app.error_rate = 0.5
    out = monitor_production(GateContext(r, "D7"))
    assert out.status is Status.FAILED, out.summary
    assert out.evidence["shortened"]["used"] == "1.5s"
    assert out.evidence["window_override"]["from"].startswith("$RELNB_WINDOW")
    assert [e.payload["gate"] for e in r.journal.events if e.type == "incident"] == ["D7"]


def test_d7_full_configured_window_passes(project, app, queue):
    r = project(_monitor_toml(app, window="1.5s", queue=queue))
    out = monitor_production(GateContext(r, "D7"))
    assert out.status is Status.PASSED, out.summary
    assert "shortened" not in out.evidence


def test_b8_under_relnb_window_cannot_pass(project, app, monkeypatch):
    """issue 19 item 11: RELNB_WINDOW shortens B8 below its configured min_samples + 1 intervals."""
    r = project(_monitor_toml(app))
    monkeypatch.setenv("RELNB_WINDOW", "0.5s")
    out = no_error_spikes(GateContext(r, "B8"))
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert out.evidence["shortened"] == {"configured": "1s", "used": "0.5s", "configured_s": 1, "used_s": 0.5}


# -- C1: the soak starts when B1 saw staging serve the release -------------------------------


class Staging:
    """A staging version endpoint (reporting `uptime_s`) serving `sha`."""

    def __init__(self, sha: str, uptime_s: float) -> None:
        self.sha, self.uptime_s = sha, uptime_s
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"sha": outer.sha, "uptime_s": outer.uptime_s}).encode()
                self.send_response(200 if self.path == "/version" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HistorySource:
    """Staging's metrics with a history, as Prometheus keeps one: `before` until `serving`, then
    `after`. Live polls answer `after`; the `stop_after`-th poll raises KeyboardInterrupt, as the
    notebook's stop button does."""

    name = "test-history"

    def __init__(self) -> None:
        self.serving = time.time()
        self.before = self.after = 0.0
        self.stop_after: int | None = None
        self.polls = 0

    def value(self, ts: float) -> float:
        return self.before if ts < self.serving else self.after

    def poll(self, now: float) -> Sample:
        self.polls += 1
        if self.stop_after is not None and self.polls >= self.stop_after:
            raise KeyboardInterrupt
        return Sample.build(now, {"error_rate": self.after, "latency_p95": 0.05}, source=self.name)

    def history(self, metric: str, start: float, end: float, step: float) -> list[tuple[float, float | None]]:
        out, ts = [], start
        while ts <= end:
            out.append((ts, self.value(ts) if metric == "error_rate" else 0.05))
            ts += step
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name}


@pytest.fixture
def history() -> Iterator[HistorySource]:
    source = HistorySource()
    METRIC_SOURCES.register("test-history", lambda m: source)
    yield source
    METRIC_SOURCES.unregister("test-history")


@pytest.fixture
def soak_release(project, history) -> Iterator[Callable[..., Release]]:
    """`soak_release(soak, uptime_s)` → a release whose B1 ran for real against a staging that
    reports it has served main's SHA for `uptime_s` (None: B1 not run)."""
    servers: list[Staging] = []

    def make(soak: str, uptime_s: float | None) -> Release:
        staging = Staging("0" * 40, uptime_s or 0)
        servers.append(staging)
        r = project(
            f'[monitor]\ninterval = "0.25s"\nsoak = "{soak}"\nmin_samples = 3\nfailure_limit = 1\n'
            f'[environments.staging]\nbase_url = "{staging.url}"\nversion_timeout = "3s"\n'
            f'[environments.staging.metrics]\nkind = "test-history"\n'
        )
        staging.sha = git.output(r.config.repo_path(), "rev-parse", "main")
        if uptime_s is not None:
            b1 = r.check("B1")
            assert b1.status is Status.PASSED, b1.summary
            # (the staging's reported start; today's B1 records none: then its uptime says it)
            history.serving = (b1.evidence.get("serving_since") or {}).get("ts", time.time() - uptime_s)
        return r

    yield make
    for s in servers:
        s.close()


def _samples(r: Release, gate: str) -> list[dict[str, Any]]:
    return [e.payload for e in r.journal.events if e.type == "sample" and e.payload["gate"] == gate]


def test_c1_does_not_pass_when_b1_saw_staging_serving_10s_ago_and_the_soak_is_an_hour(soak_release, history):
    """issue 19 item 9: with an hour of clean history C1 passed at once; the soak runs from B1's
    instant, so 10 s in it is still watching (here stopped by the stop button): not passed."""
    r = soak_release("1h", 10)
    history.stop_after = 2
    out = staging_soak(GateContext(r, "C1"))
    assert out.status is Status.INTERRUPTED, out.summary
    t0 = history.serving
    assert out.evidence["window"]["start_ts"] == t0 and out.evidence["window"]["duration_s"] == 3600
    assert out.evidence["soak_start"]["source"] == "reported" and "uptime_s" in out.evidence["soak_start"]["basis"]
    assert "watched live for the rest of the soak" in out.evidence["from"]
    assert all(s["ts"] >= t0 for s in _samples(r, "C1")) and _samples(r, "C1")


def test_c1_waits_out_the_soak_from_b1_and_never_counts_samples_from_before(soak_release, history):
    """issue 19 item 9: staging breached before it served the release; the soak (2.5 s, B1 saw it
    1 s ago) counts only samples since B1's instant and lasts until the soak is over."""
    r = soak_release("2.5s", 1)
    history.before, history.after = 0.5, 0.0
    out = staging_soak(GateContext(r, "C1"))
    assert out.status is Status.PASSED, out.summary
    t0 = history.serving
    assert time.time() - t0 >= 2.5 and history.polls > 0  # it watched the remainder live
    assert out.evidence["window"]["start_ts"] == t0 and out.evidence["breaches"] == []
    assert all(s["ts"] >= t0 for s in _samples(r, "C1"))
    assert "when staging began serving" in out.summary


def test_c1_after_the_soak_judges_everything_since_b1(soak_release, history):
    r = soak_release("2s", 3)
    history.before = 0.5
    out = staging_soak(GateContext(r, "C1"))
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["window"]["start_ts"] == history.serving
    assert out.evidence["window"]["duration_s"] >= 3 and history.polls == 0  # no wait: history only
    history.after = 0.5  # a spike since B1's instant fails it
    out = staging_soak(GateContext(r, "C1"))
    assert out.status is Status.FAILED, out.summary


def test_c1_without_b1_is_inconclusive(soak_release, history):
    """issue 19 item 9: no B1, no instant to soak from (clean history passed C1 before)."""
    r = soak_release("2s", None)
    out = staging_soak(GateContext(r, "C1"))
    assert out.status is Status.INCONCLUSIVE
    assert out.summary.startswith("B1 has not shown staging serving ")
    r.run("B1", lambda: Outcome.passed("an old B1 without serving_since"))
    out = staging_soak(GateContext(r, "C1"))
    assert out.status is Status.INCONCLUSIVE and "re-run B1" in out.summary


def test_c1_shortened_by_relnb_window_cannot_pass(soak_release, history, monkeypatch):
    """issue 19 item 11: `relnb run --window` shortens the soak too, and then it is not a pass."""
    r = soak_release("1h", 3)
    monkeypatch.setenv("RELNB_WINDOW", "2s")
    out = staging_soak(GateContext(r, "C1"))
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert out.evidence["shortened"]["configured"] == "1h" and out.evidence["shortened"]["used_s"] >= 2
    assert "shorter than the configured 1h" in out.summary


def test_c1_live_soak_under_relnb_window_cannot_pass(project, app, monkeypatch):
    """issue 19 item 11: the same with a /metrics scrape (no history): C1 watches live."""
    r = project(_monitor_toml(app, soak="2s"))
    r.run("B1", lambda: Outcome.passed("staging serves it", serving_since={"ts": time.time() - 5, "source": "first-observed"}))
    monkeypatch.setenv("RELNB_WINDOW", "1s")
    out = staging_soak(GateContext(r, "C1"))
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert out.evidence["shortened"] == {"configured": "2s", "used": "1s", "configured_s": 2, "used_s": 1}
