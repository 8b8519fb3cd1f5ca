"""B5 smoke flows (docflow's own, from relnb_demo's app repository): concurrent versus one after another, against an API with 300 ms latency.

Uses the docflow-shaped test API (tests/checks/docflow_fake.py) on a real uvicorn server
with 300 ms injected on every request. Prints both wall times, the slowest single flow, and the
ratios; the target is concurrent wall ≤ 1.2 × the slowest flow.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path

import uvicorn

from relnb.checks.http import smoke
from relnb.checks.http.flows import load_module, module_flows
from relnb.redact import Secret
from relnb_demo.driver import STAGING_FLOWS
from relnb_demo.repo import SMOKE_FLOWS

FAKE = Path(__file__).resolve().parent.parent / "tests" / "checks" / "docflow_fake.py"


def _load_fake():
    spec = importlib.util.spec_from_file_location("relnb_bench_docflow_fake", FAKE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def main(latency_ms: float = 300.0) -> None:
    fake = _load_fake()
    owner_raw, member_raw = fake.make_tokens()
    app, state = fake.make_app(owner_raw, member_raw)
    state.knobs.latency_ms = latency_ms
    state.knobs.extraction_s = 0.6
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started and time.monotonic() < end:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    owner, member = Secret("OWNER_TOKEN", owner_raw), Secret("MEMBER_TOKEN", member_raw)
    try:
        docflow = module_flows(load_module(SMOKE_FLOWS.name, SMOKE_FLOWS.parent, "bench", "smoke.python[0]"))
        flows = {n: docflow[n] for n in STAGING_FLOWS}  # the checklist's five, as B5 runs them
        kw = {"poll_interval_s": 0.1, "poll_deadline_s": 30, "flows": flows}
        smoke.run_flows(url, owner, member, **kw)  # warm-up (connections, imports)
        conc = smoke.run_flows(url, owner, member, **kw)
        seq = smoke.run_flows(url, owner, member, concurrent=False, **kw)
    finally:
        server.should_exit = True
        thread.join(5)
    assert conc.status.value == "passed" and seq.status.value == "passed", (
        conc.summary,
        seq.summary,
    )
    slowest = max(f["ms"] for f in conc.evidence["flows"])
    print(f"latency injected per request: {latency_ms:.0f} ms")
    for f in seq.evidence["flows"]:
        print(f"  {f['flow']:<20} {len(f['steps'])} steps  {f['ms']:8.0f} ms (sequential run)")
    print(f"sequential wall:          {seq.evidence['wall_ms']:8.0f} ms")
    print(f"concurrent wall:          {conc.evidence['wall_ms']:8.0f} ms")
    print(f"slowest flow (concurrent):{slowest:8.0f} ms ({conc.evidence['slowest_flow']})")
    ratio = conc.evidence["wall_ms"] / slowest
    print(
        f"concurrent / slowest flow: {ratio:.2f}x (goal ≤ 1.2x: {'HOLDS' if ratio <= 1.2 else 'MISSED'})"
    )
    print(
        f"sequential / concurrent:   {seq.evidence['wall_ms'] / conc.evidence['wall_ms']:.2f}x speed-up"
    )


if __name__ == "__main__":
    main()
