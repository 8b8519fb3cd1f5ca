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
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..redact import scrub
from ..results import Outcome, last_line

MAX_KEEP_LINES = 400


@dataclass
class Ran:
    """What a command did: its exit code (None when it could not start), scrubbed output lines
    (the last MAX_KEEP_LINES), how long it took and whether the time limit killed it."""

    exit_code: int | None
    lines: list[str]
    duration_s: float
    timed_out: bool = False
    start_error: str | None = None
    adopted: dict[str, Any] | None = None  # it ran while relnb was away (see processes.py)


def run_process(
    command: str | Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 900,
    on_line: Callable[[str], None] | None = None,
) -> Ran:
    """The one way relnb runs a team's command: a string through the shell, a list without one;
    its own process group (a timeout kills its children too), no stdin, output drained by a
    thread (a chatty command cannot block on a full pipe) and scrubbed line by line. Inside an
    action it runs detached instead, recorded so that it outlives relnb (processes.py)."""
    from .processes import current_ledger

    ledger = current_ledger()
    if ledger is not None:
        try:
            done = ledger.run(command, cwd=cwd, env=env, timeout_s=timeout_s, on_line=on_line)
        except OSError as exc:
            return Ran(None, [], 0.0, start_error=scrub(str(exc)))
        return Ran(done.exit_code, done.lines, done.duration_s, done.timed_out, adopted=done.adopted)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            command if isinstance(command, str) else list(command),
            shell=isinstance(command, str),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        return Ran(None, [], 0.0, start_error=scrub(str(exc)))
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
    return Ran(proc.returncode, lines, round(time.monotonic() - t0, 2), timed_out)


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
    if cwd is not None and not Path(cwd).is_dir():
        return Outcome.failed(f"{what}: working directory {cwd} does not exist", command=scrub(command))
    ran = run_process(command, cwd=cwd, env=env, timeout_s=timeout_s, on_line=on_line)
    if ran.start_error is not None:
        return Outcome.failed(f"{what} could not start: {ran.start_error}", command=scrub(command))
    evidence = {
        "command": scrub(command),
        "cwd": str(cwd) if cwd else None,
        "exit_code": ran.exit_code,
        "duration_s": ran.duration_s,
        "output_tail": ran.lines[-40:],
    }
    if ran.adopted is not None:
        evidence["adopted"] = ran.adopted
    if ran.timed_out:
        return Outcome.failed(f"{what} timed out after {timeout_s:.0f} s (killed)", **evidence)
    last = last_line("\n".join(ran.lines))
    if ran.exit_code == 0:
        return Outcome.passed(f"{what} succeeded in {ran.duration_s} s" + (f": {last[:160]}" if last else ""), **evidence)
    return Outcome.failed(f"{what} exited {ran.exit_code}" + (f": {last[:160]}" if last else ""), **evidence)


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
