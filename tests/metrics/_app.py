"""A small app exposing prometheus_client metrics whose error rate and latency the test controls.

It simulates request traffic in a background thread (or on demand with `serve`) and serves the
exposition on a real 127.0.0.1 HTTP port, so Prometheus and ScrapeSource both read real /metrics.
`restart()` swaps in fresh counters, as a process restart does (a counter reset).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultyApp:
    def __init__(
        self,
        *,
        rps: float = 200.0,
        error_rate: float = 0.0,
        latency_s: float = 0.04,
        traffic: bool = True,
    ) -> None:
        self.rps = rps
        self.error_rate = error_rate
        self.latency_s = latency_s
        self.dlq = 0
        self._lock = threading.Lock()
        self._err_acc = 0.0
        self._new_registry()
        self._stop = threading.Event()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                from prometheus_client import generate_latest

                if self.path != "/metrics":
                    self.send_response(404)
                    self.end_headers()
                    return
                with app._lock:
                    body = generate_latest(app.registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True)]
        if traffic:
            self._threads.append(threading.Thread(target=self._traffic, daemon=True))
        for t in self._threads:
            t.start()

    def _new_registry(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        reg = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "requests", ["method", "route", "status"], registry=reg
        )
        self.duration = Histogram(
            "http_request_duration_seconds", "latency", ["method", "route"], registry=reg
        )
        self.failed = Counter("worker_jobs_failed_total", "failed jobs", ["queue"], registry=reg)
        self.completed = Counter(
            "worker_jobs_completed_total", "completed jobs", ["queue"], registry=reg
        )
        self.dlq_gauge = Gauge("queue_dlq_depth", "dlq", ["queue"], registry=reg)
        self.registry = reg

    def restart(self) -> None:
        with self._lock:
            self._new_registry()

    def serve(self, n: int) -> None:
        """Account n requests (and n/10 jobs) at the current fault settings."""
        with self._lock:
            for _ in range(n):
                self._err_acc += self.error_rate
                status = "200"
                if self._err_acc >= 1.0:
                    self._err_acc -= 1.0
                    status = "500"
                self.requests.labels("GET", "/documents", status).inc()
                self.duration.labels("GET", "/documents").observe(self.latency_s)
            self.completed.labels("extraction").inc(n // 10)
            self.dlq_gauge.labels("extraction").set(self.dlq)

    def _traffic(self) -> None:
        tick = 0.05
        while not self._stop.wait(tick):
            self.serve(max(1, int(self.rps * tick)))

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
