"""Archive benchmarks: `relnb list` and `relnb verify --all` over many synthetic archives.

One release is built through the public API (gates, incident, 120 monitoring samples) and
archived for real; its sealed directory is then copied N times (each copy is a valid archive) and
an index row is written per copy. Prints: archive time and size per release, `list` time over N
(target < 1 s), and `verify --all` time at N/4, N/2, N with seconds per MB (linear ⇒ the per-MB
figure stays flat).

    python benchmarks/bench_archive.py [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_one(root: Path) -> Path:
    from relnb import Outcome, Release
    from relnb.archive import archive_release

    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=B",
            "-c",
            "user.email=b@x",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "feat: x",
        ],
        cwd=root,
        check=True,
    )
    (root / "relnb.toml").write_text('[ci]\ncommand = "true"\n')
    r = Release.create("1.0.0", root=root)
    r.check("A1")
    for g in ("B5", "B6", "B7", "B8", "C1", "C2"):
        r.run(g, lambda g=g: Outcome.passed(f"{g} fine", n=1))
    r.incident(
        "slow uploads",
        severity="minor",
        started_at="2026-01-01T00:00:00+00:00",
        ended_at="2026-01-01T00:05:00+00:00",
        test="tests/test_x.py::test_y",
    )
    for i in range(120):
        r.journal.append(
            "sample",
            {"gate": "D7", "ts": 1000.0 + 5 * i, "values": {"error_rate": 0.001 * (i % 7)}},
        )
    r.close()
    t0 = time.perf_counter()
    res = archive_release("1.0.0", root=root)
    print(
        f"archive one release: {time.perf_counter() - t0:.3f} s, {res.bytes / 1024:.1f} KiB on disk "
        f"({len(res.files)} files + journal + manifest)"
    )
    return root / "releases" / "1.0.0"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    n = ap.parse_args().n
    os.environ.setdefault("RELNB_USER", "Bench <bench@example.org>")
    from relnb.archive.commands import list_rows
    from relnb.archive.index import INDEX_VERSION
    from relnb.archive.verify import verify_release_dir
    from relnb.config import load_config

    with tempfile.TemporaryDirectory(prefix="relnb-bench-") as tmp:
        root = Path(tmp)
        src = build_one(root)
        rdir = root / "releases"
        row = json.loads((rdir / "index.json").read_text())["releases"]["1.0.0"]
        rows = {}
        for i in range(n):
            rid = f"2.{i}.0"
            shutil.copytree(src, rdir / rid)
            rows[rid] = {**row, "release_id": rid}
        (rdir / "index.json").write_text(json.dumps({"version": INDEX_VERSION, "releases": rows}))
        cfg = load_config(root / "relnb.toml")
        t0 = time.perf_counter()
        listed = list_rows(cfg)
        t_list = time.perf_counter() - t0
        print(f"list over {len(listed)} releases: {t_list:.3f} s (target < 1 s)")
        cmd = [sys.executable, "-m", "relnb.archive.commands", "list"]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
        print(
            f"`relnb list` as a process (incl. interpreter start): {time.perf_counter() - t0:.3f} s"
        )
        dirs = sorted(p for p in rdir.iterdir() if p.is_dir())
        for k in (n // 4, n // 2, n):
            t0 = time.perf_counter()
            reports = [verify_release_dir(d) for d in dirs[:k]]
            dt = time.perf_counter() - t0
            mb = sum(r.bytes for r in reports) / 1e6
            assert all(r.ok for r in reports)
            print(
                f"verify {k:>5} archives, {mb:7.1f} MB: {dt:6.2f} s  ({dt / mb:.3f} s/MB, {dt / k * 1000:.1f} ms/archive)"
            )


if __name__ == "__main__":
    main()
