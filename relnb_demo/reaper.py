"""Last line of cleanup: ends the stack's daemons if the stack process dies without stopping them.

The API and worker processes watch their parent themselves; Postgres, Redis, Prometheus and the
registry cannot. This tiny process (started first by DemoStack) polls the stack's pid; when the
stack is gone (SIGKILL, OOM) it kills every pid listed in `<workdir>/pids.json` whose start time
still matches (so a recycled pid is never hit) and removes the embedded Postgres data directory.
A normal `stop()` ends the reaper last.

`python -m relnb_demo.reaper --parent PID --pids-file PATH`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path


def write_pids(path: Path, entries: list[dict[str, object]]) -> None:
    """Atomically record [{pid, create_time}] (+ optional cleanup dirs) for the reaper."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries))
    os.replace(tmp, path)


def reap(path: Path) -> int:
    import psutil

    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    victims = []
    for e in entries:
        if "pid" not in e:
            continue
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(int(e["pid"]))
            if abs(proc.create_time() - float(e["create_time"])) < 1.0:
                victims.append(proc)
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL if proc.name() != "postgres" else signal.SIGQUIT)
    psutil.wait_procs(victims, timeout=5)
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    for e in entries:
        if "cleanup_dir" in e:
            shutil.rmtree(str(e["cleanup_dir"]), ignore_errors=True)
    return len(victims)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relnb_demo.reaper")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--pids-file", required=True)
    args = parser.parse_args(argv)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while not stop["now"]:
        if os.getppid() != args.parent:
            reap(Path(args.pids_file))
            return 0
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
