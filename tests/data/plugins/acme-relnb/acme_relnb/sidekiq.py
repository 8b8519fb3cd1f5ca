"""Sidekiq's Redis layout, read for relnb's B6/B7 without Ruby.

`queue:<q>` lists (LPUSH'd, fetched from the right, so index -1 is the oldest job; each job is
JSON with `jid` and `enqueued_at` in epoch seconds), the `retry` and `dead` sorted sets (score =
when), `stat:processed` (a global counter), and per process `<identity>:work` hashes whose values
are JSON with `queue` and `run_at`. Every key sits under an optional namespace prefix.
"""

from __future__ import annotations

import json
from typing import Any

from relnb.checks.queues import DeadLetters, JobInfo, JobState, QueueSnapshot, QueueStats


class SidekiqInspector:
    kind = "sidekiq"

    def __init__(self, client: Any, queues: Any, prefix: str | None = None) -> None:
        self.client = client
        self.queues = tuple(queues)
        self.ns = f"{prefix}:" if prefix else ""

    def _now_ms(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def _running(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for identity in self.client.smembers(f"{self.ns}processes"):
            name = identity.decode() if isinstance(identity, bytes) else identity
            for raw in self.client.hvals(f"{self.ns}{name}:work"):
                work = json.loads(raw)
                out.setdefault(work.get("queue", ""), []).append(work)
        return out

    def snapshot(self, previous: QueueSnapshot | None = None) -> QueueSnapshot:
        now = self._now_ms()
        processed = int(self.client.get(f"{self.ns}stat:processed") or 0)
        before = (previous.queues[0].state.get("processed") if previous and previous.queues else None)
        running = self._running()
        known = {q.decode() if isinstance(q, bytes) else q for q in self.client.smembers(f"{self.ns}queues")}
        stats = []
        for q in self.queues:
            key = f"{self.ns}queue:{q}"
            waiting = int(self.client.llen(key))
            oldest = None
            if waiting:
                job = json.loads(self.client.lindex(key, -1))
                age = max(0.0, now / 1000 - float(job.get("enqueued_at", now / 1000)))
                oldest = JobInfo(str(job.get("jid")), "waiting", age)
            active = [
                JobInfo(str(w.get("payload", {}).get("jid")), "active", max(0.0, now / 1000 - float(w.get("run_at", now / 1000))))
                for w in running.get(q, [])
            ]
            stats.append(
                QueueStats(
                    queue=q,
                    exists=q in known or waiting > 0 or bool(active),
                    waiting=waiting,
                    active=len(active),
                    oldest_waiting=oldest,
                    active_jobs=tuple(active),
                    completed_since_previous=None if before is None else max(0, processed - int(before)),
                    # Sidekiq counts processed jobs for all queues together
                    state={"processed": processed},
                )
            )
        return QueueSnapshot(self.kind, now, tuple(stats))

    def dead_letters(self, newest: int = 5) -> DeadLetters:
        key = f"{self.ns}dead"
        dead = [json.loads(raw) for raw in self.client.zrevrange(key, 0, -1)]  # newest first
        per_queue = {q: [j for j in dead if j.get("queue") == q] for q in self.queues}
        return DeadLetters(
            depth={q: len(jobs) for q, jobs in per_queue.items()},
            newest={
                q: tuple(JobInfo(str(j.get("jid")), "failed", None, str(j.get("error_message", ""))[:200]) for j in jobs[:newest])
                for q, jobs in per_queue.items()
            },
            sources={q: key for q in self.queues},
        )

    def job_state(self, queue: str, job_id: str) -> JobState:
        for raw in self.client.lrange(f"{self.ns}queue:{queue}", 0, -1):
            if json.loads(raw).get("jid") == job_id:
                return JobState(job_id, "waiting")
        for work in self._running().get(queue, []):
            if work.get("payload", {}).get("jid") == job_id:
                return JobState(job_id, "active")
        for raw in self.client.zrange(f"{self.ns}dead", 0, -1):
            if json.loads(raw).get("jid") == job_id:
                return JobState(job_id, "failed")
        return JobState(job_id, "unknown")
