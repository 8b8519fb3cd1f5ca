"""docflow's extraction worker: a real BullMQ worker (Python `bullmq`) on queue `extraction`.

One subprocess per replica and environment. A job marks its document processing → extracted
(page count = form feeds + 1) and bumps Redis counters the API exports on /metrics
(`worker_jobs_completed_total`, `worker_jobs_failed_total`). Faults come from the same Redis hash
as the API's (`docflow:<env>:faults`), read per job:

- `fail_extraction`: the processor raises; after BullMQ's 2 attempts the job stays in
  `<prefix>:extraction:failed` (removeOnFail false) — the DLQ — and the document is `failed`.
- `stalled`: replica 1 hangs *blocking its event loop* (like a parser stuck in C code), so it
  cannot renew its job lock: the job sits in `active` without a lock (BullMQ's definition of
  stalled) until another replica's stall check moves it back. Replica 0 keeps processing.
- `crash_on_start`: the first replica to start crashes before it is ready (once per environment);
  the stack's restart policy starts it again.

With `scope: "tenant"` both hit only jobs of the big seeded tenant (see app.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import sys
import time
from typing import Any

from .faults import FaultStore, counter_key
from .settings import BIG_TENANT, QUEUE_NAME

# Demo-sized BullMQ settings: a hung replica's lock expires within 10 s; the stall check runs
# every 15 s; a job may stall many times before BullMQ gives up (stalls are not DLQ entries here).
WORKER_OPTS = {
    "lockDuration": 10_000,
    "stalledInterval": 15_000,
    "maxStalledCount": 50,
    "concurrency": 1,
}
HANG_SECONDS = 45.0


def count_pages(content: bytes) -> int:
    if not content:
        return 1
    return content.rstrip(b"\f").count(b"\f") + 1


class Extractor:
    def __init__(self, env: str, replica: int, database_url: str, redis_url: str) -> None:
        import psycopg
        import redis

        self.env = env
        self.replica = replica
        self.database_url = database_url
        self.rds = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.faults = FaultStore(self.rds, env)
        self._conn: psycopg.Connection | None = None
        self._big: tuple[float, set[int]] = (0.0, set())

    def conn(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
        return self._conn

    def is_big(self, workspace_id: int) -> bool:
        at, ids = self._big
        if time.monotonic() - at > 30:
            rows = (
                self.conn()
                .execute("select id from workspaces where name = %s", (BIG_TENANT,))
                .fetchall()
            )
            ids = {int(r[0]) for r in rows}
            self._big = (time.monotonic(), ids)
        return workspace_id in ids

    def set_status(
        self, doc_id: int, status: str, pages: int | None = None, error: str | None = None
    ) -> None:
        self.conn().execute(
            "update documents set status = %s, pages = coalesce(%s, pages), error = %s, updated_at = now()"
            " where id = %s",
            (status, pages, error, doc_id),
        )

    async def process(self, job: Any, token: str) -> dict[str, Any]:
        data = job.data
        doc_id = int(data["document_id"])
        ws = int(data["workspace_id"])
        faults = self.faults.get()
        hit = faults["scope"] == "all" or self.is_big(ws)
        await asyncio.to_thread(self.set_status, doc_id, "processing")
        if hit and faults["stalled"] and self.replica == 1:
            time.sleep(HANG_SECONDS)  # deliberately blocks the event loop: no lock renewal
        if hit and faults["fail_extraction"]:
            raise RuntimeError(f"extraction failed: unsupported PDF structure in document {doc_id}")
        content = base64.b64decode(data.get("content_b64") or "")
        await asyncio.sleep(0.05)  # the "work"
        pages = count_pages(content)
        await asyncio.to_thread(self.set_status, doc_id, "extracted", pages)
        return {"pages": pages}

    def on_completed(self, job: Any, result: Any) -> None:
        self.rds.incr(counter_key(self.env, "completed"))

    def on_failed(self, job: Any, err: Any) -> None:
        self.rds.incr(counter_key(self.env, "failed"))
        final = bool(getattr(job, "finishedOn", 0)) or job.attemptsMade >= int(
            job.opts.get("attempts", 1)
        )
        if final:
            try:
                self.set_status(int(job.data["document_id"]), "failed", error=str(err)[:500])
            except Exception as exc:  # the job's failure is recorded by BullMQ either way
                print(f"could not mark document failed: {exc}", file=sys.stderr)


async def run(env: str, replica: int, parent_pid: int) -> None:
    from bullmq import Worker

    database_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"]
    prefix = os.environ.get("QUEUE_PREFIX", "bull")
    ex = Extractor(env, replica, database_url, redis_url)
    if ex.faults.get(max_age=0)["crash_on_start"] and ex.rds.set(
        f"docflow:{env}:worker:crashed-on-start", replica, nx=True
    ):
        # worker-crash: the first replica to start loses a race with the other one over the
        # parser's font cache and dies before it is ready (the restart policy brings it back)
        raise RuntimeError(
            f"extraction worker {env}/{replica}: the PDF parser's font cache is being written by "
            "another process (cache file truncated); cannot start"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def watch_parent() -> None:
        while not stop.is_set():
            if parent_pid and os.getppid() != parent_pid:
                stop.set()
            await asyncio.sleep(1)

    worker = Worker(
        QUEUE_NAME,
        ex.process,
        {
            **WORKER_OPTS,
            "connection": redis_url,
            "prefix": prefix,
            "name": f"docflow-{env}-{replica}",
        },
    )
    worker.on("completed", ex.on_completed)
    worker.on("failed", ex.on_failed)
    watcher = asyncio.ensure_future(watch_parent())
    print(f"worker {env}/{replica} ready", flush=True)
    await stop.wait()
    watcher.cancel()
    try:
        await asyncio.wait_for(worker.close(), 8)
    except TimeoutError:
        await worker.close(force=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relnb_demo.worker")
    parser.add_argument("--env", required=True)
    parser.add_argument("--replica", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(run(args.env, args.replica, args.parent_pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
