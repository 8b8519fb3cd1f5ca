"""relnb.git: the one way relnb asks git, which answers rather than raises."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from relnb import git


def _repo(tmp_path: Path) -> Path:
    env = ["-c", "user.name=T", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    subprocess.run(["git", *env, "-C", str(tmp_path), "add", "-A"], check=True)
    for n, tag in enumerate(("v1.0.0", "v1.1.0", "other-2.0")):
        # a day apart: "newest" is by tag date, as releases are
        dated = {**os.environ, "GIT_COMMITTER_DATE": f"2024-01-0{n + 1}T10:00:00+00:00"}
        for cmd in (["commit", "-q", "--allow-empty", "-m", f"c{n}"], ["tag", "-a", tag, "-m", tag]):
            subprocess.run(["git", *env, "-C", str(tmp_path), *cmd], check=True, env=dated)
    return tmp_path


def test_answers_instead_of_raising(tmp_path, monkeypatch):
    assert git.output(tmp_path, "rev-parse", "HEAD") is None  # not a repository
    assert git.run(tmp_path, "rev-parse", "HEAD").returncode not in (0, 124)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    gone = git.run(tmp_path, "status")
    assert gone.returncode == 124 and "git" in gone.stderr


def test_non_utf8_content_comes_back(tmp_path):
    repo = _repo(tmp_path)
    shown = git.run(repo, "show", "HEAD:latin1.txt")
    assert shown.returncode == 0 and shown.stdout == "caf\ufffd\n"


def test_newest_tag_with_prefix_other_than_ours(tmp_path):
    repo = _repo(tmp_path)
    head = git.output(repo, "rev-parse", "HEAD")
    assert head and len(head) == 40
    assert git.newest_tag(repo, head, "v") == "v1.1.0"
    assert git.newest_tag(repo, head, "v", exclude="v1.1.0") == "v1.0.0"
    assert git.newest_tag(repo, "v1.0.0", "v", exclude="v1.0.0") is None
    assert git.newest_tag(repo, head, "nope-") is None
