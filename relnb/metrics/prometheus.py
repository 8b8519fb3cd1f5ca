"""A Prometheus (or compatible: Thanos, Mimir, VictoriaMetrics) HTTP API source.

Each poll runs one instant query per metric; baselines come from `query_range` with start/end
aligned to the step so that two runs over the same period ask for the same points. The default
PromQL follows the usual conventions; `$window` is replaced by the rate window. A numerator that
has no series yet (no 5xx ever happened) is an empty vector in PromQL, which would make the ratio
empty, hence the `or vector(0)` guards: "no errors" must read as 0, while "no traffic" stays empty
(no evidence).

A response that carries warnings may be partial (a remote store or a shard did not answer). By
default such values are discarded (the tick becomes a gap for that metric) and the warning is
recorded: a partial answer is not evidence that the system is healthy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
    clean_value,
)
from .urls import auth_headers, safe_url

_REQ = "http_requests_total"
_ERR = 'http_requests_total{status=~"5.."}'
DEFAULT_QUERIES: dict[str, str] = {
    ERROR_RATE: f"(sum(rate({_ERR}[$window])) or vector(0)) / sum(rate({_REQ}[$window]))",
    ERROR_RATE_WORST_INSTANCE: (
        f"max((sum by (instance) (rate({_ERR}[$window]))"
        f" or (sum by (instance) (rate({_REQ}[$window])) * 0))"
        f" / sum by (instance) (rate({_REQ}[$window])))"
    ),
    LATENCY_P95: (
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[$window])))"
    ),
    REQUEST_RATE: f"sum(rate({_REQ}[$window]))",
    WORKER_FAILURE_RATE: (
        "(sum(rate(worker_jobs_failed_total[$window])) or vector(0))"
        " / ((sum(rate(worker_jobs_failed_total[$window])) or vector(0))"
        " + (sum(rate(worker_jobs_completed_total[$window])) or vector(0)))"
    ),
    DLQ_DEPTH: "max(queue_dlq_depth)",
}

MAX_POINTS = 11_000  # Prometheus refuses longer query_range results per series


class PromError(Exception):
    """The API answered but not with usable data."""


@dataclass
class PrometheusSource:
    """Poll instant queries per metric; `queries` override or extend `DEFAULT_QUERIES`.

    `metrics` limits which metrics are polled (default: every query). `headers_env` maps header
    name to env-var name (e.g. {"X-Scope-OrgID": "MIMIR_TENANT"}); `token_env` gives a bearer
    token. `accept_partial=True` keeps values from answers with warnings.
    """

    url: str
    queries: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] | None = None
    rate_window: str = "1m"
    token_env: str | None = None
    headers_env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    accept_partial: bool = False
    name: str = "prometheus"
    transport: Any = None

    def __post_init__(self) -> None:
        merged = {**DEFAULT_QUERIES, **dict(self.queries)}
        wanted = self.metrics or tuple(merged)
        self._queries = {m: merged[m].replace("$window", self.rate_window) for m in wanted}
        self._headers = auth_headers(self.token_env, self.headers_env)
        self._client: Any = None
        self._base = self.url.rstrip("/")

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

    def _api(self, path: str, params: dict[str, Any]) -> tuple[Any, list[str]]:
        response = self._http().get(f"{self._base}/api/v1/{path}", params=params)
        try:
            body = response.json()
        except ValueError:
            raise PromError(f"HTTP {response.status_code}, not JSON") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            kind = body.get("errorType", "") if isinstance(body, dict) else ""
            msg = body.get("error", "") if isinstance(body, dict) else ""
            raise PromError(f"HTTP {response.status_code} {kind}: {msg}".strip()[:300])
        warnings = [str(w) for w in body.get("warnings") or ()]
        return body.get("data") or {}, warnings

    @staticmethod
    def _vector_value(data: Mapping[str, Any]) -> tuple[Any, int]:
        kind = data.get("resultType")
        result = data.get("result")
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return result[1], 1
        if kind != "vector" or not isinstance(result, list):
            raise PromError(f"unexpected resultType {kind!r}")
        if not result:
            return None, 0
        numbers = [clean_value(item["value"][1]) for item in result]
        finite = [n for n, _ in numbers if n is not None]
        if not finite:
            return math.nan, len(result)
        return max(finite), len(result)  # several series: the worst one, conservatively

    def poll(self, now: float) -> Sample:
        values: dict[str, Any] = {}
        errors: list[str] = []
        warnings: list[str] = []
        for metric, query in self._queries.items():
            try:
                data, warns = self._api("query", {"query": query, "time": f"{now:.3f}"})
                value, n_series = self._vector_value(data)
            except Exception as exc:
                errors.append(scrub(f"{metric}: {type(exc).__name__}: {exc}")[:300])
                values[metric] = None
                continue
            if n_series > 1:
                warnings.append(f"{metric}: query returned {n_series} series; the max was used")
            if warns:
                warnings.extend(scrub(f"{metric}: {w}")[:300] for w in warns)
                if not self.accept_partial:
                    values[metric] = None
                    continue
            values[metric] = value
        ok = len(errors) < len(self._queries)
        return Sample.build(now, values, ok=ok, errors=errors, warnings=warnings, source=self.name)

    def history(
        self, metric: str, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]] | None:
        """Points of `metric` on the step grid between start and end (query_range, chunked)."""
        if metric not in self._queries:
            return None
        step = max(float(step), 0.001)
        first = math.floor(start / step) * step
        last = math.floor(end / step) * step
        points: list[tuple[float, float | None]] = []
        chunk = step * (MAX_POINTS - 1)
        lo = first
        while lo <= last:
            hi = min(lo + chunk, last)
            data, _warns = self._api(
                "query_range",
                {
                    "query": self._queries[metric],
                    "start": f"{lo:.3f}",
                    "end": f"{hi:.3f}",
                    "step": f"{step:g}",
                },
            )
            if data.get("resultType") != "matrix":
                raise PromError(f"unexpected resultType {data.get('resultType')!r}")
            merged: dict[float, float | None] = {}
            for series in data.get("result") or ():
                for ts, raw in series.get("values") or ():
                    value, _ = clean_value(raw)
                    old = merged.get(float(ts))
                    merged[float(ts)] = value if old is None else max(old, value or old)
            points.extend(sorted(merged.items()))
            lo = hi + step
        return points

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "prometheus",
            "url": safe_url(self.url),
            "rate_window": self.rate_window,
            "queries": dict(self._queries),
            "accept_partial": self.accept_partial,
        }
