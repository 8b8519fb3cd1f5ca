"""The CLI on a terminal and in a pipe (issue 21), and no control character from a record on
either (issue 22).

Real subprocesses: a pseudo-terminal (python's `pty`, with its window size set) stands in for the
release lead's terminal; a pipe whose reader is gone stands in for `relnb list | head`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import relnb
from relnb import GateResult, Outcome, Status, StatusTable

from .helpers import make_project
from .test_cli import CONFIG

RELNB = [sys.executable, "-m", "relnb.cli"]
LEAD = "Lead <lead@example.org>"
SGR = re.compile(r"\x1b\[[0-9;]*m")
# a hostile summary: an OSC-8 hyperlink, a screen clear, a window title, a bell
PAYLOAD = "\x1b]8;;https://evil.example/\x07click me\x1b]8;;\x07 \x1b[2J\x1b[H\x1b]0;pwned\x07\x07 done"
LONG = (
    "2 of 3 smoke flows failed: invite-accept returned 500 after 3 attempts, document-upload "
    "timed out waiting for extraction https://staging.example.org/api/v1/documents/upload and "
    "the analytics summary was empty"
)
WIDTH = 60


def env_for(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "RELNB_ROOT")}
    env.update(RELNB_USER=LEAD, TERM="xterm-256color", **extra)
    return env


def on_tty(args: list[str], cwd: Path, *, width: int = WIDTH, **extra: str) -> tuple[int, str]:
    """Run relnb with stdout and stderr on a pseudo-terminal `width` columns wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, width, 0, 0))
    proc = subprocess.Popen([*RELNB, *args], cwd=cwd, env=env_for(**extra), stdin=follower, stdout=follower,
                            stderr=follower, close_fds=True)
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError as exc:  # EIO: the child closed its end
            assert exc.errno == errno.EIO
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=60), out.decode().replace("\r\n", "\n")


