"""RQ's Redis layout (rq 2.x/3.x), read without RQ.

Keys under `<prefix>` (`rq`, or RQ_KEY_PREFIX): `<p>:queue:<q>` list (RPUSH'd, workers LMOVE from
the head into `<p>:queue:<q>:intermediate`), `<p>:wip:<q>` zset of running executions (member
`<job_id>:<execution_id>`, score = heartbeat deadline in Unix seconds: now + min(job timeout,
job_monitoring_interval) + 60, refreshed by each heartbeat), `<p>:finished:<q>` / `<p>:failed:<q>`
zsets (score = expiry = end + result_ttl / failure_ttl), `<p>:scheduled:<q>` zset (score = run
time), job hashes `<p>:job:<id>` (`status`, `enqueued_at`, `started_at`, `ended_at`, UTC strings)
and, since rq 2, results in the `<p>:results:<id>` stream (`type` 2 = failed, `exc_string` =
base64 of zlib of the traceback). A wip entry past its deadline is what RQ's own
StartedJobRegistry.cleanup treats as abandoned — the stuck rule here.
"""

from __future__ import annotations

import base64
import zlib
from datetime import UTC, datetime
from typing import Any

from ...results import last_line
from .model import (
    SAMPLE,
    DeadLetters,
    JobInfo,
    JobState,
    PerQueueInspector,
    QueueStats,
    age_s,
    as_int,
    oldest,
    scrub_reason,
    server_ms,
    text,
)

_ABANDONED = "wip heartbeat deadline passed (worker died or hung; RQ will call it abandoned)"
_STATES = {
    "queued": "waiting",
    "started": "active",
    "finished": "completed",
    "failed": "failed",
    "scheduled": "delayed",
    "deferred": "delayed",
    "stopped": "failed",
    "canceled": "failed",
}


