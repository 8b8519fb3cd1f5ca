"""Projects with a real git history and releases built through relnb's public API and CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from relnb import GATES, Kind, Outcome, Release, Status

from ..core.helpers import git

RELNB = [sys.executable, "-m", "relnb.cli"]
LEAD = "Lead <lead@example.org>"

REVIEWER = "Reviewer <reviewer@example.org>"
OPS = "Ops <ops@example.org>"  # a second person: approves waivers of the lead's release
# The gates a project without services lists manual, so that a notebook release of it can
# really finish: a person's sign-off is then what settles them, the legal way (a sign-off of an
# automatic check would not count). A1 runs its CI command; A6 has no runbooks to read and is
# waived; B2/D2/D3/D4 run their commands once, F1 tags and F2 reads the incidents.
NO_SERVICES = ("A2", "B1", "B4", "B5", "B6", "B7", "B8", "B9", "C1", "C2", "C3", "C4", "C5", "D5", "D7", "E1", "E2", "E3")
CONFIG = """
[project]
name = "demo"
migrations_kind = "none"
[gates]
manual = [{manual}]
[ci]
command = "echo '3 passed'"
[environments.staging]
base_url = "http://127.0.0.1:9"
[environments.staging.commands]
migrate = "echo migrated-staging >> {log}"
[environments.production]
base_url = "http://127.0.0.1:9"
version_path = ""
[environments.production.commands]
deploy = "echo deployed >> {log}"
snapshot = "echo snapshot >> {log}"
migrate = "echo migrated-production >> {log}"
"""


def project_with_history(root: Path, *, manual: Iterable[str] = ()) -> Path:
    """A project released once (v1.0.0) with conventional commits since: changelog material.

    `manual` is its `[gates] manual` list: NO_SERVICES for a release run by its notebook; none for
    releases built through the API, whose checks are run with the evidence the test gives them.
    """
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    manual = ", ".join(f'"{g}"' for g in manual)
    (root / "relnb.toml").write_text(CONFIG.format(log=root / "actions.log", manual=manual))
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


def signed_off_run_args(manual: Iterable[str] = NO_SERVICES) -> list[str]:
    """Sign-offs for every gate a person settles in the test config: the sign-off gates and the
    checks it lists manual (a sign-off of any other gate would not count)."""
    args = []
    for g in GATES:
        if g.kind is Kind.SIGN_OFF or g.id in manual:
            args += ["--sign-off", f"{g.id}={REVIEWER}:checked by hand"]
    return args


def finish(r: Release) -> None:
    """Settle every gate still open the way its kind allows, so the release ends "passed" and
    may be sealed: optional gates skipped with a reason, sign-off gates (and checks the project
    lists manual) signed off on gathered evidence by a reviewer with a note, actions run once,
    confirmed, and checks run on passing evidence. A gate that failed is the caller's to waive
    (by a second person) or fix first: finishing never hides a failure."""
    from relnb.checklist import takes_sign_off

    manual = r.config.data["gates"]["manual"]
    for g in GATES:
        current = r.result(g.id)
        assert not current.status.is_failure, f"waive or fix {g.id} before finishing: {current}"
        if current.status.ok_for_promotion:
            continue
        if g.optional:
            r.skip(g.id, reason="not needed in this release")
        elif takes_sign_off(g.id, manual):
            r.request_sign_off(g.id, evidence=lambda: Outcome.passed("evidence gathered for the reviewer"))
            r.sign_off(g.id, by=REVIEWER, note="checked by hand")
        elif g.kind is Kind.ACTION:
            r.action(g.id, lambda g=g: Outcome.passed(f"{g.id} done"), confirmed=True)
        else:
            r.run(g.id, lambda: Outcome.passed("ok"))
        assert r.result(g.id).status.ok_for_promotion, r.result(g.id)
    assert r.state.verdict() == "passed", r.state.seal_blockers()


def notebook_release(root: Path, version: str = "1.1.0") -> Path:
    """A finished release produced by its notebook (`relnb new` + `relnb run`), in two runs as a
    lead would: the first stops before production at A6 (no runbooks configured), which a second
    person waives; the second reads everything settled back and runs section D and F1. F3 is then
    confirmed through the API: confirming F3 in the run would also seal the release there (the
    archive cell shares F3's confirmation), and callers archive it themselves."""
    relnb("new", version, cwd=root, check=True)
    nb = root / "notebooks" / f"release-{version}.py"
    args = [
        *signed_off_run_args(),
        "--confirm",
        "B2,D,F1",
        "--skip",
        "D1=no risky migration",
        "--skip",
        "D6=no tokens",
        "--skip",
        "B3=no images",
    ]
    first = relnb("run", str(nb), *args, cwd=root)
    assert first.returncode == 1, first.stdout + first.stderr
    r = Release.open(version, root=root)
    try:
        assert r.result("A6").status.is_failure and r.result("D2").status is Status.PENDING, r.result("A6")
        r.waive("A6", approver=OPS, reason="runbooks live in the wiki, linked from the ticket")
    finally:
        r.close()
    second = relnb("run", str(nb), *args, cwd=root)
    assert second.returncode == 2 and "F3  PENDING" in second.stdout, second.stdout + second.stderr
    r = Release.open(version, root=root)
    try:
        assert r.act("F3", confirmed=True).status is Status.PASSED, r.result("F3")
        assert r.state.verdict() == "passed", r.state.seal_blockers()
    finally:
        r.close()
    return root / "releases" / version
