"""`relnb run --waive ID=REASON` (issue 20): a headless waiver, with the identity rule of sign-offs.

A real release runs headlessly in a real git project: the CI command fails, so A1 fails and the
promotion guard holds section D back. `--waive A1=...` accepts that failure in the operator's
name: the journal gets a waiver event (approver, reason, the status it waives), the failure stays
on record, and the production step that was held back runs in the same `relnb run`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relnb import GATES

from .helpers import commit, make_project
from .test_cli import CONFIG

RELNB = [sys.executable, "-m", "relnb.cli"]
LEAD = "Lead <lead@example.org>"
REASON = "CI runner lost its network, OPS-42"


def relnb(*args: str, cwd: Path, user: str = LEAD) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELNB_USER": user}
    env.pop("RELNB_ROOT", None)
    env.pop("RELNB_SIGNOFFS", None)
    return subprocess.run([*RELNB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "proj")
    failing_ci = CONFIG.format(log=root / "actions.log").replace(
        "command = \"echo '3 passed'\"", "command = \"echo '2 failed, 1 passed'; exit 1\""
    )
    assert "exit 1" in failing_ci
    (root / "relnb.toml").write_text(failing_ci)
    assert relnb("new", "1.0.0", cwd=root).returncode == 0
    return root


def events(root: Path) -> list[dict]:
    lines = (root / "releases" / "1.0.0" / "journal.jsonl").read_text().splitlines()
    return [json.loads(ln) for ln in lines]


def run_args() -> list[str]:
    """A–C settled by sign-offs (but A1, the failing check, and B2, an action), B2 and D2
    confirmed, the optional gates skipped: the release gets as far as A1's failure lets it."""
    args = ["notebooks/release-1.0.0.py", "--confirm", "B2,D2"]
    for g in GATES:
        if g.section in "ABC" and not g.optional and g.id not in ("A1", "B2"):
            args += ["--sign-off", f"{g.id}=Reviewer <reviewer@example.org>:checked by hand"]
    return [*args, "--skip", "B3=no images", "--skip", "D1=no safe mode"]


def snapshots(root: Path) -> int:
    log = root / "actions.log"
    return log.read_text().splitlines().count("snapshot") if log.exists() else 0


def test_a_failure_of_this_run_is_waived_and_what_it_held_back_runs(project: Path) -> None:
    proc = relnb("run", *run_args(), "--waive", f"A1={REASON}", cwd=project)
    out = proc.stdout
    # A1 failed in this run; the waiver accepted it; D2 (held back by the guard) then ran
    assert proc.returncode == 2, out + proc.stderr  # D3… were not confirmed: pending, not failed
    assert "verdict: pending (exit 2)" in out
    assert "A1   FAILED" in out and "A1   WAIVED       by Lead <lead@example.org> [UNSIGNED]" in out
    [waiver] = [e for e in events(project) if e["type"] == "waiver"]
    assert waiver["payload"]["gate"] == "A1"
    assert waiver["payload"]["reason"] == REASON
    assert waiver["payload"]["waives"] == "failed"
    assert waiver["payload"]["approver"]["email"] == "lead@example.org"
    finished = [e for e in events(project) if e["type"] == "gate-finished" and e["payload"].get("gate") == "A1"]
    assert [e["payload"]["status"] for e in finished] == ["failed"]  # the failure stays on record
    assert snapshots(project) == 1, out
    table = relnb("status", "1.0.0", cwd=project).stdout
    assert "A1  WAIVED" in table and REASON in table and "D2  PASS" in table


def test_a_recorded_failure_is_waived_before_the_notebook_runs(project: Path) -> None:
    first = relnb("run", *run_args(), cwd=project)
    assert first.returncode == 1 and "verdict: failed" in first.stdout, first.stdout + first.stderr
    assert snapshots(project) == 0  # the guard held D2 back
    second = relnb("run", *run_args(), "--waive", f"A1={REASON}", cwd=project)
    assert second.returncode == 2, second.stdout + second.stderr
    evs = events(project)
    waiver_seq = next(e["seq"] for e in evs if e["type"] == "waiver")
    a1_runs = [e["seq"] for e in evs if e["type"] == "gate-started" and e["payload"].get("gate") == "A1"]
    assert len(a1_runs) == 1 and a1_runs[0] < waiver_seq  # waived as recorded, not run again
    assert snapshots(project) == 1


