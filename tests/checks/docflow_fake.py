"""A compact, in-memory docflow API (DEMO-API.md routes) for the smoke-flow tests and benchmark.

Not the demo app: opaque bearer tokens map to users, an asyncio task plays the extraction
worker. Knobs: `latency_ms` on every request, `fail` (route name → HTTP status), `extraction`
("ok" | "fail" | "stall"), `extraction_s`, `leak_token` (echo the caller's bearer in error
bodies, to prove evidence is scrubbed).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class Knobs:
    latency_ms: float = 0.0
    fail: dict[str, int] = field(default_factory=dict)
    extraction: str = "ok"
    extraction_s: float = 0.2
    leak_token: bool = False
    requests: int = 0


@dataclass
class State:
    users: dict[str, dict[str, str]]  # token -> {"sub", "email"}
    knobs: Knobs = field(default_factory=Knobs)
    workspaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    invites: dict[str, dict[str, str]] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def make_tokens() -> tuple[str, str]:
    """JWT-shaped opaque tokens (so the archive's token-shape scan would also see a leak)."""

    def jwt_like() -> str:
        return (
            "eyJ"
            + secrets.token_urlsafe(18)
            + ".eyJ"
            + secrets.token_urlsafe(24)
            + "."
            + secrets.token_urlsafe(16)
        )

    return jwt_like(), jwt_like()


def make_app(owner_token: str, member_token: str) -> tuple[Starlette, State]:
    state = State(
        users={
            owner_token: {"sub": "u-owner", "email": "owner@docflow.test"},
            member_token: {"sub": "u-member", "email": "member@docflow.test"},
        }
    )

    async def gate(
        request: Request, route: str
    ) -> tuple[dict[str, str] | None, JSONResponse | None]:
        state.knobs.requests += 1
        if state.knobs.latency_ms:
            await asyncio.sleep(state.knobs.latency_ms / 1000)
        if route in state.knobs.fail:
            body: dict[str, Any] = {"error": "injected fault", "route": route}
            if state.knobs.leak_token:
                body["debug"] = request.headers.get("authorization", "")
            return None, JSONResponse(body, status_code=state.knobs.fail[route])
        auth = request.headers.get("authorization", "")
        user = state.users.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if route != "health" and user is None:
            return None, JSONResponse({"error": "unauthorized"}, status_code=401)
        return user, None

    def my_workspaces(user: dict[str, str]) -> list[str]:
        return [w for w, ws in state.workspaces.items() if user["sub"] in ws["members"]]

    async def health(request: Request) -> JSONResponse:
        _, err = await gate(request, "health")
        return err or JSONResponse({"status": "ok", "checks": {"db": "ok", "redis": "ok"}})

    async def me(request: Request) -> JSONResponse:
        user, err = await gate(request, "me")
        if err:
            return err
        assert user
        return JSONResponse(
            {"sub": user["sub"], "email": user["email"], "workspaces": my_workspaces(user)}
        )

    async def create_ws(request: Request) -> JSONResponse:
        user, err = await gate(request, "workspaces")
        if err:
            return err
        assert user
        body = await request.json()
        wid = f"ws_{secrets.token_hex(4)}"
        state.workspaces[wid] = {
            "name": body["name"],
            "owner": user["sub"],
            "members": [user["sub"]],
        }
        return JSONResponse(
            {"id": wid, "name": body["name"], "owner": user["sub"]}, status_code=201
        )

    async def invite(request: Request) -> JSONResponse:
        user, err = await gate(request, "invites")
        if err:
            return err
        assert user
        wid = request.path_params["id"]
        ws = state.workspaces.get(wid)
        if ws is None or ws["owner"] != user["sub"]:
            return JSONResponse({"error": "not owner"}, status_code=403)
        email = (await request.json())["email"]
        tok = secrets.token_urlsafe(16)
        state.invites[tok] = {"workspace_id": wid, "email": email}
        return JSONResponse({"token": tok, "workspace_id": wid, "email": email}, status_code=201)

    async def accept(request: Request) -> JSONResponse:
        user, err = await gate(request, "accept")
        if err:
            return err
        assert user
        inv = state.invites.pop(request.path_params["token"], None)
        if inv is None or inv["email"] != user["email"]:
            return JSONResponse({"error": "invalid invite"}, status_code=404)
        state.workspaces[inv["workspace_id"]]["members"].append(user["sub"])
        return JSONResponse({"workspace_id": inv["workspace_id"], "member": user["sub"]})

    async def extract(doc: dict[str, Any]) -> None:
        await asyncio.sleep(state.knobs.extraction_s / 2)
        doc["status"] = "processing"
        if state.knobs.extraction == "stall":
            return
        await asyncio.sleep(state.knobs.extraction_s / 2)
        if state.knobs.extraction == "fail":
            doc.update(status="failed", error="pdf parser crashed: unexpected EOF")
        else:
            doc.update(status="extracted", pages=doc["size"].count(b"\f") + 1)

    async def upload(request: Request) -> JSONResponse:
        _user, err = await gate(request, "documents")
        if err:
            return err
        form = await request.form()
        wid = str(form["workspace_id"])
        upload = form["file"]
        content = await upload.read()  # type: ignore[union-attr]
        did = f"doc_{secrets.token_hex(4)}"
        doc = {"id": did, "status": "queued", "workspace_id": wid, "size": content}
        state.documents[did] = doc
        task = asyncio.get_running_loop().create_task(extract(doc))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        return JSONResponse({"id": did, "status": "queued"}, status_code=202)

    async def get_doc(request: Request) -> JSONResponse:
        _, err = await gate(request, "document")
        if err:
            return err
        doc = state.documents.get(request.path_params["id"])
        if doc is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({k: v for k, v in doc.items() if k != "size"})

    async def summary(request: Request) -> JSONResponse:
        _user, err = await gate(request, "analytics")
        if err:
            return err
        wid = request.query_params.get("workspace_id")
        docs = [d for d in state.documents.values() if wid is None or d["workspace_id"] == wid]
        counts = {
            k: sum(1 for d in docs if d["status"] == k) for k in ("queued", "extracted", "failed")
        }
        members = len(state.workspaces[wid]["members"]) if wid in state.workspaces else 0
        return JSONResponse(
            {"workspaces": len(state.workspaces), "documents": counts, "members": members}
        )

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/me", me),
            Route("/workspaces", create_ws, methods=["POST"]),
            Route("/workspaces/{id}/invites", invite, methods=["POST"]),
            Route("/invites/{token}/accept", accept, methods=["POST"]),
            Route("/documents", upload, methods=["POST"]),
            Route("/documents/{id}", get_doc),
            Route("/analytics/summary", summary),
        ]
    )
    return app, state
