"""docflow's API (see helpers/DEMO-API.md): Starlette on uvicorn, one subprocess per environment.

Running it as its own process makes faults real: a stopped or crashed API refuses connections,
a deploy really replaces the process. Identity comes from the demo OIDC issuer's JWTs, verified
against its JWKS (iss, aud, exp). Documents are queued with the `bullmq` package on queue
`extraction` (attempts 2, removeOnFail false), so the worker and the DLQ are BullMQ's own.

Faults live in a Redis hash (`docflow:<env>:faults`), shared with the worker and changed with
`POST /_admin/faults`. With `scope: "tenant"` (the stack's default) error_rate, latency_ms and
fail_extraction hit only the big seeded tenant's requests and jobs — the realistic "new code is
slow/broken for the largest customer" case — so smoke flows on fresh workspaces keep passing
while traffic metrics show the damage; `scope: "all"` applies them to every request.

Run: `python -m relnb_demo.app --env staging --port 8081 --version 1.1.0 --sha <40 hex>` with
DATABASE_URL, REDIS_URL, QUEUE_PREFIX, OIDC_ISSUER, ADMIN_TOKEN, CORS_ORIGINS in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import queue
import random
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
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
    "scope": "tenant",
}

_BASE_ROUTES = [
    ("GET", "/health"),
    ("GET", "/version"),
    ("GET", "/me"),
    ("POST", "/workspaces"),
    ("POST", "/workspaces/{id}/invites"),
    ("POST", "/invites/{token}/accept"),
    ("POST", "/documents"),
    ("GET", "/documents/{id}"),
    ("GET", "/metrics"),
    ("GET", "/_admin/faults"),
    ("POST", "/_admin/faults"),
]


def has_analytics(version: str) -> bool:
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return parts >= (1, 1)


def served_routes(version: str) -> list[str]:
    """`METHOD /path` of every route this version serves (the A2 check's explicit route list)."""
    routes = list(_BASE_ROUTES)
    if has_analytics(version):
        routes.append(("GET", "/analytics/summary"))
    return [f"{m} {p}" for m, p in routes]


def parse_faults(raw: dict[str, Any]) -> dict[str, Any]:
    """Validated fault settings; unknown keys or wrong types raise ValueError."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in FAULT_DEFAULTS:
            raise ValueError(f"unknown fault {key!r} (known: {', '.join(FAULT_DEFAULTS)})")
        default = FAULT_DEFAULTS[key]
        if isinstance(default, bool):
            if isinstance(value, str):
                value = value.lower() in ("1", "true", "yes", "on")
            out[key] = bool(value)
        elif isinstance(default, float):
            v = float(value)
            if not 0.0 <= v <= 1.0:
                raise ValueError("error_rate must be between 0 and 1")
            out[key] = v
        elif isinstance(default, int):
            out[key] = max(0, int(value))
        else:
            if value not in ("tenant", "all"):
                raise ValueError("scope must be 'tenant' or 'all'")
            out[key] = value
    return out


def faults_key(env: str) -> str:
    return f"docflow:{env}:faults"


def counter_key(env: str, kind: str, queue_name: str = QUEUE_NAME) -> str:
    return f"docflow:{env}:worker:{kind}:{queue_name}"


class FaultStore:
    """Faults in Redis, read at most once a second per process (the worker shares them)."""

    def __init__(self, client: Any, env: str) -> None:
        self.client = client
        self.key = faults_key(env)
        self._cache: tuple[float, dict[str, Any]] = (0.0, dict(FAULT_DEFAULTS))

    def get(self, max_age: float = 1.0) -> dict[str, Any]:
        at, value = self._cache
        if time.monotonic() - at < max_age:
            return value
        try:
            raw = self.client.hgetall(self.key)
            decoded = {
                (k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()
            }
            value = {**FAULT_DEFAULTS, **parse_faults(decoded)}
        except Exception:
            value = self._cache[1]
        self._cache = (time.monotonic(), value)
        return value

    def set(self, changes: dict[str, Any]) -> dict[str, Any]:
        clean = parse_faults(changes)
        if clean:
            self.client.hset(self.key, mapping={k: json.dumps(v) for k, v in clean.items()})
        self._cache = (0.0, self._cache[1])
        return self.get(max_age=0)


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
            issuer=need("OIDC_ISSUER"),
            admin_token=need("ADMIN_TOKEN"),
            cors_origins=[o for o in os.environ.get("CORS_ORIGINS", "").split(",") if o],
            image_tag=version,
        )


def make_app(settings: Settings) -> Any:
    import jwt
    import redis
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    pool = ConnectionPool(settings.database_url)
    rds = redis.Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
    faults = FaultStore(rds, settings.env)
    jwks = jwt.PyJWKClient(f"{settings.issuer}/protocol/openid-connect/certs", cache_keys=True)
    state: dict[str, Any] = {"queue": None, "big": (0.0, set())}

    registry = CollectorRegistry()
    requests_total = Counter(
        "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    duration = Histogram(
        "http_request_duration_seconds",
        "HTTP request latency",
        ["method", "route"],
        registry=registry,
    )

    class QueueCollector:
        """Worker counters and queue depths, read from Redis at scrape time."""

        def collect(self) -> Iterator[Any]:
            completed = CounterMetricFamily(
                "worker_jobs_completed", "Jobs completed", labels=["queue"]
            )
            failed = CounterMetricFamily(
                "worker_jobs_failed", "Job attempts failed", labels=["queue"]
            )
            dlq = GaugeMetricFamily(
                "queue_dlq_depth", "Jobs in the failed set (DLQ)", labels=["queue"]
            )
            waiting = GaugeMetricFamily("queue_waiting", "Jobs waiting", labels=["queue"])
            try:
                p = rds.pipeline()
                p.get(counter_key(settings.env, "completed"))
                p.get(counter_key(settings.env, "failed"))
                p.zcard(f"{settings.queue_prefix}:{QUEUE_NAME}:failed")
                p.llen(f"{settings.queue_prefix}:{QUEUE_NAME}:wait")
                p.zcard(f"{settings.queue_prefix}:{QUEUE_NAME}:prioritized")
                c, f, d, w, pr = p.execute()
            except Exception:
                return
            completed.add_metric([QUEUE_NAME], float(c or 0))
            failed.add_metric([QUEUE_NAME], float(f or 0))
            dlq.add_metric([QUEUE_NAME], float(d or 0))
            waiting.add_metric([QUEUE_NAME], float((w or 0) + (pr or 0)))
            yield from (completed, failed, dlq, waiting)

    registry.register(QueueCollector())  # type: ignore[arg-type]

    # -- helpers ----------------------------------------------------------------------------

    def sql(query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with pool.connection() as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    async def db(query: str, *params: Any) -> list[tuple[Any, ...]]:
        return await run_in_threadpool(sql, query, tuple(params))

    def user_of(request: Request) -> dict[str, Any]:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise HTTPError(401, "missing bearer token")
        token = header[7:].strip()
        try:
            key = jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=settings.issuer,
                audience=settings.audience,
                options={"require": ["exp", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise HTTPError(401, f"invalid token: {type(exc).__name__}") from None
        return {"sub": claims["sub"], "email": claims.get("email", "")}

    async def body_json(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except Exception:
            raise HTTPError(400, "body must be JSON") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "body must be a JSON object")
        return data

    async def require_member(workspace_id: int, sub: str) -> str:
        rows = await db(
            "select role from memberships where workspace_id = %s and user_sub = %s",
            workspace_id,
            sub,
        )
        if not rows:
            raise HTTPError(404, "workspace not found")
        return str(rows[0][0])

    async def big_tenants() -> set[int]:
        at, ids = state["big"]
        if time.monotonic() - at > 30:
            rows = await db("select id from workspaces where name = %s", BIG_TENANT)
            ids = {int(r[0]) for r in rows}
            state["big"] = (time.monotonic(), ids)
        return ids

    async def tenant_faults(workspace_id: int) -> None:
        f = faults.get()
        if f["scope"] != "tenant" or workspace_id not in await big_tenants():
            return
        if f["latency_ms"]:
            await asyncio.sleep(f["latency_ms"] / 1000)
        if f["error_rate"] and random.random() < f["error_rate"]:
            raise HTTPError(500, "internal error")

    def as_int(value: Any, what: str) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise HTTPError(400, f"{what} must be an integer") from None

    # -- routes -----------------------------------------------------------------------------

    async def health(request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await db("select 1")
            checks["db"] = "ok"
        except Exception as exc:
            checks["db"] = f"error: {type(exc).__name__}"
        try:
            await run_in_threadpool(rds.ping)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "checks": checks}, 200 if ok else 503
        )

    async def version(request: Request) -> Response:
        return JSONResponse(
            {
                "sha": settings.sha,
                "version": settings.version,
                "image_tag": settings.image_tag,
                "environment": settings.env,
            }
        )

    async def me(request: Request) -> Response:
        user = user_of(request)
        rows = await db(
            "select workspace_id from memberships where user_sub = %s order by workspace_id",
            user["sub"],
        )
        return JSONResponse({**user, "workspaces": [r[0] for r in rows]})

    async def create_workspace(request: Request) -> Response:
        user = user_of(request)
        name = str((await body_json(request)).get("name") or "").strip()
        if not name or len(name) > 200:
            raise HTTPError(400, "name is required (1-200 characters)")

        def tx() -> int:
            with pool.connection() as conn, conn.transaction():
                ws = conn.execute(
                    "insert into workspaces (name, owner_sub) values (%s, %s) returning id",
                    (name, user["sub"]),
                ).fetchone()[0]
                conn.execute(
                    "insert into memberships (workspace_id, user_sub, email, role) values (%s, %s, %s, 'owner')",
                    (ws, user["sub"], user["email"]),
                )
                return int(ws)

        ws_id = await run_in_threadpool(tx)
        return JSONResponse({"id": ws_id, "name": name, "owner": user["sub"]}, 201)

    async def invite(request: Request) -> Response:
        user = user_of(request)
        ws = as_int(request.path_params["id"], "workspace id")
        role = await require_member(ws, user["sub"])
        if role != "owner":
            raise HTTPError(403, "only the workspace owner can invite")
        email = str((await body_json(request)).get("email") or "").strip()
        if "@" not in email:
            raise HTTPError(400, "email is required")
        token = secrets.token_urlsafe(24)
        await db(
            "insert into invites (token, workspace_id, email) values (%s, %s, %s)", token, ws, email
        )
        return JSONResponse({"token": token, "workspace_id": ws, "email": email}, 201)

    async def accept(request: Request) -> Response:
        user = user_of(request)
        token = request.path_params["token"]

        def tx() -> int | None:
            with pool.connection() as conn, conn.transaction():
                row = conn.execute(
                    "update invites set accepted_at = now(), accepted_by = %s"
                    " where token = %s and accepted_at is null returning workspace_id",
                    (user["sub"], token),
                ).fetchone()
                if row is None:
                    return None
                conn.execute(
                    "insert into memberships (workspace_id, user_sub, email, role) values (%s, %s, %s, 'member')"
                    " on conflict do nothing",
                    (row[0], user["sub"], user["email"]),
                )
                return int(row[0])

        ws = await run_in_threadpool(tx)
        if ws is None:
            raise HTTPError(404, "invite not found or already used")
        return JSONResponse(
            {"workspace_id": ws, "member": {"sub": user["sub"], "email": user["email"]}}
        )

    async def upload(request: Request) -> Response:
        user = user_of(request)
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception:
            raise HTTPError(
                400, "expected multipart/form-data with file and workspace_id"
            ) from None
        upload_file = form.get("file")
        if upload_file is None or isinstance(upload_file, str):
            raise HTTPError(400, "file is required")
        ws = as_int(form.get("workspace_id"), "workspace_id")
        await require_member(ws, user["sub"])
        await tenant_faults(ws)
        content = await upload_file.read(MAX_UPLOAD + 1)
        if len(content) > MAX_UPLOAD:
            raise HTTPError(413, "file too large")
        filename = (upload_file.filename or "upload.bin")[:200]
        rows = await db(
            "insert into documents (workspace_id, filename, size_bytes, status) values (%s, %s, %s, 'queued')"
            " returning id",
            ws,
            filename,
            len(content),
        )
        doc_id = int(rows[0][0])
        data = {
            "document_id": doc_id,
            "workspace_id": ws,
            "content_b64": base64.b64encode(content[:MAX_JOB_CONTENT]).decode(),
        }
        await state["queue"].add("extract", data, JOB_OPTS)
        return JSONResponse({"id": doc_id, "status": "queued"}, 202)

    async def get_document(request: Request) -> Response:
        user = user_of(request)
        doc = as_int(request.path_params["id"], "document id")
        rows = await db(
            "select d.id, d.status, d.workspace_id, d.pages, d.error from documents d"
            " join memberships m on m.workspace_id = d.workspace_id and m.user_sub = %s where d.id = %s",
            user["sub"],
            doc,
        )
        if not rows:
            raise HTTPError(404, "document not found")
        d_id, status, ws, pages, error = rows[0]
        await tenant_faults(int(ws))
        out: dict[str, Any] = {"id": d_id, "status": status, "workspace_id": ws}
        if pages is not None:
            out["pages"] = pages
        if error:
            out["error"] = error
        return JSONResponse(out)

    async def analytics(request: Request) -> Response:
        user = user_of(request)
        raw = request.query_params.get("workspace_id")
        if raw:
            ws = as_int(raw, "workspace_id")
            await require_member(ws, user["sub"])
            await tenant_faults(ws)
            ids = [ws]
        else:
            ids = [
                r[0]
                for r in await db(
                    "select workspace_id from memberships where user_sub = %s", user["sub"]
                )
            ]
        by_status = dict(
            await db(
                "select status, count(*) from documents where workspace_id = any(%s) group by status",
                ids,
            )
        )
        members = (await db("select count(*) from memberships where workspace_id = any(%s)", ids))[
            0
        ][0]
        return JSONResponse(
            {
                "workspaces": len(ids),
                "documents": {
                    s: int(by_status.get(s, 0)) for s in ("queued", "extracted", "failed")
                },
                "members": int(members),
            }
        )

    async def metrics(request: Request) -> Response:
        down_at = faults.get()["metrics_down_at"]
        if down_at and time.time() >= down_at:
            return PlainTextResponse("metrics exporter stopped", status_code=503)
        data = await run_in_threadpool(generate_latest, registry)
        return Response(data, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def admin_faults(request: Request) -> Response:
        given = request.headers.get("x-admin-token", "")
        if not secrets.compare_digest(given.encode(), settings.admin_token.encode()):
            raise HTTPError(401, "admin token required")
        if request.method == "POST":
            try:
                current = await run_in_threadpool(faults.set, await body_json(request))
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
        else:
            current = await run_in_threadpool(faults.get, 0)
        return JSONResponse(current)

    routes = [
        Route("/health", health),
        Route("/version", version),
        Route("/me", me),
        Route("/workspaces", create_workspace, methods=["POST"]),
        Route("/workspaces/{id}/invites", invite, methods=["POST"]),
        Route("/invites/{token}/accept", accept, methods=["POST"]),
        Route("/documents", upload, methods=["POST"]),
        Route("/documents/{id}", get_document),
        Route("/metrics", metrics),
        Route("/_admin/faults", admin_faults, methods=["GET", "POST"]),
    ]
    if has_analytics(settings.version):
        routes.append(Route("/analytics/summary", analytics))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": exc.message}, exc.status, headers=headers)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        from bullmq import Queue

        q = Queue(QUEUE_NAME, {"connection": settings.redis_url, "prefix": settings.queue_prefix})
        state["queue"] = q
        try:
            yield
        finally:
            await q.close()
            await run_in_threadpool(pool.close)

    inner = Starlette(routes=routes, exception_handlers={HTTPError: http_error}, lifespan=lifespan)
    return DocflowMiddleware(inner, settings, faults, requests_total, duration)


class DocflowMiddleware:
    """Metrics, global faults and CORS around the app (pure ASGI: sees every response)."""

    _INFRA = ("/metrics", "/_admin/faults")

    def __init__(
        self, app: Any, settings: Settings, faults: FaultStore, counter: Any, histogram: Any
    ):
        self.app = app
        self.settings = settings
        self.faults = faults
        self.counter = counter
        self.histogram = histogram

    def allowed_origins(self) -> set[str]:
        origins = set(self.settings.cors_origins)
        if self.faults.get()["cors_drop_origin"] and self.settings.cors_origins:
            origins.discard(self.settings.cors_origins[0])
        return origins

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse, PlainTextResponse

        headers = Headers(scope=scope)
        origin = headers.get("origin")
        method = scope["method"]
        started = time.perf_counter()
        status_holder = {"status": 500}
        allowed = await asyncio.to_thread(self.allowed_origins) if origin else set()

        if method == "OPTIONS" and origin and headers.get("access-control-request-method"):
            want_method = headers["access-control-request-method"].upper()
            want_headers = {
                h.strip().lower()
                for h in headers.get("access-control-request-headers", "").split(",")
                if h.strip()
            }
            vary = {"Vary": "Origin"}
            if (
                origin in allowed
                and want_method in ALLOWED_METHODS
                and want_headers <= set(ALLOWED_HEADERS)
            ):
                resp: Any = PlainTextResponse(
                    "OK",
                    headers={
                        **vary,
                        "Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Credentials": "true",
                        "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
                        "Access-Control-Allow-Headers": "Authorization, Content-Type",
                        "Access-Control-Max-Age": "600",
                    },
                )
            else:
                resp = PlainTextResponse("Disallowed CORS request", status_code=400, headers=vary)
            await resp(scope, receive, send)
            return

        path = scope.get("path", "")
        fault = self.faults.get() if path not in self._INFRA else None

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                hdrs = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"vary"]
                hdrs.append((b"vary", b"Origin"))
                if origin and origin in allowed:
                    hdrs.append((b"access-control-allow-origin", origin.encode()))
                    hdrs.append((b"access-control-allow-credentials", b"true"))
                message = {**message, "headers": hdrs}
            await send(message)

        try:
            if fault and fault["scope"] == "all":
                if fault["latency_ms"]:
                    await asyncio.sleep(fault["latency_ms"] / 1000)
                if fault["error_rate"] and random.random() < fault["error_rate"]:
                    await JSONResponse({"error": "internal error"}, 500)(
                        scope, receive, send_wrapper
                    )
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "<unmatched>"
            self.counter.labels(method, label, str(status_holder["status"])).inc()
            self.histogram.labels(method, label).observe(time.perf_counter() - started)


def _watch_parent(parent: int) -> None:
    """Exit when the stack that started us is gone, so no API outlives a killed demo."""

    def loop() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(1)

    threading.Thread(target=loop, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m relnb_demo.app")
    parser.add_argument("--env", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--sha", required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--faults", default="{}", help="JSON fault settings to apply at start")
    args = parser.parse_args(argv)
    if args.parent_pid:
        _watch_parent(args.parent_pid)
    settings = Settings.from_env(args.env, args.version, args.sha)
    initial = parse_faults(json.loads(args.faults))
    if initial:
        import redis

        FaultStore(redis.Redis.from_url(settings.redis_url), settings.env).set(initial)
    app = make_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
