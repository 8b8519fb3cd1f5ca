"""What a monitoring window must show, per metric.

A rule combines the checks release engineers already use elsewhere: absolute thresholds (SLOs),
a ratio to a baseline period, a Mann-Whitney U test of window vs baseline samples (Kayenta's
judge), and a consecutive-breach limit (Argo Rollouts' `failureLimit`: the rule fails once more
than `failure_limit` consecutive samples breach, so one noisy scrape does not end a release). The
evidence requirements (`min_samples`, `max_gap_s`) are part of the rule because "no data" must
never read as "no problem".

Ratio and Mann-Whitney checks assume higher is worse (error rates, latency, DLQ depth); `min`
is the only lower-bound check (e.g. traffic must not drop to zero).

A metric the window does not watch at all (the DLQ of a project that has no queue) has no rule,
and its reason rides in the verdict (`not_watched`), so the summary says what was not judged
instead of a rule waiting for samples that no source will ever give.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from .samples import DLQ_INCREASE, ERROR_RATE, LATENCY_P95, WORKER_FAILURE_RATE, fmt_value

NO_QUEUE = "no queue configured: DLQ not watched"


def dlq_watch(*, wanted: bool, queue_configured: bool) -> tuple[bool, dict[str, str]]:
    """Whether a window gets the DLQ rule, and what it says when it has none.

    Only the absence of a queue in the configuration turns the rule off: a configured queue whose
    DLQ gives no samples keeps the rule, and the window stays inconclusive for want of them.
    """
    if not queue_configured:
        return False, {DLQ_INCREASE: NO_QUEUE}
    return wanted, {}


@dataclass(frozen=True)
class Rule:
    metric: str
    max: float | None = None
    min: float | None = None
    max_ratio: float | None = None
    ratio_min_delta: float = 0.0
    mann_whitney_alpha: float | None = None
    mann_whitney_min_ratio: float = 1.1
    failure_limit: int = 2
    min_samples: int = 10
    max_gap_s: float = 60.0

    def __post_init__(self) -> None:
        where = f"rule for {self.metric!r}"
        if not self.metric:
            raise ConfigError("a monitoring rule needs a metric name")
        if all(v is None for v in (self.max, self.min, self.max_ratio, self.mann_whitney_alpha)):
            raise ConfigError(
                f"{where} checks nothing: set max, min, max_ratio or mann_whitney_alpha"
            )
        for name in ("max", "min", "max_ratio", "mann_whitney_alpha"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or math.isnan(value)):
                raise ConfigError(f"{where}: {name} must be a number", key=name)
        if self.max_ratio is not None and self.max_ratio <= 0:
            raise ConfigError(f"{where}: max_ratio must be > 0", key="max_ratio")
        if self.mann_whitney_alpha is not None and not 0 < self.mann_whitney_alpha < 1:
            raise ConfigError(
                f"{where}: mann_whitney_alpha must be between 0 and 1", key="mann_whitney_alpha"
            )
        if self.failure_limit < 0:
            raise ConfigError(f"{where}: failure_limit must be ≥ 0", key="failure_limit")
        if self.min_samples < 1:
            # Zero would let a window without any data pass.
            raise ConfigError(f"{where}: min_samples must be ≥ 1", key="min_samples")
        if self.max_gap_s <= 0:
            raise ConfigError(f"{where}: max_gap_s must be > 0", key="max_gap_s")

    @property
    def needs_baseline(self) -> bool:
        return self.max_ratio is not None or self.mann_whitney_alpha is not None

    def describe(self) -> str:
        parts = []
        if self.max is not None:
            parts.append(f"≤ {fmt_value(self.metric, self.max)}")
        if self.min is not None:
            parts.append(f"≥ {fmt_value(self.metric, self.min)}")
        if self.max_ratio is not None:
            parts.append(f"≤ {self.max_ratio:g}× baseline")
        if self.mann_whitney_alpha is not None:
            parts.append(f"Mann-Whitney α={self.mann_whitney_alpha:g}")
        parts.append(f"fails after {self.failure_limit + 1} consecutive breaches")
        parts.append(f"≥ {self.min_samples} samples, gaps ≤ {self.max_gap_s:g} s")
        return f"{self.metric} " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, metric: str | None = None) -> Rule:
        known = set(cls.__dataclass_fields__)
        fields = dict(data)
        if metric is not None:
            fields.setdefault("metric", metric)
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ConfigError(
                f"unknown key(s) in monitoring rule {fields.get('metric')!r}: {', '.join(unknown)}",
                key=unknown[0],
            )
        return cls(**fields)


def rules_from_config(table: Mapping[str, Mapping[str, Any]]) -> list[Rule]:
    """`{"error_rate": {"max": 0.01}, ...}` (a relnb.toml table) → rules."""
    return [Rule.from_dict(spec, metric=metric) for metric, spec in table.items()]


def default_rules(
    *,
    error_rate: float | None = 0.01,
    latency_p95: float | None = 0.5,
    worker_failure_rate: float | None = None,
    dlq_increase: float | None = None,
    baseline_ratio: float | None = None,
    mann_whitney_alpha: float | None = None,
    failure_limit: int = 2,
    min_samples: int = 10,
    max_gap_s: float = 60.0,
) -> list[Rule]:
    """The checklist's defaults: error rate < 1 %, p95 < 500 ms, optional worker/DLQ rules.

    `baseline_ratio`/`mann_whitney_alpha` add the relative checks to the error-rate and latency
    rules (they then need a baseline).
    """
    common = {"failure_limit": failure_limit, "min_samples": min_samples, "max_gap_s": max_gap_s}
    relative = {"max_ratio": baseline_ratio, "mann_whitney_alpha": mann_whitney_alpha}
    rules = []
    if error_rate is not None:
        rules.append(Rule(ERROR_RATE, max=error_rate, ratio_min_delta=0.002, **relative, **common))
    if latency_p95 is not None:
        rules.append(Rule(LATENCY_P95, max=latency_p95, ratio_min_delta=0.02, **relative, **common))
    if worker_failure_rate is not None:
        rules.append(Rule(WORKER_FAILURE_RATE, max=worker_failure_rate, **common))
    if dlq_increase is not None:
        rules.append(Rule(DLQ_INCREASE, max=dlq_increase, **common))
    return rules
