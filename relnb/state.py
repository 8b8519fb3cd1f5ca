"""The status of a release is a fold over its journal; nothing else is trusted.

This module only reads events, so `relnb status`, the notebook, the archive and replay all agree
on what a gate's status is, including waivers voided by later runs and actions cut off mid-way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .eventtext import approval_label, who_text
from .gates import (
    GATES,
    GUARDED_SECTION,
    PROMOTION_PREREQUISITES,
    ROLLBACK_GATE,
    SECTIONS,
    Kind,
    get_gate,
    upstream,
)
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
    result_event: str = "gate"  # what produced `result`: "gate" (check/evidence) or "action"
    title: str = ""  # the gate's title, or the project's own words for it (release-created "titles")

    def __post_init__(self) -> None:
        self.title = self.title or get_gate(self.gate_id).title

    def sign_off_counts(self) -> bool:
        """A sign-off settles a gate only where a person is the check: a sign-off gate, or a gate
        whose own step said it awaits a person (pending evidence, a manual item). It never covers
        an action's result or a check that failed, was inconclusive or never produced evidence."""
        if self.sign_off is None:
            return False
        base = self.result
        if base is None:
            return get_gate(self.gate_id).kind is Kind.SIGN_OFF
        if self.result_event == "action" or base.status.is_failure:
            return False
        return base.status is Status.PENDING or get_gate(self.gate_id).kind is Kind.SIGN_OFF

    def current(self) -> GateResult:
        base = self.result
        if self.skip is not None:
            return GateResult(
                self.gate_id,
                Status.SKIPPED,
                f"skipped by {_who(self.skip.get('by'))} [{self.skip.get('signature')}]: {self.skip.get('reason')}",
                {"skip": self.skip},
                finished_at=self.skip.get("at"),
                attempt=self.attempts,
                title=self.title,
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
                title=self.title,
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
        if self.sign_off_counts():
            assert self.sign_off is not None
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
                title=self.title,
                recorded=True,
            )
        if base is not None:
            return base.with_(title=self.title, recorded=True)
        if self.refused is not None:
            return GateResult(
                self.gate_id,
                Status.PENDING,
                self.refused.get("summary", "refused by the promotion guard"),
                {"refused": self.refused},
                title=self.title,
                recorded=True,
            )
        return GateResult(self.gate_id, Status.PENDING, "not run yet", {}, title=self.title)


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
    steps: list[dict[str, Any]] = field(default_factory=list)  # named steps' finishes, in order
    rollback: dict[str, Any] | None = None  # the last rollback-finished event
    abandoned: dict[str, Any] | None = None
    sealed: dict[str, Any] | None = None
    head: str = ""
    events: int = 0
    first_ts: str | None = None
    last_ts: str | None = None

    def result(self, gate_id: str) -> GateResult:
        return self.gates[get_gate(gate_id).id].current()

    def table(self) -> StatusTable:
        rollback = tuple(
            GateResult(
                ROLLBACK_GATE, Status(s.get("status", "interrupted")), f"{s['action']}: {s.get('summary', '')}",
                s.get("evidence", {}), s.get("started_at"), s.get("finished_at"), title=s["action"], recorded=True,
            )
            for s in self.rollback_steps()
        )
        return StatusTable(self.release_id, tuple(self.gates[g.id].current() for g in GATES), SECTIONS, rollback)

    def promotion_blockers(self) -> list[tuple[str, str]]:
        blockers = []
        for g in GATES:
            if g.section in PROMOTION_PREREQUISITES:
                status = self.gates[g.id].current().status
                if not status.ok_for_promotion:
                    blockers.append((g.id, str(status)))
        return blockers

    def rollback_steps(self) -> list[dict[str, Any]]:
        """The rollback's named steps as journaled (latest finish of each, in order)."""
        latest: dict[str, dict[str, Any]] = {}
        for step in self.steps:
            if step.get("of_gate") == ROLLBACK_GATE:
                latest[step["action"]] = step
        return list(latest.values())

    def rollback_started(self) -> bool:
        """A rollback step was journaled, or a rollback was due and could not start."""
        return self.rollback is not None or any(
            a.get("started", {}).get("of_gate") == ROLLBACK_GATE for a in self.actions.values()
        )

    def verdict(self) -> str:
        """How the release ended, the way `relnb run` turns it into an exit code and the archive
        names it: passed | failed | pending | rolled back | rollback failed | abandoned.

        Only "passed" is a release that shipped; a rollback that started and did not finish
        cleanly (a step failed, was cut off, or has not run yet) is "rollback failed" until it is
        finished, because production is then in neither version's known state.
        """
        if self.abandoned is not None:
            return "abandoned"
        if self.rollback_started():
            done = self.rollback or {}
            running = [a for a in self.actions.values()
                       if a.get("started", {}).get("of_gate") == ROLLBACK_GATE and a.get("state") == "running"]
            if done.get("status") == str(Status.PASSED) and not running:
                return "rolled back"
            return "rollback failed"
        statuses = [self.gates[g.id].current().status for g in GATES]
        if any(s.is_failure for s in statuses):
            return "failed"
        if any(s is Status.PENDING for s in statuses):
            return "pending"
        return "passed"

    def seal_blockers(self) -> list[tuple[str, str]]:
        """What keeps this release from being sealed ([] when it is finished): a release is
        sealed only when every gate settled, after a completed rollback, or once a person
        abandoned it. A failed or pending gate can still be fixed and run again, and a sealed
        journal takes no more events, so sealing then would make the failure final."""
        verdict = self.verdict()
        if verdict in ("passed", "rolled back", "abandoned"):
            return []
        if verdict == "rollback failed":
            failed = [s["action"] for s in self.rollback_steps() if s.get("status") != str(Status.PASSED)]
            return [("rollback", f"rollback failed at {', '.join(failed) or 'an unfinished step'}")]
        return [
            (g.id, str(self.gates[g.id].current().status))
            for g in GATES
            if not self.gates[g.id].current().status.ok_for_promotion
        ]


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
        titles = p.get("titles")
        for gid, gs in state.gates.items():
            title = titles.get(gid) if isinstance(titles, dict) else None
            if isinstance(title, str) and title.strip():
                gs.title = title
            elif not isinstance(titles, dict):  # written before titles were recorded: its time's words
                gs.title = get_gate(gid).checklist_words
    elif t in ("gate-started", "action-started"):
        if t == "action-started":
            state.actions[p["action"]] = {"state": "running", "started": p, "seq": ev.seq, "at": ev.ts}
        if gs is not None and (t == "gate-started" or p.get("action") == gate):
            gs.attempts = p.get("attempt", gs.attempts + 1)
            gs.running_since = ev.ts
            gs.skip = None
            gs.refused = None
            gs.sign_off = None  # new evidence (or an action's run) needs a new sign-off
            _void_waivers(state, gate, ev)
    elif t == "action-process":  # a command an action started, so a later run can adopt it
        entry = state.actions.get(p.get("action", ""))
        if entry is not None and entry.get("state") == "running":
            entry.setdefault("processes", []).append(dict(p))
    elif t in ("gate-finished", "action-finished"):
        if t == "action-finished":
            entry = state.actions.setdefault(p["action"], {})
            entry.update(state="finished", finished=p, seq=ev.seq)
        if p.get("of_gate"):  # a named step of a gate (the rollback's, safe mode off)
            state.steps.append({**p, "seq": ev.seq, "at": ev.ts})
        if gs is not None and (t == "gate-finished" or p.get("action") == gate):
            gs.running_since = None
            gs.result_event = "action" if t == "action-finished" else "gate"
            gs.result = GateResult(
                gate,
                Status(p["status"]),
                p.get("summary", ""),
                p.get("evidence", {}),
                p.get("started_at"),
                p.get("finished_at", ev.ts),
                p.get("attempt", gs.attempts),
                gs.title,
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
    elif t == "rollback-finished":
        state.rollback = {**p, "seq": ev.seq, "at": ev.ts}
    elif t == "abandoned":
        state.abandoned = {**p, "seq": ev.seq, "at": ev.ts}
    elif t == "sealed":
        state.sealed = {**p, "seq": ev.seq, "at": ev.ts}


def guarded(gate_id: str) -> bool:
    return get_gate(gate_id).section == GUARDED_SECTION
