"""`relnb replay`: re-execute an archived notebook offline and confirm identical gate outcomes.

The archived notebook source (never the current template) runs headlessly in a child process
against a scratch copy of the release: a new journal in a temporary project whose first event is
the archived `release-created`. Inside the child (`relnb.archive._replay_child`):
- every gate's provider is replaced by one that answers the gate's last recorded outcome, and
  through the RunContext double (`ArchivedOutcomes`) explicit check functions and actions are
  answered the same way, so no check or action touches a system;
- the human inputs come from the archive: sign-offs (who, note), confirmations (every action
  that started), skips, and waivers (re-applied right after the gate they waive fails again);
- any IPv4/IPv6 connection attempt raises, so a cell that still reaches for the network fails
  its gate instead of quietly calling production.
Then the replayed journal is folded and compared with the archive, gate by gate.

What this proves: the archived notebook, run from its recorded inputs, reaches the same verdict
on every gate through relnb's rules (promotion guard, dependencies, idempotent actions,
sign-offs, waivers): a record whose statuses could not have come from that notebook, or an
archive whose notebook or journal was swapped, does not replay identically.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..gates import GATE_IDS, Kind, get_gate
from ..identity import Identity
from ..journal import JOURNAL_NAME, Event, JournalWriter, read_events
from ..results import Outcome, Status
from ..state import ReleaseState, fold
from . import files as F

ENV_REPLAY = "RELNB_REPLAY"


@dataclass
class ReplayInputs:
    sign_offs: dict[str, dict[str, str]] = field(default_factory=dict)
    confirm: list[str] = field(default_factory=list)
    skips: dict[str, str] = field(default_factory=dict)
    waivers: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    manual: list[str] = field(default_factory=list)


def _identity_text(who: Any) -> str:
    if isinstance(who, dict):
        return str(Identity.parse(who))
    return str(who)


def inputs_from_events(events: list[Event]) -> ReplayInputs:
    """What the people decided and what each gate last answered, from the archived journal."""
    state = fold(_rid(events), events)
    inp = ReplayInputs()
    for ev in events:
        p = ev.payload
        gate = p.get("gate")
        if ev.type in ("gate-finished", "action-finished") and gate in GATE_IDS:
            inp.outcomes[gate] = {
                "status": p.get("status"),
                "summary": p.get("summary", ""),
                "evidence": p.get("evidence", {}),
            }
        elif ev.type == "action-started" and gate in GATE_IDS and gate not in inp.confirm:
            inp.confirm.append(gate)
    for gid, gs in state.gates.items():
        if gs.sign_off is not None:
            inp.sign_offs[gid] = {
                "by": _identity_text(gs.sign_off.get("by")),
                "note": gs.sign_off.get("note") or "",
            }
        if gs.skip is not None:
            inp.skips[gid] = str(gs.skip.get("reason"))
        if gs.waiver is not None:
            inp.waivers[gid] = {
                "approver": gs.waiver.get("approver"),
                "reason": gs.waiver.get("reason"),
            }
        spec = get_gate(gid)
        recorded = inp.outcomes.get(gid, {})
        if spec.kind is not Kind.SIGN_OFF and (
            gs.sign_off is not None or recorded.get("evidence", {}).get("manual")
        ):
            inp.manual.append(gid)
    return inp


def _rid(events: list[Event]) -> str:
    return str(events[0].payload.get("release_id")) if events else "?"


def recorded_outcome(outcomes: dict[str, dict[str, Any]], gate_id: str) -> Outcome:
    rec = outcomes.get(gate_id)
    if rec is None:
        # Never run in the archived session (a partial interactive run, or cells added later):
        # no evidence either way, so pending, which is also what the archive shows for it.
        return Outcome.pending(
            f"replay: no recorded outcome for {gate_id} (not run in the archived session)",
            replay_unrecorded=True,
        )
    return Outcome(Status(rec["status"]), rec.get("summary", ""), dict(rec.get("evidence") or {}))


@dataclass(frozen=True)
class ArchivedOutcomes:
    """The double the replay child gives every Release (`RunContext.use_recorded`): each step
    answers the gate's last recorded outcome, so explicit check functions and actions never run."""

    inputs: ReplayInputs

    def outcome(self, gate_id: str) -> Outcome:
        return recorded_outcome(self.inputs.outcomes, gate_id)


def install_replay_providers(inputs: ReplayInputs) -> None:
    """Register a provider per gate that answers the archived outcome (manual-ness preserved)."""
    from ..checklist import register_check

    for gid in GATE_IDS:

        def provider(_ctx: Any, _gid: str = gid) -> Outcome:
            return recorded_outcome(inputs.outcomes, _gid)

        register_check(gid, provider, manual=gid in inputs.manual)


def install_waiver_hook(writer: JournalWriter, inputs: ReplayInputs) -> None:
    """Re-apply an archived waiver as soon as the waived gate fails again in the replay."""

    def on_event(ev: Event) -> None:
        gate = ev.payload.get("gate")
        finished = ev.type in ("gate-finished", "action-finished")
        if (
            finished
            and gate in inputs.waivers
            and Status(ev.payload.get("status", "pending")).is_failure
        ):
            w = inputs.waivers[gate]
            writer.append(
                "waiver",
                {
                    "gate": gate,
                    "approver": w["approver"],
                    "reason": w["reason"],
                    "waives": ev.payload.get("status"),
                    "replayed": True,
                },
            )

    writer.subscribe(on_event)