def rq_time_ms(value: Any) -> int | None:
    """RQ's `%Y-%m-%dT%H:%M:%S.%fZ` (UTC) → epoch ms."""
    raw = text(value)
    if not raw:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return int(datetime.strptime(raw, fmt).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    return None


class RQInspector(PerQueueInspector):
    kind = "rq"
    default_prefix = "rq"

    def key(self, what: str, name: str) -> str:
        return f"{self.prefix}:{what}:{name}"

    def _queue(self, q: str, now: int, prev: QueueStats | None, since: int | None) -> QueueStats:
        c = self.client
        p = c.pipeline(transaction=True)  # one consistent count: a job moving is counted once
        p.llen(self.key("queue", q))
        p.llen(self.key("queue", q) + ":intermediate")
        for what in ("wip", "scheduled", "failed", "finished", "deferred"):
            p.zcard(self.key(what, q))
        p.sismember(f"{self.prefix}:queues", self.key("queue", q))
        p.scard(self.key("workers", q))
        waiting, intermediate, wip, scheduled, failed, finished, deferred, known, listening = p.execute()
        notes = []
        if not (known or waiting or wip or failed or finished or scheduled):
            if not listening:
                return QueueStats(
                    q,
                    exists=False,
                    notes=(f"no RQ keys for queue {q!r} under prefix {self.prefix!r} (wrong name?)",),
                )
            # RQ writes a queue's keys with its first job; a live worker listening is proof enough
            notes.append(f"no job has used this queue yet; {listening} worker(s) listen to it")
        active_jobs = self._active(q, now)
        workers = self._worker_counts(q)
        completed_since = failed_since = None
        if since is not None:
            completed_since = max(
                self._ended_since(self.key("finished", q), since),
                self._counter_delta(prev, workers, "successful", since),
            )
            failed_since = max(
                self._ended_since(self.key("failed", q), since),
                self._counter_delta(prev, workers, "failed", since),
            )
        if deferred:
            notes.append(f"{deferred} job(s) deferred, waiting on dependencies")
        if intermediate:
            notes.append(
                f"{intermediate} job(s) in the intermediate list (popped, not yet started)"
            )
        return QueueStats(
            q,
            exists=True,
            waiting=int(waiting),
            active=int(wip) + int(intermediate),
            delayed=int(scheduled),
            failed=int(failed),
            completed=int(finished),
            oldest_waiting=oldest(self._waiting_sample(q, now)),
            active_jobs=tuple(active_jobs),
            stuck=tuple(j for j in active_jobs if j.reason),
            completed_since_previous=completed_since,
            failed_since_previous=failed_since,
            state={"workers": workers},
            notes=tuple(notes),
        )

    def _active(self, q: str, now: int) -> list[JobInfo]:
        entries = self.client.zrange(self.key("wip", q), 0, SAMPLE - 1, withscores=True)
        if not entries:
            return []
        ids = [text(member).split(":")[0] for member, _ in entries]
        p = self.client.pipeline(transaction=False)
        for job_id in ids:
            p.hmget(self.key("job", job_id), "started_at", "description", "worker_name")
        jobs = []
        for (member, deadline), job_id, (started, desc, worker) in zip(
            entries, ids, p.execute(), strict=True
        ):
            overdue = deadline != float("inf") and deadline * 1000 < now
            detail: dict[str, Any] = {"execution": text(member)}
            if deadline != float("inf"):
                detail["deadline_passed_s" if overdue else "deadline_in_s"] = round(
                    abs(now / 1000 - deadline), 1
                )
            if desc:
                detail["description"] = scrub_reason(text(desc), 120)
            if worker:
                detail["worker"] = text(worker)
            jobs.append(
                JobInfo(
                    job_id,
                    "active",
                    age_s(now, rq_time_ms(started)),
                    reason=_ABANDONED if overdue else None,
                    detail=detail,
                )
            )
        return jobs

    def _waiting_sample(self, q: str, now: int) -> list[JobInfo]:
        c = self.client
        ids = [text(i) for i in c.lrange(self.key("queue", q), 0, 49)]
        due = c.zrangebyscore(
            self.key("scheduled", q), 0, now / 1000, start=0, num=50, withscores=True
        )
        p = c.pipeline(transaction=False)
        for job_id in ids:
            p.hmget(self.key("job", job_id), "enqueued_at", "created_at")
        jobs = []
        for job_id, (enqueued, created) in zip(ids, p.execute(), strict=True):
            since = rq_time_ms(enqueued) or rq_time_ms(created)
            if since is not None:
                jobs.append(JobInfo(job_id, "waiting", age_s(now, since)))
        for member, run_at in due:
            jobs.append(
                JobInfo(
                    text(member),
                    "waiting",
                    age_s(now, run_at * 1000),
                    detail={"overdue_scheduled": True},
                )
            )
        return jobs

    def _ended_since(self, registry: str, since: int) -> int:
        """Jobs in a finished/failed registry whose `ended_at` is after `since` (ms)."""
        ids = [text(i) for i in self.client.zrevrange(registry, 0, 2 * SAMPLE - 1)]
        if not ids:
            return 0
        p = self.client.pipeline(transaction=False)
        for job_id in ids:
            p.hget(self.key("job", job_id), "ended_at")
        return sum(1 for ended in p.execute() if (rq_time_ms(ended) or 0) > since)

    def _worker_counts(self, q: str) -> dict[str, dict[str, int]]:
        """Counters of the live workers that listen to this queue only (a shared worker's counts
        cannot be attributed to one queue)."""
        names = [text(w) for w in self.client.smembers(self.key("workers", q))]
        if not names:
            return {}
        p = self.client.pipeline(transaction=False)
        for name in names:
            p.hmget(name, "queues", "successful_job_count", "failed_job_count", "birth")
        out = {}
        for name, (queues, ok, bad, birth) in zip(names, p.execute(), strict=True):
            if text(queues) == q:
                out[name] = {
                    "successful": as_int(ok, 0) or 0,
                    "failed": as_int(bad, 0) or 0,
                    "birth_ms": rq_time_ms(birth) or 0,
                }
        return out

    @staticmethod
    def _counter_delta(
        prev: QueueStats | None, workers: dict[str, dict[str, int]], field: str, since: int
    ) -> int:
        before = (prev.state.get("workers") if prev else None) or {}
        total = 0
        for name, counts in workers.items():
            if name in before:
                total += max(0, counts[field] - before[name][field])
            elif counts["birth_ms"] >= since:
                total += counts[field]
        return total

    # -- dead letters -----------------------------------------------------------------------------

    def dead_letters(self, newest: int = 5) -> DeadLetters:
        depth: dict[str, int] = {}
        latest: dict[str, tuple[JobInfo, ...]] = {}
        now = server_ms(self.client)
        for q in self.queues:
            key = self.key("failed", q)
            depth[q] = int(self.client.zcard(key))
            ids = (
                [text(i) for i in self.client.zrevrange(key, 0, max(0, newest - 1))]
                if newest
                else []
            )
            latest[q] = tuple(self._failed_job(job_id, now) for job_id in ids)
        sources = {q: self.key("failed", q) for q in self.queues}
        return DeadLetters(depth, latest, sources)

    def _failed_job(self, job_id: str, now: int) -> JobInfo:
        ended, desc, exc_info = self.client.hmget(
            self.key("job", job_id), "ended_at", "description", "exc_info"
        )
        detail: dict[str, Any] = {}
        if desc:
            detail["description"] = scrub_reason(text(desc), 120)
        return JobInfo(
            job_id,
            "failed",
            age_s(now, rq_time_ms(ended)),
            reason=scrub_reason(last_line(self._exc_string(job_id, exc_info))) or None,
            detail=detail,
        )

    def _exc_string(self, job_id: str, exc_info: bytes | None) -> str:
        """The traceback: newest failed result in the results stream (rq ≥ 2), else the hash."""
        for _entry, fields in self.client.xrevrange(self.key("results", job_id), "+", "-", count=5):
            if text(fields.get(b"type")) == "2" and fields.get(b"exc_string"):
                try:
                    return zlib.decompress(base64.b64decode(fields[b"exc_string"])).decode(
                        "utf-8", "replace"
                    )
                except (ValueError, zlib.error):
                    return ""
        if exc_info:
            try:
                return zlib.decompress(exc_info).decode("utf-8", "replace")
            except zlib.error:
                return text(exc_info)
        return ""

    # -- one job ----------------------------------------------------------------------------------

    def job_state(self, queue: str, job_id: str) -> JobState:
        status, ended, exc_info = self.client.hmget(
            self.key("job", job_id), "status", "ended_at", "exc_info"
        )
        if status is None:
            return JobState(job_id, "missing", {})
        raw = text(status)
        state = _STATES.get(raw, "unknown")
        detail: dict[str, Any] = {"rq_status": raw}
        if state == "completed":
            detail["ended_at_ms"] = rq_time_ms(ended)
        if state == "failed":
            detail["failed_reason"] = scrub_reason(last_line(self._exc_string(job_id, exc_info)))
        return JobState(job_id, state, detail)
