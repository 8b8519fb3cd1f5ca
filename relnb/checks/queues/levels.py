"""Judging work from a queue's level alone, for brokers that show counts and nothing else (AMQP's
ready count, SQS's approximate counts): no message ids, no ages, no history of what finished.

- jobs finished between two snapshots are the fall of the level: a lower bound, since messages
  sent during the watch hide deliveries; a level that did not fall while work was present is
  "not countable" (None), never zero;
- a message that went to the dead-letter queue left the queue too: the DLQ's growth is the
  failures, and is not counted as done; it is counted even where the fall of the level is not
  (the level held while a worker was busy): the DLQ's own level says it;
- the oldest waiting message's age is a lower bound: how long the waiting count has stayed
  positive without falling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .model import JobInfo, QueueStats


def dead_letter_names(queues: Sequence[str], dlq: str | Mapping[str, str] | None) -> dict[str, str]:
    """Each queue's dead-letter queue from `queue.dlq`: a name per queue, or one `{queue}` pattern."""
    if isinstance(dlq, Mapping):
        return {q: dlq[q] for q in queues if q in dlq}
    if dlq:
        return {q: dlq.replace("{queue}", q) for q in queues}
    return {}


@dataclass(frozen=True)
class LevelCount:
    done: int | None  # jobs finished since the previous snapshot (a lower bound), None: not countable
    failed: int | None  # jobs dead-lettered since then, None: unknown
    oldest: JobInfo | None  # the head of the queue, with its age as a lower bound
    waiting_since: int | None  # carried to the next snapshot (ms)
    note: str | None  # what the counting rests on, when it counted a fall


def count_by_level(
    prev: QueueStats | None,
    *,
    level: int,
    previous_level: int | None,
    waiting: int,
    dead: int | None,
    idle: bool,
    now_ms: int,
    counted_as: str,
) -> LevelCount:
    """`level`: what a finished job takes away (ready; or waiting + in flight). `idle`: nothing
    could have been taken (no consumer attached, or nothing there at either snapshot)."""
    since = prev.state.get("waiting_since") if prev else None
    done: int | None = None
    failed: int | None = None
    note = None
    if prev is not None and previous_level is not None:
        fell = previous_level - level
        if fell > 0:
            done = fell
            note = f"jobs counted as {counted_as}, a lower bound"
        elif idle:
            done = 0
        if dead is not None and prev.failed is not None:
            failed = max(0, dead - prev.failed)
            if done:
                done = max(0, done - failed)
    if not waiting or (prev is not None and prev.waiting > waiting):
        since = now_ms if waiting else None
    elif since is None:
        since = now_ms
    oldest = JobInfo("(head of queue)", "waiting", (now_ms - since) / 1000.0) if waiting and since is not None else None
    return LevelCount(done, failed, oldest, since, note)
