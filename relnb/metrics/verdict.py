"""The incremental verdict of a monitoring window.

`WindowVerdict.add(sample)` costs O(rules) per tick whatever the window length: it appends to
per-metric lists and updates running counters, so a 60-minute window at 5 s costs the same at
minute 60 as at minute 1. Quantiles, the median-ratio test and Mann-Whitney run once, in
`outcome()`.

The verdict is conservative by construction:
- a hard breach (more than `failure_limit` consecutive breaching samples) fails at once;
- at the end, too few samples, a gap longer than `max_gap_s`, a missing baseline for a relative
  rule, or a breach still open when the window closes make it inconclusive;
- only a completed window with enough evidence and no breach passes;
- a window shorter than the configured one (`configured_s`: a rehearsal's `--window`) never
  passes: clean samples make it inconclusive (evidence `shortened`), for whoever shortened it to
  waive; a breach still fails. Only the length decides, so no min_samples or interval setting can
  let a short window through.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..results import Outcome, Status
from .rules import Rule
from .samples import MetricSource, Sample, as_sample, fmt_value, iso


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile of already sorted values (numpy's default method)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values: Iterable[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "min": ordered[0] if ordered else None,
        "max": ordered[-1] if ordered else None,
        "p5": quantile(ordered, 0.05),
        "p50": quantile(ordered, 0.5),
        "p95": quantile(ordered, 0.95),
    }


class Baseline:
    """Reference values per metric: a pre-deploy period, or the same window yesterday."""

    def __init__(
        self, values: Mapping[str, Iterable[float | None]], label: str = "baseline"
    ) -> None:
        self.label = label
        self._values: dict[str, list[float]] = {}
        for metric, vals in values.items():
            clean = [float(v) for v in vals if v is not None and not math.isnan(float(v))]
            self._values[metric] = clean
        self._summary = {m: summarize(v) for m, v in self._values.items()}

    @classmethod
    def from_samples(
        cls, samples: Iterable[Sample | Mapping[str, Any]], label: str = "pre-deploy"
    ) -> Baseline:
        values: dict[str, list[float | None]] = {}
        for s in map(as_sample, samples):
            for metric, value in s.values.items():
                values.setdefault(metric, []).append(value)
        return cls(values, label)

    @classmethod
    def from_source(
        cls,
        source: MetricSource,
        metrics: Iterable[str],
        start: float,
        end: float,
        step: float,
        label: str = "baseline",
    ) -> Baseline | None:
        """Ask a source with history (Prometheus) for the baseline period; None if it has none.

        For "the same window yesterday", pass start - 86400 and end - 86400.
        """
        values: dict[str, list[float | None]] = {}
        for metric in metrics:
            points = source.history(metric, start, end, step)
            if points is None:
                return None
            values[metric] = [v for _, v in points]
        return cls(values, f"{label} {iso(start)}–{iso(end)}")

    def values(self, metric: str) -> list[float]:
        return self._values.get(metric, [])

    def reference(self, metric: str) -> float | None:
        """The median: robust to the spikes a baseline period also has."""
        return self._summary.get(metric, {}).get("p50")

    def band(self, metric: str) -> tuple[float, float] | None:
        s = self._summary.get(metric)
        if not s or s["p5"] is None:
            return None
        return s["p5"], s["p95"]

    def summary(self) -> dict[str, Any]:
        return {"label": self.label, "metrics": self._summary}

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "values": self._values}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        return cls(data.get("values") or {}, str(data.get("label") or "baseline"))


@dataclass
class Breach:
    """A run of breaching samples (or an end-of-window test that failed)."""

    metric: str
    kind: str  # max | min | ratio | median_ratio | mann_whitney
    value: float
    threshold: float
    start_ts: float
    end_ts: float
    samples: int = 1
    hard: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "kind": self.kind,
            "value": self.value,
            "threshold": self.threshold,
            "start": iso(self.start_ts),
            "end": iso(self.end_ts),
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "samples": self.samples,
            "hard": self.hard,
            **({"detail": self.detail} if self.detail else {}),
        }

    def describe(self) -> str:
        op = "<" if self.kind == "min" else ">"
        what = {"ratio": " (baseline × ratio)", "median_ratio": " (window median vs baseline)"}
        text = f"{self.metric} {fmt_value(self.metric, self.value)} {op} {fmt_value(self.metric, self.threshold)}"
        text += what.get(self.kind, "")
        if self.kind == "mann_whitney":
            return f"{self.metric} window higher than baseline (Mann-Whitney p={self.detail.get('p', 0):.2g})"
        if self.samples > 1:
            text += f" for {self.samples} consecutive samples"
        return text


class _RuleState:
    __slots__ = ("open", "rule")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.open: Breach | None = None


@dataclass
class _MetricStats:
    values: list[float] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    missing: int = 0
    nan: int = 0
    latest: float | None = None
    max: float | None = None
    last_valid_ts: float | None = None
    max_gap_s: float = 0.0


class WindowVerdict:
    """Feed samples in time order; ask for the `Outcome` when the window ends or breaks."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        start_ts: float,
        duration_s: float,
        baseline: Baseline | None = None,
        configured_s: float | None = None,
        not_watched: Mapping[str, str] | None = None,
    ) -> None:
        from ..errors import UsageError

        if not rules:
            raise UsageError("a monitoring window needs at least one rule")
        self.not_watched = dict(not_watched or {})
        judged = sorted({r.metric for r in rules} & set(self.not_watched))
        if judged:  # a rule and "not watched" for one metric: the note would hide a missing sample
            raise UsageError(f"{', '.join(judged)} has a rule and is also marked not watched")
        self.rules = list(rules)
        self.start_ts = start_ts
        self.duration_s = duration_s
        self.configured_s = configured_s
        self.baseline = baseline
        self.stats: dict[str, _MetricStats] = {r.metric: _MetricStats() for r in self.rules}
        self._states = [_RuleState(r) for r in self.rules]
        self.breaches: list[Breach] = []
        self.hard_breach: Breach | None = None
        self.samples = 0
        self.gap_samples = 0
        self.last_ts: float | None = None
        self.errors: dict[str, int] = {}
        self.breaching_now: set[str] = set()  # metrics whose latest sample breached a rule

    # -- hot path ---------------------------------------------------------------------------
    def add(self, sample: Sample | Mapping[str, Any]) -> list[Breach]:
        """Account one sample; returns the breaches that became hard with it."""
        s = as_sample(sample)
        self.samples += 1
        self.last_ts = s.ts
        if not s.ok:
            self.gap_samples += 1
        for err in s.errors[:3]:
            if len(self.errors) < 20 or err in self.errors:
                self.errors[err] = self.errors.get(err, 0) + 1
        for metric, st in self.stats.items():
            value = s.values.get(metric)
            if value is None or math.isnan(value):
                st.missing += 1
                if metric in s.nan or (value is not None and math.isnan(value)):
                    st.nan += 1
                continue
            since = st.last_valid_ts if st.last_valid_ts is not None else self.start_ts
            st.max_gap_s = max(st.max_gap_s, s.ts - since)
            st.last_valid_ts = s.ts
            st.values.append(value)
            st.ts.append(s.ts)
            st.latest = value
            st.max = value if st.max is None else max(st.max, value)
        hard: list[Breach] = []
        self.breaching_now = set()
        for state in self._states:
            value = s.values.get(state.rule.metric)
            if value is None or math.isnan(value):
                continue  # a gap neither breaks nor extends a streak
            found = self._check(state.rule, value)
            if found is None:
                state.open = None
                continue
            kind, threshold = found
            self.breaching_now.add(state.rule.metric)
            run = state.open
            if run is None:
                run = Breach(state.rule.metric, kind, value, threshold, s.ts, s.ts)
                state.open = run
                self.breaches.append(run)
            else:
                run.end_ts = s.ts
                run.samples += 1
                worse = value < run.value if run.kind == "min" else value > run.value
                if worse:
                    run.value = value
            if not run.hard and run.samples > state.rule.failure_limit:
                run.hard = True
                hard.append(run)
                if self.hard_breach is None:
                    self.hard_breach = run
        return hard

    def _check(self, rule: Rule, value: float) -> tuple[str, float] | None:
        if rule.max is not None and value > rule.max:
            return "max", rule.max
        if rule.min is not None and value < rule.min:
            return "min", rule.min
        if rule.max_ratio is not None and self.baseline is not None:
            ref = self.baseline.reference(rule.metric)
            if ref is not None:
                limit = ref * rule.max_ratio
                if value > limit and value - ref > rule.ratio_min_delta:
                    return "ratio", limit
        return None

    # -- views ------------------------------------------------------------------------------
    def latest(self) -> dict[str, float | None]:
        return {m: st.latest for m, st in self.stats.items()}

    def series(self, metric: str) -> tuple[list[float], list[float]]:
        st = self.stats[metric]
        return st.ts, st.values

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.start_ts)

    # -- the end ----------------------------------------------------------------------------
    def _metric_evidence(self, end_ts: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for metric, st in self.stats.items():
            tail_gap = end_ts - (
                st.last_valid_ts if st.last_valid_ts is not None else self.start_ts
            )
            summary = summarize(st.values)
            out[metric] = {
                "count": summary["count"],
                "missing": st.missing,
                "nan": st.nan,
                "latest": st.latest,
                "max": summary["max"],
                "min": summary["min"],
                "p50": summary["p50"],
                "p95": summary["p95"],
                "max_gap_s": round(max(st.max_gap_s, tail_gap), 3),
            }
        return out

    def _end_tests(
        self, rule: Rule, metric_ev: Mapping[str, Any]
    ) -> tuple[list[Breach], dict[str, Any]]:
        """Relative checks on the whole window: median ratio and Mann-Whitney U."""
        breaches: list[Breach] = []
        tests: dict[str, Any] = {}
        if self.baseline is None:
            return breaches, tests
        st = self.stats[rule.metric]
        base = self.baseline.values(rule.metric)
        ref = self.baseline.reference(rule.metric)
        median = metric_ev["p50"]
        if ref is None or median is None or not st.ts:
            return breaches, tests
        first, last = st.ts[0], st.ts[-1]
        if rule.max_ratio is not None:
            limit = ref * rule.max_ratio
            bad = median > limit and median - ref > rule.ratio_min_delta
            tests["median_ratio"] = {
                "window_p50": median,
                "baseline_p50": ref,
                "limit": limit,
                "breached": bad,
            }
            if bad:
                breaches.append(
                    Breach(
                        rule.metric,
                        "median_ratio",
                        median,
                        limit,
                        first,
                        last,
                        len(st.values),
                        True,
                    )
                )
        if rule.mann_whitney_alpha is not None and len(base) >= 2 and len(st.values) >= 2:
            from scipy.stats import mannwhitneyu

            result = mannwhitneyu(st.values, base, alternative="greater")
            p = float(result.pvalue)
            worse = (
                median >= ref * rule.mann_whitney_min_ratio and median - ref > rule.ratio_min_delta
            )
            bad = (not math.isnan(p)) and p < rule.mann_whitney_alpha and worse
            tests["mann_whitney"] = {
                "u": float(result.statistic),
                "p": p,
                "alpha": rule.mann_whitney_alpha,
                "n_window": len(st.values),
                "n_baseline": len(base),
                "min_ratio": rule.mann_whitney_min_ratio,
                "breached": bad,
            }
            if bad:
                breaches.append(
                    Breach(
                        rule.metric,
                        "mann_whitney",
                        median,
                        ref,
                        first,
                        last,
                        len(st.values),
                        True,
                        {"p": p},
                    )
                )
        return breaches, tests

    def shortened(self) -> dict[str, Any] | None:
        """How much shorter than configured this window is (None when it is not)."""
        if self.configured_s is None or self.duration_s >= self.configured_s:
            return None
        return {
            "configured": compact_duration(self.configured_s),
            "used": compact_duration(self.duration_s),
            "configured_s": _seconds(self.configured_s),
            "used_s": _seconds(self.duration_s),
        }

    def outcome(
        self,
        *,
        end_ts: float,
        interrupted: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Outcome:
        out = self._outcome(end_ts=end_ts, interrupted=interrupted, extra=extra)
        if not self.not_watched:
            return out
        notes = "; ".join(dict.fromkeys(self.not_watched.values()))
        return Outcome(out.status, f"{out.summary}; {notes}", {**out.evidence, "not_watched": self.not_watched})

    def _outcome(
        self,
        *,
        end_ts: float,
        interrupted: bool,
        extra: Mapping[str, Any] | None,
    ) -> Outcome:
        out = self._judge(end_ts=end_ts, interrupted=interrupted, extra=extra)
        short = self.shortened()
        if short is None:
            return out
        if out.status is not Status.PASSED:  # a breach still fails; no evidence stays no evidence
            return Outcome(out.status, out.summary, {**out.evidence, "shortened": short})
        # the one case a shortening waiver may accept: nothing but the window's length is missing
        return Outcome.inconclusive(
            f"window {short['used']} shorter than the configured {short['configured']}: "
            "samples within limits (would pass on a full window)",
            **{**out.evidence, "shortened": {**short, "would_pass": True}},
        )

    def _judge(
        self,
        *,
        end_ts: float,
        interrupted: bool,
        extra: Mapping[str, Any] | None,
    ) -> Outcome:
        elapsed = self.elapsed(end_ts)
        completed = elapsed >= self.duration_s
        metrics = self._metric_evidence(end_ts)
        reasons: list[str] = []
        tests: dict[str, Any] = {}
        end_breaches: list[Breach] = []
        if self.hard_breach is None and completed and not interrupted:
            for rule in self.rules:
                ev = metrics[rule.metric]
                if ev["count"] < rule.min_samples:
                    nan = f", {ev['nan']} NaN" if ev["nan"] else ""
                    reasons.append(
                        f"{rule.metric}: {ev['count']} samples (needs ≥ {rule.min_samples}{nan})"
                    )
                if ev["max_gap_s"] > rule.max_gap_s:
                    reasons.append(
                        f"{rule.metric}: no data for {ev['max_gap_s']:.0f} s (max gap {rule.max_gap_s:g} s)"
                    )
                if rule.needs_baseline:
                    n_base = len(self.baseline.values(rule.metric)) if self.baseline else 0
                    if n_base < rule.min_samples:
                        reasons.append(
                            f"{rule.metric}: baseline has {n_base} samples (needs ≥ {rule.min_samples})"
                        )
                        continue
                found, rule_tests = self._end_tests(rule, ev)
                end_breaches.extend(found)
                if rule_tests:
                    tests.setdefault(rule.metric, {}).update(rule_tests)
            for state in self._states:
                if state.open is not None and not state.open.hard:
                    reasons.append(
                        f"{state.rule.metric} was still breaching when the window closed "
                        f"({state.open.samples} of {state.rule.failure_limit + 1} consecutive samples)"
                    )
        breaches = [*self.breaches, *end_breaches]
        evidence: dict[str, Any] = {
            "window": {
                "start": iso(self.start_ts),
                "end": iso(end_ts),
                "start_ts": self.start_ts,
                "end_ts": end_ts,
                "duration_s": self.duration_s,
                "elapsed_s": round(elapsed, 3),
                "completed": completed,
                "samples": self.samples,
                "gap_samples": self.gap_samples,
            },
            "rules": [r.to_dict() for r in self.rules],
            "metrics": metrics,
            "baseline": self.baseline.summary() if self.baseline else None,
            "breaches": [b.to_dict() for b in breaches],
            "tests": tests,
            "inconclusive": reasons,
            "errors": [{"error": e, "count": n} for e, n in list(self.errors.items())[:10]],
            **dict(extra or {}),
        }
        window = f"{format_duration(elapsed)} of {format_duration(self.duration_s)}"
        latest = _latest_text(self.rules, metrics)
        if interrupted:
            return Outcome(
                Status.INTERRUPTED,
                f"monitoring window interrupted after {window}; not a pass ({latest})",
                evidence,
            )
        hard = self.hard_breach or next((b for b in end_breaches if b.hard), None)
        if hard is not None:
            more = len([b for b in breaches if b.hard]) - 1
            tail = f" (+{more} more)" if more > 0 else ""
            early = " — window ended early" if not completed else ""
            return Outcome.failed(
                f"{hard.describe()} at {iso(hard.end_ts)[11:19]}{tail}{early} ({window})",
                **evidence,
            )
        if not completed:
            return Outcome.inconclusive(f"window not finished: {window}", **evidence)
        if reasons:
            extra_n = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
            # the cause a release lead acts on: the source itself stopped answering
            cause = ""
            if self.gap_samples and self.errors:
                error, _ = max(self.errors.items(), key=lambda kv: kv[1])
                cause = f"; source failed {self.gap_samples} poll(s): {error[:120]}"
            return Outcome.inconclusive(
                f"not enough evidence: {reasons[0]}{extra_n}{cause}", **evidence
            )
        transient = len(self.breaches)
        note = f"; {transient} transient breach(es) within failure limits" if transient else ""
        return Outcome.passed(f"window {format_duration(self.duration_s)} clean: {latest}{note}", **evidence)


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"


def compact_duration(seconds: float) -> str:
    """120 → '2m', 1800 → '30m', 5400 → '1h30m', 1.5 → '1.5s': how people write a window.

    Never rounded up to the next minute: 1799.6 s is '29m59.6s', not a '30m' beside a 30m one.
    """
    h, rest = divmod(int(seconds), 3600)
    m = rest // 60
    s = math.floor((seconds - h * 3600 - m * 60) * 10 + 1e-6) / 10  # tenths, never rounded up
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s:g}s" if s else ""]
    return "".join(parts) or "0s"


def _seconds(value: float) -> float | int:
    """1800.0 → 1800 in evidence (JSON stays as people read it); fractions keep 3 decimals."""
    return int(value) if value == int(value) else round(value, 3)


def _latest_text(rules: Sequence[Rule], metrics: Mapping[str, Any]) -> str:
    seen: list[str] = []
    parts = []
    for r in rules:
        if r.metric in seen:
            continue
        seen.append(r.metric)
        ev = metrics[r.metric]
        parts.append(f"{r.metric} max {fmt_value(r.metric, ev['max'])} over {ev['count']} samples")
    return "; ".join(parts)


def evaluate_samples(
    samples: Iterable[Sample | Mapping[str, Any]],
    rules: Sequence[Rule],
    *,
    duration_s: float,
    start_ts: float | None = None,
    end_ts: float | None = None,
    baseline: Baseline | None = None,
    configured_s: float | None = None,
    not_watched: Mapping[str, str] | None = None,
) -> Outcome:
    """The verdict over recorded samples (archive replay, tests): same logic as the live window.

    `end_ts` defaults to the last sample's time, so a recording that stops early is not a pass;
    replays pass the window's recorded `evidence["window"]["end_ts"]`. Samples from before
    `start_ts` are not part of the window and never count.
    """
    items = [as_sample(s) for s in samples]
    if start_ts is None:
        start_ts = items[0].ts if items else 0.0
    items = [s for s in items if s.ts >= start_ts]
    verdict = WindowVerdict(
        rules, start_ts=start_ts, duration_s=duration_s, baseline=baseline, configured_s=configured_s,
        not_watched=not_watched,
    )
    for s in items:
        verdict.add(s)
        if verdict.hard_breach is not None:
            return verdict.outcome(end_ts=s.ts)
    if end_ts is None:
        end_ts = items[-1].ts if items else start_ts
    return verdict.outcome(end_ts=end_ts)
