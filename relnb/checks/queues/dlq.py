"""B7 (is each dead-letter queue empty, or at least not growing?) and the DLQ depth metric."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

from ...errors import UsageError
from ...results import Outcome, Status
from .model import DeadLetters, QueueUnreachable
from .registry import combine, fmt_s, open_queue_inspector, queue_names


def check_dlq(
    redis_url: str,
    kind: str,
    queues: str | Sequence[str],
    *,
    samples: int = 3,
    interval_s: float = 5.0,
    allow_nonzero_stable: bool = True,
    prefix: str | None = None,
    newest: int = 5,
    socket_timeout_s: float = 5.0,
    **options: Any,
) -> Outcome:
    """B7: is each queue's dead-letter queue empty, or at least not growing?

    BullMQ: the `failed` zset; RQ: the FailedJobRegistry; Celery and Redis Streams: the keys in
    `dlq_keys={queue: key}` (list, zset, set or stream). Evidence: the depth samples and the
    newest dead jobs with their reasons (scrubbed, truncated).
    """
    names = queue_names(queues)
    if samples < 2 or interval_s < 0:
        raise UsageError("B7 needs samples >= 2 and interval_s >= 0")
    head: dict[str, Any] = {"kind": kind, "interval_s": interval_s, "samples": samples}
    try:
        opened = open_queue_inspector(kind, redis_url, names, prefix, socket_timeout_s=socket_timeout_s, **options)
    except QueueUnreachable as exc:
        return Outcome.inconclusive(f"queue broker ({kind}) unreachable: {exc}", **head, error=str(exc))
    head = {opened.target_key: opened.target, **head}
    try:
        inspector = opened.inspector
        try:
            base = inspector.snapshot()
            taken: list[DeadLetters] = [inspector.dead_letters(newest)]
            started = base.at_ms
            for i in range(samples - 1):
                time.sleep(interval_s / (samples - 1))
                taken.append(inspector.dead_letters(newest if i == samples - 2 else 0))
            last = inspector.snapshot()
        except opened.errors as exc:
            return opened.problem(exc, **head)
        except ValueError as exc:
            return Outcome.inconclusive(f"dead-letter key unusable: {exc}", **head)
    finally:
        opened.close()
    if taken[0].missing:
        return Outcome.inconclusive(
            f"no dead-letter key configured for {', '.join(taken[0].missing)} ({kind} has no "
            "built-in DLQ); pass dlq_keys={queue: key}",
            **head,
        )
    span = (last.at_ms - started) / 1000.0
    # judged at the end, as B6 does: a queue whose first job arrives during the watch had no
    # keys at the start, and its DLQ samples from before then are a true 0 (issue seen in CI)
    missing = {s.queue: s for s in last.queues if not s.exists}
    verdicts: dict[str, tuple[Status, str]] = {}
    per_queue: dict[str, Any] = {}
    for q in names:
        depths = [d.depth.get(q, 0) for d in taken]
        fresh = [j for j in taken[-1].newest.get(q, ()) if j.age_s is not None and j.age_s < span]
        series = ", ".join(map(str, depths))
        if q in missing and not depths[-1]:
            note = missing[q].notes[0] if missing[q].notes else "queue not found"
            verdicts[q] = (Status.INCONCLUSIVE, f"{q}: {note}")
        elif any(b > a for a, b in itertools.pairwise(depths)) or fresh:
            why = (
                f"grew {depths[0]} → {max(depths)}"
                if max(depths) > depths[0]
                else (f"gained {len(fresh)} new dead job(s)")
            )
            verdicts[q] = (Status.FAILED, f"{q}: DLQ {why} in {fmt_s(span)} (samples {series})")
        elif depths[-1] and not allow_nonzero_stable:
            verdicts[q] = (
                Status.FAILED,
                f"{q}: DLQ holds {depths[-1]} dead job(s) (samples {series})",
            )
        elif depths[-1]:
            verdicts[q] = (
                Status.PASSED,
                f"{q}: DLQ holds {depths[-1]} dead job(s), not growing (samples {series})",
            )
        else:
            verdicts[q] = (Status.PASSED, f"{q}: DLQ empty (samples {series})")
        per_queue[q] = {
            "verdict": str(verdicts[q][0]),
            "dlq_key": taken[-1].sources.get(q),
            "depth_samples": depths,
            "new_during_interval": [j.id for j in fresh],
            "newest": [j.to_dict() for j in taken[-1].newest.get(q, ())],
        }
    status, summary = combine(verdicts)
    return Outcome(
        status,
        summary,
        {
            **head,
            "span_s": round(span, 2),
            "prefix": prefix,
            "allow_nonzero_stable": allow_nonzero_stable,
            "queues": per_queue,
        },
    )


def dlq_depth(
    redis_url: str,
    kind: str,
    queues: str | Sequence[str],
    prefix: str | None = None,
    *,
    socket_timeout_s: float = 5.0,
    **options: Any,
) -> int:
    """Total dead-letter depth now (a metric callable for the monitoring window).

    Raises `QueueUnreachable` (message without credentials) when Redis cannot be asked, and
    `UsageError` when a kind without a built-in DLQ has no `dlq_keys`.
    """
    names = queue_names(queues)
    opened = open_queue_inspector(kind, redis_url, names, prefix, socket_timeout_s=socket_timeout_s, **options)
    try:
        try:
            letters = opened.inspector.dead_letters(newest=0)
        except opened.errors as exc:
            what = "Redis" if opened.target_key == "redis" else "queue broker"
            raise QueueUnreachable(f"{what} at {opened.target} unreachable: {opened.reason(exc)}") from None
    finally:
        opened.close()
    if letters.missing:
        raise UsageError(
            f"no dead-letter key for {', '.join(letters.missing)}", fix="pass dlq_keys={queue: key}"
        )
    return letters.total
