"""ScrapeSource against real /metrics endpoints: rates, resets, instances, gaps, quantiles."""

from __future__ import annotations

import math

import pytest

from relnb.metrics.scrape import (
    ScrapeSource,
    counter_increase,
    histogram_quantile,
    parse_exposition,
)

from ._app import FaultyApp


@pytest.fixture
def apps():
    made: list[FaultyApp] = []

    def make(**kw) -> FaultyApp:
        app = FaultyApp(traffic=False, **kw)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def test_histogram_quantile_matches_prometheus_semantics():
    inf = math.inf
    buckets = [(0.1, 50.0), (0.25, 90.0), (0.5, 100.0), (inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.25 + 0.25 * 0.5)
    assert histogram_quantile(0.95, [(0.1, 0.0), (inf, 0.0)]) is None  # no observations
    assert histogram_quantile(0.99, [(0.1, 10.0), (0.2, 10.0), (inf, 20.0)]) == 0.2  # rank in +Inf
    # non-monotonic (mixed resets) is flattened upward instead of producing nonsense
    mixed = [(0.1, 10.0), (0.2, 5.0), (inf, 20.0)]
    assert histogram_quantile(0.4, mixed) == pytest.approx(0.08)
    assert histogram_quantile(0.75, mixed) == pytest.approx(0.2)


def test_counter_increase_handles_resets_and_new_series():
    k1, k2 = ("c", (("status", "200"),)), ("c", (("status", "500"),))
    assert counter_increase({k1: 100.0}, {k1: 130.0}) == {k1: 30.0}
    assert counter_increase({k1: 100.0}, {k1: 7.0}) == {k1: 7.0}  # process restarted
    assert counter_increase({k1: 100.0}, {k1: 100.0, k2: 3.0}) == {k1: 0.0, k2: 3.0}


def test_error_rate_latency_and_worker_rates_from_real_exposition(apps):
    app = apps(error_rate=0.25, latency_s=0.3)
    app.serve(100)
    src = ScrapeSource([app.url])
    first = src.poll(1000.0)
    assert first.ok and "error_rate" not in first.values  # nothing to difference yet
    app.serve(400)
    s = src.poll(1010.0)
    assert s.ok
    assert s.values["error_rate"] == pytest.approx(0.25)
    assert s.values["request_rate"] == pytest.approx(40.0)
    assert 0.25 < s.values["latency_p95"] <= 0.5  # the 0.25–0.5 bucket
    assert s.values["worker_failure_rate"] == 0.0
    assert s.values["dlq_depth"] == 0.0
    from prometheus_client import generate_latest

    series = parse_exposition(generate_latest(app.registry).decode())
    assert (
        series[
            ("http_requests_total", (("method", "GET"), ("route", "/documents"), ("status", "500")))
        ]
        == 125
    )


def test_no_traffic_gives_no_error_rate_not_zero(apps):
    app = apps()
    app.serve(10)
    src = ScrapeSource([app.url])
    src.poll(1.0)
    s = src.poll(2.0)  # no requests in between
    assert s.values["error_rate"] is None
    assert s.values["latency_p95"] is None


def test_counter_reset_after_restart_is_not_a_negative_rate(apps):
    app = apps(error_rate=0.0)
    app.serve(1000)
    src = ScrapeSource([app.url])
    src.poll(1.0)
    app.restart()
    app.error_rate = 0.5
    app.serve(40)
    s = src.poll(2.0)
    assert s.values["error_rate"] == pytest.approx(0.5)
    assert s.values["request_rate"] == pytest.approx(40.0)


def test_one_bad_instance_among_many(apps):
    good = [apps(error_rate=0.0) for _ in range(9)]
    bad = apps(error_rate=0.1)
    fleet = [*good, bad]
    src = ScrapeSource([a.url for a in fleet])
    for a in fleet:
        a.serve(10)
    src.poll(1.0)
    for a in fleet:
        a.serve(100)
    s = src.poll(2.0)
    assert s.values["error_rate"] == pytest.approx(0.01)  # diluted: 10 of 1000
    assert s.values["error_rate_worst_instance"] == pytest.approx(0.1)


def test_unreachable_instance_is_reported_and_all_down_is_a_gap(apps, free_port):
    app = apps()
    dead = f"http://user:pw-secret@127.0.0.1:{free_port}/metrics?token=abc"
    src = ScrapeSource([app.url, dead], timeout_s=1.0)
    app.serve(10)
    src.poll(1.0)
    app.serve(10)
    s = src.poll(2.0)
    assert not s.ok and s.values["error_rate"] == 0.0
    assert "pw-secret" not in s.errors[0] and "token=abc" not in s.errors[0]
    assert f"127.0.0.1:{free_port}/metrics" in s.errors[0]
    only_dead = ScrapeSource([dead], timeout_s=1.0).poll(3.0)
    assert not only_dead.ok and only_dead.values == {}


def test_not_metrics_is_a_gap(apps):
    app = apps()
    s = ScrapeSource([app.url.replace("/metrics", "/nope")]).poll(1.0)
    assert not s.ok and "HTTP 404" in s.errors[0]


def test_token_env_missing_is_a_config_error(monkeypatch):
    from relnb.errors import SecretMissing

    monkeypatch.delenv("RELNB_TEST_METRICS_TOKEN", raising=False)
    with pytest.raises(SecretMissing, match="RELNB_TEST_METRICS_TOKEN"):
        ScrapeSource(["http://127.0.0.1:1/metrics"], token_env="RELNB_TEST_METRICS_TOKEN")
