"""Commands started by an action outlive relnb, and the next run finds out how they ended.

A deploy command killed half-way is worse than one that finishes, so an action's command does
not die with relnb: it runs detached, behind a small shell wrapper that writes its exit status to
a file when it ends. Before waiting for it, relnb journals what it started (`action-process`:
pid, the kernel's start time of that pid, where the status will appear). When relnb itself is
killed (`kill -9`, a closed laptop, a dead kernel), the journal holds an action that started and
never finished; the next run adopts it instead of calling it "interrupted": it re-runs the
action's own function in adopt mode, where each command the function would start answers with
what the recorded process did (its status file, or by waiting for it when it is still running),
and the rest of the function — the verification an action already does, such as D4's version
probe — runs as usual. Only a process that ended without leaving its status (killed together
with relnb, a reboot) stays interrupted.

The output goes to a file rather than a pipe (a pipe with no reader kills a chatty command with
SIGPIPE once relnb is gone). That file holds the command's raw output, so it lives in a private
directory (0700) outside the project and is removed once the action's finish is journaled.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import re
import shlex
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RelnbError
from ..redact import scrub

PROCESS_EVENT = "action-process"
_POLL_S = 0.1

# The wrapper's own shell is the process group leader relnb records and, on a timeout, kills.
# `exit $rc` keeps the command's exit code as the wrapper's, for the case relnb is still there.
_WRAPPER = (
    'sh -c "$1" >>"$2" 2>&1 </dev/null; rc=$?; '
    'echo "$rc" >"$3.tmp" && mv "$3.tmp" "$3"; exit "$rc"'
)


class CutOff(RelnbError):
    """The recorded process cannot tell how it ended: the action stays interrupted."""


@dataclass
class Finished:
    """How a command ended, as `run_process` reports it."""

    exit_code: int | None
    lines: list[str]
    duration_s: float
    timed_out: bool = False
    adopted: dict[str, Any] | None = None


def command_sha(command: str | Sequence[str]) -> str:
    text = command if isinstance(command, str) else shlex.join(list(command))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot): with the pid it names one
    process, so a pid reused after a reboot or by another program is not taken for ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is None:
        return True
    now = process_start(pid)
    if now is None:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with suppress(OSError):
        if re.search(r"\) Z ", stat.read_text()):  # a zombie has ended: only its parent reaps it
            return False
    return now == start


def private_dir(release_id: str, journal_path: Path) -> Path:
    """Per user and per release, outside the project: the raw output never enters the repository."""
    base = Path(tempfile.gettempdir()) / f"relnb-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    os.chmod(base, 0o700)
    tag = hashlib.sha256(str(journal_path.resolve()).encode()).hexdigest()[:12]
    d = base / f"{re.sub(r'[^A-Za-z0-9._-]', '_', release_id)}-{tag}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


class _Tail:
    """Follows the output file while the command runs: scrubbed lines, the last `keep`."""

    def __init__(self, path: Path, keep: int, on_line: Callable[[str], None] | None) -> None:
        self.path, self.keep, self.on_line = path, keep, on_line
        self.lines: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def start(self) -> _Tail:
        self._thread.start()
        return self

    def _emit(self, raw: bytes) -> None:
        line = scrub(raw.decode(errors="replace").rstrip("\r"))
        self.lines.append(line)
        if len(self.lines) > self.keep:
            del self.lines[0]
        if self.on_line is not None:
            self.on_line(line)

    def _follow(self) -> None:
        pending = b""
        offset = 0
        while True:
            finishing = self._done.is_set()
            chunk = b""
            with suppress(OSError), self.path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                self._emit(raw)
            if finishing and not chunk:
                if pending:
                    self._emit(pending)
                return
            if not chunk:
                time.sleep(_POLL_S)

    def stop(self) -> list[str]:
        self._done.set()
        self._thread.join(timeout=10)
        return list(self.lines)


def _kill_group(pid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(_POLL_S)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _read_status(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class ProcessLedger:
    """Where an action's commands are recorded (`record`) and, when adopting a cut-off attempt,
    the processes that attempt started (`adopt`), matched in the order the action starts them."""

    directory: Path
    record: Callable[[dict[str, Any]], None] | None
    adopt: list[dict[str, Any]] | None = None
    keep_lines: int = 400
    _n: int = 0
    _files: list[Path] = field(default_factory=list)

    @contextmanager
    def active(self) -> Iterator[ProcessLedger]:
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def cleanup(self) -> None:
        """After the finish is journaled: the output and status files have served their purpose."""
        for f in self._files:
            with suppress(OSError):
                f.unlink()

    def run(
        self,
        command: str | Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None,
        env: Mapping[str, str] | None,
        timeout_s: float,
        on_line: Callable[[str], None] | None,
    ) -> Finished:
        n, self._n = self._n, self._n + 1
        if self.adopt is not None:
            return self._adopt(n, command, timeout_s, on_line)
        import subprocess

        stem = f"{time.time_ns()}-{os.getpid()}-{n}"
        log, status = self.directory / f"{stem}.out", self.directory / f"{stem}.status"
        self._files += [log, status]
        text = command if isinstance(command, str) else shlex.join(list(command))
        log.touch(mode=0o600)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            ["/bin/sh", "-c", _WRAPPER, "relnb-action", text, str(log), str(status)],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if self.record is not None:
            self.record(
                {
                    "n": n,
                    "pid": proc.pid,
                    "proc_start": process_start(proc.pid),
                    "command_sha": command_sha(command),
                    "status_file": str(status),
                    "output_file": str(log),
                    "timeout_s": timeout_s,
                    "started_at": time.time(),
                }
            )
        tail = _Tail(log, self.keep_lines, on_line).start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        except KeyboardInterrupt:  # the person stopped the cell: the command stops with it
            _kill_group(proc.pid)
            proc.wait()
            tail.stop()
            raise
        code = _read_status(status)
        lines = tail.stop()
        return Finished(
            code if code is not None else proc.returncode, lines, round(time.monotonic() - t0, 2), timed_out
        )

    def _adopt(
        self, n: int, command: str | Sequence[str], timeout_s: float, on_line: Callable[[str], None] | None
    ) -> Finished:
        assert self.adopt is not None
        recorded = next((p for p in self.adopt if p.get("n") == n), None)
        if recorded is None:
            raise CutOff("relnb was cut off before this action started its next command")
        if recorded.get("command_sha") != command_sha(command):
            raise CutOff("the command configured now differs from the one the cut-off attempt started")
        status, log = Path(recorded["status_file"]), Path(recorded["output_file"])
        self._files += [status, log]
        pid, start = int(recorded["pid"]), recorded.get("proc_start")
        began = float(recorded.get("started_at") or time.time())
        how = "status file"
        tail = _Tail(log, self.keep_lines, on_line).start()
        timed_out = False
        while _read_status(status) is None:
            if not alive(pid, start):
                time.sleep(_POLL_S)  # the wrapper writes its status as its last act
                if _read_status(status) is not None:
                    break
                tail.stop()
                raise CutOff(
                    f"its command (pid {pid}) ended without leaving its exit status: "
                    "killed together with relnb, or the machine restarted"
                )
            how = "waited for the running command"
            if time.time() - began > float(recorded.get("timeout_s") or timeout_s):
                _kill_group(pid)
                timed_out = True
                break
            time.sleep(_POLL_S * 2)
        lines = tail.stop()
        code = _read_status(status)
        adopted = {"pid": pid, "how": how, "exit_code": code}
        return Finished(code, lines, round(time.time() - began, 2), timed_out, adopted)


_CURRENT: contextvars.ContextVar[ProcessLedger | None] = contextvars.ContextVar("relnb_process_ledger", default=None)


def current_ledger() -> ProcessLedger | None:
    return _CURRENT.get()
