"""The embedded source: scrape the app's own /metrics endpoints, no Prometheus needed.

Counters only mean something as differences, so each poll is compared with the previous scrape of
the same instance, series by series, the way Prometheus' `rate()` does: a value lower than before
is a counter reset (the process restarted) and the new value is the increase since the reset.
Increases are summed over instances, so a fleet's error rate is weighted by traffic, and the worst
single instance is reported separately because one bad pod among twenty is diluted below any
fleet-wide threshold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..redact import scrub
from ..tls import http_client
from .samples import (
    DLQ_DEPTH,
    ERROR_RATE,
    ERROR_RATE_WORST_INSTANCE,
    LATENCY_P95,
    REQUEST_RATE,
    WORKER_FAILURE_RATE,
    Sample,
)
from .urls import auth_headers, safe_url

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper_bound, count) buckets.

    Linear interpolation inside the bucket holding the rank; the first bucket's lower bound is 0;
    a rank in the +Inf bucket returns the largest finite bound. Non-monotonic counts (mixed resets)
    are flattened upward, as Prometheus does. None when there were no observations.
    """
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    fixed: list[tuple[float, float]] = []
    running = 0.0
    for bound, count in ordered:
        running = max(running, count)
        fixed.append((bound, running))
    total = fixed[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for i, (bound, count) in enumerate(fixed):
        if count >= rank:
            if math.isinf(bound):
                return fixed[i - 1][0] if i > 0 else None
            if i == 0 and bound <= 0:
                return bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return fixed[-2][0] if len(fixed) > 1 else None


def parse_exposition(text: str) -> dict[SeriesKey, float]:
    """Every sample of a Prometheus text exposition, keyed by (sample name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def counter_increase(
    prev: Mapping[SeriesKey, float], cur: Mapping[SeriesKey, float]
) -> dict[SeriesKey, float]:
    """Per-series increase between two scrapes of one instance, counting a drop as a reset."""
    out: dict[SeriesKey, float] = {}
    for key, value in cur.items():
        before = prev.get(key)
        if before is None:
            # A labelled series appears when first incremented: its whole value is new.
            out[key] = value
        elif value < before:
            out[key] = value
        else:
            out[key] = value - before
    return out


@dataclass
class _Instance:
    series: dict[SeriesKey, float] = field(default_factory=dict)
    ts: float | None = None


@dataclass
class ScrapeSource:
    """Scrape one or more /metrics URLs per poll and derive the standard metrics.

    The metric and label names default to the usual conventions (and the demo app's):
    `http_requests_total{status}`, `http_request_duration_seconds_bucket{le}`,
    `worker_jobs_failed_total`, `worker_jobs_completed_total`, `queue_dlq_depth`. Gauges are
    combined with `max` by default because every API instance usually reports the same shared
    queue; set `gauge_agg="sum"` when each instance owns its queue.
    """

    urls: Sequence[str]
    timeout_s: float = 5.0
    token_env: str | None = None
    headers_env: Mapping[str, str] = field(default_factory=dict)
    requests_metric: str = "http_requests_total"
    status_label: str = "status"
    error_status: str = r"5\d\d"
    duration_metric: str = "http_request_duration_seconds"
    quantile: float = 0.95
    worker_failed_metric: str = "worker_jobs_failed_total"
    worker_completed_metric: str = "worker_jobs_completed_total"
    dlq_metric: str = "queue_dlq_depth"
    gauge_agg: str = "max"
    min_instance_requests: float = 10.0
    name: str = "scrape"
    transport: Any = None  # an httpx transport, for tests that need one

    def __post_init__(self) -> None:
        if not self.urls:
            from ..errors import UsageError

            raise UsageError("ScrapeSource needs at least one /metrics URL")
        self._headers = auth_headers(self.token_env, self.headers_env)
        self._instances: dict[str, _Instance] = {}
        self._client: Any = None
        self._error_re = re.compile(self.error_status)

    # -- HTTP -------------------------------------------------------------------------------
    def _http(self) -> Any:
        if self._client is None:
            self._client = http_client(
                timeout=self.timeout_s, headers=self._headers, transport=self.transport
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _fetch(self, url: str) -> dict[SeriesKey, float]:
        response = self._http().get(url)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        return parse_exposition(response.text)

    # -- derivation -------------------------------------------------------------------------
    def _is_error(self, labels: tuple[tuple[str, str], ...]) -> bool:
        status = dict(labels).get(self.status_label, "")
        return bool(self._error_re.fullmatch(status))

    def poll(self, now: float) -> Sample:
        errors: list[str] = []
        answered: dict[str, dict[SeriesKey, float]] = {}
        for url in self.urls:
            try:
                answered[url] = self._fetch(url)
            except Exception as exc:  # unreachable, timeout, HTTP error, unparsable exposition
                errors.append(scrub(f"{safe_url(url)}: {type(exc).__name__}: {exc}")[:300])
        if not answered:
            return Sample.gap(
                now, "; ".join(errors) or "no /metrics URL answered", source=self.name
            )

        total = errors_5xx = failed = completed = 0.0
        have_requests = have_workers = False
        buckets: dict[float, float] = {}
        worst: float | None = None
        elapsed: list[float] = []
        gauges: list[float] = []
        for url, series in answered.items():
            for (name, _labels), value in series.items():
                if name == self.dlq_metric:
                    gauges.append(value)
            inst = self._instances.setdefault(url, _Instance())
            prev, prev_ts = inst.series, inst.ts
            inst.series, inst.ts = series, now
            if prev_ts is None:
                continue  # first sight of this instance: nothing to difference yet
            elapsed.append(now - prev_ts)
            inc = counter_increase(prev, series)
            i_total = i_err = 0.0
            for (name, labels), delta in inc.items():
                if name == self.requests_metric:
                    have_requests = True
                    i_total += delta
                    if self._is_error(labels):
                        i_err += delta
                elif name == f"{self.duration_metric}_bucket":
                    le = float(dict(labels).get("le", "nan"))
                    if not math.isnan(le):
                        buckets[le] = buckets.get(le, 0.0) + delta
                elif name == self.worker_failed_metric:
                    have_workers = True
                    failed += delta
                elif name == self.worker_completed_metric:
                    have_workers = True
                    completed += delta
            total += i_total
            errors_5xx += i_err
            if i_total >= self.min_instance_requests:
                ratio = i_err / i_total
                worst = ratio if worst is None else max(worst, ratio)

        values: dict[str, Any] = {}
        if elapsed:
            values[ERROR_RATE] = errors_5xx / total if total > 0 else None
            values[ERROR_RATE_WORST_INSTANCE] = worst
            values[REQUEST_RATE] = (
                total / max(elapsed) if have_requests and max(elapsed) > 0 else None
            )
            values[
                LATENCY_P95 if self.quantile == 0.95 else f"latency_p{round(self.quantile * 100)}"
            ] = histogram_quantile(self.quantile, list(buckets.items())) if buckets else None
            if have_workers:
                jobs = failed + completed
                values[WORKER_FAILURE_RATE] = failed / jobs if jobs > 0 else None
        if gauges:
            values[DLQ_DEPTH] = max(gauges) if self.gauge_agg == "max" else sum(gauges)
        warnings = [] if elapsed else ["first scrape: rates start with the next poll"]
        return Sample.build(
            now, values, ok=not errors, errors=errors, warnings=warnings, source=self.name
        )

    def history(self, metric: str, start: float, end: float, step: float) -> None:
        return None  # a scrape keeps no history: record a pre-deploy window as the baseline

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "scrape",
            "urls": [safe_url(u) for u in self.urls],
            "requests_metric": self.requests_metric,
            "duration_metric": self.duration_metric,
            "quantile": self.quantile,
        }
