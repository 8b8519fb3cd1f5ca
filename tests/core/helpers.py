"""Small builders for core tests: a project directory with a git repo and a relnb.toml."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_project(root: Path, toml: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "init"],
        cwd=root,
        check=True,
    )
    (root / "relnb.toml").write_text(toml)
    return root
