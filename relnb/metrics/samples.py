"""One poll of a metrics source, as it is journaled and replayed.

A `Sample` is the unit the monitoring window records: every tick writes one to the journal, a
resumed window and an archive replay read them back, so it must round-trip through JSON exactly.
NaN is not valid JSON and means "no evidence", so sources store it as `None` and name the metric in
`nan` instead; the verdict counts it as missing, never as a good value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

# Metric names shared by every source, the rules and the charts.
ERROR_RATE = "error_rate"  # 5xx / all requests, fraction 0..1
ERROR_RATE_WORST_INSTANCE = "error_rate_worst_instance"  # the worst single instance's fraction
LATENCY_P95 = "latency_p95"  # seconds
REQUEST_RATE = "request_rate"  # requests per second
DLQ_DEPTH = "dlq_depth"  # jobs in the dead-letter/failed set
DLQ_INCREASE = "dlq_increase"  # growth of the DLQ since the first poll of this source
WORKER_FAILURE_RATE = "worker_failure_rate"  # failed / (failed + completed), fraction

FRACTION_METRICS = frozenset({ERROR_RATE, ERROR_RATE_WORST_INSTANCE, WORKER_FAILURE_RATE})


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def clean_value(value: Any) -> tuple[float | None, bool]:
    """(value, was_nan): numbers only; NaN/inf/garbage become None so they never count as data."""
    if value is None or isinstance(value, bool):
        return None, False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, True
    if math.isnan(number) or math.isinf(number):
        return None, True
    return number, False


def is_fraction(metric: str) -> bool:
    """A metric recorded as a fraction of 1 and shown in % (text and charts alike)."""
    return metric in FRACTION_METRICS or metric.endswith(("_ratio", "_fraction"))


def fmt_value(metric: str, value: float | None) -> str:
    """Human units for status lines and summaries (fractions as %, latency in ms)."""
    if value is None:
        return "—"
    if is_fraction(metric):
        return f"{value * 100:.2f}%"
    if metric.startswith("latency"):
        return f"{value * 1000:.0f} ms"
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class Sample:
    """Values of one poll; `ok` is False when the source did not answer (the tick is a gap)."""

    ts: float
    values: Mapping[str, float | None] = field(default_factory=dict)
    ok: bool = True
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    nan: tuple[str, ...] = ()
    source: str = ""

    @classmethod
    def build(
        cls,
        ts: float,
        raw: Mapping[str, Any],
        *,
        ok: bool = True,
        errors: Sequence[str] = (),
        warnings: Sequence[str] = (),
        source: str = "",
    ) -> Sample:
        values: dict[str, float | None] = {}
        nan: list[str] = []
        for name, value in raw.items():
            number, was_nan = clean_value(value)
            values[name] = number
            if was_nan:
                nan.append(name)
        return cls(ts, values, ok, tuple(errors), tuple(warnings), tuple(nan), source)

    @classmethod
    def gap(cls, ts: float, error: str, *, source: str = "") -> Sample:
        return cls(ts, {}, False, (error,), (), (), source)

    def value(self, metric: str) -> float | None:
        return self.values.get(metric)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ts": self.ts, "at": iso(self.ts), "values": dict(self.values)}
        out["ok"] = self.ok
        if self.errors:
            out["errors"] = list(self.errors)
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.nan:
            out["nan"] = list(self.nan)
        if self.source:
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sample:
        raw = dict(data.get("values") or {})
        sample = cls.build(
            float(data["ts"]),
            raw,
            ok=bool(data.get("ok", True)),
            errors=tuple(data.get("errors") or ()),
            warnings=tuple(data.get("warnings") or ()),
            source=str(data.get("source") or ""),
        )
        recorded_nan = tuple(data.get("nan") or ())
        if recorded_nan:
            merged = tuple(dict.fromkeys((*sample.nan, *recorded_nan)))
            sample = Sample(
                sample.ts,
                sample.values,
                sample.ok,
                sample.errors,
                sample.warnings,
                merged,
                sample.source,
            )
        return sample


def as_sample(obj: Sample | Mapping[str, Any]) -> Sample:
    return obj if isinstance(obj, Sample) else Sample.from_dict(obj)


@runtime_checkable
class MetricSource(Protocol):
    """What the monitoring window needs from a source.

    `poll(now)` never raises for a target problem: an unreachable or malformed source gives a
    `Sample` with `ok=False` (a gap). `history` returns `(ts, value)` points for a baseline, or
    None when the source keeps no history (the /metrics scrape: record a pre-deploy window
    instead).
    """

    name: str

    def poll(self, now: float) -> Sample: ...

    def history(
        self, metric: str, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]] | None: ...

    def describe(self) -> dict[str, Any]: ...
