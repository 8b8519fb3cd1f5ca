"""Redis Streams consumer groups as a job queue (XADD / XREADGROUP / XACK).

Each (stream, group) pair is reported as one queue named `<stream>/<group>`. Waiting = entries
after the group's last-delivered id (XINFO GROUPS `lag` on Redis 7, counted on 6.2); active = the
pending entries list (delivered, not acked) whose age is its idle time; completed = acks, counted
as pending entries that left the PEL plus entries delivered since the previous snapshot that are
no longer pending. Streams have no stall rule of their own: a pending entry idle past
`claim_idle_s` (the app's XAUTOCLAIM min-idle-time), or past the check's max job age, is stuck.
Entry ids are Redis server milliseconds, so a waiting entry's age is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .dlq_keys import read_dead_letter_keys
from .model import (
    SAMPLE,
    DeadLetters,
    JobInfo,
    JobState,
    QueueSnapshot,
    QueueStats,
    age_s,
    server_ms,
    text,
)

if TYPE_CHECKING:
    import redis

_COUNT_CAP = 10_000


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms or 0), int(seq or 0)


class StreamsInspector:
    kind = "redis-streams"

    def __init__(
        self,
        client: redis.Redis,
        queues: Sequence[str],
        prefix: str | None = None,
        *,
        groups: Sequence[str] | None = None,
        claim_idle_s: float | None = None,
        dlq_keys: Mapping[str, str] | None = None,
    ):
        self.client = client
        self.streams = tuple((prefix or "") + q for q in queues)
        self.groups = tuple(groups) if groups else None
        self.claim_idle_s = claim_idle_s
        self.dlq_keys = dict(dlq_keys or {})

    def _groups(self, stream: str) -> list[dict[str, Any]]:
        import redis

        try:
            infos = self.client.xinfo_groups(stream)
        except redis.ResponseError:  # no such key
            return []
        out = []
        for info in infos:
            info = {text(k): v for k, v in info.items()}
            info["name"] = text(info["name"])
            info["last-delivered-id"] = text(info["last-delivered-id"])
            if self.groups is None or info["name"] in self.groups:
                out.append(info)
        return out

    def snapshot(self, previous: QueueSnapshot | None = None) -> QueueSnapshot:
        now = server_ms(self.client)
        prev = previous.by_name() if previous else {}
        stats: list[QueueStats] = []
        for stream in self.streams:
            groups = self._groups(stream)
            if not groups:
                wanted = f" named {', '.join(self.groups)}" if self.groups else ""
                stats.append(
                    QueueStats(
                        stream,
                        exists=False,
                        notes=(f"stream {stream!r} missing or has no consumer group{wanted}",),
                    )
                )
            for info in groups:
                name = f"{stream}/{info['name']}"
                stats.append(self._group(stream, info, now, prev.get(name)))
        return QueueSnapshot(self.kind, now, tuple(stats))

    def _group(
        self, stream: str, info: dict[str, Any], now: int, prev: QueueStats | None
    ) -> QueueStats:
        c = self.client
        group, last = info["name"], info["last-delivered-id"]
        lag = info.get("lag")
        after = (
            c.xrange(stream, f"({last}", "+", count=1)
            if last != "0-0"
            else c.xrange(stream, "-", "+", count=1)
        )
        if lag is None:
            lag = len(c.xrange(stream, f"({last}" if last != "0-0" else "-", "+", count=_COUNT_CAP))
        oldest = None
        if after:
            first_id = text(after[0][0])
            oldest = JobInfo(first_id, "waiting", age_s(now, parse_id(first_id)[0]))
        pending = c.xpending_range(stream, group, "-", "+", SAMPLE)
        active = []
        for entry in pending:
            idle = int(entry["time_since_delivered"]) / 1000.0
            reason = None
            if self.claim_idle_s is not None and idle > self.claim_idle_s:
                reason = f"pending {idle:.0f} s, past the claim idle time ({self.claim_idle_s:g} s)"
            active.append(
                JobInfo(
                    text(entry["message_id"]),
                    "active",
                    idle,
                    reason,
                    {
                        "consumer": text(entry["consumer"]),
                        "deliveries": int(entry["times_delivered"]),
                    },
                )
            )
        pending_ids = [j.id for j in active]
        acked = None
        if prev is not None and prev.exists:
            before = set(prev.state.get("pending") or ())
            prev_last = str(prev.state.get("last_delivered") or "0-0")
            left_pel = len(before - set(pending_ids))
            delivered = 0
            if parse_id(last) > parse_id(prev_last):
                start = f"({prev_last}" if prev_last != "0-0" else "-"
                delivered = len(c.xrange(stream, start, last, count=_COUNT_CAP))
            still = sum(1 for i in pending_ids if parse_id(i) > parse_id(prev_last))
            acked = left_pel + max(0, delivered - still)
        return QueueStats(
            f"{stream}/{group}",
            exists=True,
            waiting=int(lag),
            active=int(info.get("pending") or 0),
            oldest_waiting=oldest,
            active_jobs=tuple(active),
            stuck=tuple(j for j in active if j.reason),
            completed_since_previous=acked,
            state={"pending": pending_ids, "last_delivered": last},
        )

    def dead_letters(self, newest: int = 5) -> DeadLetters:
        names = [s for s in self.streams]
        known = {q: k for q, k in self.dlq_keys.items() if q in names or q in self.streams}
        result = read_dead_letter_keys(self.client, known, newest)
        missing = tuple(q for q in names if q not in known)
        return DeadLetters(result.depth, result.newest, result.sources, missing)

    def job_state(self, queue: str, job_id: str) -> JobState:
        """`queue` is the stream, `job_id` the entry id; completed = acked by every group."""
        groups = self._groups(queue)
        if not groups:
            return JobState(job_id, "missing", {"note": f"no consumer group on {queue!r}"})
        states: dict[str, str] = {}
        for info in groups:
            if parse_id(job_id) > parse_id(info["last-delivered-id"]):
                states[info["name"]] = "waiting"
            elif self.client.xpending_range(queue, info["name"], job_id, job_id, 1):
                states[info["name"]] = "active"
            else:
                states[info["name"]] = "completed"
        for state in ("active", "waiting"):
            if state in states.values():
                return JobState(job_id, state, {"groups": states})
        return JobState(job_id, "completed", {"groups": states})
