"""D7 without a queue (issue 20): a project with no queue configured has its window judged on error
rate and latency, and the summary says "no queue configured: DLQ not watched"; it is not left
inconclusive for want of DLQ samples that nothing will ever give. A queue that IS configured but
gives no DLQ samples still leaves the window inconclusive.

The gates watch a real app's /metrics (FaultyApp); the configured-queue cases use the machine's
Redis, or a Redis URL where nothing listens.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from relnb import Release, Status
from relnb.errors import UsageError
from relnb.gatecontext import GateContext
from relnb.metrics import DLQ_INCREASE, Rule, WindowVerdict, default_rules, run_window
from relnb.metrics.rules import NO_QUEUE, dlq_watch
from relnb.metrics.sources import FunctionSource
from relnb.watch import monitor_production, no_error_spikes

from ..conftest import unused_port
from ..core.helpers import make_project
from ._app import FaultyApp
from ._fakes import FakeClock

# -- the engine ------------------------------------------------------------------------------


def _rules(*, queue_configured: bool) -> tuple[list[Rule], dict[str, str]]:
    dlq, not_watched = dlq_watch(wanted=True, queue_configured=queue_configured)
    return default_rules(dlq_increase=0.0 if dlq else None, min_samples=5, max_gap_s=30), not_watched


def _run(source: FunctionSource, rules: list[Rule], not_watched: dict[str, str]):
    clock = FakeClock()
    return run_window(source, rules, 120, 5.0, not_watched=not_watched, clock=clock, sleep=clock.sleep)


HTTP_ONLY = {"error_rate": lambda t: 0.001, "latency_p95": lambda t: 0.08}


def test_without_a_queue_the_window_judges_http_metrics_and_says_the_dlq_is_not_watched():
    rules, not_watched = _rules(queue_configured=False)
    assert [r.metric for r in rules] == ["error_rate", "latency_p95"]
    out = _run(FunctionSource(HTTP_ONLY), rules, not_watched)
    assert out.status is Status.PASSED, out.summary
    assert out.summary.endswith("; no queue configured: DLQ not watched")
    assert out.evidence["not_watched"] == {DLQ_INCREASE: NO_QUEUE}
    json.dumps(out.evidence)


def test_without_a_queue_a_breach_still_fails_and_still_says_what_was_not_watched():
    rules, not_watched = _rules(queue_configured=False)
    out = _run(FunctionSource({**HTTP_ONLY, "error_rate": lambda t: 0.3}), rules, not_watched)
    assert out.status is Status.FAILED, out.summary
    assert "error_rate" in out.summary and NO_QUEUE in out.summary


def test_a_configured_queue_without_dlq_samples_stays_inconclusive():
    """The false pass to refuse: the DLQ rule stays, and no samples is no evidence."""
    rules, not_watched = _rules(queue_configured=True)
    assert not_watched == {} and DLQ_INCREASE in [r.metric for r in rules]
    out = _run(FunctionSource(HTTP_ONLY), rules, not_watched)
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "dlq_increase: 0 samples" in out.summary and "not_watched" not in out.evidence


def test_a_metric_cannot_be_both_judged_and_not_watched():
    with pytest.raises(UsageError, match="dlq_increase"):
        WindowVerdict(
            [Rule(DLQ_INCREASE, max=0)], start_ts=0.0, duration_s=60, not_watched={DLQ_INCREASE: NO_QUEUE}
        )


# -- D7 and B8 against a real /metrics -------------------------------------------------------


@pytest.fixture
def app() -> Iterator[FaultyApp]:
    a = FaultyApp(rps=200)
    yield a
    a.close()


@pytest.fixture
def project(tmp_path, monkeypatch):
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


def _toml(app: FaultyApp, queue: str = "") -> str:
    return (
        '[monitor]\nwindow = "1.5s"\ninterval = "0.25s"\nmin_samples = 3\nfailure_limit = 1\n'
        f'[environments.production]\nbase_url = "http://127.0.0.1:9"\n{queue}'
        f'[environments.production.metrics]\nkind = "scrape"\nurls = ["{app.url}"]\n'
        f'[environments.staging]\nbase_url = "http://127.0.0.1:9"\n'
        f'[environments.staging.metrics]\nkind = "scrape"\nurls = ["{app.url}"]\n'
    )


def test_d7_without_a_queue_passes_on_error_rate_and_latency(project, app):
    """issue 20: `dlq_increase: 0 samples (needs ≥ 6)` kept D7 inconclusive on a project with no queue."""
    r = project(_toml(app))
    out = monitor_production(GateContext(r, "D7"))
    assert out.status is Status.PASSED, out.summary
    assert NO_QUEUE in out.summary
    assert out.evidence["not_watched"] == {DLQ_INCREASE: NO_QUEUE}
    assert [rule["metric"] for rule in out.evidence["rules"]] == ["error_rate", "latency_p95"]
    assert out.evidence["metrics"]["error_rate"]["count"] >= 3


def test_d7_without_a_queue_still_fails_on_errors(project, app):
    r = project(_toml(app))
    app.error_rate = 0.5
    out = monitor_production(GateContext(r, "D7"))
    assert out.status is Status.FAILED, out.summary
    assert [e.payload["gate"] for e in r.journal.events if e.type == "incident"] == ["D7"]


def test_d7_with_a_queue_whose_dlq_gives_no_samples_stays_inconclusive(project, app, monkeypatch):
    """A configured queue (Redis) that does not answer: no DLQ samples, so no pass."""
    monkeypatch.setenv("RELNB_TEST_DEAD_REDIS", f"redis://127.0.0.1:{unused_port()}/0")
    r = project(_toml(app, 'redis_url_env = "RELNB_TEST_DEAD_REDIS"\n'))
    out = monitor_production(GateContext(r, "D7"))
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "dlq_increase: 0 samples" in out.summary
    assert "not_watched" not in out.evidence and NO_QUEUE not in out.summary
    assert out.evidence["metrics"]["error_rate"]["count"] >= 3  # the HTTP side had its samples


def test_d7_with_a_live_queue_watches_its_dlq(project, app, redis_url, key_prefix, monkeypatch):
    monkeypatch.setenv("RELNB_TEST_PROD_REDIS", redis_url)
    queue = (
        'redis_url_env = "RELNB_TEST_PROD_REDIS"\n'
        f'[environments.production.queue]\nkind = "bullmq"\nnames = ["extraction"]\nprefix = "{key_prefix}"\n'
    )
    r = project(_toml(app, queue))
    out = monitor_production(GateContext(r, "D7"))
    assert out.status is Status.PASSED, out.summary
    assert DLQ_INCREASE in [rule["metric"] for rule in out.evidence["rules"]]
    assert out.evidence["metrics"][DLQ_INCREASE]["count"] >= 3 and "not_watched" not in out.evidence


def test_b8_without_a_queue_says_the_dlq_is_not_watched(project, app):
    r = project(_toml(app))
    out = no_error_spikes(GateContext(r, "B8"))
    assert out.status is Status.PASSED, out.summary
    assert out.summary.endswith(NO_QUEUE)
