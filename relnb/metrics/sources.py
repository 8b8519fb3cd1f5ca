"""Metric sources the monitoring window can poll; every one follows `MetricSource`.

- `ScrapeSource`: the app's /metrics endpoints (embedded default, no Prometheus).
- `PrometheusSource`: a Prometheus-compatible HTTP API (instant queries, query_range baselines).
- `QueueDepthSource`: any callable returning the DLQ depth (the queue inspectors own the Redis side).
- `CombinedSource`: several sources merged into one sample per tick (HTTP metrics + queue).
- `FunctionSource`: values computed from the time (synthetic series for tests and demos).
- `RecordedSource`: replays journaled samples (tests, archive replay, resumed baselines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..plugins import Registry, callable_shape
from ..redact import scrub
from .prometheus import DEFAULT_QUERIES, PrometheusSource
from .samples import (
    DLQ_DEPTH,
    DLQ_INCREASE,
    WORKER_FAILURE_RATE,
    MetricSource,
    Sample,
    as_sample,
    clean_value,
)
from .scrape import ScrapeSource

__all__ = [
    "DEFAULT_QUERIES",
    "CombinedSource",
    "FunctionSource",
    "MetricSource",
    "PrometheusSource",
    "QueueDepthSource",
    "RecordedSource",
    "ScrapeSource",
]


@dataclass
class QueueDepthSource:
    """DLQ depth (and optionally the worker failure rate) from a plain callable.

    `depth()` returns a number (the DLQ depth) or a mapping with any of `dlq_depth`,
    `failed_total`, `completed_total` (monotonic job counters, differenced here with reset
    handling) and further metric values passed through. `dlq_increase` is the growth since the
    first answer, so "DLQ stable" is the rule `dlq_increase max 0`.
    """

    depth: Callable[[], Any]
    name: str = "queue"

    def __post_init__(self) -> None:
        self._first_depth: float | None = None
        self._prev: tuple[float, float] | None = None

    def poll(self, now: float) -> Sample:
        try:
            raw = self.depth()
        except Exception as exc:
            return Sample.gap(
                now, scrub(f"queue inspector: {type(exc).__name__}: {exc}")[:300], source=self.name
            )
        data: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {DLQ_DEPTH: raw}
        values: dict[str, Any] = {}
        if DLQ_DEPTH in data:
            raw_depth = data.pop(DLQ_DEPTH)
            values[DLQ_DEPTH] = raw_depth  # NaN/garbage is cleaned (and flagged) by Sample.build
            depth, _ = clean_value(raw_depth)
            if depth is not None:
                if self._first_depth is None:
                    self._first_depth = depth
                values[DLQ_INCREASE] = depth - self._first_depth
        failed, _ = clean_value(data.pop("failed_total", None))
        completed, _ = clean_value(data.pop("completed_total", None))
        if failed is not None and completed is not None:
            if self._prev is not None:
                d_failed = failed - self._prev[0] if failed >= self._prev[0] else failed
                d_done = completed - self._prev[1] if completed >= self._prev[1] else completed
                jobs = d_failed + d_done
                values[WORKER_FAILURE_RATE] = d_failed / jobs if jobs > 0 else None
            self._prev = (failed, completed)
        values.update(data)
        return Sample.build(now, values, source=self.name)

    def history(self, metric: str, start: float, end: float, step: float) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": "queue", "callable": getattr(self.depth, "__qualname__", repr(self.depth))}


@dataclass
class CombinedSource:
    """Several sources as one: values merged (later sources win on a name clash)."""

    sources: Sequence[MetricSource]
    name: str = "combined"

    def poll(self, now: float) -> Sample:
        values: dict[str, float | None] = {}
        errors: list[str] = []
        warnings: list[str] = []
        nan: list[str] = []
        ok = True
        for source in self.sources:
            try:
                sample = source.poll(now)
            except Exception as exc:  # a source that broke its contract is still only a gap
                sample = Sample.gap(
                    now, scrub(f"{type(exc).__name__}: {exc}")[:300], source=source.name
                )
            ok = ok and sample.ok
            values.update(sample.values)
            errors.extend(f"{source.name}: {e}" for e in sample.errors)
            warnings.extend(f"{source.name}: {w}" for w in sample.warnings)
            nan.extend(sample.nan)
        return Sample(now, values, ok, tuple(errors), tuple(warnings), tuple(nan), self.name)

    def history(
        self, metric: str, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]] | None:
        for source in reversed(self.sources):
            points = source.history(metric, start, end, step)
            if points is not None:
                return points
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": "combined", "sources": [s.describe() for s in self.sources]}


@dataclass
class FunctionSource:
    """Synthetic series: `series[metric](t)` where t is seconds since the first poll.

    A function may return None (no data) or NaN; `down(t)` True makes the tick a gap (source
    unreachable). Used by the verdict tests and to demonstrate the window without a target.
    """

    series: Mapping[str, Callable[[float], float | None]]
    down: Callable[[float], bool] | None = None
    name: str = "synthetic"
    polls: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._t0: float | None = None

    def poll(self, now: float) -> Sample:
        self.polls += 1
        if self._t0 is None:
            self._t0 = now
        t = now - self._t0
        if self.down is not None and self.down(t):
            return Sample.gap(now, "synthetic source down", source=self.name)
        return Sample.build(now, {m: f(t) for m, f in self.series.items()}, source=self.name)

    def history(
        self, metric: str, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]] | None:
        f = self.series.get(metric)
        if f is None:
            return None
        t0 = self._t0 if self._t0 is not None else end
        out: list[tuple[float, float | None]] = []
        ts = start
        while ts <= end:
            out.append((ts, clean_value(f(ts - t0))[0]))
            ts += step
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "synthetic", "metrics": sorted(self.series)}


class RecordedSource:
    """Replays recorded samples in order, re-stamped at the poll time.

    When the recording is exhausted every further poll is a gap, so a replay can never be
    stretched into a pass. `history` answers from the recorded timestamps.
    """

    name = "recorded"

    def __init__(
        self, samples: Iterable[Sample | Mapping[str, Any]], *, restamp: bool = True
    ) -> None:
        self.samples = [as_sample(s) for s in samples]
        self.restamp = restamp
        self._i = 0

    def poll(self, now: float) -> Sample:
        if self._i >= len(self.samples):
            return Sample.gap(now, "recording exhausted", source=self.name)
        s = self.samples[self._i]
        self._i += 1
        if not self.restamp:
            return s
        return Sample(now, s.values, s.ok, s.errors, s.warnings, s.nan, s.source or self.name)

    def history(
        self, metric: str, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]]:
        return [(s.ts, s.values.get(metric)) for s in self.samples if start <= s.ts <= end]

    def describe(self) -> dict[str, Any]:
        return {"kind": "recorded", "samples": len(self.samples)}


class NotConfigured(ValueError):
    """A metrics source kind lacks a setting: `key` names it under environments.<env>.metrics."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"metrics.{key} is not set")


SourceFactory = Callable[[Mapping[str, Any]], MetricSource]


def _scrape(m: Mapping[str, Any]) -> MetricSource:
    if not m["urls"]:
        raise NotConfigured("urls")
    return ScrapeSource(
        m["urls"], token_env=m["token_env"], requests_metric=m["requests_metric"],
        status_label=m["status_label"], duration_metric=m["duration_metric"],
    )


def _prometheus(m: Mapping[str, Any]) -> MetricSource:
    if not m["url"]:
        raise NotConfigured("url")
    return PrometheusSource(m["url"], queries=m["queries"], token_env=m["token_env"])


# `environments.<env>.metrics.kind` → a factory taking that metrics table and returning a
# MetricSource (raising NotConfigured naming the missing key); plug-ins add kinds through the
# `relnb.metric_sources` entry point group.
METRIC_SOURCES: Registry[SourceFactory] = Registry("metrics source", "relnb.metric_sources", callable_shape)
METRIC_SOURCES.register("scrape", _scrape)
METRIC_SOURCES.register("prometheus", _prometheus)
