"""B6 (are queues processing, is anything stuck?) and D5's follow-up of one job.

Verdict rules are in `relnb.checks.queues`' docstring; `judge_queue` is where they live.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ...errors import UsageError
from ...results import Outcome, Status
from .model import JobInfo, JobState, QueueSnapshot, QueueStats, QueueUnreachable
from .registry import combine, fmt_s, open_queue_inspector, queue_names

# B6's default limit on failures: more than 1 in 10 of the jobs that finished during the watch
# failing means the queue is not processing its work, however many others completed.
MAX_FAILED_RATIO = 0.1


def judge_queue(
    series: Sequence[QueueStats],
    span_s: float,
    *,
    max_job_age_s: float,
    require_completions: bool,
    accept_idle: bool,
    max_failed_ratio: float = MAX_FAILED_RATIO,
) -> tuple[Status, str]:
    """One queue's verdict from its snapshots (oldest first)."""
    last = series[-1]
    q = last.queue
    if not last.exists:
        return Status.INCONCLUSIVE, f"{q}: " + (last.notes[0] if last.notes else "queue not found")
    stuck: dict[str, JobInfo] = {}
    for stats in series:
        stuck.update({j.id: j for j in stats.stuck})
    for job in last.active_jobs:
        if job.id not in stuck and job.age_s is not None and job.age_s > max_job_age_s:
            stuck[job.id] = JobInfo(
                job.id,
                job.state,
                job.age_s,
                f"active for {fmt_s(job.age_s)} (limit {fmt_s(max_job_age_s)})",
            )
    if stuck:
        first = next(iter(stuck.values()))
        more = f" (+{len(stuck) - 1} more)" if len(stuck) > 1 else ""
        return Status.FAILED, f"{q}: stuck job {first.id}: {first.reason}{more}"
    old = last.oldest_waiting
    if old is not None and old.age_s is not None and old.age_s > max_job_age_s:
        bound = "at least " if last.waiting_age_is_lower_bound else ""
        return (
            Status.FAILED,
            f"{q}: oldest waiting job {old.id} has waited {bound}{fmt_s(old.age_s)} "
            f"(limit {fmt_s(max_job_age_s)}); {last.waiting} waiting",
        )
    waiting = max(s.waiting for s in series)
    if last.paused and last.waiting:
        return Status.FAILED, f"{q}: queue is paused with {last.waiting} job(s) waiting"
    counts = [s.completed_since_previous for s in series[1:]]
    done = sum(c for c in counts if c is not None)
    known = bool(counts) and all(c is not None for c in counts)
    failed, failed_known = _failed_in_interval(series)
    active = max(s.active for s in series)
    also = f", {failed} failed" if failed_known else " (failures not counted)"
    state = f"{last.waiting} waiting, {last.active} active"
    if failed > max_failed_ratio * (done + failed):
        return (
            Status.FAILED,
            f"{q}: {failed} of {done + failed} job(s) finished in {fmt_s(span_s)} failed "
            f"({failed / (done + failed):.0%}, limit {max_failed_ratio:.0%}); {done} completed; {state}",
        )
    # A worker that finished a job and then stopped: the trailing half of the watch saw jobs
    # waiting throughout, none running and none finishing. "1 completed" is not "processing".
    tail = counts[len(counts) // 2 :]
    before_tail = series[len(series) - len(tail) - 1]
    if (
        done
        and tail
        and all(c == 0 for c in tail)
        and before_tail.waiting > 0
        and last.waiting >= before_tail.waiting
        and not any(s.active for s in series[len(series) - len(tail) - 1 :])
    ):
        return (
            Status.FAILED,
            f"{q}: {last.waiting} job(s) waited through the last {fmt_s(span_s * len(tail) / len(counts))} "
            f"of the watch with none running or finishing ({done} completed before): the worker stopped taking jobs",
        )
    if done:
        return Status.PASSED, f"{q}: {done} job(s) completed in {fmt_s(span_s)}{also}; {state}"
    if not require_completions:
        return (
            Status.PASSED,
            f"{q}: no stuck or overdue jobs ({state}; none completed in {fmt_s(span_s)})",
        )
    if not known and (waiting or active):
        return Status.INCONCLUSIVE, f"{q}: completions could not be counted; {state}"
    if waiting:
        return (
            Status.FAILED,
            f"{q}: no job completed in {fmt_s(span_s)} while {waiting} waiting{also}",
        )
    if active:
        return (
            Status.INCONCLUSIVE,
            f"{q}: {active} job(s) running, none completed in {fmt_s(span_s)}; lengthen the interval",
        )
    if accept_idle:
        return (
            Status.PASSED,
            f"{q}: idle (nothing waiting, running or completed in {fmt_s(span_s)})",
        )
    return (
        Status.INCONCLUSIVE,
        f"{q}: idle for {fmt_s(span_s)}, no evidence of processing; enqueue a probe job "
        "or pass accept_idle=True",
    )


def _failed_in_interval(series: Sequence[QueueStats]) -> tuple[int, bool]:
    """(jobs that failed for good during the watch, whether the inspector could count them:
    Celery and stream consumers do not record a failure apart from an acknowledgement)."""
    counts = [s.failed_since_previous for s in series[1:]]
    return sum(c or 0 for c in counts), bool(counts) and all(c is not None for c in counts)


def check_queues_processing(
    redis_url: str,
    kind: str,
    queues: str | Sequence[str],
    *,
    prefix: str | None = None,
    interval_s: float = 10.0,
    samples: int = 3,
    max_job_age_s: float = 300.0,
    require_completions: bool = True,
    accept_idle: bool = False,
    max_failed_ratio: float = MAX_FAILED_RATIO,
    socket_timeout_s: float = 5.0,
    **options: Any,
) -> Outcome:
    """B6: are the queues' jobs completing, with nothing stuck or waiting too long, and no more
    than `max_failed_ratio` of the jobs finished during the watch failing?

    `options` go to the inspector (celery: visibility_timeout_s; redis-streams: groups,
    claim_idle_s). The URL is a secret: evidence shows host:port/db only.
    """
    names = queue_names(queues)
    if samples < 2 or interval_s < 0:
        raise UsageError("B6 needs samples >= 2 and interval_s >= 0")
    if not 0.0 <= max_failed_ratio <= 1.0:
        raise UsageError(
            f"B6's max_failed_ratio must be between 0 and 1, not {max_failed_ratio!r}",
            fix="set environments.staging.queue.max_failed_ratio to a fraction, e.g. 0.1 for 10 %",
        )
    head: dict[str, Any] = {
        "kind": kind,
        "interval_s": interval_s,
        "max_job_age_s": max_job_age_s,
        "max_failed_ratio": max_failed_ratio,
    }
    snaps: list[QueueSnapshot] = []
    try:
        opened = open_queue_inspector(kind, redis_url, names, prefix, socket_timeout_s=socket_timeout_s, **options)
    except QueueUnreachable as exc:
        return Outcome.inconclusive(f"queue broker ({kind}) unreachable: {exc}", **head, error=str(exc))
    head = {opened.target_key: opened.target, **head}
    try:
        inspector = opened.inspector
        try:
            snaps.append(inspector.snapshot())
            for _ in range(samples - 1):
                time.sleep(interval_s / (samples - 1))
                snaps.append(inspector.snapshot(snaps[-1]))
        except opened.errors as exc:
            return opened.problem(exc, **head, snapshots_taken=len(snaps))
    finally:
        opened.close()
    span = (snaps[-1].at_ms - snaps[0].at_ms) / 1000.0
    series: dict[str, list[QueueStats]] = {}
    for snap in snaps:
        for stats in snap.queues:
            series.setdefault(stats.queue, []).append(stats)
    verdicts: dict[str, tuple[Status, str]] = {}
    per_queue: dict[str, Any] = {}
    for name, stats in series.items():
        status, message = judge_queue(
            stats,
            span,
            max_job_age_s=max_job_age_s,
            require_completions=require_completions,
            accept_idle=accept_idle,
            max_failed_ratio=max_failed_ratio,
        )
        verdicts[name] = (status, message)
        failed, failed_known = _failed_in_interval(stats)
        active = sorted(stats[-1].active_jobs, key=lambda j: -(j.age_s or 0.0))
        per_queue[name] = {
            "verdict": str(status),
            "message": message,
            "completed_in_interval": sum(s.completed_since_previous or 0 for s in stats[1:]),
            "failed_in_interval": failed if failed_known else None,
            "samples": [
                {
                    "t_s": round((s_at - snaps[0].at_ms) / 1000, 2),
                    "waiting": s.waiting,
                    "active": s.active,
                    "delayed": s.delayed,
                    "failed": s.failed,
                }
                for s_at, s in zip((sn.at_ms for sn in snaps), stats, strict=False)
            ],
            "last": stats[-1].to_dict(),
            "oldest_active": [j.to_dict() for j in active[:5]],
        }
    status, summary = combine(verdicts)
    return Outcome(
        status,
        summary,
        {
            **head,
            "prefix": prefix,
            "span_s": round(span, 2),
            "require_completions": require_completions,
            "accept_idle": accept_idle,
            "queues": per_queue,
        },
    )


def wait_for_job(
    redis_url: str,
    kind: str,
    queue: str,
    job_id: str,
    timeout_s: float = 60.0,
    *,
    prefix: str | None = None,
    poll_s: float = 0.5,
    socket_timeout_s: float = 5.0,
    **options: Any,
) -> Outcome:
    """D5: did this job (e.g. the smoke test's upload) complete before the deadline?

    Passed on completion; failed when it failed (with its reason), or at the deadline with the
    state it was left in; inconclusive when Redis could not be asked at all.
    """
    head: dict[str, Any] = {"kind": kind, "queue": queue, "job_id": job_id, "timeout_s": timeout_s}
    try:
        opened = open_queue_inspector(kind, redis_url, [queue], prefix, socket_timeout_s=socket_timeout_s, **options)
    except QueueUnreachable as exc:
        return Outcome.inconclusive(f"queue broker ({kind}) unreachable while following job {job_id} ({exc})", **head)
    target = opened.target
    head = {opened.target_key: target, **head}
    started = time.monotonic()
    state: JobState | None = None
    error: str | None = None
    try:
        inspector = opened.inspector
        while True:
            try:
                state = inspector.job_state(queue, job_id)
                error = None
            except opened.errors as exc:
                error = opened.reason(exc)
            waited = time.monotonic() - started
            if state is not None and state.state == "completed":
                return Outcome.passed(
                    f"job {job_id} on {queue} completed within {fmt_s(waited)}",
                    **head,
                    waited_s=round(waited, 2),
                    job=dict(state.detail),
                )
            if state is not None and state.state == "failed":
                reason = state.detail.get("failed_reason") or "no reason recorded"
                return Outcome.failed(
                    f"job {job_id} on {queue} failed: {reason}",
                    **head,
                    waited_s=round(waited, 2),
                    job=dict(state.detail),
                )
            if waited >= timeout_s:
                break
            time.sleep(min(poll_s, max(0.0, timeout_s - waited)))
    finally:
        opened.close()
    if state is None:
        what = "Redis" if opened.target_key == "redis" else "queue broker"
        return Outcome.inconclusive(
            f"{what} at {target} unreachable while following job {job_id} ({error})",
            **head,
            error=error,
        )
    last_reason = state.detail.get("last_failed_reason")
    why = f" (last attempt failed: {last_reason})" if last_reason else ""
    if state.state == "missing":
        summary = f"job {job_id} not found on {queue} after {fmt_s(timeout_s)} (wrong id or queue?)"
    else:
        summary = f"job {job_id} on {queue} still {state.state} after {fmt_s(timeout_s)}{why}"
    return Outcome.failed(summary, **head, state=state.state, job=dict(state.detail), error=error)
