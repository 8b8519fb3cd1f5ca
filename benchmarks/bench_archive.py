"""Archive benchmarks: `relnb list` and `relnb verify --all` over many synthetic archives.

One release is built through the public API (gates, incident, 120 monitoring samples) and
archived for real; its sealed directory is then copied N times (each copy is a valid archive) and
an index row is written per copy. Prints: archive time and size per release; `list` over N with
its index (goal < 1 s), without it (it rebuilds the index from the archives' sealed events; goal
< 1 s, and every sealed archive listed as sealed), against folding every journal (what `list`
did without an index); and `verify --all` time at N/4, N/2, N with seconds per MB (linear ⇒ the
per-MB figure stays flat). Each figure with its goal and HOLDS/MISSED.

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


def verdict(ok: bool) -> str:
    return "HOLDS" if ok else "MISSED"


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
    r.abandon(reason="benchmark release: sealed unfinished")  # only a finished release is sealed
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
    from relnb.release import read_state

    with tempfile.TemporaryDirectory(prefix="relnb-bench-") as tmp:
        root = Path(tmp)
        src = build_one(root)
        rdir = root / "releases"
        row = json.loads((rdir / "index.json").read_text())["releases"]["1.0.0"]
        rows = {"1.0.0": row}
        for i in range(n):
            rid = f"2.{i}.0"
            shutil.copytree(src, rdir / rid)
            rows[rid] = {**row, "release_id": rid}
        (rdir / "index.json").write_text(json.dumps({"version": INDEX_VERSION, "releases": rows}))
        cfg = load_config(root / "relnb.toml")
        t0 = time.perf_counter()
        listed = list_rows(cfg)
        t_list = time.perf_counter() - t0
        print(f"list over {len(listed)} releases: {t_list:.3f} s (goal < 1 s: {verdict(t_list < 1)})")
        (rdir / "index.json").unlink()
        notes: list[str] = []
        t0 = time.perf_counter()
        rebuilt = list_rows(cfg, notes)
        t_rebuild = time.perf_counter() - t0
        sealed = sum(r.get("status") == "sealed" for r in rebuilt)
        print(
            f"list without index.json (rebuilds it): {t_rebuild:.3f} s, {sealed} of {len(rebuilt)} "
            f"listed as sealed (goal < 1 s and all sealed: {verdict(t_rebuild < 1 and sealed == n + 1)})"
        )
        assert (rdir / "index.json").is_file() and notes, notes
        t0 = time.perf_counter()
        for d in sorted(p for p in rdir.iterdir() if p.is_dir()):
            read_state(d.name, config=cfg)
        t_fold = time.perf_counter() - t0
        print(
            f"folding every journal instead (what list did without an index): {t_fold:.3f} s; "
            f"rebuild / fold = {t_rebuild / t_fold:.2f} (goal < 0.5: {verdict(t_rebuild / t_fold < 0.5)})"
        )
        cmd = [sys.executable, "-m", "relnb.cli", "list"]
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
