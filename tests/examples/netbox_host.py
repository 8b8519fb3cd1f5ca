"""A NetBox staging host for the example's integration test: NetBox from PyPI in a virtualenv per
version (cached between runs), its database migrated by that version, gunicorn and the django-rq
worker started from the deployment repository, and traffic while relnb watches the metrics.

Nothing here is relnb: it is what the team's servers and CI would have done before the release
lead opens the notebook.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from . import hosts
from .hosts import run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "netbox"
PREVIOUS, RELEASE = "4.7.0", "4.7.1"
# the Django apps NetBox's own migrations belong to (examples/netbox/relnb.toml: migration_apps)
MIGRATIONS_ADDED = {
    "dcim.0251_fix_ltree_cascade_triggers",
    "tenancy.0027_fix_ltree_cascade_triggers",
    "wireless.0024_fix_ltree_cascade_triggers",
}


def cache_dir() -> Path:
    return hosts.cache_dir("netbox")


def python312() -> str | None:
    """An interpreter NetBox 4.7 accepts (>= 3.12)."""
    return hosts.find_python(("python3.12", "python3.13"), "3.1[23]*", "sys.version_info >= (3, 12)")


def netbox_venv(python: str, version: str) -> Path:
    """A virtualenv with `netbox==version` from PyPI, built once per cache (venvs cannot move, so
    it is built in place under a lock and marked complete last)."""
    venv = cache_dir() / f"venv-{version}"
    done = venv / ".relnb-complete"
    with hosts.locked(cache_dir() / f"venv-{version}.lock"):
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            run([python, "-m", "venv", str(venv)], timeout=300)
            run([str(venv / "bin" / "pip"), "install", "-q", f"netbox=={version}"], timeout=1800)
            done.write_text(version)
    return venv


def netbox_env(root: Path, database_url: str, redis_url: str, secret_key: str, pepper: str,
               cors_origin: str) -> dict[str, str]:
    """The environment file a NetBox host has (examples/netbox/netbox.env.example)."""
    return {
        **os.environ,
        "NETBOX_ROOT": str(root),
        "NETBOX_DATABASE_URL": database_url,
        "NETBOX_REDIS_URL": redis_url,
        "NETBOX_CACHE_REDIS_URL": redis_url,
        "NETBOX_SECRET_KEY": secret_key,
        "NETBOX_API_TOKEN_PEPPER": pepper,
        "NETBOX_CORS_ORIGINS": cors_origin,
    }


def migrated_database(venv: Path, version: str, env: Mapping[str, str]) -> str:
    """Bring the (empty) database to `version`'s schema: restore a dump cached from an earlier
    run, else run NetBox's ~300 migrations (minutes) and cache the result. Returns how."""
    dump = cache_dir() / f"db-{version}.dump"
    url = env["NETBOX_DATABASE_URL"]
    pg_restore, pg_dump, psql = (shutil.which(t) for t in ("pg_restore", "pg_dump", "psql"))
    if dump.exists() and pg_restore and psql:
        # a dump clears search_path, and NetBox's ltree triggers compare with ltree's `=`, which
        # then resolves nowhere: replay the SQL with public on the path
        sql = run([pg_restore, "--no-owner", "-f", "-", str(dump)], timeout=600).replace(
            "set_config('search_path', '', false)", "set_config('search_path', 'public', false)"
        )
        out = subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", "-d", url], input=sql, capture_output=True,
                             text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"restoring {dump} failed: {out.stderr[-2000:]}")
        return f"restored {dump.name}"
    run([str(venv / "bin" / "netbox"), "migrate", "--no-input"], env=env, timeout=1800)
    if pg_dump:
        tmp = dump.with_suffix(f".tmp{os.getpid()}")
        run([pg_dump, "-Fc", "-f", str(tmp), url], timeout=600)
        tmp.replace(dump)
    return "migrated"


