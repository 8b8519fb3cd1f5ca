"""Apache Superset hosts for the example's integration test: Superset from PyPI in a virtualenv per
version, a database at the previous version's schema (both cached between runs), and per
environment a gunicorn and a Celery worker on RabbitMQ, (re)started by a small control script the
way systemd would, plus traffic while relnb watches.

Nothing here is relnb: it is what the team's servers and CI would have done before the release
lead opens the notebook. `prepare` is the slow part (two pip installs, ~6 min each cold, and
`superset db upgrade` + `superset init`, ~2 min); tests/examples/conftest.py starts it in the
background when the session begins, so it overlaps the tests before this one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from . import hosts
from .hosts import run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "superset"
PREVIOUS, RELEASE = "6.0.0", "6.1.0"
# the Alembic revisions 6.1.0 adds on top of 6.0.0's head (c233f5365c9e), in order
MIGRATIONS_ADDED = ["x2s8ocx6rto6", "a9c01ec10479", "f5b5f88d8526", "9787190b3d89", "4b2a8c9d3e1f"]
ADMIN = "relnb-smoke"
SITE = "lib/python3.11/site-packages"

# one environment's web and worker, as its systemd units would run them (deploy/*.service)
SUPERSETCTL = """#!/usr/bin/env bash
# supersetctl RUNDIR PORT VENV [stop]: (re)start gunicorn and the Celery worker of one environment
set -euo pipefail
run=$1 port=$2 venv=$3
for name in gunicorn celery; do
  f="$run/$name.pid"; [ -f "$f" ] || continue
  pid=$(cat "$f"); kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true; rm -f "$f"
done
[ "${4:-}" = stop ] && exit 0
setsid "$venv/bin/gunicorn" --bind "127.0.0.1:$port" --workers 1 --threads 8 --timeout 120 \\
  "superset.app:create_app()" >>"$run/gunicorn.log" 2>&1 </dev/null &
echo $! >"$run/gunicorn.pid"
# one node name per environment: two workers named celery@<host> on one broker fight over
# their control queue (RESOURCE_LOCKED) and the second stops consuming
setsid "$venv/bin/celery" --app=superset.tasks.celery_app:app worker --queues "$SUPERSET_CELERY_QUEUE" \\
  --hostname "$SUPERSET_CELERY_QUEUE@%h" --concurrency 1 --without-gossip --without-mingle >>"$run/celery.log" 2>&1 </dev/null &
echo $! >"$run/celery.pid"
"""


def cache_dir() -> Path:
    return hosts.cache_dir("superset")


def python311() -> str | None:
    """An interpreter Superset 6 installs on (3.10–3.12, wheels for 3.11 preferred)."""
    return hosts.find_python(("python3.11", "python3"), "3.11*", "sys.version_info[:2] == (3, 11)")


def extra_requirements() -> list[str]:
    """The deployment's pins besides Superset itself (examples/superset/requirements.txt)."""
    lines = [ln.split("#")[0].strip() for ln in (EXAMPLE / "requirements.txt").read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("apache-superset")]


def superset_venv(python: str, version: str, nice: list[str] | None = None) -> Path:
    """A virtualenv with `apache-superset==version` and the deployment's pins, built once per
    cache (in place, under a lock, marked complete last; a changed pin rebuilds it)."""
    venv = cache_dir() / f"venv-{version}"
    want = json.dumps([f"apache-superset=={version}", *extra_requirements()])
    done = venv / ".relnb-complete"
    with hosts.locked(cache_dir() / f"venv-{version}.lock"):
        if not done.exists() or done.read_text() != want:
            shutil.rmtree(venv, ignore_errors=True)
            run([python, "-m", "venv", str(venv)], timeout=300)
            run([*(nice or []), str(venv / "bin" / "pip"), "install", "-q", *json.loads(want)], timeout=2400)
            done.write_text(want)
    return venv


