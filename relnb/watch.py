"""The monitoring gates — B8 (no new error spikes), C1 (staging soak), D7 (production window).

One engine (relnb.metrics) serves all three; this module maps the release's configuration onto
it, journals every sample (so a window resumes after a kernel restart and archives re-render the
charts), records an incident when the window fails, and points at the rollback cell.

Two rules live here (DESIGN.md, verdict rules): a window shortened for a rehearsal
(`relnb run --window`, $RELNB_WINDOW, `release.monitor(window=...)`) is judged against the
configured length and is at most inconclusive (evidence `shortened`), for whoever shortened it to
waive; and C1's soak starts when B1 saw staging serving the release (`serving_since` in B1's
evidence), never N hours before C1 happens to run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
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
    from .checks.queues.gates import queue_options, queue_url_field

    field = queue_url_field(env)
    if not with_queue or field is None:
        return src
    from .checks.queues import dlq_depth

    q = env["queue"]
    var = q["url_env"] if field == "queue.url_env" else env["redis_url_env"]
    url = ctx.secret(var, f"environments.{env_name}.{field}").reveal()
    opts = queue_options(q)
    return CombinedSource(
        [src, QueueDepthSource(lambda: dlq_depth(url, q["kind"], q["names"], q["prefix"] or None, **opts))]
    )


def queue_configured(env: Mapping[str, Any]) -> bool:
    """Whether the environment has a queue whose DLQ a window can watch (any broker)."""
    from .checks.queues.gates import queue_url_field

    return queue_url_field(env) is not None


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


def _override(explicit: str | None) -> tuple[float | None, dict[str, str] | None]:
    """The window length a rehearsal asked for: `release.monitor(window=...)`, else $RELNB_WINDOW
    (`relnb run --window`); with where it came from, for the evidence and whoever waives it."""
    if explicit:
        where = "release.monitor(window=...)"
        return parse_duration(explicit, where=where), {"value": explicit, "from": where}
    env = os.environ.get(ENV_WINDOW)
    if env:
        where = f"${ENV_WINDOW} (relnb run --window)"
        return parse_duration(env, where=ENV_WINDOW), {"value": env, "from": where}
    return None, None


def _capped(configured: float, asked: float | None) -> float:
    """B8 and C1 under `--window`: a rehearsal shortens them, it never lengthens them."""
    return configured if asked is None else min(configured, asked)


def run_window_gate(
    ctx: GateContext,
    env_name: str,
    *,
    duration_s: float,
    interval_s: float,
    dlq: bool,
    configured_s: float,
    evidence: dict[str, Any] | None = None,
    min_samples: int | None = None,
    resume: list[dict[str, Any]] | None = None,
) -> Outcome:
    """Watch `env_name` live; a `duration_s` below `configured_s` is at most inconclusive."""
    from .metrics import run_window
    from .metrics.live import auto_display
    from .metrics.rules import dlq_watch

    dlq, not_watched = dlq_watch(wanted=dlq, queue_configured=queue_configured(ctx.env(env_name)))
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
        resume_samples=_resume(ctx) if resume is None else resume,
        configured_s=configured_s,
        not_watched=not_watched,
    )
    return Outcome(out.status, out.summary, {**out.evidence, **(evidence or {})})


def monitor_production(ctx: GateContext, window: str | None = None, interval: str | None = None) -> Outcome:
    """D7: watch error rate, latency and DLQ after the deploy; a hard breach ends it as failed.

    Without a queue in the configuration the DLQ is not watched, and the summary says so.

    `window` (or $RELNB_WINDOW) replaces the configured length; shorter than configured, the
    window cannot pass (see relnb.metrics.verdict): a rehearsal is waived, not passed.
    """
    mon = ctx.config.data["monitor"]
    configured = parse_duration(mon["window"])
    asked, override = _override(window)
    duration = asked if asked is not None else configured
    interval = parse_duration(interval or mon["interval"])
    evidence: dict[str, Any] = {"window_s": duration, "configured_window_s": configured}
    if override:
        evidence["window_override"] = override
    t_start = time.time()
    out = run_window_gate(
        ctx, "production", duration_s=duration, interval_s=interval, dlq=True, configured_s=configured,
        evidence=evidence,
    )
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
    """B8: a short window on staging judged by the same rules (absolute thresholds, min samples).

    Its configured length is `min_samples + 1` intervals; $RELNB_WINDOW may only shorten it, and
    then it cannot pass.
    """
    interval = parse_duration(ctx.config.data["monitor"]["interval"])
    n = int(ctx.config.data["monitor"]["min_samples"])
    configured = interval * (n + 1)
    asked, override = _override(None)
    evidence = {"window_override": override} if override else None
    return run_window_gate(
        ctx, "staging", duration_s=_capped(configured, asked), interval_s=interval, dlq=False,
        configured_s=configured, evidence=evidence,
    )


def soak_start(ctx: GateContext) -> tuple[float, dict[str, Any]] | Outcome:
    """When staging began serving the release (B1's evidence), or why C1 cannot know yet."""
    b1 = ctx.release.result("B1")
    ev = b1.evidence or {}
    expected = str(ev.get("expected") or ctx.release_sha() or "the release SHA")[:12]
    if b1.status is not Status.PASSED:
        return Outcome.inconclusive(
            f"B1 has not shown staging serving {expected} (B1 is {b1.status}): the soak starts when it has",
            b1_status=str(b1.status),
        )
    since = ev.get("serving_since")
    ts = since.get("ts") if isinstance(since, dict) else None
    if not isinstance(ts, int | float) or isinstance(ts, bool) or ts > time.time():
        return Outcome.inconclusive(
            f"B1's evidence does not say since when staging serves {expected}: re-run B1",
            b1_status=str(b1.status),
        )
    return float(ts), {
        "ts": float(ts), "at": since.get("at") or _iso(ts), "basis": since.get("basis"),
        "source": since.get("source"), "version": expected,
    }


def _history_samples(source: Any, rules: list[Any], start: float, end: float, step: float) -> list[Any]:
    from .metrics.samples import Sample

    series: dict[float, dict[str, float | None]] = {}
    for rule in rules:
        for ts, value in source.history(rule.metric, start, end, step) or []:
            if ts >= start:
                series.setdefault(ts, {})[rule.metric] = value
    return [Sample.build(ts, values, source="prometheus history") for ts, values in sorted(series.items())]


def staging_soak(ctx: GateContext) -> Outcome:
    """C1: staging over the soak, counted from when staging began serving the release (B1).

    With a source that keeps history (Prometheus), the window is everything since that instant;
    when less than the soak has passed, the history so far seeds a live window that watches the
    remainder (progress shown, the stop button interrupts). A /metrics scrape keeps no history:
    then C1 watches a whole soak live, all of it after that instant. Samples from before it never
    count. Shorter than configured ($RELNB_WINDOW), the soak cannot pass.
    """
    from .metrics import run_window
    from .metrics.live import auto_display
    from .metrics.rules import dlq_watch

    mon = ctx.config.data["monitor"]
    configured = parse_duration(mon["soak"])
    asked, override = _override(None)
    soak = _capped(configured, asked)
    interval = parse_duration(mon["interval"])
    start = soak_start(ctx)
    if isinstance(start, Outcome):
        return start
    t0, began = start
    evidence: dict[str, Any] = {"soak_s": soak, "configured_soak_s": configured, "soak_start": began}
    if override:
        evidence["window_override"] = override
    since = f"soak from {began['at'][11:19]} UTC, when staging began serving {began['version']} ({began['source']})"
    source = _source(ctx, "staging", with_queue=False)
    if isinstance(source, str):
        return Outcome.inconclusive(f"no metrics source: set {source}", missing_config=source)
    history = getattr(source, "history", None)
    # a /metrics scrape keeps no history (history() answers None): then C1 watches staging live
    probe = history("error_rate", time.time() - 60, time.time(), 60) if callable(history) else None
    if probe is None:
        resume = [s for s in _resume(ctx) if float(s.get("ts", 0)) >= t0]
        out = run_window_gate(
            ctx, "staging", duration_s=soak, interval_s=min(interval, soak / 4), dlq=False,
            configured_s=configured, min_samples=4, resume=resume,
            evidence={**evidence, "from": "watched live (no history in a /metrics scrape)"},
        )
        return Outcome(out.status, f"{out.summary}; {since}", out.evidence)
    now = time.time()
    duration = max(soak, now - t0)  # all of it since B1's instant, and at least the soak
    step = max(interval, duration / 500)
    rules = _rules(ctx, step, dlq=False)
    samples = _history_samples(source, rules, t0, now, step)
    record = _record(ctx)
    for s in samples:
        record(s.to_dict())
    left = t0 + duration - now
    _, not_watched = dlq_watch(wanted=False, queue_configured=queue_configured(ctx.env("staging")))
    out = run_window(
        source, rules, duration, interval, record=record, start_ts=t0, resume_samples=samples,
        configured_s=configured, on_tick=auto_display(rules, prefix=f"{ctx.gate_id} soak"),
        not_watched=not_watched,
    )
    where = "prometheus history" + (", then watched live for the rest of the soak" if left > 0 else "")
    evidence.update({"from": where, "history_samples": len(samples)})
    return Outcome(out.status, f"{out.summary}; {since}", {**out.evidence, **evidence})


def figures(release: Any, gate_id: str) -> tuple[str, ...]:
    """The gate's charts of its recorded samples, with its rules' limits and breaches: the same
    renderer and the same picture as the sealed archive shows (relnb.metrics.svgchart)."""
    from .metrics.svgchart import chart_style, sample_rows, window_figures

    try:
        return window_figures(
            sample_rows(release.journal.events), gate_id, release.result(gate_id).evidence,
            chart_style(release.info),
        )
    except Exception as exc:  # a chart must never hide the verdict
        return (f"<p>chart unavailable: {type(exc).__name__}</p>",)


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
