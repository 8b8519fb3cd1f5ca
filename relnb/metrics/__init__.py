"""Monitoring windows: metric sources, per-metric rules, an incremental verdict, live charts.

One engine serves D7 (production window after deploy), B8 (no new error spikes on staging) and C1
(staging soak). The release core drives it through `run_window(source, rules, ...)` and journals
every sample it is handed; nothing here imports httpx, altair, scipy, marimo or prometheus_client
until a function needs it.
"""

from .rules import Rule, default_rules, rules_from_config
from .samples import (
    DLQ_DEPTH,
    DLQ_INCREASE,
    ERROR_RATE,
    ERROR_RATE_WORST_INSTANCE,
    LATENCY_P95,
    REQUEST_RATE,
    WORKER_FAILURE_RATE,
    MetricSource,
    Sample,
)
from .sources import (
    DEFAULT_QUERIES,
    CombinedSource,
    FunctionSource,
    PrometheusSource,
    QueueDepthSource,
    RecordedSource,
    ScrapeSource,
)
from .verdict import Baseline, Breach, WindowVerdict, evaluate_samples
from .window import WindowState, run_window

__all__ = [
    "DEFAULT_QUERIES",
    "DLQ_DEPTH",
    "DLQ_INCREASE",
    "ERROR_RATE",
    "ERROR_RATE_WORST_INSTANCE",
    "LATENCY_P95",
    "REQUEST_RATE",
    "WORKER_FAILURE_RATE",
    "Baseline",
    "Breach",
    "CombinedSource",
    "FunctionSource",
    "MetricSource",
    "PrometheusSource",
    "QueueDepthSource",
    "RecordedSource",
    "Rule",
    "Sample",
    "ScrapeSource",
    "WindowState",
    "WindowVerdict",
    "default_rules",
    "evaluate_samples",
    "rules_from_config",
    "run_window",
]
