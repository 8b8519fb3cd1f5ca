"""The inventory API's smoke flows in Python: what its team would keep in their repository.

Every public top-level `async def` is a flow; `s` is relnb's FlowSession.
"""

from __future__ import annotations

import uuid
from typing import Any


async def status(s) -> dict[str, Any]:
    body = await s.json("GET", "/api/status/", as_=None, name="status page")
    s.require(str(body.get("netbox-version", "")).count(".") >= 1, "no version in /api/status/")
    return {"version": body["netbox-version"]}


async def item_lifecycle(s) -> dict[str, Any]:
    name = f"relnb-smoke-{uuid.uuid4().hex[:8]}"
    item = await s.json("POST", "/api/items/", json={"name": name}, expect=(201,), name="create an item")
    s.require(item.get("name") == name, f"created item is called {item.get('name')!r}")
    done = await s.poll(
        f"/api/items/{item['id']}/",
        until=lambda b: b.get("status", {}).get("value") == "ready",
        deadline_s=5,
        interval_s=0.05,
        name="the worker makes it ready",
    )
    return {"item_id": done["id"]}


def _not_a_flow() -> None:
    """Helpers (private or synchronous) are not flows."""
