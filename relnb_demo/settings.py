"""What one docflow process is configured with (from its environment) and its database pool."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

QUEUE_NAME = "extraction"
BIG_TENANT = "acme-corp"
JOB_OPTS = {"attempts": 2, "removeOnFail": False, "removeOnComplete": 1000}
MAX_UPLOAD = 5 * 1024 * 1024
MAX_JOB_CONTENT = 256 * 1024
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ALLOWED_HEADERS = ("authorization", "content-type")
FAULT_DEFAULTS: dict[str, Any] = {
    "error_rate": 0.0,
    "latency_ms": 0,
    "cors_drop_origin": False,
    "fail_extraction": False,
    "stalled": False,
    # epoch seconds from which /metrics answers 503 (the exporter stopped); 0 = never
    "metrics_down_at": 0,
    # the next worker replica to start crashes before it is ready (once per environment)
    "crash_on_start": False,
    "scope": "tenant",
}

class ConnectionPool:
    """A small thread-safe psycopg connection pool (psycopg_pool is not a dependency)."""

    def __init__(self, url: str, size: int = 8) -> None:
        self.url = url
        self.size = size
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._sem = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        import psycopg

        if not self._sem.acquire(timeout=10):
            raise TimeoutError("database pool exhausted")
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
                if conn.closed or conn.broken:
                    conn = None
            except queue.Empty:
                conn = None
            if conn is None:
                # No server-side prepared statements: after a column type change (the
                # unsafe-migration fault) a prepared plan fails with "cached plan must not change
                # result type" on every later use, and whether a connection had prepared one
                # depends on timing, which would make the demo's B8/C1 verdicts a race.
                conn = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=5, prepare_threshold=None
                )
            try:
                yield conn
            except psycopg.OperationalError:
                conn.close()
                raise
        finally:
            if conn is not None and not conn.closed and not conn.broken:
                self._idle.put(conn)
            self._sem.release()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def issuer_from_env(version: str) -> str | None:
    """1.1.0 reads the issuer under the deploy template's name (KEYCLOAK_ISSUER_URL) and still
    accepts OIDC_ISSUER; 1.0.0 knows only OIDC_ISSUER, and refuses to start without it."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts >= (1, 1):
        return os.environ.get("OIDC_ISSUER") or os.environ.get("KEYCLOAK_ISSUER_URL")
    return os.environ.get("OIDC_ISSUER")


@dataclass
class Settings:
    env: str
    version: str
    sha: str
    database_url: str
    redis_url: str
    queue_prefix: str
    issuer: str
    admin_token: str
    cors_origins: list[str]
    audience: str = "docflow-api"
    image_tag: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: str, version: str, sha: str) -> Settings:
        def need(name: str) -> str:
            value = os.environ.get(name)
            if not value:
                raise SystemExit(f"docflow api: environment variable {name} is required")
            return value

        return cls(
            env=env,
            version=version,
            sha=sha,
            database_url=need("DATABASE_URL"),
            redis_url=need("REDIS_URL"),
            queue_prefix=os.environ.get("QUEUE_PREFIX", "bull"),
            issuer=issuer_from_env(version) or need("OIDC_ISSUER"),
            admin_token=need("ADMIN_TOKEN"),
            cors_origins=[o for o in os.environ.get("CORS_ORIGINS", "").split(",") if o],
            image_tag=version,
        )
