"""A full `relnb demo` run by checklist section: wall time against its slowest gate.

Runs the demo once (window from argv, default 30s) in a temp dir, or reads the journal given with
`--journal PATH`, then per section prints the wall time (first gate start to last gate finish),
the sum of its gates' own times and its slowest gate. Independent gates run side by side in a
headless run (relnb/sidebyside.py), so the goal for sections B and C is a wall time of at most
1.3× the slowest gate (issue 23); one after another it would be the sum.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

GOAL = 1.3  # wall / slowest gate, sections B and C


def section_figures(journal: Path) -> dict[str, dict[str, float]]:
    """Per section: wall, sum of gates, slowest gate (seconds), from gate/action start-finish pairs."""
    opened: dict[str, datetime] = {}
    gates: dict[str, float] = {}
    spans: dict[str, list[datetime]] = {}
    for line in journal.read_text().splitlines():
        ev = json.loads(line)
        p, t = ev["payload"], ev["type"]
        gate = p.get("gate") or p.get("of_gate")
        if not gate or not t.endswith(("-started", "-finished")) or t.startswith("rollback"):
            continue
        key = p.get("action") or gate
        ts = datetime.fromisoformat(ev["ts"])
        spans.setdefault(gate[0], []).append(ts)
        if t.endswith("-started"):
            opened[key] = ts
        elif key in opened:
            gates[f"{gate}:{key}"] = gates.get(f"{gate}:{key}", 0.0) + (ts - opened.pop(key)).total_seconds()
    out = {}
    for section, ts in sorted(spans.items()):
        own = [s for k, s in gates.items() if k[0] == section]
        out[section] = {"wall": (max(ts) - min(ts)).total_seconds(), "sum": sum(own), "slowest": max(own, default=0.0)}
    return out


def report(figures: dict[str, dict[str, float]]) -> int:
    missed = 0
    for section, f in figures.items():
        ratio = f["wall"] / f["slowest"] if f["slowest"] else float("nan")
        line = (f"  section {section}: wall {f['wall']:6.1f} s, gates' sum {f['sum']:6.1f} s, "
                f"slowest {f['slowest']:6.1f} s, wall/slowest {ratio:4.2f}")
        if section in "BC":
            ok = ratio <= GOAL
            missed += not ok
            line += f"  (goal ≤ {GOAL}: {'HOLDS' if ok else 'MISSED'})"
        print(line)
    return missed


def main(argv: list[str]) -> int:
    if argv[:1] == ["--journal"]:
        return 1 if report(section_figures(Path(argv[1]))) else 0
    window = argv[0] if argv else "30s"
    work = Path(tempfile.mkdtemp(prefix="relnb-bench-demo-", dir="/tmp"))
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "relnb.cli", "demo", "--window", window, "--workdir", str(work)],
        capture_output=True, text=True, timeout=1800,
    )
    total = time.monotonic() - t0
    start = next((ln for ln in proc.stdout.splitlines() if "stack up in" in ln), "")
    journal = next((work / "project" / "releases").glob("*/journal.jsonl"))
    print(f"relnb demo --window {window}: exit {proc.returncode}, {total:.1f} s wall")
    print(f"stack start: {start.split('stack up in')[-1].split(' s')[0].strip()} s")
    return 1 if report(section_figures(journal)) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
