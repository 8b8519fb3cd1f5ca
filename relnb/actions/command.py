"""Run a configured shell command as a gate's core step (deploy, migrate, build, smoke, tests).

Output is captured, scrubbed and kept as evidence (the tail, and the whole of it in the journal's
evidence up to a limit); a time limit always applies; the exit code decides.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..redact import scrub
from ..results import Outcome, last_line

MAX_KEEP_LINES = 400


def run_command(
    command: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 900,
    on_line: Callable[[str], None] | None = None,
    what: str = "command",
) -> Outcome:
    """Run `command` in a shell; passed only on exit code 0 within the time limit."""
    full_env = {**os.environ, **(env or {})}
    if cwd is not None and not Path(cwd).is_dir():
        return Outcome.failed(f"{what}: working directory {cwd} does not exist", command=scrub(command))
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        return Outcome.failed(f"{what} could not start: {scrub(str(exc))}", command=scrub(command))
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = scrub(raw.rstrip("\n"))
            lines.append(line)
            if len(lines) > MAX_KEEP_LINES:
                del lines[0]
            if on_line is not None:
                on_line(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc)
    except KeyboardInterrupt:
        kill_group(proc)
        raise
    reader.join(timeout=5)
    elapsed = round(time.monotonic() - t0, 2)
    evidence = {
        "command": scrub(command),
        "cwd": str(cwd) if cwd else None,
        "exit_code": proc.returncode,
        "duration_s": elapsed,
        "output_tail": lines[-40:],
    }
    if timed_out:
        return Outcome.failed(f"{what} timed out after {timeout_s:.0f} s (killed)", **evidence)
    last = last_line("\n".join(lines))
    if proc.returncode == 0:
        return Outcome.passed(f"{what} succeeded in {elapsed} s" + (f": {last[:160]}" if last else ""), **evidence)
    return Outcome.failed(f"{what} exited {proc.returncode}" + (f": {last[:160]}" if last else ""), **evidence)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """TERM, then KILL, the whole process group: a command's children must not outlive its timeout."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def python_command(module_and_args: str) -> str:
    """A shell command that runs relnb's own Python (used by the demo's generated commands)."""
    return f"{sys.executable} {module_and_args}"
