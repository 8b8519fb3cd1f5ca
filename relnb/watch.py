"""The monitoring gates — B8 (no new error spikes), C1 (staging soak), D7 (production window).

One engine (relnb.metrics) serves all three; this module maps the release's configuration onto
it, journals every sample (so a window resumes after a kernel restart and archives re-render the
charts), records an incident when the window fails, and points at the rollback cell.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from .config import parse_duration
from .results import Outcome, Status

if TYPE_CHECKING:
    from .gatecontext import GateContext

ENV_WINDOW = "RELNB_WINDOW"


def _source(ctx: GateContext, env_name: str, *, with_queue: bool) -> Any:
    """The environment's metrics source (a `relnb.metric_sources` kind), or the key to set."""
    from .metrics import CombinedSource, QueueDepthSource
    from .metrics.sources import METRIC_SOURCES, NotConfigured

    env = ctx.env(env_name)
    m = env["metrics"]
    try:
        src: Any = METRIC_SOURCES.get(m["kind"])(m)
    except NotConfigured as exc:
        return f"environments.{env_name}.metrics.{exc.key}"
    redis_var = env["redis_url_env"]
    if not with_queue or not redis_var:
        return src
    from .checks.queues import dlq_depth

    url = ctx.secret(redis_var, f"environments.{env_name}.redis_url_env").reveal()
    q = env["queue"]
    return CombinedSource([src, QueueDepthSource(lambda: dlq_depth(url, q["kind"], q["names"], q["prefix"] or None))])


def _rules(ctx: GateContext, interval_s: float, *, dlq: bool, min_samples: int | None = None) -> list[Any]:
    from .metrics import default_rules

    mon = ctx.config.data["monitor"]
    return default_rules(
        error_rate=float(mon["error_rate_max"]),
        latency_p95=float(mon["latency_p95_max"]),
        dlq_increase=float(mon["dlq_growth_max"]) if dlq else None,
        failure_limit=int(mon["failure_limit"]),
        min_samples=int(min_samples or mon["min_samples"]),
        max_gap_s=max(4 * interval_s, 30.0),
    )


def _resume(ctx: GateContext) -> list[dict[str, Any]]:
    """Samples of this gate's previous attempt when it was cut off (kernel restart), else none."""
    attempts: dict[int, list[dict[str, Any]]] = {}
    finished: set[int] = set()
    current = 0
    for ev in ctx.release.journal.events:
        p = ev.payload
        if p.get("gate") != ctx.gate_id:
            continue
        if ev.type == "gate-started":
            current = p.get("attempt", current + 1)
        elif ev.type == "gate-finished":
            finished.add(p.get("attempt", current))
        elif ev.type == "sample":
            attempts.setdefault(p.get("attempt", current), []).append(p)
    previous = [a for a in attempts if a < current and a not in finished]
    return attempts[max(previous)] if previous else []


def _record(ctx: GateContext) -> Any:
    attempt = ctx.release.state.gates[ctx.gate_id].attempts

    def record(sample: dict[str, Any]) -> None:
        ctx.release.journal.append("sample", {"gate": ctx.gate_id, "attempt": attempt, **sample})

    return record


def run_window_gate(
    ctx: GateContext,
    env_name: str,
    *,
    duration_s: float,
    interval_s: float,
    dlq: bool,
    evidence: dict[str, Any] | None = None,
    min_samples: int | None = None,
) -> Outcome:
    from .metrics import run_window
    from .metrics.live import auto_display

    source = _source(ctx, env_name, with_queue=dlq)
    if isinstance(source, str):
        return Outcome.inconclusive(f"no metrics source: set {source}", missing_config=source)
    rules = _rules(ctx, interval_s, dlq=dlq, min_samples=min_samples)
    out = run_window(
        source,
        rules,
        duration_s,
        interval_s,
        record=_record(ctx),
        on_tick=auto_display(rules, prefix=f"{ctx.gate_id} monitoring"),
        resume_samples=_resume(ctx),
    )
    return Outcome(out.status, out.summary, {**out.evidence, **(evidence or {})})


