"""Per-tick cost of a monitoring window: minute 1 vs minute 60 (60-minute window, 5 s step).

Each tick does what the live notebook does: fetch (a real /metrics scrape of a local
prometheus_client app), verdict update, live-chart update and Vega-Lite serialisation (what marimo
or Jupyter send to the browser). Time is simulated (the window's clock is injected), so the
benchmark takes seconds, not an hour. Prints milliseconds per tick and the ratio (target ≈ 1:
the per-tick cost must not grow with the number of samples), plus the memory the window holds.

    /work/venv/bin/python benchmarks/bench_metrics.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relnb.metrics import ScrapeSource, default_rules, run_window
from relnb.metrics.charts import LiveCharts
from tests.metrics._app import FaultyApp


def run(trace_memory: bool) -> tuple[list[float], list[int], object, int, int]:
    app = FaultyApp(traffic=False, error_rate=0.002, latency_s=0.08)
    source = ScrapeSource([app.url], timeout_s=5)
    rules = default_rules(min_samples=10)
    live = LiveCharts(rules)
    sim = {"t": 1_700_000_000.0}
    costs: list[float] = []
    tick_start = {"t": 0.0}
    payload_sizes: list[int] = []

    def clock() -> float:
        return sim["t"]

    def sleep(seconds: float) -> None:
        # Between ticks: real traffic arrives, then simulated time advances.
        app.serve(500)
        sim["t"] += seconds
        tick_start["t"] = time.perf_counter()

    class Timed:
        name = source.name

        def poll(self, now):
            tick_start["t"] = time.perf_counter()
            return source.poll(now)

        def history(self, *a):
            return None

        def describe(self):
            return source.describe()

    def on_tick(state) -> None:
        if state.heartbeat or state.done:
            return
        live.update(state)
        payload = json.dumps(live.chart(state).spec)  # what marimo/Jupyter ship to the browser
        payload_sizes.append(len(payload))
        costs.append(time.perf_counter() - tick_start["t"])

    app.serve(50)
    if trace_memory:
        tracemalloc.start()
    outcome = run_window(
        Timed(), rules, 3600, 5, record=lambda s: None, on_tick=on_tick, clock=clock, sleep=sleep
    )
    current = peak = 0
    if trace_memory:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    app.close()
    return costs, payload_sizes, outcome, current, peak


def main() -> None:
    costs, payload_sizes, outcome, _, _ = run(False)
    _, _, _, current, peak = run(True)

    first = costs[1:13]  # minute 1 (skip the very first tick: imports and warm-up)
    last = costs[-12:]  # minute 60
    m1, m60 = statistics.median(first) * 1000, statistics.median(last) * 1000
    print(f"window: {outcome.status} after {len(costs)} ticks ({outcome.summary[:80]})")
    print("per tick (fetch + verdict + chart update + serialise), median of 12 ticks:")
    print(f"  minute 1:  {m1:7.2f} ms   payload {payload_sizes[1] / 1024:6.1f} KiB")
    print(f"  minute 60: {m60:7.2f} ms   payload {payload_sizes[-1] / 1024:6.1f} KiB")
    print(f"  ratio minute 60 / minute 1: {m60 / m1:.2f}  (target ≈ 1)")
    print(
        f"memory held by the window at the end: {current / 1024:.0f} KiB (peak {peak / 1024:.0f} KiB)"
    )


if __name__ == "__main__":
    main()
