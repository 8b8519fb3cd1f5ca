"""Projects with a real git history and releases built through relnb's public API and CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..core.helpers import git

RELNB = [sys.executable, "-m", "relnb.cli"]
LEAD = "Lead <lead@example.org>"

CONFIG = """
[project]
name = "demo"
[gates]
manual = ["A2", "A6", "B1", "B4", "B9"]
[ci]
command = "echo '3 passed'"
[environments.staging]
base_url = "http://127.0.0.1:9"
[environments.staging.commands]
migrate = "echo migrated-staging >> {log}"
[environments.production]
base_url = "http://127.0.0.1:9"
[environments.production.commands]
deploy = "echo deployed >> {log}"
snapshot = "echo snapshot >> {log}"
migrate = "echo migrated-production >> {log}"
"""


def project_with_history(root: Path) -> Path:
    """A project released once (v1.0.0) with conventional commits since: changelog material."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / "relnb.toml").write_text(CONFIG.format(log=root / "actions.log"))
    git(root, "add", "relnb.toml")
    git(root, "commit", "-q", "-m", "chore: init", date="2026-01-01T10:00:00+00:00")
    git(root, "tag", "v1.0.0")
    (root / "app.py").write_text("x = 1\n")
    git(root, "add", "app.py")
    git(
        root,
        "commit",
        "-q",
        "-m",
        "feat(api): analytics summary endpoint",
        date="2026-01-02T10:00:00+00:00",
    )
    git(
        root,
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "fix: upload retries on 503",
        date="2026-01-03T10:00:00+00:00",
    )
    return root


def relnb(
    *args: str,
    cwd: Path,
    env: dict | None = None,
    check: bool = False,
    prefix: list[str] | None = None,
):
    e = {**os.environ, "RELNB_USER": LEAD, **(env or {})}
    e.pop("RELNB_ROOT", None)
    e.setdefault("HOME", str(cwd))
    proc = subprocess.run(
        [*(prefix or []), *RELNB, *args],
        cwd=cwd,
        env=e,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def signed_off_run_args() -> list[str]:
    """Sign-offs for every non-optional A–C gate not automated in the test config."""
    from relnb import GATES

    args = []
    for g in GATES:
        if g.section in "ABC" and not g.optional and g.id not in ("A1", "B2"):
            args += ["--sign-off", f"{g.id}=Reviewer <r@example.org>:checked by hand"]
    return args


def notebook_release(root: Path, version: str = "1.1.0") -> Path:
    """A release produced by its notebook (`relnb new` + `relnb run`), reaching section D and F."""
    relnb("new", version, cwd=root, check=True)
    nb = root / "notebooks" / f"release-{version}.py"
    args = [
        *signed_off_run_args(),
        "--confirm",
        "B2,D",
        "--skip",
        "D1=no risky migration",
        "--skip",
        "D6=no tokens",
        "--skip",
        "B3=no images",
    ]
    proc = relnb("run", str(nb), *args, cwd=root)
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    return root / "releases" / version