def test_a_waiver_for_a_gate_that_did_not_fail_is_not_used(project: Path) -> None:
    proc = relnb("run", *run_args(), "--waive", "A2=not needed", cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # A1 still failed
    assert "--waive A2 not used: A2 is passed" in proc.stdout
    assert not [e for e in events(project) if e["type"] == "waiver"]


@pytest.mark.parametrize(
    "value, user, needle",
    [
        ("A1", LEAD, "--waive 'A1' names no reason (no '=')"),
        ("A1=   ", LEAD, "--waive 'A1=   ' has an empty reason"),
        ("Z9=flaky", LEAD, "--waive 'Z9=flaky': unknown gate ID 'Z9'"),
        ("A1=flaky", "ci", "--waive: the approver 'ci' names no email"),
    ],
)
def test_a_malformed_waiver_or_an_approver_without_email_exits_3_before_anything_runs(
    project: Path, value: str, user: str, needle: str
) -> None:
    before = (project / "releases" / "1.0.0" / "journal.jsonl").read_bytes()
    proc = relnb("run", *run_args(), "--waive", value, cwd=project, user=user)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "—" in lines[0]  # the fix follows
    assert (project / "releases" / "1.0.0" / "journal.jsonl").read_bytes() == before
    assert proc.stdout == ""


def test_with_signing_on_the_waiver_is_signed_and_four_eyes_holds(tmp_path: Path) -> None:
    """[signing] enabled: `--waive` is signed with the operator's key like a sign-off; the release
    lead's own waiver is refused (four-eyes), leaving the failure as it was."""
    assert shutil.which("ssh-keygen"), "ssh-keygen is required (apt-get install openssh-client)"
    keys = tmp_path / "keys"
    keys.mkdir()
    pubs = {}
    for who in ("alice", "bob"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(keys / who)],
                       check=True, timeout=60)
        pubs[who] = " ".join((keys / f"{who}.pub").read_text().split()[:2])
    root = make_project(tmp_path / "proj")
    config = CONFIG.format(log=root / "actions.log").replace(
        "command = \"echo '3 passed'\"", "command = \"echo '2 failed'; exit 1\""
    ).replace('name = "demo"', 'name = "demo"\nrelease_lead = "Alice <alice@example.com>"')
    commit(root, {
        "relnb.toml": config + "[signing]\nenabled = true\n",
        ".relnb/allowed_signers": f'alice@example.com namespaces="relnb" {pubs["alice"]}\n'
                                  f'bob@example.com namespaces="relnb" {pubs["bob"]}\n',
    }, "relnb with signing")
    assert relnb("new", "1.0.0", cwd=root, user="Alice <alice@example.com>").returncode == 0

    def run(who: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RELNB_USER": f"{who.title()} <{who}@example.com>", "RELNB_SIGNING_KEY": str(keys / who)}
        for var in ("RELNB_ROOT", "RELNB_SIGNOFFS", "SSH_AUTH_SOCK"):
            env.pop(var, None)
        return subprocess.run([*RELNB, "run", *run_args(), "--waive", f"A1={REASON}"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)

    lead = run("alice")
    assert lead.returncode == 1, lead.stdout + lead.stderr  # A1 stays failed
    [refused] = [ln for ln in lead.stdout.splitlines() if "--waive A1 not recorded:" in ln]
    assert "four-eyes" in refused or "release lead" in refused, refused
    assert not [e for e in events(root) if e["type"] == "waiver"]
    assert snapshots(root) == 0

    other = run("bob")
    assert other.returncode == 2, other.stdout + other.stderr
    [waiver] = [e for e in events(root) if e["type"] == "waiver"]
    approval = waiver["payload"]["approval"]
    assert approval["signature"] and approval["principal"] == "bob@example.com"
    assert waiver["payload"]["approver"]["email"] == "bob@example.com"
    assert "WAIVED       by bob <bob@example.com> [signed by bob@example.com (SHA256:" in other.stdout
    assert snapshots(root) == 1
    verify = relnb("verify", "1.0.0", cwd=root)
    assert verify.returncode == 0, verify.stdout + verify.stderr
