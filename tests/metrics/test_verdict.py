"""Verdict logic on synthetic series: steps, spikes, drifts, gaps, NaN, interrupts, resume."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relnb.errors import ConfigError
from relnb.metrics.rules import Rule, default_rules, rules_from_config
from relnb.metrics.samples import Sample
from relnb.metrics.sources import FunctionSource, RecordedSource
from relnb.metrics.verdict import Baseline, evaluate_samples
from relnb.metrics.window import run_window
from relnb.results import Status

from ._fakes import FakeClock

ERR = Rule("error_rate", max=0.01, failure_limit=2, min_samples=10, max_gap_s=30)
LAT = Rule("latency_p95", max=0.5, failure_limit=2, min_samples=10, max_gap_s=30)


def window(series, rules=(ERR,), duration=300.0, interval=5.0, **kw):
    clock = FakeClock()
    recorded: list[dict] = []
    source = kw.pop("source", None) or FunctionSource(series, down=kw.pop("down", None))
    outcome = run_window(
        source,
        list(rules),
        duration,
        interval,
        record=recorded.append,
        clock=clock,
        sleep=clock.sleep,
        **kw,
    )
    return outcome, recorded, clock


def test_steady_healthy_series_passes_after_whole_window():
    outcome, recorded, _clock = window(
        {"error_rate": lambda t: 0.002, "latency_p95": lambda t: 0.12}, rules=(ERR, LAT)
    )
    assert outcome.status == Status.PASSED, outcome.summary
    assert len(recorded) == 60  # 300 s at 5 s
    ev = outcome.evidence
    assert ev["window"]["completed"] and ev["window"]["elapsed_s"] >= 300
    assert ev["metrics"]["error_rate"]["count"] == 60
    assert ev["metrics"]["latency_p95"]["p95"] == pytest.approx(0.12)
    assert ev["breaches"] == []


def test_step_up_fails_early_with_breach_evidence():
    outcome, recorded, _clock = window({"error_rate": lambda t: 0.002 if t < 100 else 0.05})
    assert outcome.status == Status.FAILED
    assert not outcome.evidence["window"]["completed"]  # ended early
    breach = outcome.evidence["breaches"][0]
    assert breach["metric"] == "error_rate" and breach["hard"]
    assert breach["samples"] == 3  # failure_limit 2 → the third consecutive breach fails
    assert breach["threshold"] == 0.01 and breach["value"] == 0.05
    assert breach["start_ts"] == recorded[20]["ts"]
    assert len(recorded) == 23
    assert "error_rate 5.00% > 1.00%" in outcome.summary


def test_single_spike_within_failure_limit_is_tolerated_but_reported():
    outcome, _, _ = window({"error_rate": lambda t: 0.5 if 100 <= t < 110 else 0.001})
    assert outcome.status == Status.PASSED
    assert len(outcome.evidence["breaches"]) == 1
    assert not outcome.evidence["breaches"][0]["hard"]
    assert "transient" in outcome.summary


def test_failure_limit_zero_fails_on_first_breach():
    rule = Rule("error_rate", max=0.01, failure_limit=0, min_samples=5)
    outcome, recorded, _ = window({"error_rate": lambda t: 0.5 if t >= 50 else 0.0}, rules=(rule,))
    assert outcome.status == Status.FAILED
    assert len(recorded) == 11


def test_breach_open_at_window_end_is_not_a_pass():
    outcome, _, _ = window({"error_rate": lambda t: 0.2 if t >= 293 else 0.0})
    assert outcome.status == Status.INCONCLUSIVE
    assert "still breaching" in outcome.summary


def test_slow_drift_crosses_threshold_and_fails():
    outcome, _, _ = window({"latency_p95": lambda t: 0.1 + t * 0.002}, rules=(LAT,), duration=600)
    assert outcome.status == Status.FAILED  # crosses 0.5 s at t=200
    assert (
        outcome.evidence["breaches"][0]["start_ts"] - outcome.evidence["window"]["start_ts"] > 200
    )


def test_slow_drift_below_threshold_caught_by_baseline_ratio():
    base = Baseline({"latency_p95": [0.1] * 30}, "pre-deploy")
    rule = Rule("latency_p95", max=0.5, max_ratio=2.0, failure_limit=2, min_samples=10)
    outcome, _, _ = window(
        {"latency_p95": lambda t: 0.1 + t * 0.0005}, rules=(rule,), duration=600, baseline=base
    )
    assert outcome.status == Status.FAILED  # 0.2 at t=200: twice the baseline median
    assert outcome.evidence["breaches"][0]["kind"] == "ratio"
    assert outcome.evidence["baseline"]["metrics"]["latency_p95"]["p50"] == pytest.approx(0.1)


def test_mann_whitney_flags_a_shift_no_single_sample_breaches():
    import random

    rng = random.Random(7)
    base = Baseline({"latency_p95": [0.10 + rng.random() * 0.02 for _ in range(60)]})
    rule = Rule("latency_p95", max=0.5, max_ratio=3.0, mann_whitney_alpha=0.01, min_samples=10)
    outcome, _, _ = window(
        {"latency_p95": lambda t: 0.13 + rng.random() * 0.02}, rules=(rule,), baseline=base
    )
    assert outcome.status == Status.FAILED, outcome.summary
    mw = outcome.evidence["tests"]["latency_p95"]["mann_whitney"]
    assert mw["p"] < 0.01 and mw["breached"]
    assert "Mann-Whitney" in outcome.summary


def test_mann_whitney_passes_same_distribution():
    import random

    rng = random.Random(3)
    base = Baseline({"latency_p95": [0.10 + rng.random() * 0.02 for _ in range(60)]})
    rule = Rule("latency_p95", max=0.5, max_ratio=3.0, mann_whitney_alpha=0.01, min_samples=10)
    outcome, _, _ = window(
        {"latency_p95": lambda t: 0.10 + rng.random() * 0.02}, rules=(rule,), baseline=base
    )
    assert outcome.status == Status.PASSED, outcome.summary
    assert not outcome.evidence["tests"]["latency_p95"]["mann_whitney"]["breached"]


def test_relative_rule_without_baseline_is_inconclusive():
    rule = Rule("error_rate", max_ratio=2.0, min_samples=5)
    outcome, _, _ = window({"error_rate": lambda t: 0.0}, rules=(rule,))
    assert outcome.status == Status.INCONCLUSIVE
    assert "baseline has 0 samples" in outcome.summary


def test_no_data_is_inconclusive():
    outcome, recorded, _ = window({"error_rate": lambda t: None})
    assert outcome.status == Status.INCONCLUSIVE
    assert len(recorded) == 60


def test_nan_values_do_not_count_as_samples():
    outcome, recorded, _ = window({"error_rate": lambda t: math.nan if t > 20 else 0.0})
    assert outcome.status == Status.INCONCLUSIVE
    assert outcome.evidence["metrics"]["error_rate"]["nan"] == 55
    assert "NaN" in outcome.summary
    assert recorded[-1]["values"]["error_rate"] is None and recorded[-1]["nan"] == ["error_rate"]


def test_source_down_longer_than_max_gap_is_inconclusive_even_if_data_is_good():
    outcome, recorded, _ = window({"error_rate": lambda t: 0.0}, down=lambda t: 100 <= t < 160)
    assert outcome.status == Status.INCONCLUSIVE
    assert "no data for 65 s" in outcome.summary
    assert sum(not r["ok"] for r in recorded) == 12


def test_short_gap_within_limit_passes():
    outcome, _, _ = window({"error_rate": lambda t: 0.0}, down=lambda t: 100 <= t < 120)
    assert outcome.status == Status.PASSED
    assert outcome.evidence["window"]["gap_samples"] == 4


def test_gap_at_the_end_counts():
    outcome, _, _ = window({"error_rate": lambda t: 0.0}, down=lambda t: t >= 250)
    assert outcome.status == Status.INCONCLUSIVE


def test_polls_that_raise_are_gaps_not_crashes():
    class Broken:
        name = "broken"

        def poll(self, now):
            raise ConnectionError("refused")

        def history(self, *a):
            return None

        def describe(self):
            return {"kind": "broken"}

    outcome, recorded, _ = window({}, source=Broken())
    assert outcome.status == Status.INCONCLUSIVE
    assert recorded[0]["errors"] == ["ConnectionError: refused"]
    # the summary names the cause, not only the missing samples
    assert "source failed 60 poll(s): ConnectionError: refused" in outcome.summary
    assert outcome.evidence["errors"][0]["count"] == 60


def test_interrupt_records_interrupted_not_pass():
    clock = FakeClock()
    calls = {"n": 0}

    def sleep(s):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        clock.sleep(s)

    recorded: list[dict] = []
    outcome = run_window(
        FunctionSource({"error_rate": lambda t: 0.0}),
        [ERR],
        300,
        5,
        record=recorded.append,
        clock=clock,
        sleep=sleep,
    )
    assert outcome.status == Status.INTERRUPTED
    assert len(recorded) == 10
    assert outcome.evidence["metrics"]["error_rate"]["count"] == 10


def test_resume_after_restart_continues_window_from_first_recorded_sample():
    clock = FakeClock()
    first: list[dict] = []
    src = FunctionSource({"error_rate": lambda t: 0.0})

    def sleep(s):
        if len(first) == 30:
            raise KeyboardInterrupt  # the kernel died after 30 samples
        clock.sleep(s)

    out1 = run_window(src, [ERR], 300, 5, record=first.append, clock=clock, sleep=sleep)
    assert out1.status == Status.INTERRUPTED
    clock.t += 10  # restart takes 10 s
    second: list[dict] = []
    out2 = run_window(
        FunctionSource({"error_rate": lambda t: 0.0}),
        [ERR],
        300,
        5,
        record=second.append,
        resume_samples=first,
        clock=clock,
        sleep=clock.sleep,
    )
    assert out2.status == Status.PASSED, out2.summary
    assert out2.evidence["window"]["start_ts"] == first[0]["ts"]
    assert out2.evidence["resumed_samples"] == 30
    assert len(first) + len(second) in (58, 59)  # 10 s lost to the restart
    assert out2.evidence["metrics"]["error_rate"]["count"] == len(first) + len(second)


def test_resume_after_long_outage_is_inconclusive():
    clock = FakeClock()
    first: list[dict] = []
    run_window(
        FunctionSource({"error_rate": lambda t: 0.0}),
        [ERR],
        300,
        5,
        record=first.append,
        clock=clock,
        sleep=lambda s: (
            (_ for _ in ()).throw(KeyboardInterrupt) if len(first) == 20 else clock.sleep(s)
        ),
    )
    clock.t += 600  # the kernel came back after the window would have ended
    out = run_window(
        FunctionSource({"error_rate": lambda t: 0.0}),
        [ERR],
        300,
        5,
        resume_samples=first,
        clock=clock,
        sleep=clock.sleep,
    )
    assert out.status == Status.INCONCLUSIVE
    assert "no data for" in out.summary


def test_resumed_hard_breach_stays_failed():
    samples = [Sample.build(1000 + 5 * i, {"error_rate": 0.5}).to_dict() for i in range(5)]
    clock = FakeClock(1030)
    out = run_window(
        FunctionSource({"error_rate": lambda t: 0.0}),
        [ERR],
        300,
        5,
        resume_samples=samples,
        clock=clock,
        sleep=clock.sleep,
    )
    assert out.status == Status.FAILED


def test_counter_reset_in_recorded_rates_replays_identically():
    rows = [
        Sample.build(1000 + 5 * i, {"error_rate": 0.001 * (i % 3)}).to_dict() for i in range(61)
    ]
    a = evaluate_samples(rows, [ERR], duration_s=300)
    b = evaluate_samples(RecordedSource(rows).samples, [ERR], duration_s=300)
    assert a.status == b.status == Status.PASSED
    assert a.evidence == b.evidence


def test_recorded_source_exhaustion_is_a_gap():
    rows = [Sample.build(0, {"error_rate": 0.0}).to_dict() for _ in range(10)]
    outcome, recorded, _ = window({}, source=RecordedSource(rows))
    assert outcome.status == Status.INCONCLUSIVE
    assert recorded[-1]["errors"] == ["recording exhausted"]


def test_on_tick_sees_progress_and_heartbeats():
    states = []
    outcome, _, _ = window(
        {"error_rate": lambda t: 0.0},
        interval=90,
        duration=300,
        on_tick=lambda s: states.append((s.heartbeat, round(s.elapsed_s), s.status_line())),
        heartbeat_s=30,
    )
    beats = [s for s in states if s[0]]
    assert beats, "waits longer than heartbeat_s must produce heartbeat ticks"
    assert "left]" in states[0][2] and "error_rate" in states[0][2]
    assert outcome.status == Status.INCONCLUSIVE  # 4 samples < 10


def test_broken_display_does_not_decide_the_release():
    def on_tick(state):
        raise ValueError("chart broke")

    outcome, _, _ = window({"error_rate": lambda t: 0.0}, on_tick=on_tick)
    assert outcome.status == Status.PASSED
    assert outcome.evidence["display_errors"]


def test_one_bad_instance_among_many_fails_worst_instance_rule():
    # 1 of 20 instances at 15 % errors: fleet rate 0.75 % passes, the worst-instance rule fails.
    rules = [ERR, Rule("error_rate_worst_instance", max=0.05, min_samples=10)]
    outcome, _, _ = window(
        {"error_rate": lambda t: 0.0075, "error_rate_worst_instance": lambda t: 0.15}, rules=rules
    )
    assert outcome.status == Status.FAILED
    assert outcome.evidence["breaches"][0]["metric"] == "error_rate_worst_instance"
    assert outcome.evidence["metrics"]["error_rate"]["max"] < 0.01


def test_min_threshold_catches_traffic_drop():
    rule = Rule("request_rate", min=1.0, min_samples=5)
    outcome, _, _ = window({"request_rate": lambda t: 20.0 if t < 100 else 0.0}, rules=(rule,))
    assert outcome.status == Status.FAILED
    assert outcome.evidence["breaches"][0]["kind"] == "min"


def test_evidence_is_json_serialisable():
    import json

    outcome, recorded, _ = window({"error_rate": lambda t: math.nan if t == 50 else 0.0})
    text = json.dumps(outcome.evidence, allow_nan=False)  # raises on NaN/inf
    assert json.loads(text) == outcome.evidence  # nothing turned into something else on the way
    # the NaN sample is counted as such and recorded as null, not as a value of 0 or NaN
    assert outcome.evidence["metrics"]["error_rate"]["nan"] == 1
    assert outcome.evidence["metrics"]["error_rate"]["count"] == len(recorded) - 1
    nan_samples = [r for r in recorded if r.get("nan")]
    assert [r["values"]["error_rate"] for r in nan_samples] == [None]
    json.dumps(recorded, allow_nan=False)


def test_rule_validation():
    with pytest.raises(ConfigError):
        Rule("error_rate")
    with pytest.raises(ConfigError):
        Rule("error_rate", max=0.01, min_samples=0)
    with pytest.raises(ConfigError):
        Rule("error_rate", mann_whitney_alpha=1.5)
    with pytest.raises(ConfigError, match="unknown key"):
        rules_from_config({"error_rate": {"max": 0.01, "maximum": 2}})
    assert [r.metric for r in default_rules()] == ["error_rate", "latency_p95"]
    assert Rule.from_dict(ERR.to_dict()) == ERR


values = st.one_of(st.none(), st.just(math.nan), st.floats(min_value=0, max_value=0.005))


@settings(max_examples=150, deadline=None)
@given(
    min_samples=st.integers(min_value=1, max_value=40),
    data=st.data(),
)
def test_property_fewer_than_min_samples_never_passes(min_samples, data):
    rule = Rule("error_rate", max=0.01, min_samples=min_samples, max_gap_s=10_000)
    n_valid = data.draw(st.integers(min_value=0, max_value=min_samples - 1))
    n_missing = data.draw(st.integers(min_value=0, max_value=30))
    seq = [data.draw(st.floats(min_value=0, max_value=0.005)) for _ in range(n_valid)]
    seq += [data.draw(st.one_of(st.none(), st.just(math.nan))) for _ in range(n_missing)]
    order = data.draw(st.permutations(seq))
    rows = [Sample.build(1000.0 + 5 * i, {"error_rate": v}) for i, v in enumerate(order)]
    end = 1000.0 + data.draw(st.floats(min_value=0, max_value=1000))
    outcome = evaluate_samples(
        rows,
        [rule],
        duration_s=end - 1000.0 if end > 1000 else 1,
        start_ts=1000.0,
        end_ts=max(end, 1001.0),
    )
    assert outcome.status != Status.PASSED


@settings(max_examples=100, deadline=None)
@given(seq=st.lists(values, min_size=0, max_size=80), stop=st.integers(min_value=0, max_value=80))
def test_property_unfinished_or_interrupted_window_never_passes(seq, stop):
    rows = [Sample.build(1000.0 + 5 * i, {"error_rate": v}) for i, v in enumerate(seq)]
    # the window is 10 % longer than the recording: it did not finish
    out = evaluate_samples(rows, [ERR], duration_s=5 * len(seq) * 1.1 + 5, start_ts=1000.0)
    assert out.status != Status.PASSED
