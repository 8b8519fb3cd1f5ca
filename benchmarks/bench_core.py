"""Core speed, measured side by side in one run (this machine is shared: compare ratios).

Prints: journal append rate with fsync (events/s); verifying a 10,000-event journal in-process,
one pass against the former way (the chain check and then the signature check each reading and
parsing it line by line, re-encoding every event to hash it); `relnb verify` of that journal as
a process (the goal: < 0.5 s wall), next to `python -c pass` and `import relnb`, so the start-up
share is visible; fold (status) time; each figure with its goal and HOLDS/MISSED.

The process figures are medians of several runs. A pip-installed relnb has its bytecode
compiled; a checkout run with PYTHONDONTWRITEBYTECODE=1 and no __pycache__ compiles every module
on every start, so the process is timed with bytecode cached in a temporary PYTHONPYCACHEPREFIX
(judged) and with relnb's bytecode never written (shown, not judged).

    python benchmarks/bench_core.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from relnb.journal import GENESIS, JournalWriter, verify_file
from relnb.state import fold

EVENTS = 10_000
GOAL_CLI_S = 0.5


def verdict(ok: bool) -> str:
    return "HOLDS" if ok else "MISSED"


def _median_run(cmd: list[str], n: int, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=cwd)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _best(fn: Callable[[], object], n: int = 5) -> float:
    times = []
    for _ in range(n):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def former_two_passes(path: Path) -> int:
    """What `relnb verify` did before: the chain check parsed every line and re-encoded each
    event to hash it, then the signature check read and parsed the journal again the same way."""
    from relnb.journal import _parse_line

    events = 0
    for _ in range(2):
        prev, events = GENESIS, 0
        for i, raw in enumerate(path.read_bytes().split(b"\n")[:-1]):
            event, problem = _parse_line(raw, i, prev)
            assert event is not None, problem
            prev, events = event.hash, events + 1
    return events


def build_project(root: Path) -> tuple[Path, Path]:
    """A project with one release whose journal holds 10,000 events (1,000 written with fsync)."""
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    (root / "relnb.toml").write_text('[project]\nname = "bench"\n')
    d = root / "releases" / "r"
    w = JournalWriter.open(d, create=True)
    w.append("release-created", {"release_id": "r", "version": "1.0.0", "environment": "production"})
    n_fsync = 1000
    t0 = time.perf_counter()
    for i in range(n_fsync):
        w.append("sample", {"metric": "error_rate", "value": i / 1000, "ts": i})
    append_s = time.perf_counter() - t0
    for i in range(EVENTS - n_fsync - 1):
        w.append("gate-finished", {"gate": "A1", "status": "passed", "summary": "ok", "evidence": {"i": i}})
    w.close()
    print(f"journal append with fsync: {n_fsync / append_s:,.0f} events/s ({append_s / n_fsync * 1e3:.2f} ms each)")
    return root, d / "journal.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    runs = ap.parse_args().runs
    from relnb.archive.verify import verify_release_dir

    with tempfile.TemporaryDirectory() as tmp:
        root, path = build_project(Path(tmp))
        report = verify_file(path)
        assert report.ok and report.events == EVENTS
        one = _best(lambda: verify_release_dir(path.parent))
        two = _best(lambda: former_two_passes(path))
        print(
            f"verify {EVENTS:,} events in-process (cpu): one pass {one:.3f} s, former two passes "
            f"{two:.3f} s: ratio {one / two:.2f} (goal < 0.60: {verdict(one / two < 0.6)})"
        )
        fold_s = _best(lambda: fold("r", report.parsed), 3)
        print(f"fold {EVENTS:,} events into status: {fold_s:.3f} s")

        py = sys.executable
        cli = [py, "-m", "relnb.cli", "verify", "r"]
        cache = Path(tmp) / "pycache"
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(cache)
        subprocess.run(cli, cwd=root, env=cached, check=True, capture_output=True)  # compile once
        bare = _median_run([py, "-c", "pass"], runs, env=cached)
        imp = _median_run([py, "-c", "import relnb"], runs, env=cached)
        wall = _median_run(cli, runs, env=cached, cwd=root)
        print(
            f"python -c pass: {bare * 1e3:.0f} ms; import relnb: {imp * 1e3:.0f} ms "
            f"(ratio {imp / bare:.1f}x); start-up is {imp / wall:.0%} of `relnb verify`"
        )
        print(
            f"`relnb verify` of {EVENTS:,} events as a process, bytecode cached: median {wall:.3f} s "
            f"wall over {runs} runs (goal < {GOAL_CLI_S} s: {verdict(wall < GOAL_CLI_S)})"
        )
        import relnb

        src = Path(tmp) / "src"  # a copy of the package without bytecode; the stdlib keeps its own
        shutil.copytree(Path(relnb.__file__).parent, src / "relnb", ignore=shutil.ignore_patterns("__pycache__"))
        compiling = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
        compiling.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(src))
        raw = _median_run(cli, runs, env=compiling, cwd=root)
        print(
            f"  with relnb's bytecode never written (every relnb module compiled at each start, as "
            f"in a checkout run with PYTHONDONTWRITEBYTECODE): median {raw:.3f} s wall (shown, not judged)"
        )


if __name__ == "__main__":
    main()
