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

Its routes are the build's routing table (the commit's src/docflow/routes.py, passed as
`--routes`), so an image serves what its commit says, undocumented routes included.

Run: `python -m relnb_demo.app --env staging --port 8081 --version 1.1.0 --sha <40 hex> --routes
'[["GET", "/health", "health"], ...]'` with DATABASE_URL, REDIS_URL, QUEUE_PREFIX, OIDC_ISSUER
(from 1.1.0 on also read as KEYCLOAK_ISSUER_URL, the name of infra/docker/env.vps.example),
ADMIN_TOKEN, CORS_ORIGINS in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any

from .faults import FaultStore, counter_key, parse_faults
from .middleware import DocflowMiddleware
from .settings import (
    BIG_TENANT,
    JOB_OPTS,
    MAX_JOB_CONTENT,
    MAX_UPLOAD,
    QUEUE_NAME,
    ConnectionPool,
    HTTPError,
    Settings,
)


def is_at_least(version: str, major: int, minor: int) -> bool:
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return parts >= (major, minor)


def writes_accepted_by(version: str) -> bool:
    """1.0.0 records who accepted an invite on the invite; from 1.1.0 the membership row it
    creates says so and the column is left alone (to be dropped once 1.0.0 is gone for good)."""
    return not is_at_least(version, 1, 1)


def served_routes(routes: list[tuple[str, str, str]]) -> list[str]:
    """`METHOD /path` of every route in a routing table (relnb_demo.repo.routes_at)."""
    return [f"{m} {p}" for m, p, _handler in routes]


def make_app(settings: Settings, routes: list[tuple[str, str, str]]) -> Any:
    """The API serving `routes` (method, path, handler name): the build's own routing table
    (its commit's src/docflow/routes.py), so what it serves is what that commit says."""
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
                if writes_accepted_by(settings.version):
                    row = conn.execute(
                        "update invites set accepted_at = now(), accepted_by = %s"
                        " where token = %s and accepted_at is null returning workspace_id",
                        (user["sub"], token),
                    ).fetchone()
                else:
                    row = conn.execute(
                        "update invites set accepted_at = now()"
                        " where token = %s and accepted_at is null returning workspace_id",
                        (token,),
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

    async def set_document_language(request: Request) -> Response:
        user = user_of(request)
        doc = as_int(request.path_params["id"], "document id")
        language = str((await body_json(request)).get("language") or "").strip()
        if not 2 <= len(language) <= 8:
            raise HTTPError(400, "language is required (a BCP 47 tag, e.g. de or pt-BR)")
        rows = await db(
            "update documents d set language = %s, updated_at = now() from memberships m"
            " where d.id = %s and m.workspace_id = d.workspace_id and m.user_sub = %s"
            " returning d.id, d.workspace_id",
            language,
            doc,
            user["sub"],
        )
        if not rows:
            raise HTTPError(404, "document not found")
        return JSONResponse({"id": rows[0][0], "workspace_id": rows[0][1], "language": language})

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

    handlers = {
        "health": health,
        "version": version,
        "me": me,
        "create_workspace": create_workspace,
        "invite": invite,
        "accept": accept,
        "upload": upload,
        "get_document": get_document,
        "set_document_language": set_document_language,
        "analytics": analytics,
        "metrics": metrics,
        "admin_faults": admin_faults,
    }
    unknown = sorted({h for _m, _p, h in routes} - set(handlers))
    if unknown:  # a build whose table names code it does not have does not start
        raise SystemExit(f"docflow api: routing table names unknown handler(s): {', '.join(unknown)}")
    methods: dict[tuple[str, str], list[str]] = {}
    for method, path, name in routes:
        methods.setdefault((path, name), []).append(method)
    starlette_routes = [
        Route(path, handlers[name], methods=ms) for (path, name), ms in methods.items()
    ]

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

    inner = Starlette(routes=starlette_routes, exception_handlers={HTTPError: http_error}, lifespan=lifespan)
    return DocflowMiddleware(inner, settings, faults, requests_total, duration)


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
    parser.add_argument(
        "--routes", required=True, help="JSON routing table of the build: [[method, path, handler], ...]"
    )
    args = parser.parse_args(argv)
    if args.parent_pid:
        _watch_parent(args.parent_pid)
    settings = Settings.from_env(args.env, args.version, args.sha)
    initial = parse_faults(json.loads(args.faults))
    if initial:
        import redis

        FaultStore(redis.Redis.from_url(settings.redis_url), settings.env).set(initial)
    app = make_app(settings, [tuple(r) for r in json.loads(args.routes)])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
