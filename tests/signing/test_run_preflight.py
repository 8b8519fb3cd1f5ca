"""`relnb run` with `[signing] required = true`: a missing pre-signed approval stops the run before
anything executes (pending exit code, gate and role named); a complete approvals file from
`relnb sign` is consumed by the run, sign-offs and skips alike. Real CLI subprocesses, real keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..core.helpers import commit, git
from .conftest import ALICE, BOB, Keys, Repo

RELNB = [sys.executable, "-m", "relnb.cli"]
EXIT_PENDING = 2

CONFIG = f"""
[project]
name = "signed"
release_lead = "Alice <{ALICE}>"
migrations_kind = "none"
[signing]
required = true
[signing.gates]
A3 = ["db-reviewer"]
[environments.staging]
base_url = "http://127.0.0.1:9"
version_timeout = "3s"
[environments.production]
base_url = "http://127.0.0.1:9"
version_timeout = "3s"
"""


def relnb(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "RELNB_USER": f"Alice <{ALICE}>", "MARIMO_SKIP_UPDATE_CHECK": "1"}
    for var in ("RELNB_ROOT", "RELNB_SIGNING_KEY", "RELNB_SIGNOFFS", "SSH_AUTH_SOCK"):
        e.pop(var, None)
    e.update(env or {})
    return subprocess.run(
        [*RELNB, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=300, check=False
    )


def _project(repo: Repo) -> Path:
    # the previous release, so that A3/A4 have evidence to sign off: a sign-off never settles a
    # gate whose evidence is inconclusive ("no previous release tag"), issue 19 item 1
    git(repo.path, "tag", "v0.9.0", repo.sha_before)
    commit(repo.path, {"relnb.toml": CONFIG}, "relnb config")
    new = relnb("new", "1.0.0", cwd=repo.path)
    assert new.returncode == 0, new.stdout + new.stderr
    return repo.path


def _sign(root: Path, keys: Keys, who: str, gate: str, *extra: str) -> None:
    out = relnb("sign", "1.0.0", gate, "--key", str(keys.priv(who)), *extra, cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PRIVATE KEY" not in out.stdout + out.stderr


def _events(root: Path) -> list[dict]:
    path = root / "releases" / "1.0.0" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_missing_presigned_approval_is_pending_before_anything_runs(repo: Repo, keys: Keys):
    root = _project(repo)
    _sign(root, keys, "alice", "A4", "--note", "expand/contract")
    _sign(root, keys, "alice", "A5", "--note", "no flag needed")
    approvals = root / "releases" / "1.0.0" / "approvals.json"
    before = _events(root)
    nb = "notebooks/release-1.0.0.py"

    run = relnb("run", nb, "--sign-offs", str(approvals), "--confirm", "all", cwd=root)
    assert run.returncode == EXIT_PENDING, run.stdout + run.stderr
    assert "A3 needs a signed sign-off by a principal with role db-reviewer" in run.stdout
    assert "not started" in run.stdout
    assert "pending: A4" not in run.stdout and "pending: A5" not in run.stdout  # those are signed
    assert _events(root) == before  # nothing ran: no gate started, no approval consumed

    # the same file through $RELNB_SIGNOFFS instead of --sign-offs
    env_run = relnb("run", nb, cwd=root, env={"RELNB_SIGNOFFS": str(approvals)})
    assert env_run.returncode == EXIT_PENDING, env_run.stdout + env_run.stderr
    assert "A3 needs a signed sign-off by a principal with role db-reviewer" in env_run.stdout
    assert _events(root) == before

    # a plain, unsigned sign-off cannot stand in for it when signing is required
    plain = relnb("run", nb, "--sign-off", f"A3=Bob <{BOB}>:looked at it", cwd=root)
    assert plain.returncode == EXIT_PENDING, plain.stdout + plain.stderr
    assert "A3 needs a signed sign-off by a principal with role db-reviewer" in plain.stdout
    assert _events(root) == before


def test_complete_presigned_file_is_consumed_by_the_run(repo: Repo, keys: Keys):
    root = _project(repo)
    _sign(root, keys, "bob", "A3", "--note", "reviewed the SQL")
    _sign(root, keys, "alice", "A4", "--note", "expand/contract")
    _sign(root, keys, "alice", "A5", "--note", "no flag needed")
    _sign(root, keys, "alice", "D1", "--kind", "skip", "--reason", "no risky migration")
    approvals = root / "releases" / "1.0.0" / "approvals.json"

    run = relnb("run", "notebooks/release-1.0.0.py", "--sign-offs", str(approvals), cwd=root)
    assert "not started" not in run.stdout, run.stdout + run.stderr
    assert run.returncode in (1, 2), run.stdout + run.stderr  # unconfigured checks stay open
    events = _events(root)
    signed = {
        e["payload"]["gate"]: (e["type"], e["payload"]["approval"]["principal"])
        for e in events
        if e["type"] in ("sign-off", "skip")
    }
    assert signed == {
        "A3": ("sign-off", BOB),
        "A4": ("sign-off", ALICE),
        "A5": ("sign-off", ALICE),
        "D1": ("skip", ALICE),  # the pre-signed skip is the decision to skip, in its signed words
    }
    # progress lines name the signer and key; nothing is marked unsigned
    assert f"A3   SIGNED OFF   by bob <{BOB}> [signed by {BOB} (SHA256:" in run.stdout
    assert "UNSIGNED" not in run.stdout

    verify = relnb("verify", "1.0.0", cwd=root)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "4 validly signed, 0 unsigned" in verify.stdout


def test_a_forced_rerun_without_a_key_is_named_before_anything_runs(repo: Repo, keys: Keys):
    """issue 21: a forced re-run with signing required and no key ended mid-run in a
    SigningRefused traceback; it is a missing approval, named before anything runs."""
    root = _project(repo)
    for who, gate in (("bob", "A3"), ("alice", "A4"), ("alice", "A5")):
        _sign(root, keys, who, gate, "--note", "checked")
    approvals = root / "releases" / "1.0.0" / "approvals.json"
    before = _events(root)
    run = relnb("run", "notebooks/release-1.0.0.py", "--sign-offs", str(approvals), "--rerun", "A1",
                "--rerun-reason", "CI flaked", cwd=root)
    assert run.returncode == EXIT_PENDING, run.stdout + run.stderr
    assert "A1 needs a signed force" in run.stdout, run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    assert _events(root) == before
