"""docflow's smoke flows: the checklist's B5 items, owned by docflow's repository.

relnb loads this file because relnb.toml names it (`smoke.python = ["smoke/flows.py"]`); every
public top-level `async def` here is a flow, run with relnb's FlowSession `s` (`s.call`, `s.json`,
`s.poll`, `s.require`). Each flow creates what it needs, so they can run at the same time.
`smoke.staging` lists the five checklist flows for B5, `smoke.production` the four D5 runs.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import relnb


def _show(obj: Any) -> str:
    return json.dumps(obj, default=str, sort_keys=True)[:200]


def _unique(prefix: str) -> str:
    return f"relnb-smoke-{prefix}-{uuid.uuid4().hex[:8]}"


async def _new_workspace(s, what: str) -> str:
    name = _unique(what)
    ws = await s.json(
        "POST", "/workspaces", json={"name": name}, expect=(201,), name="create workspace"
    )
    s.require(
        isinstance(ws.get("id"), str | int) and ws.get("name") == name,
        f"workspace answer lacks id or name {name!r}: {_show(ws)}",
    )
    return str(ws["id"])


async def health(s) -> dict[str, Any]:
    body = await s.json("GET", "/health", as_=None, name="health")
    checks = body.get("checks") if isinstance(body.get("checks"), dict) else {}
    bad = {k: v for k, v in checks.items() if v != "ok"}
    s.require(
        body.get("status") == "ok" and not bad,
        f"health is {body.get('status')!r}, failing dependencies: {bad or 'none listed'}",
    )
    return {"checks": sorted(checks)}


async def login_me(s) -> dict[str, Any]:
    """Login bootstrap: `/me` answers for the owner's token and refuses a request without one."""
    await s.call("GET", "/me", as_=None, expect=(401,), name="/me without token is refused")
    me = await s.json("GET", "/me", name="/me as owner")
    s.require(isinstance(me.get("sub"), str) and me["sub"] != "", "/me has no 'sub'")
    s.require(isinstance(me.get("workspaces"), list), "/me has no 'workspaces' list")
    return {"workspaces": len(me["workspaces"])}


async def create_workspace(s) -> dict[str, Any]:
    ws_id = await _new_workspace(s, "ws")
    me = await s.json("GET", "/me", name="/me lists the new workspace")
    ids = [str(w) for w in me.get("workspaces") or []]
    s.require(ws_id in ids, f"new workspace {ws_id} missing from /me workspaces")
    return {"workspace_id": ws_id}


async def invite_accept(s) -> dict[str, Any]:
    if s.ctx.member_token is None:
        raise s.Inconclusive("no member token configured (MEMBER_TOKEN): cannot accept an invite")
    member = await s.json("GET", "/me", as_="member", name="/me as member")
    email = member.get("email")
    s.require(isinstance(email, str) and "@" in email, "member's /me has no email")
    ws_id = await _new_workspace(s, "invite")
    inv = await s.json(
        "POST",
        f"/workspaces/{ws_id}/invites",
        json={"email": email},
        expect=(201,),
        name="invite member",
    )
    token = inv.get("token")
    s.require(isinstance(token, str) and token != "", "invite answer has no token")
    relnb.Secret("invite-token", token)  # registered: the accept path is scrubbed in evidence
    acc = await s.json(
        "POST", f"/invites/{token}/accept", as_="member", expect=(200,), name="member accepts"
    )
    s.require(
        str(acc.get("workspace_id")) == ws_id,
        f"accept answered workspace {acc.get('workspace_id')!r}, expected {ws_id}",
    )
    me = await s.json("GET", "/me", as_="member", name="member sees the workspace")
    s.require(
        ws_id in [str(w) for w in me.get("workspaces") or []],
        f"workspace {ws_id} missing from the member's /me after accepting",
    )
    return {"workspace_id": ws_id}


async def upload_extraction(s) -> dict[str, Any]:
    ws_id = await _new_workspace(s, "doc")
    upload = s.ctx.extra.get("upload") or (
        "relnb-smoke.txt",
        b"relnb smoke document\nPage one.\f\nPage two.\n",
        "text/plain",
    )
    doc = await s.json(
        "POST",
        "/documents",
        files={"file": upload},
        data={"workspace_id": ws_id},
        expect=(202,),
        name="upload document",
    )
    s.require(
        doc.get("id") is not None and doc.get("status") == "queued",
        f"upload answer is not a queued document: {_show(doc)}",
    )
    doc_id = doc["id"]
    t0 = time.perf_counter()

    def failed(body: dict[str, Any]) -> str | None:
        if body.get("status") == "failed":
            return f"extraction failed: {str(body.get('error'))[:200]}"
        return None

    done = await s.poll(
        f"/documents/{doc_id}",
        until=lambda b: b.get("status") == "extracted",
        fail_if=failed,
        name="extraction completes",
    )
    return {
        "document_id": str(doc_id),
        "pages": done.get("pages"),
        "extraction_ms": round((time.perf_counter() - t0) * 1000, 1),
    }


async def analytics_summary(s) -> dict[str, Any]:
    ws_id = await _new_workspace(s, "analytics")
    body = await s.json(
        "GET", "/analytics/summary", params={"workspace_id": ws_id}, name="analytics summary"
    )
    docs = body.get("documents")
    s.require(isinstance(body.get("workspaces"), int), "summary lacks integer 'workspaces'")
    s.require(isinstance(body.get("members"), int), "summary lacks integer 'members'")
    s.require(
        isinstance(docs, dict)
        and all(isinstance(docs.get(k), int) for k in ("queued", "extracted", "failed")),
        "summary 'documents' lacks integer queued/extracted/failed",
    )
    return {"workspaces": body["workspaces"], "members": body["members"], "documents": docs}


# ---------------------------------------------------------------------------------------------
