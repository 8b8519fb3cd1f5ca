"""Celery on RabbitMQ (or any AMQP 0-9-1 broker), read over AMQP itself.

The management API is often not enabled, so the inspector asks only what AMQP answers to
everyone: a passive `queue.declare` returns a queue's ready-message count and its consumer
count, and fails with 404 when the queue does not exist (never read as "0 jobs"). What AMQP does
not tell: unacknowledged messages, message ages and which messages finished. So:

- jobs taken off the queue between two snapshots are counted from the fall of the ready count
  (a lower bound: publishing during the watch hides deliveries; when the count did not fall but
  a consumer is attached, the deliveries are "not countable", never zero);
- the oldest waiting message's age is a lower bound: how long the ready count has stayed
  positive without falling;
- messages waiting with no consumer attached are stuck: no worker consumes the queue;
- the dead-letter queue (`dlq`, a queue name or a `{queue}` pattern: where RabbitMQ's
  `x-dead-letter-exchange` routes rejected and expired messages) is counted the same way, and
  its growth during B6's watch is the number of jobs that failed for good.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from .connection import URL_FACTORY
from .levels import count_by_level, dead_letter_names
from .model import (
    DeadLetters,
    JobInfo,
    JobState,
    QueueSnapshot,
    QueueStats,
    QueueUnreachable,
    scrub_reason,
)


def _parse(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "pyamqp", "amqps"):
        raise QueueUnreachable(f"not an AMQP URL (scheme {parts.scheme or 'missing'!r}; want amqp://)")
    vhost = unquote(parts.path[1:]) if parts.path and parts.path != "/" else "/"
    return {
        "host": f"{parts.hostname or 'localhost'}:{parts.port or 5672}",
        "userid": unquote(parts.username or "guest"),
        "password": unquote(parts.password or "guest"),
        "virtual_host": vhost,
        "ssl": parts.scheme == "amqps",
    }


class CeleryAMQPInspector:
    """Queues of a Celery app whose broker is RabbitMQ; see the module docstring."""

    kind = "celery-amqp"
    connects = URL_FACTORY

    def __init__(
        self,
        url: str,
        queues: Sequence[str],
        prefix: str | None = None,
        *,
        socket_timeout_s: float = 5.0,
        dlq: str | Mapping[str, str] | None = None,
    ):
        import amqp

        self.queues = tuple(queues)
        try:
            params = _parse(url)
        except ValueError as exc:  # a port that is not a number
            raise QueueUnreachable(f"unparseable AMQP URL ({type(exc).__name__})") from None
        self.target = f"{urlsplit(url).scheme}://{params['host']} (vhost {params['virtual_host']})"
        self.dlq = dead_letter_names(self.queues, dlq)
        self._conn = amqp.Connection(
            **params,
            connect_timeout=socket_timeout_s,
            read_timeout=socket_timeout_s,
            write_timeout=socket_timeout_s,
        )
        try:
            self._conn.connect()
        except Exception as exc:  # socket, auth, protocol: all mean "cannot ask"
            raise QueueUnreachable(f"{self.target}: {self._why(exc)}") from None
        self._channel: Any = None

    def _why(self, exc: BaseException) -> str:
        text = str(exc).splitlines()[0] if str(exc) else ""
        return scrub_reason(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, 200)

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # closing a dead connection must not hide the verdict
            pass

    def _declare(self, name: str) -> tuple[int, int] | None:
        """(ready messages, consumers), or None when the queue does not exist."""
        import amqp

        try:
            if self._channel is None or not self._channel.is_open:
                self._channel = self._conn.channel()
            _, ready, consumers = self._channel.queue_declare(name, passive=True)
        except amqp.exceptions.NotFound:
            self._channel = None  # the broker closes a channel after a 404
            return None
        except Exception as exc:
            raise QueueUnreachable(self._why(exc)) from None
        return int(ready), int(consumers)

    def _missing(self, q: str) -> str:
        return f"queue {q!r} does not exist on the broker {self.target}: check the queue name"

    # -- snapshot ---------------------------------------------------------------------------------

    def snapshot(self, previous: QueueSnapshot | None = None) -> QueueSnapshot:
        now = int(time.time() * 1000)
        prev = previous.by_name() if previous else {}
        return QueueSnapshot(self.kind, now, tuple(self._queue(q, now, prev.get(q)) for q in self.queues))

    def _queue(self, q: str, now: int, prev: QueueStats | None) -> QueueStats:
        found = self._declare(q)
        if found is None:
            return QueueStats(q, exists=False, notes=(self._missing(q),))
        ready, consumers = found
        dead = self._dead(q)
        notes = ["AMQP shows ready messages only: unacknowledged ones and ages are not visible"]
        counted = count_by_level(
            prev, level=ready, previous_level=prev.waiting if prev else None, waiting=ready, dead=dead,
            idle=consumers == 0 or (ready == 0 and prev is not None and prev.waiting == 0),
            now_ms=now, counted_as="deliveries (fall of the ready count)",
        )  # fmt: skip
        notes += [counted.note] if counted.note else []
        oldest = counted.oldest
        stuck: tuple[JobInfo, ...] = ()
        if ready and not consumers:
            stuck = (
                JobInfo(
                    "(queue)",
                    "waiting",
                    oldest.age_s if oldest else None,
                    f"{ready} message(s) waiting and no consumer attached: no worker consumes {q!r}",
                ),
            )
        return QueueStats(
            q,
            exists=True,
            waiting=ready,
            failed=dead,
            oldest_waiting=oldest,
            waiting_age_is_lower_bound=True,
            stuck=stuck,
            completed_since_previous=counted.done,
            failed_since_previous=counted.failed,
            state={"waiting_since": counted.waiting_since, "consumers": consumers},
            notes=tuple(notes),
        )

    def _dead(self, q: str) -> int | None:
        name = self.dlq.get(q)
        if not name:
            return None
        found = self._declare(name)
        return found[0] if found else None

    # -- dead letters -----------------------------------------------------------------------------

    def dead_letters(self, newest: int = 5) -> DeadLetters:
        depth: dict[str, int] = {}
        sources: dict[str, str] = {}
        for q, name in self.dlq.items():
            if self._declare(q) is None:  # a metric of 0 for a misspelt queue would watch nothing
                raise ValueError(self._missing(q))
            found = self._declare(name)
            if found is None:
                raise ValueError(f"dead-letter queue {name!r} of {q!r} does not exist on the broker")
            depth[q] = found[0]
            sources[q] = name
        missing = tuple(q for q in self.queues if q not in self.dlq)
        return DeadLetters(depth, {}, sources, missing)

    # -- one job ----------------------------------------------------------------------------------

    def job_state(self, queue: str, job_id: str) -> JobState:
        note = "AMQP cannot follow one message; use the Celery result backend (AsyncResult)"
        found = self._declare(queue)
        if found is None:
            return JobState(job_id, "missing", {"note": self._missing(queue)})
        return JobState(job_id, "unknown", {"note": note})
