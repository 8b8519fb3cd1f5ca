"""Demo stack start time and a full `relnb demo` run, broken down by checklist section.

Runs the demo once (window from argv, default 30s) in a temp dir, then reads the sealed journal:
per section, the wall time from its first gate start to its last gate finish. Prints seconds and
each section's share of the run, measured side by side in this one run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path


def main(window: str = "30s") -> None:
    work = Path(tempfile.mkdtemp(prefix="relnb-bench-demo-", dir="/tmp"))
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "relnb.cli", "demo", "--window", window, "--workdir", str(work)],
        capture_output=True, text=True, timeout=1800,
    )
    total = time.monotonic() - t0
    start = next((ln for ln in proc.stdout.splitlines() if "stack up in" in ln), "")
    journal = next((work / "project" / "releases").glob("*/journal.jsonl"))
    spans: dict[str, list[datetime]] = {}
    for line in journal.read_text().splitlines():
        ev = json.loads(line)
        gate = ev["payload"].get("gate")
        if gate and ev["type"].endswith(("-started", "-finished")):
            spans.setdefault(gate[0], []).append(datetime.fromisoformat(ev["ts"]))
    print(f"relnb demo --window {window}: exit {proc.returncode}, {total:.1f} s wall")
    print(f"stack start: {start.split('stack up in')[-1].split(' s')[0].strip()} s")
    for section in sorted(spans):
        ts = spans[section]
        secs = (max(ts) - min(ts)).total_seconds()
        print(f"  section {section}: {secs:6.1f} s  ({secs / total:5.1%} of the run)")


if __name__ == "__main__":
    main(*(sys.argv[1:2]))
