"""BullMQ's Redis layout (Node BullMQ and its Python port share it), read without BullMQ.

Keys live under `<prefix>:<queue>:`: `wait`/`paused` lists (new jobs LPUSH'd, workers take from
the tail with RPOPLPUSH into `active`), `prioritized` zset, `delayed` zset (score = due ms × 0x1000
+ counter), `completed` and `failed` zsets (score = finishedOn ms), `events` stream, `meta` hash
(`paused`), and one hash per job (`timestamp`, `delay`, `processedOn`, `finishedOn`, `atm`,
`failedReason`, ...). A worker holds `<prefix>:<queue>:<id>:lock` (SET PX lockDuration, renewed
at lockDuration/2) while the job runs. BullMQ's own stall check (moveStalledJobsToWait.lua) calls
a job stalled exactly when it is in `active` and its lock key is gone — the same rule here.
"""

from __future__ import annotations

from typing import Any

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

_EVENTS_CAP = 20_000
_STALLED = "active without its lock (lock expired: worker died, hung, or blocked past lockDuration)"


class BullMQInspector(PerQueueInspector):
    kind = "bullmq"
    default_prefix = "bull"

    def key(self, queue: str, suffix: str) -> str:
        return f"{self.prefix}:{queue}:{suffix}"

    # -- snapshot ---------------------------------------------------------------------------------

    def _queue(self, q: str, now: int, prev: QueueStats | None, since: int | None) -> QueueStats:
        c = self.client
        p = c.pipeline(transaction=True)  # one consistent count: a job moving is counted once
        for name in ("wait", "paused", "active"):
            p.llen(self.key(q, name))
        for name in ("prioritized", "delayed", "failed", "completed"):
            p.zcard(self.key(q, name))
        p.hget(self.key(q, "meta"), "paused")
        p.exists(self.key(q, "meta"), self.key(q, "id"), self.key(q, "events"))
        wait, paused_list, active, prioritized, delayed, failed, completed, paused, known = (
            p.execute()
        )
        exists = bool(known) or any((wait, paused_list, active, prioritized, delayed, failed))
        if not exists:
            return QueueStats(
                q,
                exists=False,
                notes=(f"no BullMQ keys under {self.prefix}:{q}: (wrong queue name or prefix?)",),
            )

        active_jobs = self._active(q, now)
        waiting_jobs = self._waiting_sample(q, now)
        stuck = [j for j in active_jobs if j.reason]
        notes: list[str] = []
        completed_since = failed_since = None
        if since is not None:
            done_events, failed_events, stalled_events = self._events_since(q, since)
            completed_since = max(
                done_events, c.zcount(self.key(q, "completed"), since + 1, "+inf")
            )
            failed_since = max(failed_events, c.zcount(self.key(q, "failed"), since + 1, "+inf"))
            for job_id in stalled_events:
                if not any(j.id == job_id for j in stuck):
                    stuck.append(
                        JobInfo(job_id, "stalled-event", reason="BullMQ reported it stalled")
                    )
        if paused:
            notes.append("queue is paused (meta.paused set): workers take no jobs")
        return QueueStats(
            q,
            exists=True,
            waiting=int(wait) + int(paused_list) + int(prioritized),
            active=int(active),
            delayed=int(delayed),
            failed=int(failed),
            completed=int(completed),
            paused=bool(paused),
            oldest_waiting=oldest(waiting_jobs),
            active_jobs=tuple(active_jobs),
            stuck=tuple(stuck),
            completed_since_previous=completed_since,
            failed_since_previous=failed_since,
            notes=tuple(notes),
        )

    def _active(self, q: str, now: int) -> list[JobInfo]:
        ids = [text(i) for i in self.client.lrange(self.key(q, "active"), 0, SAMPLE - 1)]
        if not ids:
            return []
        # A job that finished after the LRANGE has lost its lock too (BullMQ's script drops both
        # at once): asking again, in one MULTI, whether it is still active keeps it from reading
        # as "active without its lock", which fails B6.
        p = self.client.pipeline(transaction=True)
        for job_id in ids:
            p.lpos(self.key(q, "active"), job_id)
            p.exists(self.key(q, f"{job_id}:lock"))
            p.hmget(self.key(q, job_id), "processedOn", "timestamp", "name", "atm")
        res = p.execute()
        jobs = []
        for i, job_id in enumerate(ids):
            still, locked, (processed, created, name, atm) = res[3 * i : 3 * i + 3]
            if still is None:
                continue
            started = as_int(processed) or as_int(created)
            detail = {"name": text(name)} if name else {}
            if atm is not None:
                detail["attempts_made"] = as_int(atm, 0)
            jobs.append(
                JobInfo(
                    job_id,
                    "active",
                    age_s(now, started),
                    reason=None if locked else _STALLED,
                    detail=detail,
                )
            )
        return jobs

    def _waiting_sample(self, q: str, now: int) -> list[JobInfo]:
        """The likely-oldest waiting jobs: list tails, both ends of `prioritized`, overdue delayed."""
        c = self.client
        p = c.pipeline(transaction=False)
        p.lrange(self.key(q, "wait"), -50, -1)
        p.lrange(self.key(q, "paused"), -50, -1)
        p.zrange(self.key(q, "prioritized"), 0, 49)
        p.zrevrange(self.key(q, "prioritized"), 0, 49)
        p.zrangebyscore(self.key(q, "delayed"), 0, now * 0x1000, start=0, num=50)
        wait, paused, prio_low, prio_high, overdue = p.execute()
        ids = dict.fromkeys(text(i) for i in [*wait, *paused, *prio_low, *prio_high])
        overdue_ids = {text(i) for i in overdue}
        ids.update(dict.fromkeys(overdue_ids))
        if not ids:
            return []
        p = c.pipeline(transaction=False)
        for job_id in ids:
            p.hmget(self.key(q, job_id), "timestamp", "delay", "processedOn", "name")
        jobs = []
        for job_id, (created, delay, processed, name) in zip(ids, p.execute(), strict=True):
            created_ms = as_int(created)
            if created_ms is None:
                continue
            since = max(created_ms + (as_int(delay) or 0), as_int(processed) or 0)
            detail: dict[str, Any] = {"name": text(name)} if name else {}
            if job_id in overdue_ids:
                detail["overdue_delayed"] = True
            jobs.append(JobInfo(job_id, "waiting", age_s(now, since), detail=detail))
        return jobs

    def _events_since(self, q: str, since: int) -> tuple[int, int, list[str]]:
        """Completed/failed/stalled events after `since` (ms), from the queue's events stream."""
        done = failed = 0
        stalled: list[str] = []
        start = f"{since + 1}-0"
        seen = 0
        while seen < _EVENTS_CAP:
            batch = self.client.xrange(self.key(q, "events"), start, "+", count=1000)
            if not batch:
                break
            for _entry_id, fields in batch:
                event = text(fields.get(b"event"))
                if event == "completed":
                    done += 1
                elif event == "failed":
                    failed += 1
                elif event == "stalled":
                    stalled.append(text(fields.get(b"jobId")))
            seen += len(batch)
            start = "(" + text(batch[-1][0])
        return done, failed, stalled

    # -- dead letters -----------------------------------------------------------------------------

    def dead_letters(self, newest: int = 5) -> DeadLetters:
        depth: dict[str, int] = {}
        latest: dict[str, tuple[JobInfo, ...]] = {}
        now = server_ms(self.client)
        for q in self.queues:
            key = self.key(q, "failed")
            depth[q] = int(self.client.zcard(key))
            ids = (
                [text(i) for i in self.client.zrevrange(key, 0, max(0, newest - 1))]
                if newest
                else []
            )
            p = self.client.pipeline(transaction=False)
            for job_id in ids:
                p.hmget(self.key(q, job_id), "failedReason", "finishedOn", "atm", "name")
            jobs = []
            for job_id, (reason, finished, atm, name) in zip(ids, p.execute(), strict=True):
                jobs.append(
                    JobInfo(
                        job_id,
                        "failed",
                        age_s(now, as_int(finished)),
                        reason=scrub_reason(text(reason)) or None,
                        detail={"name": text(name), "attempts_made": as_int(atm, 0)},
                    )
                )
            latest[q] = tuple(jobs)
        sources = {q: self.key(q, "failed") for q in self.queues}
        return DeadLetters(depth, latest, sources)

    # -- one job ----------------------------------------------------------------------------------

    def job_state(self, queue: str, job_id: str) -> JobState:
        # One MULTI/EXEC: BullMQ's scripts move a job and write its hash atomically, so reading
        # the hash and the lists in two round trips could see "failed" with no reason yet.
        p = self.client.pipeline(transaction=True)
        p.hmget(
            self.key(queue, job_id),
            "finishedOn",
            "failedReason",
            "atm",
            "processedOn",
            "returnvalue",
        )
        p.zscore(self.key(queue, "completed"), job_id)
        p.zscore(self.key(queue, "failed"), job_id)
        p.lpos(self.key(queue, "active"), job_id)
        p.zscore(self.key(queue, "delayed"), job_id)
        p.zscore(self.key(queue, "prioritized"), job_id)
        p.lpos(self.key(queue, "wait"), job_id)
        p.lpos(self.key(queue, "paused"), job_id)
        p.exists(self.key(queue, job_id))
        fields, done, dead, running, later, prio, waiting, paused, hash_exists = p.execute()
        finished, reason, atm, processed, returned = fields
        detail: dict[str, Any] = {"attempts_made": as_int(atm, 0)} if atm is not None else {}
        if reason and dead is None:
            detail["last_failed_reason"] = scrub_reason(text(reason))
        if done is not None:
            detail["finished_on_ms"] = as_int(finished)
            if returned is not None:
                detail["returnvalue"] = scrub_reason(text(returned), 120)
            return JobState(job_id, "completed", detail)
        if dead is not None:
            detail["failed_reason"] = scrub_reason(text(reason))
            return JobState(job_id, "failed", detail)
        if running is not None:
            return JobState(job_id, "active", detail)
        if later is not None:
            return JobState(job_id, "delayed", detail)
        if prio is not None or waiting is not None or paused is not None:
            return JobState(job_id, "waiting", detail)
        if hash_exists:
            # Between two lists (a script is moving it) or waiting on children: ask again later.
            return JobState(job_id, "unknown", {**detail, "processed_on_ms": as_int(processed)})
        # Removed on completion/failure (removeOnComplete/removeOnFail): the events stream remembers.
        event = self._last_event(queue, job_id)
        if event is not None:
            name, fields_ = event
            if name == "completed":
                return JobState(job_id, "completed", {"from": "events stream"})
            reason_ = scrub_reason(text(fields_.get(b"failedReason")))
            return JobState(job_id, "failed", {"failed_reason": reason_, "from": "events stream"})
        return JobState(job_id, "missing", {})

    def _last_event(self, queue: str, job_id: str) -> tuple[str, dict[bytes, Any]] | None:
        end = "+"
        for _ in range(10):
            batch = self.client.xrevrange(self.key(queue, "events"), end, "-", count=1000)
            for _entry_id, fields in batch:
                if text(fields.get(b"jobId")) == job_id and text(fields.get(b"event")) in (
                    "completed",
                    "failed",
                ):
                    return text(fields.get(b"event")), fields
            if len(batch) < 1000:
                return None
            end = "(" + text(batch[-1][0])
        return None
