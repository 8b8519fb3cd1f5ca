"""Core speed, measured side by side in one run (this machine is shared: compare ratios).

Prints: journal append rate with fsync (events/s), verify time for 10,000 events (target < 1 s),
fold (status) time for the same journal, and `import relnb` next to `python -c pass`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from relnb.journal import JournalWriter, verify_file
from relnb.state import fold


def _median_run(cmd: list[str], n: int = 7) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "r"
        w = JournalWriter.open(d, create=True)
        n_fsync = 1000
        t0 = time.perf_counter()
        for i in range(n_fsync):
            w.append("sample", {"metric": "error_rate", "value": i / 1000, "ts": i})
        append_s = time.perf_counter() - t0
        for i in range(10_000 - n_fsync):
            w.append("gate-finished", {"gate": "A1", "status": "passed", "summary": "ok", "evidence": {"i": i}})
        w.close()
        path = d / "journal.jsonl"
        t0 = time.perf_counter()
        report = verify_file(path)
        verify_s = time.perf_counter() - t0
        assert report.ok and report.events == 10_000
        t0 = time.perf_counter()
        fold("r", report.parsed)
        fold_s = time.perf_counter() - t0
    bare = _median_run([sys.executable, "-c", "pass"])
    imp = _median_run([sys.executable, "-c", "import relnb"])
    print(f"journal append with fsync: {n_fsync / append_s:,.0f} events/s ({append_s / n_fsync * 1e3:.2f} ms each)")
    print(f"verify 10,000 events: {verify_s:.3f} s (target < 1 s: {'met' if verify_s < 1 else 'MISSED'})")
    print(f"fold 10,000 events into status: {fold_s:.3f} s")
    print(f"python -c pass: {bare * 1e3:.0f} ms; import relnb: {imp * 1e3:.0f} ms; ratio {imp / bare:.2f}x")


if __name__ == "__main__":
    main()
