"""docflow's HTTP edge: CORS for the configured frontends, request metrics, and the injected
faults that act on every request (latency, error rate, metrics going away).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from .faults import FaultStore
from .settings import ALLOWED_HEADERS, ALLOWED_METHODS, Settings


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
