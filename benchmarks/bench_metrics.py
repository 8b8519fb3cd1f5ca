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
from relnb.metrics.charts import LIVE_POINTS, LiveCharts
from tests.metrics._app import FaultyApp

points: list[int] = []  # rows per metric the chart holds, per tick
values: list[float] = []  # chart values as shipped (a sample of each tick's newest rows)


def run(trace_memory: bool) -> tuple[list[float], list[int], object, int, int]:
    app = FaultyApp(traffic=False, error_rate=0.002, latency_s=0.08)
    source = ScrapeSource([app.url], timeout_s=5)
    rules = default_rules(min_samples=10)
    live = LiveCharts(rules)
    sim = {"t": 1_700_000_000.0}
    costs: list[float] = []
    tick_start = {"t": 0.0}
    payload_sizes: list[int] = []
    points.clear()
    values.clear()

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
        spec = live.chart(state).spec
        payload = json.dumps(spec)  # what marimo/Jupyter ship to the browser
        payload_sizes.append(len(payload))
        rows = [r for k, v in spec["datasets"].items() if k.startswith("points:") for r in v]
        points.append(max(len(v) for k, v in spec["datasets"].items() if k.startswith("points:")))
        values.extend(r["value"] for r in rows[-4:])
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
    ratio = m60 / m1
    # a cost that grew with the samples would be ~60× by minute 60; ≤ 2 leaves room for this
    # shared machine's noise on ticks of a few milliseconds
    print(f"  ratio minute 60 / minute 1: {ratio:.2f}  (goal ≤ 2: {'HOLDS' if ratio <= 2 else 'MISSED'})")
    # the live chart keeps at most LIVE_POINTS rows per metric: once full (minute 10 at a 5 s
    # step), what a tick ships must stay the same size for the rest of the window
    full = next(i for i, n in enumerate(points) if n >= LIVE_POINTS)
    grow = payload_sizes[-1] / payload_sizes[full]
    print(
        f"  payload when the chart first holds {LIVE_POINTS} points (tick {full}): "
        f"{payload_sizes[full] / 1024:.1f} KiB; at minute 60: {payload_sizes[-1] / 1024:.1f} KiB; "
        f"ratio {grow:.2f} (goal ≤ 1.1: {'HOLDS' if grow <= 1.1 else 'MISSED'})"
    )
    digits = max(len(repr(v)) for v in values)
    print(f"  longest value in the payload: {digits} characters (goal ≤ 12: {'HOLDS' if digits <= 12 else 'MISSED'})")
    print(
        f"memory held by the window at the end: {current / 1024:.0f} KiB (peak {peak / 1024:.0f} KiB)"
    )


if __name__ == "__main__":
    main()