def database_url(admin_url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(admin_url)
    return f"postgresql://{p.get('user', 'postgres')}@{p.get('host', '127.0.0.1')}:{p.get('port', '5432')}/{name}"


def create_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return database_url(admin_url, name)


def drop_databases(admin_url: str, *names: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'drop database if exists "{name}" with (force)')


def superset_env(conf_root: Path, database: str, broker: str, redis_url: str, queue: str, secret_key: str,
                 cors_origin: str) -> dict[str, str]:
    """The environment file a Superset host has (examples/superset/superset.env.example)."""
    return {
        **os.environ,
        "SUPERSET_CONFIG_PATH": str(conf_root / "conf" / "superset_config.py"),
        "SUPERSET_DATABASE_URL": database,
        "SUPERSET_BROKER_URL": broker,
        "SUPERSET_CELERY_QUEUE": queue,
        "SUPERSET_REDIS_URL": redis_url,
        "SUPERSET_SECRET_KEY": secret_key,
        "SUPERSET_CORS_ORIGINS": cors_origin,
    }


def template_dump(venv: Path, admin_url: str, nice: list[str] | None = None) -> tuple[Path, str]:
    """(dump, admin password) of a database at `venv`'s schema with roles synced and the smoke
    user created: `superset db upgrade`, `superset init`, `fab create-admin` once per cache."""
    version = venv.name.removeprefix("venv-")
    dump, password_file = cache_dir() / f"db-{version}.dump", cache_dir() / f"db-{version}.admin"
    with hosts.locked(cache_dir() / f"db-{version}.lock"):
        if dump.exists() and password_file.exists():
            return dump, password_file.read_text()
        name = f"relnb_superset_template_{uuid.uuid4().hex[:8]}"
        url = create_database(admin_url, name)
        try:
            password = secrets.token_urlsafe(18)
            # nothing is queued or cached while migrating: the broker and Redis URLs are only parsed
            env = superset_env(EXAMPLE, url, "amqp://guest:guest@127.0.0.1:5672//", "redis://127.0.0.1:6379/0",
                               "unused", secrets.token_urlsafe(32), "")
            cli = [*(nice or []), str(venv / "bin" / "superset")]
            run([*cli, "db", "upgrade"], env=env, timeout=1800)
            run([*cli, "init"], env=env, timeout=1800)
            run([*cli, "fab", "create-admin", "--username", ADMIN, "--firstname", "relnb", "--lastname", "smoke",
                 "--email", "smoke@example.org", "--password", password], env=env, timeout=600)
            tmp = dump.with_suffix(f".tmp{os.getpid()}")
            run([_pg_tool("pg_dump"), "-Fc", "--no-owner", "-f", str(tmp), url], timeout=600)
            password_file.write_text(password)
            password_file.chmod(0o600)
            tmp.replace(dump)
        finally:
            drop_databases(admin_url, name)
        return dump, password


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: the Superset hosts need PostgreSQL's client tools")
    return found


def restore(dump: Path, url: str) -> None:
    run([_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "-d", url, str(dump)], timeout=600)


def prepare(admin_url: str | None, *, background: bool = False) -> dict[str, Any]:
    """Everything slow, once per cache: both virtualenvs (the release's built beside the
    previous one's) and, given a server, the template database. `background`: niced, so tests
    running meanwhile keep the CPU. Returns what it built and how long it took."""
    python = python311()
    if python is None:
        raise RuntimeError("Superset 6 is installed here on Python 3.11: none on PATH or under ~/.pyenv")
    nice = ["nice", "-n", "15"] if background and shutil.which("nice") else []
    t0 = time.monotonic()
    out: dict[str, Any] = {}
    with ThreadPoolExecutor(1) as pool:
        release = pool.submit(superset_venv, python, RELEASE, nice)
        out["previous"] = superset_venv(python, PREVIOUS, nice)
        if admin_url is not None:
            out["dump"], out["password"] = template_dump(out["previous"], admin_url, nice)
        out["release"] = release.result()
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


class Environment:
    """One environment's web and worker processes, started and stopped by supersetctl (the
    production deploy command restarts them through the same script)."""

    def __init__(self, name: str, host_dir: Path, env: Mapping[str, str], port: int) -> None:
        self.name, self.env, self.port = name, dict(env), port
        self.run_dir = host_dir / name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ctl = host_dir / "supersetctl"
        if not self.ctl.exists():
            self.ctl.write_text(SUPERSETCTL)
            self.ctl.chmod(0o755)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restart_command(self, venv: Path | str) -> str:
        return f"{self.ctl} {self.run_dir} {self.port} {venv}"

    def start(self, venv: Path, version: str) -> None:
        run([str(venv / "bin" / "python"), str(EXAMPLE / "deploy" / "queues.py")], env=self.env, timeout=120)
        run([str(self.ctl), str(self.run_dir), str(self.port), str(venv)], env=self.env, timeout=120)
        self.wait_for(version)

    def wait_for(self, version: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for f in self.run_dir.glob("*.pid"):
                try:
                    os.kill(int(f.read_text()), 0)
                except (ValueError, ProcessLookupError):
                    raise RuntimeError(f"{f.stem} of Superset {version} ({self.name}) exited: {self.tail()}") from None
            try:
                r = httpx.get(f"{self.url}/login/", timeout=5)
                if r.status_code == 200 and f"version_string&#34;: &#34;{version}&#34;" in r.text:
                    return
                last = f"HTTP {r.status_code}"
                if r.status_code >= 500 and time.monotonic() > deadline - timeout + 60:
                    break  # up, but failing: the log says why
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(1)
        raise RuntimeError(f"Superset {version} ({self.name}) did not come up in {timeout:.0f} s ({last}): {self.tail()}")

    def tail(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-2000:]}" for f in self.run_dir.glob("*.log"))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            run([str(self.ctl), str(self.run_dir), str(self.port), "-", "stop"], env=self.env, timeout=120)
        for f in self.run_dir.glob("*.pid"):  # the script could not: kill what is left
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.killpg(int(f.read_text()), signal.SIGKILL)


def login(base_url: str, password: str) -> str:
    """An API access token of the smoke user (what the release lead pastes into the env file)."""
    r = httpx.post(f"{base_url}/api/v1/security/login", timeout=30, json={
        "username": ADMIN, "password": password, "provider": "db", "refresh": False,
    })
    r.raise_for_status()
    return str(r.json()["access_token"])


class Api:
    """The API as a token client uses it: Superset wants a CSRF token (tied to a session
    cookie) on every write, also with a bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        csrf = self.http.get("/api/v1/security/csrf_token/")
        csrf.raise_for_status()
        self.http.headers["X-CSRFToken"] = csrf.json()["result"]

    def close(self) -> None:
        self.http.close()


def register_database(base_url: str, token: str, name: str, sqlalchemy_uri: str) -> int:
    """The database SQL Lab's smoke queries run on (async: on the Celery worker)."""
    api = Api(base_url, token)
    try:
        r = api.http.post("/api/v1/database/", json={
            "database_name": name, "sqlalchemy_uri": sqlalchemy_uri, "allow_run_async": True, "expose_in_sqllab": True,
        })
        if r.status_code != 201:
            raise RuntimeError(f"registering the SQL Lab database failed: HTTP {r.status_code} {r.text[:300]}")
        return int(r.json()["id"])
    finally:
        api.close()


SMOKE_SQL = "select count(*) from generate_series(1, 3000000)"  # ~0.3 s of work for the worker


@contextlib.contextmanager
def traffic(base_url: str, token: str, database_id: int, *, rps: float = 5.0, burst: int = 16,
            burst_every: float = 12.0) -> Iterator[list[int]]:
    """The environment's users: a steady stream of API reads (so the windows have requests to
    judge) and, every few seconds, a burst of asynchronous SQL Lab queries for the worker, so
    the queue's ready count rises and falls while B6 watches (a burst is ~5 s of the worker's
    time, so the backlog drains between bursts). The block starts once the first burst is queued.
    Bounded: it stops with the block."""
    stop, queued = threading.Event(), threading.Event()
    statuses: list[int] = []

    def reads() -> None:
        paths = ["/health", "/api/v1/dashboard/?q=(page_size:5)", "/api/v1/database/?q=(page_size:5)", "/api/v1/chart/?q=(page_size:5)"]
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
            i = 0
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    statuses.append(c.get(paths[i % len(paths)]).status_code)
                i += 1
                stop.wait(1 / rps)

    def queries() -> None:
        api = Api(base_url, token)
        try:
            while not stop.is_set():
                for _ in range(burst):
                    with contextlib.suppress(httpx.HTTPError):
                        statuses.append(api.http.post("/api/v1/sqllab/execute/", json={
                            "database_id": database_id, "sql": SMOKE_SQL, "runAsync": True,
                            "client_id": uuid.uuid4().hex[:10],
                        }).status_code)
                queued.set()
                stop.wait(burst_every)
        finally:
            api.close()

    threads = [threading.Thread(target=reads, daemon=True), threading.Thread(target=queries, daemon=True)]
    for t in threads:
        t.start()
    queued.wait(timeout=60)
    try:
        yield statuses
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


def delete_queues(broker: str, queues: list[str]) -> None:
    """The run's Celery queues and their dead letters, off the shared broker."""
    import amqp

    from relnb.checks.queues.amqp import _parse

    conn = amqp.Connection(**_parse(broker), connect_timeout=10)
    conn.connect()
    try:
        channel = conn.channel()
        for name in queues:
            for q in (name, f"{name}.dlq"):
                channel.queue_delete(q)
    finally:
        conn.close()


def nightly_backup(database_url: str, s3_client, bucket: str, key: str) -> None:
    """The production host's nightly job: pg_dump (custom format) to the backup bucket."""
    dump = subprocess.run([_pg_tool("pg_dump"), "-Fc", database_url], capture_output=True, timeout=600, check=True).stdout
    s3_client.create_bucket(Bucket=bucket)
    s3_client.put_object(Bucket=bucket, Key=key, Body=dump)