def create_api_user(venv: Path, env: Mapping[str, str], token: str) -> None:
    """A superuser with a v1 API token of known value (the smoke flows' identity)."""
    code = (
        "from users.models import Token, User\n"
        "u = User.objects.create_superuser('relnb-smoke', 'smoke@example.org', None)\n"
        f"Token.objects.create(user=u, version=1, token={token!r})\n"
    )
    run([str(venv / "bin" / "netbox"), "shell", "-c", code], env=env, timeout=300)


def openapi_json(venv: Path, env: Mapping[str, str], out: Path) -> None:
    """What the repository's CI does at each bump: NetBox's schema, as drf-spectacular writes it."""
    run([str(venv / "bin" / "netbox"), "spectacular", "--format", "openapi-json", "--file", str(out)],
        env=env, timeout=600)


class Services:
    """gunicorn (one process, so django-prometheus' counters are one series) and the rq worker."""

    def __init__(self, venv: Path, env: Mapping[str, str], port: int, logs: Path) -> None:
        self.venv, self.env, self.port, self.logs = venv, dict(env), port, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, name: str, *cmd: str) -> None:
        with open(self.logs / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
            self.procs.append(subprocess.Popen(
                cmd, env=self.env, cwd=self.env["NETBOX_ROOT"], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            ))

    def start(self, token: str) -> None:
        self._start("gunicorn", str(self.venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{self.port}",
                    "--workers", "1", "--threads", "4", "--timeout", "120", "netbox.wsgi")
        self._start("rqworker", str(self.venv / "bin" / "netbox"), "rqworker", "high", "default", "low")
        deadline = time.monotonic() + 180
        last = ""
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited {p.returncode}: {self.tail()}")
            try:
                r = httpx.get(f"{self.url}/api/status/", headers={"Authorization": f"Token {token}"}, timeout=5)
                if r.status_code == 200 and r.json().get("rq-workers-running"):
                    return
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(1)
        raise RuntimeError(f"NetBox did not come up in 180 s ({last}): {self.tail()}")

    def tail(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-1500:]}" for f in self.logs.glob("*.log"))

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


@contextlib.contextmanager
def traffic(base_url: str, token: str, *, rps: float = 6.0, sync_dir: Path | None = None) -> Iterator[list[int]]:
    """Staging's users: a steady stream of API reads, so B8 and C1 have requests to judge, and with
    `sync_dir` a data-source sync queued every two seconds, so B6 sees the worker process jobs."""
    stop = threading.Event()
    statuses: list[int] = []
    headers = {"Authorization": f"Token {token}"}

    def reads() -> None:
        paths = ["/api/status/", "/api/dcim/sites/?limit=5", "/api/ipam/prefixes/?limit=5"]
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as c:
            i = 0
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    statuses.append(c.get(paths[i % len(paths)]).status_code)
                i += 1
                stop.wait(1 / rps)

    def syncs() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as c:
            made = c.post("/api/core/data-sources/", json={
                "name": f"traffic-{os.getpid()}-{time.monotonic_ns()}", "type": "local",
                "source_url": f"file://{sync_dir}",
            })
            made.raise_for_status()
            source = made.json()["id"]
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    statuses.append(c.post(f"/api/core/data-sources/{source}/sync/").status_code)
                stop.wait(2)
            with contextlib.suppress(httpx.HTTPError):
                c.delete(f"/api/core/data-sources/{source}/")

    threads = [threading.Thread(target=reads, daemon=True)]
    if sync_dir is not None:
        threads.append(threading.Thread(target=syncs, daemon=True))
    for t in threads:
        t.start()
    try:
        yield statuses
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)


def nightly_backup(database_url: str, s3_client, bucket: str, key: str) -> None:
    """The production host's nightly job: pg_dump (custom format) to the backup bucket."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise RuntimeError("pg_dump is not installed: the nightly backup needs PostgreSQL's client")
    dump = subprocess.run([pg_dump, "-Fc", database_url], capture_output=True, timeout=600, check=True).stdout
    s3_client.create_bucket(Bucket=bucket)
    s3_client.put_object(Bucket=bucket, Key=key, Body=dump)
