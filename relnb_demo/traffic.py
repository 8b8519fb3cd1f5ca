"""Synthetic user traffic per environment, so error-rate, latency and DLQ metrics have data.

A bounded loop (default ~6 requests/s) of the reads a real frontend makes — health, version,
/me, the big tenant's documents and analytics — plus a document upload every couple of seconds,
alternating between the big tenant and the generator's own workspace. Connection errors during a
deploy are expected and just counted. `stop()` ends the thread within one tick.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrafficStats:
    requests: int = 0
    errors: int = 0
    connection_errors: int = 0
    uploads: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class TrafficGenerator:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        big_workspace_id: int,
        big_doc_ids: tuple[int, int],
        rate_per_s: float = 6.0,
        upload_every_s: float = 2.0,
        name: str = "traffic",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.big_workspace_id = big_workspace_id
        self.big_doc_ids = big_doc_ids
        self.interval = 1.0 / max(0.5, min(rate_per_s, 20.0))
        self.upload_every_s = upload_every_s
        self.name = name
        self.stats = TrafficStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own_workspace: int | None = None
        self._rng = random.Random(7)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"traffic-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _request(self, client: Any, method: str, path: str, **kw: Any) -> Any:
        import httpx

        self.stats.requests += 1
        try:
            resp = client.request(method, self.base_url + path, **kw)
        except httpx.HTTPError:
            self.stats.connection_errors += 1
            return None
        self.stats.by_status[resp.status_code] = self.stats.by_status.get(resp.status_code, 0) + 1
        if resp.status_code >= 500:
            self.stats.errors += 1
        return resp

    def _reads(self) -> list[tuple[str, str, dict[str, Any]]]:
        lo, hi = self.big_doc_ids
        doc = self._rng.randint(lo, hi) if hi >= lo else lo
        return [
            ("GET", "/health", {}),
            ("GET", "/me", {}),
            ("GET", f"/documents/{doc}", {}),
            ("GET", f"/analytics/summary?workspace_id={self.big_workspace_id}", {}),
            ("GET", "/version", {}),
            ("GET", f"/documents/{doc}", {}),
        ]

    def _run(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self._token}"}
        next_upload = time.monotonic() + 1.0
        upload_big = True
        analytics_ok = True
        with httpx.Client(headers=headers, timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                started = time.monotonic()
                if self._own_workspace is None:
                    r = self._request(
                        client, "POST", "/workspaces", json={"name": f"{self.name}-load"}
                    )
                    if r is not None and r.status_code == 201:
                        self._own_workspace = int(r.json()["id"])
                reads = self._reads()
                method, path, kw = reads[i % len(reads)]
                i += 1
                if path.startswith("/analytics") and not analytics_ok and i % 30:
                    pass  # the route may not exist on this version; probe it now and then only
                else:
                    r = self._request(client, method, path, **kw)
                    if path.startswith("/analytics") and r is not None:
                        analytics_ok = r.status_code != 404
                if time.monotonic() >= next_upload:
                    ws = (
                        self.big_workspace_id
                        if upload_big or self._own_workspace is None
                        else self._own_workspace
                    )
                    upload_big = not upload_big
                    body = b"page one\fpage two\f" * self._rng.randint(1, 4)
                    r = self._request(
                        client,
                        "POST",
                        "/documents",
                        data={"workspace_id": str(ws)},
                        files={"file": ("scan.pdf", body, "application/pdf")},
                    )
                    if r is not None and r.status_code == 202:
                        self.stats.uploads += 1
                    next_upload = time.monotonic() + self.upload_every_s
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