def install_network_guard() -> None:
    """Refuse every IPv4/IPv6 connection in this process (unix sockets still work)."""
    import socket

    original = socket.socket.connect
    original_ex = socket.socket.connect_ex

    def refuse(sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(
                101, "network disabled during relnb replay: answered from the journal only"
            )

    def connect(self: socket.socket, address: Any) -> None:
        refuse(self)
        return original(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        refuse(self)
        return original_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


@dataclass
class ReplayReport:
    release_id: str
    notebook: str
    identical: bool
    differences: list[tuple[str, str, str]] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    returncode: int = 0
    output: str = ""
    seconds: float = 0.0

    @property
    def summary(self) -> str:
        if self.identical:
            extra = (
                f"; asked for {len(self.unrecorded)} gate(s) the archived session never ran: {', '.join(self.unrecorded)}"
                if self.unrecorded
                else ""
            )
            return f"{self.release_id}: replay identical — {len(self.statuses)} gates ({self.notebook}, {self.seconds:.1f} s){extra}"
        diffs = "; ".join(f"{g} archived {a}, replayed {r}" for g, a, r in self.differences[:12])
        return f"{self.release_id}: replay DIFFERS — {diffs}"


def replay_archive(
    directory: Path, *, timeout_s: float = 600.0, keep: Path | None = None
) -> ReplayReport:
    """Replay the sealed archive in `directory`; `keep` keeps the scratch project there."""
    from .verify import verify_release_dir

    directory = Path(directory)
    check = verify_release_dir(directory, scan=False)
    if not check.archived or not check.ok:
        raise UsageError(
            f"cannot replay {directory.name}: "
            + (check.summary if check.archived else "it is not archived"),
            fix="replay sealed archives that pass `relnb verify`",
        )
    manifest = json.loads((directory / F.MANIFEST).read_text(encoding="utf-8"))
    nb_name = manifest["notebook"]["file"]
    events = [e for e in read_events(directory / JOURNAL_NAME) if e.type != "sealed"]
    archived = fold(_rid(events), events)
    inputs = inputs_from_events(events)
    scratch = Path(tempfile.mkdtemp(prefix="relnb-replay-")) if keep is None else Path(keep)
    t0 = time.monotonic()
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        configs = (
            sorted((directory / F.CONFIG_DIR).glob("*"))
            if (directory / F.CONFIG_DIR).is_dir()
            else []
        )
        cfg_text = configs[0].read_text(encoding="utf-8") if configs else ""
        cfg_name = configs[0].name if configs else "relnb.toml"
        (scratch / cfg_name).write_text(cfg_text, encoding="utf-8")
        from ..config import load_config
        from ..release import release_dir

        config = load_config(scratch / cfg_name)
        rdir = release_dir(config.root, archived.release_id, config)
        with JournalWriter.open(rdir, create=True) as w:
            w.append("release-created", events[0].payload)
        nb = scratch / "notebooks" / nb_name
        nb.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(directory / nb_name, nb)
        so = scratch / "replay-sign-offs.json"
        so.write_text(json.dumps(inputs.sign_offs), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELNB_")}
        env.update(
            RELNB_ROOT=str(scratch),
            RELNB_HEADLESS="1",
            RELNB_CONFIRM=",".join(inputs.confirm),
            RELNB_SIGNOFFS=str(so),
            RELNB_SKIPS=json.dumps(inputs.skips),
            RELNB_USER=_identity_text(events[0].payload.get("author") or {"name": "replay"}),
            MARIMO_SKIP_UPDATE_CHECK="1",
        )
        env[ENV_REPLAY] = str((directory / JOURNAL_NAME).resolve())
        env.setdefault("HOME", str(scratch))
        proc = subprocess.run(
            [sys.executable, "-m", "relnb.archive._replay_child", str(nb)],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        replayed = fold(archived.release_id, read_events(rdir / JOURNAL_NAME))
    finally:
        if keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    report = compare(archived, replayed)
    report.notebook = nb_name
    report.returncode = proc.returncode
    report.output = (proc.stdout + proc.stderr)[-4000:]
    report.seconds = time.monotonic() - t0
    if proc.returncode != 0:
        report.identical = False
        report.differences.append(("notebook", "ran", f"exited {proc.returncode}"))
    return report


def compare(archived: ReleaseState, replayed: ReleaseState) -> ReplayReport:
    diffs, statuses = [], {}
    for gid in GATE_IDS:
        a, r = archived.result(gid), replayed.result(gid)
        statuses[gid] = str(r.status)
        if a.status is not r.status:
            diffs.append((gid, str(a.status), str(r.status)))
    unrecorded = [g for g in GATE_IDS if replayed.result(g).evidence.get("replay_unrecorded")]
    return ReplayReport(archived.release_id, "", not diffs, diffs, unrecorded, statuses)
