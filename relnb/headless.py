"""`relnb run`: execute a release notebook without a browser, narrating from the journal.

The notebook runs in a child process (`python notebook.py` for marimo, nbclient for .ipynb) with
the operator's decisions passed by environment (confirmations, sign-offs, re-runs, skips). The
parent never writes the journal: it tails it to print progress and heartbeats, scrubs everything
the child prints, and afterwards folds the journal into the verdict, JUnit and exit code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import Config, parse_duration
from .errors import JournalLocked, RelnbError, UsageError
from .eventtext import describe_event
from .gates import get_gate
from .identity import Identity, require_email, whoami
from .journal import JOURNAL_NAME, ensure_unlocked, tail_events
from .notebook_cache import refresh_header_cache
from .redact import scrub
from .release import Release, read_state, release_dir
from .runcontext import (
    ENV_APPROVALS,
    ENV_CONFIRM,
    ENV_HEADLESS,
    ENV_RERUN,
    ENV_RERUN_REASON,
    ENV_ROOT,
    ENV_SIGNOFFS,
    ENV_SKIPS,
    ENV_WINDOW_REASON,
    RunContext,
)
from .state import ReleaseState

EXIT_OK, EXIT_FAILED, EXIT_PENDING, EXIT_USAGE = 0, 1, 2, 3
HEARTBEAT_S = 60.0
_OPEN_CALL = re.compile(r"""Release\.open\(\s*\\?["']([^"'\\]+)\\?["']""")


@dataclass
class RunOptions:
    notebook: Path
    junit: Path | None = None
    sign_offs: dict[str, dict[str, Any]] = field(default_factory=dict)
    confirm: list[str] = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)
    skips: dict[str, str] = field(default_factory=dict)
    window: str | None = None
    # why the windows are shorter than configured: each such window is then waived in these words
    window_reason: str | None = None
    rerun_reason: str | None = None
    timeout_s: float = 6 * 3600
    extra_env: dict[str, str] = field(default_factory=dict)
    # a `relnb sign` file: its approvals are checked before the run and consumed by it
    approvals: Path | None = None
    # `--waive ID=REASON`: a failure of these gates, found before or during the run, is waived
    # in these words by the operator (signed like a sign-off when [signing] is on)
    waivers: dict[str, str] = field(default_factory=dict)


def exit_code(state: ReleaseState) -> int:
    """0 only for a release that passed; pending waits for people (2); every other ending —
    failed, rolled back, rollback failed, abandoned — is a release that did not ship (1)."""
    return {"passed": EXIT_OK, "pending": EXIT_PENDING}.get(state.verdict(), EXIT_FAILED)


def release_id_of(notebook: Path) -> str:
    text = notebook.read_text(encoding="utf-8")
    m = _OPEN_CALL.search(text)
    if not m:
        raise UsageError(
            f"{notebook} does not open a release (no relnb.Release.open(\"<id>\") call)",
            path=str(notebook),
            fix="create release notebooks with `relnb new <version>`",
        )
    return m.group(1)


def parse_sign_off(text: str) -> tuple[str, dict[str, str]]:
    """`A3=Alice <alice@example.com>:reviewed the SQL` → ("A3", {"by": ..., "note": ...})."""
    if "=" not in text:
        raise UsageError(f"--sign-off {text!r}", fix="write ID=who:note, e.g. A3=Alice <a@x.org>:reviewed")
    gate, rest = text.split("=", 1)
    who, _, note = rest.partition(":")
    gid = get_gate(gate.strip()).id
    return gid, _sign_off_entry(f"--sign-off {text!r}", who, note)


def _sign_off_entry(where: str, who: str, note: str) -> dict[str, str]:
    """A sign-off given for a run: a person reachable afterwards (`Name <email>`) and what they
    checked. A bare name or an empty note would record a pass that says nothing."""
    from .identity import Identity, require_email

    fix = "write ID=Name <email>:what you checked, e.g. A3=Alice <a@x.org>:read the SQL"
    if not who.strip():
        raise UsageError(f"{where} names nobody", fix=fix)
    try:
        require_email(Identity.parse(who.strip()), where)
    except UsageError as exc:
        raise UsageError(exc.message, fix=fix) from None
    if not note.strip():
        raise UsageError(f"{where} has no note", fix=fix)
    return {"by": who.strip(), "note": note.strip()}


def waiver_approver() -> Identity:
    """Who waives in a headless run: the operator (RELNB_USER, else git's user), who must be
    reachable afterwards (`Name <email>`), the rule sign-offs follow. With [signing] on, the
    recorded identity is the signing key's principal (or the pre-signed waiver's)."""
    who = whoami()
    try:
        return require_email(who, "--waive")
    except UsageError:
        raise UsageError(
            f"--waive: the approver {str(who)!r} names no email",
            key="--waive",
            fix="run as `Name <email>`: set RELNB_USER='Name <email>' (or git config user.email)",
        ) from None


def load_sign_offs_file(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"sign-offs file {path} does not exist", path=str(path)) from None
    except ValueError as exc:
        raise UsageError(f"sign-offs file {path} is not JSON: {exc}", path=str(path), fix='write {"A3": {"by": "Name <email>", "note": "..."}}') from None
    from .signing.approvals_file import is_approvals_file, read_approvals, sign_offs_for_run

    if is_approvals_file(data):  # `relnb sign` output: pre-signed approvals, verified when used
        return sign_offs_for_run(read_approvals(path))
    if not isinstance(data, dict):
        raise UsageError(f"sign-offs file {path}: expected an object of gate IDs", path=str(path))
    out = {}
    for gate, entry in data.items():
        gid = get_gate(gate).id
        if not isinstance(entry, dict) or not entry.get("by"):
            raise UsageError(f"sign-offs file {path}: {gate} needs a 'by'", path=str(path), key=gate)
        out[gid] = _sign_off_entry(f"sign-offs file {path}: {gate}", str(entry["by"]), str(entry.get("note", "")))
    return out


def approvals_file_at(path: Path) -> Any:
    """The `relnb sign` file at `path`, or None when it is a plain sign-offs file."""
    from .signing.approvals_file import is_approvals_file, read_approvals

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # load_sign_offs_file reports unreadable files with their fix
    return read_approvals(path) if is_approvals_file(data) else None


def sign_off_gates(config: Config) -> list[str]:
    """Gates that a run settles by a person's sign-off, the way Release.check/act decide it."""
    from .checklist import takes_sign_off
    from .gates import GATE_IDS

    return [g for g in GATE_IDS if takes_sign_off(g, config.data["gates"]["manual"])]


def signing_preflight(opts: RunOptions, config: Config, state: ReleaseState) -> Any:
    """Before anything runs: are the approvals this run needs there, and valid?

    With `[signing] required = true` an approval that cannot be signed during the run (no
    pre-signed one, and no signing key on this machine to sign a given sign-off or skip) would
    leave the release pending after hours of work, so the run stops first and names each gate
    and the role it needs. Pre-signed approvals that are invalid (wrong release, key not in
    allowed_signers at the release SHA, policy) stop the run whenever signing is on.
    Returns None when there is nothing to check.
    """
    signing = config.data["signing"]
    if not (signing["enabled"] or signing["required"] or opts.approvals):
        return None
    from .results import Status
    from .signing import SigningSettings
    from .signing.approvals_file import preflight, read_approvals
    from .signing.keys import ENV_KEY, allowed_signers_at, resolve_key

    settings = SigningSettings.from_mapping(signing)
    file = read_approvals(opts.approvals) if opts.approvals else None
    needed: list[tuple[str, str]] = []
    if settings.required:
        repo = config.repo_path()
        key = opts.extra_env.get(ENV_KEY) or resolve_key(None, settings.key, repo=repo)
        for gid in sign_off_gates(config):
            if state.result(gid).status.ok_for_promotion or gid in opts.skips:
                continue
            given = opts.sign_offs.get(gid)
            if key and given and not given.get("approval"):
                continue  # signed during the run with this machine's key
            needed.append((gid, "sign-off"))
        for gid in opts.skips:
            if state.result(gid).status is not Status.SKIPPED and not key:
                needed.append((gid, "skip"))
        for gid in opts.waivers:
            if not state.result(gid).status.ok_for_promotion and not key:
                needed.append((gid, "waiver"))
        for gid in opts.rerun:  # a forced re-run is a signed decision too: said before, not mid-run
            if not key:
                needed.append((gid, "force"))
        production = {"ALL", "D"} | {c for c in opts.confirm if c.startswith("D")}
        if settings.min_production_approvers and production & set(opts.confirm):
            needed.append(("D", "promote"))
    if not needed and file is None:
        return None
    sha = state.created.get("git_sha")
    allowed = (
        allowed_signers_at(config.repo_path(), sha, settings.allowed_signers) if sha else None
    )
    return preflight(
        file,
        release_id=state.release_id,
        release_sha=sha or "",
        allowed_signers_text=allowed,
        policy=settings.policy(
            project_release_lead=config.project.get("release_lead"), created=state.created
        ),
        needed=needed,
    )


def run_notebook(
    opts: RunOptions,
    config: Config,
    *,
    emit: Callable[[str], None] = lambda s: print(s, flush=True),
) -> tuple[int, ReleaseState]:
    nb = opts.notebook
    if not nb.is_file():
        raise UsageError(f"notebook {nb} does not exist", path=str(nb), fix="check the path, or create one with `relnb new <version>`")
    if nb.suffix != ".ipynb":
        from importlib.util import find_spec

        if find_spec("marimo") is None:  # the child would die on `import marimo` mid-release
            raise UsageError(
                f"{nb} is a marimo notebook and marimo is not installed",
                path=str(nb),
                fix="pip install 'relnb[marimo]' (or create a Jupyter one: relnb new --format ipynb)",
            )
    rid = release_id_of(nb)
    state = read_state(rid, config=config)  # raises ReleaseNotFound (exit 3) before anything runs
    if state.sealed:
        raise UsageError(f"release {rid} is sealed (archived); nothing more can run in it", fix="start a new release")
    # an empty relnb.toml (or one without the release's environment) would run a whole release
    # about nothing, every gate failing on the missing config: refuse before anything is recorded
    config.require_environment(state.created.get("environment") or None)
    journal = release_dir(config.root, rid, config) / JOURNAL_NAME
    # another writer (a second `relnb run`, an open notebook) would make the child die on the lock
    # after the set-up cell, and its failure would read like a release that ran: refuse first
    ensure_unlocked(journal.parent)
    if opts.waivers:  # who waives is known before anything runs, not after hours of it
        waiver_approver()
    checked = signing_preflight(opts, config, state)
    if checked is not None and checked.invalid:  # a file the run was given that cannot be used
        where = f"approvals file {opts.approvals}" if opts.approvals else "approvals"
        raise UsageError(
            f"{where}: release {rid} not started: invalid approval: {'; '.join(checked.invalid)}",
            path=str(opts.approvals) if opts.approvals else None,
            fix=f"sign them again for this release with `relnb sign {rid} <gate>` and pass the new file with --sign-offs",
        )
    if checked is not None and checked.exit_code != EXIT_OK:
        emit(f"relnb run: release {rid} not started: approvals are missing or invalid")
        for line in checked.lines():
            emit(scrub(f"  {line}"))
        emit(f"  sign them in advance with `relnb sign {rid} <gate> --key <your key>`, then pass the file with --sign-offs")
        if opts.junit:
            from .junit import write_junit

            write_junit(state, opts.junit)
        return checked.exit_code, state
    deadline = time.monotonic() + opts.timeout_s
    waived = _apply_waivers(opts, config, rid, emit)  # failures already on record
    rc, output = _run_child(opts, config, nb, rid, journal, emit, deadline)
    runs = 1
    # a failure of this run that the operator waived in advance is waived now; when that leaves
    # nothing failed, the notebook runs again, so the gates the failure held back (section D
    # behind the promotion guard, the steps after a failed one) run in this same `relnb run`
    while True:
        fresh = _apply_waivers(opts, config, rid, emit)
        waived |= fresh
        state = read_state(rid, config=config)
        if not fresh or rc != 0 or runs > len(opts.waivers) or state.verdict() != "pending":
            break
        if time.monotonic() >= deadline:
            break
        emit(f"relnb run: {', '.join(sorted(fresh))} waived; running the notebook again for the gates it held back")
        rc, output = _run_child(replace(opts, rerun=[], rerun_reason=None), config, nb, rid, journal, emit, deadline)
        runs += 1
    for gid in sorted(g for g in set(opts.waivers) - waived if not state.result(g).status.is_failure):
        emit(f"relnb run: --waive {gid} not used: {gid} is {state.result(gid).status} (only a failed, "
             "inconclusive or interrupted gate is waived)")
    refresh_header_cache(rid, config=config, notebook=nb, note=emit, state=state)  # what marimo edit shows on open
    if opts.junit:
        from .junit import write_junit

        write_junit(state, opts.junit)
    code = exit_code(state)
    if rc != 0:
        tail = "\n".join(output.strip().splitlines()[-60:])
        emit(f"relnb run: the notebook process exited {rc}; its last output:\n{tail}")
        code = EXIT_FAILED
    return code, state


def _apply_waivers(opts: RunOptions, config: Config, rid: str, emit: Callable[[str], None]) -> set[str]:
    """Record the operator's `--waive` for each of its gates that is failed, inconclusive or
    interrupted now (the only ones a waiver may accept), through the public Release API.
    A waiver the rules refuse (four-eyes, signing required without a key) leaves the gate as
    it is and says why, like a refused sign-off. Returns the gates waived."""
    state = read_state(rid, config=config)
    todo = [g for g in opts.waivers if state.result(g).status.is_failure]
    if not todo:
        return set()
    approver = waiver_approver()
    release = Release.open(rid, config=config)
    waived: set[str] = set()
    try:
        release.context = RunContext(headless=True)
        if opts.approvals:  # a waiver signed in advance for these words is used for it
            release.context.add_approvals(Path(opts.approvals))
        for gid in todo:
            try:
                release.waive(gid, approver=approver, reason=opts.waivers[gid])
            except RelnbError as exc:
                emit(scrub(f"relnb run: --waive {gid} not recorded: {exc}"))
                continue
            waived.add(gid)
            line = describe_event(release.journal.events[-1])
            if line is not None:
                emit(scrub(line.column()))
    finally:
        release.close()
    return waived


def _run_child(
    opts: RunOptions, config: Config, nb: Path, rid: str, journal: Path, emit: Callable[[str], None], deadline: float
) -> tuple[int, str]:
    """One execution of the notebook in a child process, narrated from the journal; returns its
    exit status and its (scrubbed) output."""
    offset = journal.stat().st_size
    with tempfile.TemporaryDirectory(prefix="relnb-run-") as tmp:
        env = {**os.environ, **opts.extra_env, ENV_HEADLESS: "1", ENV_ROOT: str(config.root)}
        env[ENV_CONFIRM] = ",".join(opts.confirm)
        env[ENV_RERUN] = ",".join(opts.rerun)
        if opts.rerun_reason:
            env[ENV_RERUN_REASON] = opts.rerun_reason
        if opts.window_reason:
            env[ENV_WINDOW_REASON] = opts.window_reason
        env[ENV_SKIPS] = json.dumps(opts.skips)
        if opts.window:
            parse_duration(opts.window, where="--window")
            env["RELNB_WINDOW"] = opts.window
        if opts.sign_offs:
            so = Path(tmp) / "sign-offs.json"
            so.write_text(json.dumps(opts.sign_offs))
            env[ENV_SIGNOFFS] = str(so)
        if opts.approvals:
            env[ENV_APPROVALS] = str(Path(opts.approvals).resolve())
        env.setdefault("MARIMO_SKIP_UPDATE_CHECK", "1")
        if nb.suffix == ".ipynb":
            cmd = [sys.executable, "-m", "relnb._ipynb_runner", str(nb)]
        else:
            cmd = [sys.executable, str(nb)]
        emit(f"relnb run: release {rid}, notebook {nb}")
        log_path = Path(tmp) / "child.log"
        t0 = time.monotonic()
        with log_path.open("w") as log:
            proc = subprocess.Popen(cmd, cwd=config.root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            last_beat = time.monotonic()
            last_samples = 0
            stop = threading.Event()
            try:
                while True:
                    done = proc.poll() is not None
                    events, offset = tail_events(journal, offset)
                    for ev in events:
                        if ev.get("type") == "sample":
                            last_samples += 1
                            continue
                        line = describe_event(ev)
                        if line is not None:
                            emit(scrub(line.column()))
                    now = time.monotonic()
                    if now - last_beat >= HEARTBEAT_S:
                        emit(f"… still running after {now - t0:.0f} s ({last_samples} monitoring samples so far)")
                        last_beat = now
                    if done:
                        break
                    if now > deadline:
                        proc.kill()
                        emit(f"relnb run: timed out after {opts.timeout_s:.0f} s; the notebook was stopped")
                        break
                    stop.wait(0.25)
            except KeyboardInterrupt:
                proc.terminate()
                proc.wait(timeout=30)
                raise
        rc = proc.wait()
        output = scrub(log_path.read_text(errors="replace"))
    locked = next((ln for ln in output.splitlines() if ln.startswith("relnb.errors.JournalLocked: ")), None)
    if rc != 0 and locked is not None:  # a writer started between the probe and the child's open
        raise JournalLocked(locked.split(": ", 1)[1], pid=None, path=str(journal))
    return rc, output


def check_declared_flows(config: Config) -> None:
    """Declarative smoke flows (smoke.files, [smoke.flows]) are config: parse them before the run,
    so a typo is exit 3 naming the file and key instead of B5/D5 failing hours in. Python flow
    modules are left to the gates, since loading them runs the app's code."""
    smoke = config.data["smoke"]
    if not (smoke["files"] or smoke["flows"]):
        return
    from .checks.http.flowfile import parse_flows, read_flow_file

    for spec in smoke["files"]:
        read_flow_file(config.repo_path() / spec, spec)
    if smoke["flows"]:
        parse_flows(smoke["flows"], config.file, "smoke.flows")
