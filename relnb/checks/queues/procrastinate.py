"""Procrastinate (a PostgreSQL-backed job queue), read from its own tables without the library.

`procrastinate_jobs` holds one row per job with its status (todo → doing → succeeded | failed |
cancelled | aborted) and `scheduled_at`; `procrastinate_events` records every transition with the
database's time, so completions and failures during a watch are counted exactly, and a waiting
job's age is exact (since it was deferred, or since it became due). A job in `doing` whose worker
stopped heartbeating (`procrastinate_workers.last_heartbeat`, or the worker row already pruned) is
what procrastinate itself calls stalled. A job `failed` for good is the dead-letter set (B7):
procrastinate retries inside `todo`, so `failed` only holds jobs whose retries ran out.

Queues are not declared in procrastinate: a queue name that no job ever used cannot be told from a
typo, so it is reported as not existing (inconclusive), never as "0 jobs, all good".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .connection import URL_FACTORY, describe_url
from .model import (
    SAMPLE,
    DeadLetters,
    JobInfo,
    JobState,
    QueueSnapshot,
    QueueStats,
    QueueUnreachable,
)

_COUNTS = """
SELECT count(*) FILTER (WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())),
       count(*) FILTER (WHERE status = 'todo' AND scheduled_at > now()),
       count(*) FILTER (WHERE status = 'doing'),
       count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'succeeded'),
       count(*)
  FROM procrastinate_jobs WHERE queue_name = %s
"""
_FINISHED = """
SELECT count(*) FILTER (WHERE e.type = 'succeeded'), count(*) FILTER (WHERE e.type = 'failed')
  FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id
 WHERE j.queue_name = %s AND e.at > %s AND e.at <= %s
"""
_OLDEST_WAITING = """
SELECT j.id, j.task_name,
       extract(epoch FROM %s - greatest(min(e.at), coalesce(j.scheduled_at, '-infinity')))
  FROM procrastinate_jobs j JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred'
 WHERE j.queue_name = %s AND j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
 GROUP BY j.id ORDER BY 3 DESC LIMIT 1
"""
_ACTIVE = """
SELECT j.id, j.task_name, extract(epoch FROM %s - max(e.at)), j.worker_id,
       extract(epoch FROM %s - w.last_heartbeat)
  FROM procrastinate_jobs j
  LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'started'
  LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
 WHERE j.queue_name = %s AND j.status = 'doing'
 GROUP BY j.id, w.last_heartbeat ORDER BY 3 DESC NULLS LAST LIMIT %s
"""
_DEAD = """
SELECT j.id, j.task_name, j.attempts, extract(epoch FROM %s - max(e.at))
  FROM procrastinate_jobs j LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'failed'
 WHERE j.queue_name = %s AND j.status = 'failed'
 GROUP BY j.id ORDER BY 4 ASC NULLS LAST LIMIT %s