def piped(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RELNB, *args], cwd=cwd, env=env_for(**extra), capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One open release whose A1 failed with a long summary and A2 with a hostile one."""
    root = make_project(tmp_path / "proj")
    (root / "relnb.toml").write_text(CONFIG.format(log=root / "actions.log"))
    monkeypatch.setenv("RELNB_USER", LEAD)
    release = relnb.Release.create("1.0.0", config=relnb.load_config(start=root))
    try:
        release.run("A1", lambda: Outcome.failed(LONG))
        release.check("A2", lambda: Outcome.failed(PAYLOAD))
    finally:
        release.close()
    return root


def test_status_on_a_terminal_is_coloured_and_fits_its_width(project: Path) -> None:
    code, out = on_tty(["status"], project)  # no id: the only open release
    assert code == 0, out
    assert "release 1.0.0" in out
    assert "\x1b[31mFAIL\x1b[0m" in out  # colour on a terminal
    plain = SGR.sub("", out)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", plain)  # no escape but the colours
    lines = plain.splitlines()
    assert max(len(ln) for ln in lines) <= WIDTH, "\n".join(ln for ln in lines if len(ln) > WIDTH)
    # wrapped at word boundaries: every word of the summary is whole on some line
    words = set(" ".join(lines).split())
    assert {w for w in LONG.split() if len(w) < 30} <= words
    a1 = next(i for i, ln in enumerate(lines) if ln.startswith("  A1  FAIL"))
    assert lines[a1 + 1].startswith(" " * 19)  # continuation lines stay in their columns


def test_no_color_and_a_pipe_get_plain_text(project: Path) -> None:
    code, out = on_tty(["status", "1.0.0"], project, NO_COLOR="1")
    assert code == 0 and "\x1b" not in out
    assert max(len(ln) for ln in out.splitlines()) <= WIDTH  # still fitted
    proc = piped(["status", "1.0.0"], project)
    assert proc.returncode == 0 and "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    # a pipe keeps each row whole: the full summary on the A1 line
    [a1] = [ln for ln in proc.stdout.splitlines() if ln.startswith("  A1  FAIL")]
    assert a1.endswith(LONG)
    [a2] = [ln for ln in proc.stdout.splitlines() if ln.startswith("  A2  FAIL")]
    assert a2.endswith("]8;;https://evil.example/click me]8;; [2J[H]0;pwned done")


def test_json_is_never_wrapped_or_coloured(project: Path) -> None:
    code, out = on_tty(["status", "--json"], project)
    assert code == 0 and "\x1b" not in out
    rows = json.loads(out)
    assert rows[0]["summary"] == LONG


def test_reprs_pass_no_control_character_from_a_summary() -> None:
    """repr()/str() of a GateResult and a StatusTable are what notebooks, CI logs and
    `relnb run` print: ESC, BEL, OSC and other C0/C1 characters never get through."""
    hostile = GateResult("A2", Status.FAILED, PAYLOAD + "\x9b2J\r\nnext", title="Docs\x1b[5m")
    table = StatusTable("1.0\x1b]0;t\x07", (hostile,), {"A": "Pre-merge\x07"})
    for text in (repr(hostile), str(hostile), repr(table), str(table), table.render(WIDTH)):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text)
        assert "click me" in " ".join(text.split()) and "done" in text  # the words stay, the controls go
    assert "\n" not in repr(hostile)  # one line: a summary cannot tear the table
    assert hostile.summary == PAYLOAD + "\x9b2J\r\nnext"  # the record itself is untouched


@pytest.mark.parametrize("command", ["status", "show", "verify"])
def test_a_command_without_an_id_means_the_only_open_release(project: Path, command: str) -> None:
    """issue 21: `relnb status`/`show`/`verify` needed an id even with one open release."""
    proc = piped([command], project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1.0.0" in proc.stdout
    subprocess.run([*RELNB, "new", "1.1.0"], cwd=project, env=env_for(), check=True, capture_output=True)
    proc = piped([command], project)
    assert proc.returncode == 3
    assert f"name one: relnb {command} <id>" in proc.stderr, proc.stderr


def test_status_without_an_id_names_the_ids_to_choose_from(project: Path) -> None:
    monkey_env = env_for()
    subprocess.run([*RELNB, "new", "1.1.0"], cwd=project, env=monkey_env, check=True, capture_output=True)
    proc = piped(["status"], project)
    assert proc.returncode == 3
    [line] = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "2 releases are open: 1.0.0, 1.1.0" in line and "relnb status <id>" in line
    empty = make_project(project.parent / "empty")
    (empty / "relnb.toml").write_text(CONFIG.format(log=empty / "actions.log"))
    proc = piped(["status"], empty)
    assert proc.returncode == 3
    [line] = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "no open release" in line and "relnb new <version>" in line


@pytest.mark.parametrize(
    "args, meant",
    [(["stauts"], "did you mean `relnb status`?"), (["verfy", "1.0.0"], "did you mean `relnb verify`?"),
     (["new", "2.0", "--format", "ipnb"], "did you mean 'ipynb'?")],
)
def test_a_mistyped_command_gets_a_suggestion(project: Path, args: list[str], meant: str) -> None:
    proc = piped(args, project)
    assert proc.returncode == 3
    [line] = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert meant in line, line


@pytest.mark.parametrize("args", [["list"], ["verify", "1.0.0"], ["status", "1.0.0"], ["show", "1.0.0"]])
def test_a_reader_that_goes_away_ends_the_output_quietly(project: Path, args: list[str]) -> None:
    """`relnb list | head`: the reader closed its end before relnb wrote; no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([*RELNB, *args], cwd=project, env=env_for(), stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.stderr == "", proc.stderr
    assert proc.returncode == 0


def test_a_headless_run_whose_reader_went_away_still_finishes_the_release(project: Path) -> None:
    """`relnb run … | head -1` must not stop the release half way: the journal is the record."""
    subprocess.run([*RELNB, "new", "2.0.0"], cwd=project, env=env_for(), check=True, capture_output=True)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([*RELNB, "run", "notebooks/release-2.0.0.py"], cwd=project,
                              env=env_for(), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    journal = [json.loads(ln) for ln in (project / "releases" / "2.0.0" / "journal.jsonl").read_text().splitlines()]
    finished = {e["payload"].get("gate") or e["payload"].get("action") for e in journal if e["type"].endswith("-finished")}
    assert {"A1", "A2", "E1"} <= finished, finished  # from the first section to the last
    assert proc.returncode in (1, 2)  # the verdict's exit code (pending sign-offs), as unpiped
