"""Small builders for tests: a project directory with a git repo and a relnb.toml, a green A–C."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import relnb
from relnb import Outcome


def git(root: Path, *args: str, date: str | None = None) -> str:
    """git in `root` as an isolated user T (no system or global config), optionally at `date`."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    out = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"git {' '.join(args)}: {out.stderr}"
    return out.stdout.strip()


def commit(
    root: Path,
    files: dict[str, str | None],
    message: str,
    *,
    tag: str | None = None,
    executable: tuple[str, ...] = (),
) -> str:
    """Write (or, for None, remove) `files`, commit them, optionally tag; returns the SHA."""
    for name, text in files.items():
        p = root / name
        if text is None:
            git(root, "rm", "-q", name)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if name in executable:
            p.chmod(0o755)
        git(root, "add", name)
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    if tag:
        git(root, "tag", "-a", tag, "-m", tag)
    return git(root, "rev-parse", "HEAD")


class Repo:
    """A real git repository in a test's directory, written through git itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return git(self.path, *args)

    def commit(self, files: dict[str, str | None], message: str, **kw: Any) -> str:
        return commit(self.path, files, message, **kw)


def make_project(root: Path, toml: str = "") -> Path:
    """A git repository with one commit and `toml` as its relnb.toml (uncommitted)."""
    Repo(root).commit({}, "init")
    (root / "relnb.toml").write_text(toml)
    return root


def all_green(r: relnb.Release, *, except_: tuple[str, ...] = ()) -> None:
    """Settle every gate of A–C the cheapest way its kind allows, and skip D1 (safe mode), so
    section D's steps are reachable in order from D2."""
    for gate in relnb.GATES:
        if gate.id == "D1" and "D1" not in except_:
            r.skip("D1", reason="no safe mode needed")
            continue
        if gate.section not in "ABC" or gate.id in except_:
            continue
        if gate.optional:
            r.skip(gate.id, reason="not needed")
        elif gate.kind is relnb.Kind.ACTION:
            r.action(gate.id, lambda: Outcome.passed("done"), confirmed=True)
        elif gate.kind is relnb.Kind.SIGN_OFF:
            r.request_sign_off(gate.id, evidence=lambda: Outcome.passed("evidence"))
            r.sign_off(gate.id, by="Reviewer <reviewer@example.org>", note="checked")
        else:
            r.run(gate.id, lambda: Outcome.passed("ok"))
