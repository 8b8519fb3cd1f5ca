"""The status of a release is a fold over its journal; nothing else is trusted.

This module only reads events, so `relnb status`, the notebook, the archive and replay all agree
on what a gate's status is, including waivers voided by later runs and actions cut off mid-way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .eventtext import approval_label, who_text
from .gates import GATES, GUARDED_SECTION, PROMOTION_PREREQUISITES, SECTIONS, get_gate, upstream
from .journal import Event
from .results import GateResult, Status, StatusTable

# gate -> gates that list it (transitively) as upstream: re-running a gate voids their waivers too.
_DOWNSTREAM: dict[str, set[str]] = {g.id: set() for g in GATES}
for _g in GATES:
    for _u in upstream(_g.id):
        _DOWNSTREAM[_u].add(_g.id)


@dataclass
class GateState:
    gate_id: str
    attempts: int = 0
    result: GateResult | None = None  # last finished result (check, action or evidence)
    running_since: str | None = None  # started without a finish: running now, or interrupted
    sign_off: dict[str, Any] | None = None
    waiver: dict[str, Any] | None = None
    voided_waivers: list[dict[str, Any]] = field(default_factory=list)
    skip: dict[str, Any] | None = None
    refused: dict[str, Any] | None = None

    def current(self) -> GateResult:
        spec = get_gate(self.gate_id)
        base = self.result
        if self.skip is not None:
            return GateResult(
                self.gate_id,
                Status.SKIPPED,
                f"skipped by {_who(self.skip.get('by'))} [{self.skip.get('signature')}]: {self.skip.get('reason')}",
                {"skip": self.skip},
                finished_at=self.skip.get("at"),
                attempt=self.attempts,
                title=spec.title,
                recorded=True,
            )
        if self.running_since is not None:
            return GateResult(
                self.gate_id,
                Status.INTERRUPTED,
                f"started {self.running_since} with no result recorded (still running, or interrupted)",
                {"started_at": self.running_since},
                started_at=self.running_since,
                attempt=self.attempts,
                title=spec.title,
                recorded=True,
            )
        if self.waiver is not None and base is not None:
            return base.with_(
                status=Status.WAIVED,
                summary=f"waived by {_who(self.waiver.get('approver'))} [{self.waiver.get('signature')}]: "
                f"{self.waiver.get('reason')} "
                f"(was {base.status}: {base.summary})",
                evidence={**base.evidence, "waiver": self.waiver, "waived_status": str(base.status)},
            )
        if self.sign_off is not None:
            evidence = dict(base.evidence) if base else {}
            evidence["sign_off"] = self.sign_off
            note = self.sign_off.get("note") or ""
            return GateResult(
                self.gate_id,
                Status.PASSED,
                f"signed off by {_who(self.sign_off.get('by'))} [{self.sign_off.get('signature')}]"
                + (f": {note}" if note else ""),
                evidence,
                started_at=base.started_at if base else None,
                finished_at=self.sign_off.get("at"),
                attempt=self.attempts,
                title=spec.title,
                recorded=True,
            )
        if base is not None:
            return base.with_(title=spec.title, recorded=True)
        if self.refused is not None:
            return GateResult(
                self.gate_id,
                Status.PENDING,
                self.refused.get("summary", "refused by the promotion guard"),
                {"refused": self.refused},
                title=spec.title,
                recorded=True,
            )
        return GateResult(self.gate_id, Status.PENDING, "not run yet", {}, title=spec.title)


_who = who_text


@dataclass
class ReleaseState:
    release_id: str
    created: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, GateState] = field(default_factory=dict)
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    samples: int = 0
    sealed: dict[str, Any] | None = None
    head: str = ""
    events: int = 0
    first_ts: str | None = None
    last_ts: str | None = None

    def result(self, gate_id: str) -> GateResult:
        return self.gates[get_gate(gate_id).id].current()

    def table(self) -> StatusTable:
        return StatusTable(self.release_id, tuple(self.gates[g.id].current() for g in GATES), SECTIONS)

    def promotion_blockers(self) -> list[tuple[str, str]]:
        blockers = []
        for g in GATES:
            if g.section in PROMOTION_PREREQUISITES:
                status = self.gates[g.id].current().status
                if not status.ok_for_promotion:
                    blockers.append((g.id, str(status)))
        return blockers

    def verdict(self) -> str:
        """passed | failed | pending, the way `relnb run` turns it into an exit code."""
        statuses = [self.gates[g.id].current().status for g in GATES]
        if any(s.is_failure for s in statuses):
            return "failed"
        if any(s is Status.PENDING for s in statuses):
            return "pending"
        return "passed"


def fold(release_id: str, events: Iterable[Event]) -> ReleaseState:
    state = ReleaseState(release_id, gates={g.id: GateState(g.id) for g in GATES})
    for ev in events:
        _apply(state, ev)
        state.events += 1
        state.head = ev.hash
        state.first_ts = state.first_ts or ev.ts
        state.last_ts = ev.ts
    return state


def _void_waivers(state: ReleaseState, gate_id: str, ev: Event) -> None:
    for gid in (gate_id, *sorted(_DOWNSTREAM[gate_id])):
        gs = state.gates[gid]
        if gs.waiver is not None:
            gs.voided_waivers.append({**gs.waiver, "voided_by": {"gate": gate_id, "seq": ev.seq}})
            gs.waiver = None


def _apply(state: ReleaseState, ev: Event) -> None:
    p = ev.payload
    t = ev.type
    gate = p.get("gate")
    gs = state.gates.get(gate) if gate else None
    if t == "release-created":
        state.created = dict(p)
    elif t in ("gate-started", "action-started"):
        if t == "action-started":
            state.actions[p["action"]] = {"state": "running", "started": p, "seq": ev.seq, "at": ev.ts}
        if gs is not None and (t == "gate-started" or p.get("action") == gate):
            gs.attempts = p.get("attempt", gs.attempts + 1)
            gs.running_since = ev.ts
            gs.skip = None
            gs.refused = None
            if gs.sign_off is not None and t == "gate-started":
                gs.sign_off = None  # new evidence needs a new sign-off
            _void_waivers(state, gate, ev)
    elif t in ("gate-finished", "action-finished"):
        if t == "action-finished":
            entry = state.actions.setdefault(p["action"], {})
            entry.update(state="finished", finished=p, seq=ev.seq)
        if gs is not None and (t == "gate-finished" or p.get("action") == gate):
            gs.running_since = None
            gs.result = GateResult(
                gate,
                Status(p["status"]),
                p.get("summary", ""),
                p.get("evidence", {}),
                p.get("started_at"),
                p.get("finished_at", ev.ts),
                p.get("attempt", gs.attempts),
                get_gate(gate).title,
                recorded=True,
            )
    elif t == "sign-off" and gs is not None:
        gs.sign_off = {"by": p.get("by"), "note": p.get("note"), "at": ev.ts, "seq": ev.seq, "signature": approval_label(p)}
        gs.refused = None
    elif t == "waiver" and gs is not None:
        gs.waiver = {
            "approver": p.get("approver"),
            "reason": p.get("reason"),
            "at": ev.ts,
            "seq": ev.seq,
            "signature": approval_label(p),
        }
    elif t == "skip" and gs is not None:
        gs.skip = {"by": p.get("by"), "reason": p.get("reason"), "at": ev.ts, "seq": ev.seq, "signature": approval_label(p)}
    elif t == "refused" and gs is not None:
        gs.refused = dict(p)
    elif t == "incident":
        state.incidents.append({**p, "seq": ev.seq, "recorded_at": ev.ts})
    elif t == "note":
        state.notes.append({**p, "seq": ev.seq, "at": ev.ts})
    elif t == "sample":
        state.samples += 1
    elif t == "sealed":
        state.sealed = {**p, "seq": ev.seq, "at": ev.ts}


def guarded(gate_id: str) -> bool:
    return get_gate(gate_id).section == GUARDED_SECTION