def monitor_production(ctx: GateContext, window: str | None = None, interval: str | None = None) -> Outcome:
    """D7: watch error rate, latency and DLQ after the deploy; a hard breach ends it as failed."""
    mon = ctx.config.data["monitor"]
    configured = parse_duration(mon["window"])
    override = window or os.environ.get(ENV_WINDOW)
    duration = parse_duration(override) if override else configured
    interval = parse_duration(interval or mon["interval"])
    evidence: dict[str, Any] = {"window_s": duration, "configured_window_s": configured}
    if override and duration != configured:
        evidence["shortened"] = f"window set to {override} (configured {mon['window']}): a rehearsal, not a full watch"
    t_start = time.time()
    out = run_window_gate(ctx, "production", duration_s=duration, interval_s=interval, dlq=True, evidence=evidence)
    if out.status is Status.FAILED:
        breaches = out.evidence.get("breaches") or []
        ctx.release.incident(
            f"D7 monitoring failed: {out.summary}"[:200],
            severity="major",
            gate="D7",
            evidence={"breaches": breaches, "window": out.evidence.get("window")},
            started_at=_iso(t_start),
            ended_at=_iso(time.time()),
            follow_up="run the rollback cell (section E), then add a test for the cause",
        )
        return Outcome(out.status, f"{out.summary} — incident recorded; run the rollback cell in section E", out.evidence)
    return out


def no_error_spikes(ctx: GateContext) -> Outcome:
    """B8: a short window on staging judged by the same rules (absolute thresholds, min samples)."""
    interval = parse_duration(ctx.config.data["monitor"]["interval"])
    n = int(ctx.config.data["monitor"]["min_samples"])
    return run_window_gate(ctx, "staging", duration_s=interval * (n + 1), interval_s=interval, dlq=False)


def staging_soak(ctx: GateContext) -> Outcome:
    """C1: staging over the soak period — from Prometheus history when there is one, else watched live."""
    from .metrics import evaluate_samples
    from .metrics.samples import Sample

    mon = ctx.config.data["monitor"]
    soak = parse_duration(mon["soak"])
    interval = parse_duration(mon["interval"])
    source = _source(ctx, "staging", with_queue=False)
    history = getattr(source, "history", None)
    # a /metrics scrape keeps no history (history() answers None): then C1 watches staging live
    probe = history("error_rate", time.time() - 60, time.time(), 60) if callable(history) else None
    if probe is not None:
        end = time.time()
        step = max(interval, soak / 500)
        rules = _rules(ctx, step, dlq=False)
        series: dict[float, dict[str, float | None]] = {}
        for rule in rules:
            points = history(rule.metric, end - soak, end, step) or []
            for ts, value in points:
                series.setdefault(ts, {})[rule.metric] = value
        samples = [Sample.build(ts, values, source="prometheus history") for ts, values in sorted(series.items())]
        for s in samples:
            _record(ctx)(s.to_dict())
        out = evaluate_samples(samples, rules, duration_s=soak, start_ts=end - soak, end_ts=end)
        return Outcome(out.status, out.summary, {**out.evidence, "soak_s": soak, "from": "prometheus history"})
    return run_window_gate(
        ctx, "staging", duration_s=soak, interval_s=min(interval, soak / 4), dlq=False,
        evidence={"soak_s": soak, "from": "watched live (no history in a /metrics scrape)"},
        min_samples=4,
    )


def figures(release: Any, gate_id: str) -> tuple[str, ...]:
    """The gate's charts of its recorded samples, with its rules' limits and breaches: the same
    renderer and the same picture as the sealed archive shows (relnb.metrics.svgchart)."""
    from .metrics.svgchart import sample_rows, window_figures

    try:
        return window_figures(sample_rows(release.journal.events), gate_id, release.result(gate_id).evidence)
    except Exception as exc:  # a chart must never hide the verdict
        return (f"<p>chart unavailable: {type(exc).__name__}</p>",)


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
