"""docflow's routing table: every route the API serves, and the handler that answers it.

The API builds its router from ROUTES, so this table is what an image of this commit serves;
openapi.yaml documents the same routes for clients. `python -m docflow.routes` (with src on the
path) prints them one per line as `METHOD /path`; `docflow.routes:app` is the table as an ASGI
router (each route answers 501 there: the handlers live in the API).
"""

from __future__ import annotations

from typing import Any

ROUTES = [
    ("GET", "/health", "health"),
    ("GET", "/version", "version"),
    ("GET", "/me", "me"),
    ("POST", "/workspaces", "create_workspace"),
    ("POST", "/workspaces/{id}/invites", "invite"),
    ("POST", "/invites/{token}/accept", "accept"),
    ("POST", "/documents", "upload"),
    ("GET", "/documents/{id}", "get_document"),
    ("GET", "/metrics", "metrics"),
    ("GET", "/_admin/faults", "admin_faults"),
    ("POST", "/_admin/faults", "admin_faults"),
    ("GET", "/analytics/summary", "analytics"),
]


def route_lines() -> list[str]:
    return [f"{method} {path}" for method, path, _handler in ROUTES]


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use: importing the table needs no web framework
        return _router()
    raise AttributeError(name)


def _router() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def table_only(request: Any) -> Any:
        return JSONResponse({"error": "routing table only"}, 501)

    by_path: dict[str, list[str]] = {}
    for method, path, _handler in ROUTES:
        by_path.setdefault(path, []).append(method)
    return Starlette(routes=[Route(p, table_only, methods=m) for p, m in by_path.items()])


if __name__ == "__main__":
    print("\n".join(route_lines()))
