"""A small API shaped nothing like docflow, for the declarative and Python smoke flows.

DRF-style: `Authorization: Token <key>`, trailing slashes, integer ids, an item that a background
task moves from `pending` to `ready`, and `/api/status/` for the version. `knobs` break it the
ways a release can: an endpoint answering 500 (and echoing the caller's Authorization header in
the error body, as careless error pages do), or the background work never finishing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Knobs:
    fail: dict[str, int] = field(default_factory=dict)  # route name → status to answer
    stall: bool = False
    ready_after_s: float = 0.15


def inventory_app(token: str, knobs: Knobs) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    items: dict[int, dict[str, Any]] = {}

    def denied(request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"Token {token}":
            return JSONResponse({"detail": "Authentication credentials were not provided."}, 403)
        return None

    def broken(name: str, request: Request) -> JSONResponse | None:
        if name in knobs.fail:
            leak = request.headers.get("authorization", "")
            return JSONResponse({"detail": f"internal error while handling {leak}"}, knobs.fail[name])
        return None

    async def status(request: Request) -> JSONResponse:
        return broken("status", request) or JSONResponse({"netbox-version": "4.1.2", "plugins": {}})

    async def finish(item_id: int) -> None:
        await asyncio.sleep(knobs.ready_after_s)
        if not knobs.stall:
            items[item_id]["status"] = {"value": "ready", "label": "Ready"}

    async def create(request: Request) -> JSONResponse:
        if (r := denied(request) or broken("create", request)) is not None:
            return r
        body = await request.json()
        item_id = len(items) + 1
        items[item_id] = {"id": item_id, "name": body.get("name"), "status": {"value": "pending"}}
        asyncio.get_running_loop().create_task(finish(item_id))
        return JSONResponse(items[item_id], 201)

    async def read(request: Request) -> JSONResponse:
        if (r := denied(request) or broken("read", request)) is not None:
            return r
        item = items.get(int(request.path_params["item_id"]))
        return JSONResponse(item) if item else JSONResponse({"detail": "Not found."}, 404)

    async def listing(request: Request) -> JSONResponse:
        if (r := denied(request) or broken("list", request)) is not None:
            return r
        return JSONResponse({"count": len(items), "results": list(items.values())})

    return Starlette(
        routes=[
            Route("/api/status/", status),
            Route("/api/items/", create, methods=["POST"]),
            Route("/api/items/", listing, methods=["GET"]),
            Route("/api/items/{item_id:int}/", read),
        ]
    )
