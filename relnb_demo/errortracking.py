"""docflow's error tracking: a small Sentry-compatible ingest the demo's environments report to.

C5 asks whether the error-tracking DSN leads somewhere that answers, so the demo runs one: it
accepts events on Sentry's ingest paths (`/api/<project>/store/` and `/api/<project>/envelope/`)
when the request carries the project's public key (`sentry_key`, as Sentry SDKs send it in
X-Sentry-Auth or the query string), keeps them in memory per project, and answers `GET /`.
"""

from __future__ import annotations

import re
import secrets
import threading
from typing import Any

_KEY = re.compile(r"sentry_key=([A-Za-z0-9_-]+)")


class ErrorTracker:
    """One project per environment; `dsn(env)` is what that environment's services are given."""

    def __init__(self, projects: dict[str, int]) -> None:
        self.projects = dict(projects)  # environment -> project id
        self.keys = {env: secrets.token_hex(16) for env in projects}
        self.events: dict[int, list[bytes]] = {pid: [] for pid in projects.values()}
        self.base_url = ""
        self._lock = threading.Lock()

    def dsn(self, env: str) -> str:
        host = self.base_url.split("://", 1)[1]
        return f"http://{self.keys[env]}@{host}/{self.projects[env]}"

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, PlainTextResponse, Response
        from starlette.routing import Route

        by_key = {self.keys[env]: pid for env, pid in self.projects.items()}

        async def index(request: Request) -> Response:
            return PlainTextResponse("docflow error tracking (Sentry-compatible ingest)\n")

        async def ingest(request: Request) -> Response:
            project = int(request.path_params["project"])
            given = _KEY.search(request.headers.get("x-sentry-auth", "")) or _KEY.search(
                str(request.url.query)
            )
            if given is None or by_key.get(given.group(1)) != project:
                return JSONResponse({"detail": "invalid or missing sentry_key"}, 401)
            body = await request.body()
            with self._lock:
                self.events[project].append(body)
            return JSONResponse({"id": secrets.token_hex(16)})

        return Starlette(
            routes=[
                Route("/", index),
                Route("/api/{project:int}/store/", ingest, methods=["POST"]),
                Route("/api/{project:int}/envelope/", ingest, methods=["POST"]),
            ]
        )
