"""Celery on the Redis broker (kombu's Redis transport), read without Celery.

kombu LPUSHes each message (JSON: `headers.id` = task id, `properties.delivery_tag`) onto the
queue's list — `<queue>` for priority 0 and `<queue>\\x06\\x16<n>` for the other priority steps
(0/3/6/9 by default, any of 1–9 when configured) — and consumers BRPOP the tail, so the oldest
message is last. A delivered message stays in the `unacked` hash (tag → [message, exchange,
routing_key]) with its delivery time (float seconds) in the `unacked_index` zset until it is acked;
after `visibility_timeout` (3600 s by default) kombu restores it to the queue. So an unacked message
older than the visibility timeout was delivered to a consumer that never acked it: a dead or hung
worker. All keys carry kombu's `global_keyprefix` when one is set.

Messages carry no enqueue time, so a waiting message's age is a lower bound: how long it has been
seen waiting across this check's snapshots. "Completed" here means acknowledged (a task that
raised is acked too; Celery has no broker-side DLQ — configure a dead-letter key for B7).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...results import last_line
from .dlq_keys import read_dead_letter_keys
from .model import (
    DeadLetters,
    JobInfo,
    JobState,
    QueueSnapshot,
    QueueStats,
    age_s,
    scrub_reason,
    server_ms,
    text,
)

if TYPE_CHECKING:
    import redis

SEP = "\x06\x16"
_FULL_LIST = 5000  # read whole lists up to this length; beyond it, the oldest part only
_UNACKED_CAP = 5000
_STATES = {
    "PENDING": "waiting",
    "RECEIVED": "waiting",
    "RETRY": "waiting",
    "STARTED": "active",
    "SUCCESS": "completed",
    "FAILURE": "failed",
    "REVOKED": "failed",
}


def _message(raw: Any) -> dict[str, Any]:
    try:
        data = json.loads(text(raw))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _ident(msg: Mapping[str, Any]) -> tuple[str, str, str]:
    """(delivery tag, task id, task name) of a kombu message."""
    headers = msg.get("headers") or {}
    props = msg.get("properties") or {}
    tag = str(props.get("delivery_tag") or headers.get("id") or "")
    return tag, str(headers.get("id") or tag), str(headers.get("task") or "")


class CeleryInspector:
    kind = "celery"

    def __init__(
        self,
        client: redis.Redis,
        queues: Sequence[str],
        prefix: str | None = None,
        *,
        visibility_timeout_s: float = 3600.0,
        dlq_keys: Mapping[str, str] | None = None,
        result_prefix: str | None = None,
    ):
        self.client = client
        self.queues = tuple(queues)
        self.prefix = prefix or ""
        self.visibility_timeout_s = visibility_timeout_s
        self.dlq_keys = dict(dlq_keys or {})
        self.result_prefix = self.prefix if result_prefix is None else result_prefix

    def lists(self, queue: str) -> list[str]:
        base = self.prefix + queue
        return [base] + [f"{base}{SEP}{n}" for n in range(1, 10)]

    # -- snapshot ---------------------------------------------------------------------------------

    def snapshot(self, previous: QueueSnapshot | None = None) -> QueueSnapshot:
        now = server_ms(self.client)
        unacked = self._unacked(now)
        prev = previous.by_name() if previous else {}
        stats = tuple(self._queue(q, now, unacked.get(q, []), prev.get(q)) for q in self.queues)
        return QueueSnapshot(self.kind, now, stats)

    def _queue(
        self, q: str, now: int, unacked: list[JobInfo], prev: QueueStats | None
    ) -> QueueStats:
        c = self.client
        keys = self.lists(q)
        p = c.pipeline(transaction=False)
        for key in keys:
            p.llen(key)
        p.exists(f"{self.prefix}_kombu.binding.{q}")
        *lengths, bound = p.execute()
        waiting = sum(int(n) for n in lengths)
        if not (waiting or unacked or bound):
            return QueueStats(
                q,
                exists=False,
                notes=(f"no kombu keys for queue {q!r} (no binding, list or unacked message)",),
            )
        seen_before: Mapping[str, int] = (prev.state.get("first_seen") if prev else None) or {}
        tracked_before: set[str] = set((prev.state.get("tracked") if prev else None) or ())
        first_seen: dict[str, int] = {}
        waiting_jobs: list[JobInfo] = []
        complete = True
        p = c.pipeline(transaction=False)
        for key, n in zip(keys, lengths, strict=True):
            if n:
                complete = complete and n <= _FULL_LIST
                p.lrange(key, -_FULL_LIST, -1)
        for raw in (r for batch in p.execute() for r in batch):
            tag, task_id, task = _ident(_message(raw))
            if not tag:
                continue
            first_seen[tag] = seen_before.get(tag, now)
            waiting_jobs.append(
                JobInfo(task_id, "waiting", age_s(now, first_seen[tag]), detail={"task": task})
            )
        tags_now = set(first_seen) | {str(j.detail.get("delivery_tag")) for j in unacked}
        processed = None
        if prev is not None:
            gone = tracked_before - tags_now
            processed = len(gone) if complete else None
        stuck = tuple(j for j in unacked if j.reason)
        notes = []
        if not complete:
            notes.append(f"queue longer than {_FULL_LIST}: acknowledgements not counted")
        return QueueStats(
            q,
            exists=True,
            waiting=waiting,
            active=len(unacked),
            oldest_waiting=max(waiting_jobs, key=lambda j: j.age_s or 0.0, default=None),
            waiting_age_is_lower_bound=True,
            active_jobs=tuple(unacked),
            stuck=stuck,
            completed_since_previous=processed,
            state={"first_seen": first_seen, "tracked": sorted(tags_now)},
            notes=tuple(notes),
        )

    def _unacked(self, now: int) -> dict[str, list[JobInfo]]:
        """Unacked messages by queue (a message's queue: its routing key, or the binding it hit)."""
        c = self.client
        index = c.zrange(f"{self.prefix}unacked_index", 0, _UNACKED_CAP - 1, withscores=True)
        if not index:
            return {}
        tags = [text(t) for t, _ in index]
        payloads = c.hmget(f"{self.prefix}unacked", tags)
        routes = self._routes()
        out: dict[str, list[JobInfo]] = {}
        for (tag, delivered), payload in zip(
            zip(tags, (s for _, s in index), strict=True), payloads, strict=True
        ):
            try:
                msg, exchange, routing_key = json.loads(text(payload))
            except (ValueError, TypeError):
                continue
            queue = routes.get((str(exchange), str(routing_key)), str(routing_key))
            _, task_id, task = _ident(msg)
            age = age_s(now, delivered * 1000)
            headers = msg.get("headers") or {}
            detail: dict[str, Any] = {"task": task, "delivery_tag": tag}
            if headers.get("eta"):
                detail["eta"] = str(headers["eta"])
            reason = None
            if age is not None and age > self.visibility_timeout_s:
                reason = (
                    f"unacked for {age:.0f} s, past the visibility timeout "
                    f"({self.visibility_timeout_s:g} s): its worker died or hung"
                )
            out.setdefault(queue, []).append(JobInfo(task_id, "active", age, reason, detail))
        return out

    def _routes(self) -> dict[tuple[str, str], str]:
        """(exchange, routing key) → queue, from kombu's `_kombu.binding.<exchange>` sets."""
        routes: dict[tuple[str, str], str] = {}
        for q in self.queues:
            for member in self.client.smembers(f"{self.prefix}_kombu.binding.{q}"):
                parts = text(member).split(SEP)
                if len(parts) == 3:
                    routes[(q, parts[0])] = parts[2]
        return routes

    # -- dead letters -----------------------------------------------------------------------------

    def dead_letters(self, newest: int = 5) -> DeadLetters:
        known = {q: k for q, k in self.dlq_keys.items() if q in self.queues}
        result = read_dead_letter_keys(self.client, known, newest)
        missing = tuple(q for q in self.queues if q not in known)
        return DeadLetters(result.depth, result.newest, result.sources, missing)

    # -- one job ----------------------------------------------------------------------------------

    def job_state(self, queue: str, job_id: str) -> JobState:
        meta = self.client.get(f"{self.result_prefix}celery-task-meta-{job_id}")
        if meta is not None:
            data = _message(meta)
            status = str(data.get("status", ""))
            detail: dict[str, Any] = {"celery_status": status}
            if status == "FAILURE":
                result = data.get("result") or {}
                reason = ""
                if isinstance(result, dict):
                    message = result.get("exc_message", "")
                    if isinstance(message, list | tuple):
                        message = ", ".join(str(m) for m in message)
                    reason = f"{result.get('exc_type', '')}: {message}"
                detail["failed_reason"] = scrub_reason(
                    reason or last_line(str(data.get("traceback") or ""))
                )
            state = _STATES.get(status, "unknown")
            if state != "waiting":
                return JobState(job_id, state, detail)
        now = server_ms(self.client)
        for job in self._unacked(now).get(queue, []):
            if job.id == job_id:
                return JobState(job_id, "active", {"unacked_s": round(job.age_s or 0, 1)})
        for key in self.lists(queue):
            for raw in self.client.lrange(key, -_FULL_LIST, -1):
                if _ident(_message(raw))[1] == job_id:
                    return JobState(job_id, "waiting", {"list": key.replace(SEP, "\\x06\\x16")})
        return JobState(
            job_id, "missing", {"note": "not queued, not unacked, no result in the result backend"}
        )