"""
_STATES = {"todo": "waiting", "doing": "active", "succeeded": "completed", "failed": "failed",
           "cancelled": "failed", "aborted": "failed", "aborting": "active"}  # fmt: skip


class ProcrastinateInspector:
    """Queues of a procrastinate app, read from its PostgreSQL tables; see the module docstring."""

    kind = "procrastinate"
    connects = URL_FACTORY

    def __init__(
        self,
        url: str,
        queues: Sequence[str],
        prefix: str | None = None,
        *,
        socket_timeout_s: float = 5.0,
        stalled_after_s: float = 30.0,
    ):
        import psycopg

        from ...redact import connect_error

        self.queues = tuple(queues)
        self.target = describe_url(url, "postgresql")
        self.stalled_after_s = stalled_after_s
        self.schema = prefix or ""
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(socket_timeout_s)))
        except (psycopg.Error, OSError, ValueError) as exc:
            why = connect_error(exc, url, "PostgreSQL").splitlines()[0][:200]
            raise QueueUnreachable(f"{self.target}: {why}") from None
        timeout_ms = int(socket_timeout_s * 1000)
        self._run("SELECT set_config('statement_timeout', %s, false)", (str(timeout_ms),))
        if self.schema:
            self._run("SELECT set_config('search_path', %s, false)", (self.schema,))

    def close(self) -> None:
        self._conn.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            return self._conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            first = (str(exc).splitlines() or [""])[0][:200]
            raise QueueUnreachable(f"{type(exc).__name__}: {first}") from None

    def _has_schema(self) -> bool:
        return self._run("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")[0][0]

    def _no_schema(self, q: str) -> QueueStats:
        return QueueStats(q, exists=False, notes=(
            f"no procrastinate tables (procrastinate_jobs) in {self.target}"
            f"{' schema ' + self.schema if self.schema else ''}: wrong database, or the schema is not applied",
        ))  # fmt: skip

    # -- snapshot ---------------------------------------------------------------------------------

    def snapshot(self, previous: QueueSnapshot | None = None) -> QueueSnapshot:
        now = self._run("SELECT clock_timestamp()")[0][0]
        at_ms = int(now.timestamp() * 1000)
        prev = previous.by_name() if previous else {}
        if not self._has_schema():
            return QueueSnapshot(self.kind, at_ms, tuple(self._no_schema(q) for q in self.queues))
        stats = tuple(self._queue(q, now, prev.get(q)) for q in self.queues)
        return QueueSnapshot(self.kind, at_ms, stats)

    def _queue(self, q: str, now: Any, prev: QueueStats | None) -> QueueStats:
        waiting, delayed, active, failed, succeeded, total = self._run(_COUNTS, (q,))[0]
        if not total:
            return QueueStats(q, exists=False, notes=(
                f"queue {q!r} does not exist: no procrastinate job was ever queued on it (check the name)",
            ))  # fmt: skip
        done = dead = None
        if prev is not None and prev.state.get("at") is not None:
            done, dead = self._run(_FINISHED, (q, prev.state["at"], now))[0]
        oldest = None
        for job_id, task, age in self._run(_OLDEST_WAITING, (now, q)):
            oldest = JobInfo(str(job_id), "waiting", float(age), detail={"task": task})
        jobs: list[JobInfo] = []
        stuck: list[JobInfo] = []
        for job_id, task, age, worker, beat in self._run(_ACTIVE, (now, now, q, SAMPLE)):
            reason = None
            if worker is None:
                reason = "its worker is gone (pruned after missing heartbeats): stalled"
            elif beat is not None and float(beat) > self.stalled_after_s:
                reason = (
                    f"worker {worker} last heartbeat {float(beat):.0f} s ago "
                    f"(stalled after {self.stalled_after_s:g} s)"
                )
            job = JobInfo(str(job_id), "active", float(age) if age is not None else None, reason, {"task": task})
            jobs.append(job)
            if reason:
                stuck.append(job)
        return QueueStats(
            q,
            exists=True,
            waiting=int(waiting),
            active=int(active),
            delayed=int(delayed),
            failed=int(failed),
            completed=int(succeeded),
            oldest_waiting=oldest,
            active_jobs=tuple(jobs),
            stuck=tuple(stuck),
            completed_since_previous=None if done is None else int(done),
            failed_since_previous=None if dead is None else int(dead),
            state={"at": now},
        )

    # -- dead letters -----------------------------------------------------------------------------

    def dead_letters(self, newest: int = 5) -> DeadLetters:
        if not self._has_schema():
            raise ValueError(f"no procrastinate tables in {self.target}")
        now = self._run("SELECT clock_timestamp()")[0][0]
        depth: dict[str, int] = {}
        recent: dict[str, tuple[JobInfo, ...]] = {}
        for q in self.queues:
            dead, total = self._run(
                "SELECT count(*) FILTER (WHERE status = 'failed'), count(*) FROM procrastinate_jobs"
                " WHERE queue_name = %s",
                (q,),
            )[0]
            if not total:  # a metric of 0 for a misspelt queue would watch nothing
                raise ValueError(f"queue {q!r} does not exist: no procrastinate job was ever queued on it")
            depth[q] = int(dead)
            rows = self._run(_DEAD, (now, q, newest)) if newest else []
            recent[q] = tuple(
                JobInfo(str(i), "failed", float(age) if age is not None else None,
                        f"failed after {attempts} attempt(s)", {"task": task})
                for i, task, attempts, age in rows
            )  # fmt: skip
        sources = {q: "procrastinate_jobs (status failed)" for q in self.queues}
        return DeadLetters(depth, recent, sources)

    # -- one job ----------------------------------------------------------------------------------

    def job_state(self, queue: str, job_id: str) -> JobState:
        if not job_id.isdigit():
            return JobState(job_id, "missing", {"note": "procrastinate job ids are integers"})
        rows = self._run(
            "SELECT status, attempts, queue_name FROM procrastinate_jobs WHERE id = %s", (int(job_id),)
        )
        if not rows or rows[0][2] != queue:
            return JobState(job_id, "missing", {"note": f"no job {job_id} on queue {queue!r}"})
        status, attempts, _ = rows[0]
        detail: dict[str, Any] = {"procrastinate_status": str(status), "attempts": attempts}
        if status in ("failed", "cancelled", "aborted"):
            detail["failed_reason"] = f"{status} after {attempts} attempt(s)"
        return JobState(job_id, _STATES.get(str(status), "unknown"), detail)
