"""F2: incidents recorded during the release, and the tests that keep them from recurring.

An incident is an `incident` event (from `Release.incident`, or written by a gate or the
monitoring window). Facts learned later are appended, never edited in: `incident-update` adds a
test link, a follow-up or the time range; `incident-waiver` records a named approver's reason why
an incident needs no test. The gate passes only when every incident links a test that exists in
the repository (`path::name`, pytest's node-id form) or carries such a waiver.
"""

from __future__ import annotations

import ast
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..identity import Identity
from ..pyast import parse as parse_python
from ..results import Outcome

if TYPE_CHECKING:
    from ..gatecontext import GateContext
    from ..journal import Event
    from ..release import Release

UPDATE_EVENT = "incident-update"
WAIVER_EVENT = "incident-waiver"
_UPDATABLE = ("test", "follow_up", "started_at", "ended_at", "severity")


@dataclass
class Incident:
    seq: int
    title: str
    severity: str
    recorded_at: str
    started_at: str | None = None
    ended_at: str | None = None
    gate: str | None = None
    follow_up: str | None = None
    test: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    by: dict[str, Any] | None = None
    waiver: dict[str, Any] | None = None
    updates: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "title": self.title,
            "severity": self.severity,
            "recorded_at": self.recorded_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "gate": self.gate,
            "follow_up": self.follow_up,
            "test": self.test,
            "evidence": self.evidence,
            "by": self.by,
            "waiver": self.waiver,
            "updates": self.updates,
        }


def incidents_from_events(events: Iterable[Event]) -> list[Incident]:
    """Fold incident, incident-update and incident-waiver events (in journal order)."""
    by_seq: dict[int, Incident] = {}
    for ev in events:
        p = ev.payload
        if ev.type == "incident":
            by_seq[ev.seq] = Incident(
                seq=ev.seq,
                title=str(p.get("title", "")),
                severity=str(p.get("severity", "minor")),
                recorded_at=ev.ts,
                started_at=p.get("started_at"),
                ended_at=p.get("ended_at"),
                gate=p.get("gate"),
                follow_up=p.get("follow_up"),
                test=p.get("test"),
                evidence=dict(p.get("evidence") or {}),
                by=p.get("by"),
            )
        elif ev.type == UPDATE_EVENT and p.get("incident") in by_seq:
            inc = by_seq[p["incident"]]
            for key in _UPDATABLE:
                if p.get(key) is not None:
                    setattr(inc, key, p[key])
            inc.updates.append(ev.seq)
        elif ev.type == WAIVER_EVENT and p.get("incident") in by_seq:
            by_seq[p["incident"]].waiver = {
                "approver": p.get("approver"),
                "reason": p.get("reason"),
                "at": ev.ts,
                "seq": ev.seq,
            }
    return [by_seq[k] for k in sorted(by_seq)]


def _find_incident(release: Release, seq: int) -> Incident:
    for inc in incidents_from_events(release.journal.events):
        if inc.seq == seq:
            return inc
    raise UsageError(
        f"no incident recorded at seq {seq} in release {release.id}", fix="see `relnb show`"
    )


def update_incident(release: Release, seq: int, **changes: Any) -> Incident:
    """Record a test link, follow-up or time range learned after the incident was recorded."""
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise UsageError(
            f"cannot update incident field(s) {sorted(unknown)}", fix=f"use {', '.join(_UPDATABLE)}"
        )
    if changes.get("severity") not in (None, "minor", "major", "critical"):
        raise UsageError(
            f"incident severity {changes['severity']!r}", fix="use minor, major or critical"
        )
    _find_incident(release, seq)
    release.journal.append(
        UPDATE_EVENT, {"incident": seq, **{k: v for k, v in changes.items() if v is not None}}
    )
    return _find_incident(release, seq)


def waive_incident_test(
    release: Release, seq: int, *, approver: Identity | str, reason: str
) -> Incident:
    """An explicit, named decision that this incident needs no regression test."""
    if not reason or not reason.strip():
        raise UsageError("an incident test waiver needs a reason", fix="say why no test is needed")
    _find_incident(release, seq)
    who = Identity.parse(approver)
    release.journal.append(
        WAIVER_EVENT, {"incident": seq, "approver": who.to_dict(), "reason": reason}
    )
    return _find_incident(release, seq)


_PARAM = re.compile(r"\[.*\]$")


def test_exists(repo: Path, ref: str) -> tuple[bool, str]:
    """Does `path::name[::name]` name a test that exists in the working tree of `repo`?

    Python files are parsed (a class or function with that name, nested as written); for other
    languages the names must appear in the file. Parametrisation suffixes (`[case]`) are ignored.
    """
    if "::" not in ref:
        return False, f"{ref!r} is not a test id (write path/to/test_file.py::test_name)"
    path_part, *names = ref.split("::")
    names = [_PARAM.sub("", n) for n in names if n]
    if not names:
        return False, f"{ref!r} names no test"
    target = (repo / path_part).resolve()
    if not target.is_relative_to(repo.resolve()):
        return False, f"{path_part} is outside the repository"
    if not target.is_file():
        return False, f"{path_part} does not exist in {repo}"
    text = target.read_text(encoding="utf-8", errors="replace")
    if target.suffix != ".py":
        missing = [n for n in names if n not in text]
        return (
            not missing,
            f"{', '.join(missing)} not found in {path_part}" if missing else "found",
        )
    try:
        tree: ast.AST = parse_python(text)
    except SyntaxError as exc:
        return False, f"{path_part} does not parse: {exc.msg} (line {exc.lineno})"
    scope = tree
    for name in names:
        found = None
        for node in ast.iter_child_nodes(scope):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and node.name == name
            ):
                found = node
                break
        if found is None:
            return False, f"{name} is not defined in {path_part}"
        scope = found
    return True, "found"


def evaluate_incidents(incidents: list[Incident], repo: Path) -> Outcome:
    """The F2 verdict: every incident has a time range and a test that exists (or a waiver)."""
    findings: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for inc in incidents:
        row = {
            "seq": inc.seq,
            "title": inc.title,
            "severity": inc.severity,
            "test": inc.test,
            "started_at": inc.started_at,
            "ended_at": inc.ended_at,
            "follow_up": inc.follow_up,
        }
        problems = []
        if inc.waiver is not None:
            row["test_waived"] = inc.waiver
        elif not inc.test:
            problems.append("links no test and has no waiver")
        else:
            ok, why = test_exists(repo, inc.test)
            row["test_found"] = ok
            if not ok:
                problems.append(f"test {inc.test}: {why}")
        if not inc.started_at:
            problems.append("has no start time (time range)")
        if problems:
            findings.append({"seq": inc.seq, "title": inc.title, "problems": problems})
        rows.append(row)
    evidence = {"incidents": rows, "findings": findings, "repo": str(repo)}
    if findings:
        first = findings[0]
        return Outcome.failed(
            f"{len(findings)} of {len(incidents)} incident(s) incomplete: #{first['seq']} "
            f"{first['title']!r} {first['problems'][0]} — link a test with "
            "relnb.archive.update_incident(release, seq, test='path::name') or waive it",
            **evidence,
        )
    if not incidents:
        return Outcome.passed("no incidents recorded during the release", **evidence)
    return Outcome.passed(
        f"{len(incidents)} incident(s), each with a test that exists or a waiver", **evidence
    )


def f2_incidents(ctx: GateContext) -> Outcome:
    """F2 provider: incidents of this release against the application repository."""
    return evaluate_incidents(incidents_from_events(ctx.release.journal.events), ctx.repo())


class IncidentList:
    """Renders in notebooks (HTML) and logs (text); what the archive's incident cell shows."""

    def __init__(self, incidents: list[Incident]) -> None:
        self.incidents = incidents

    def __repr__(self) -> str:
        if not self.incidents:
            return "no incidents recorded"
        lines = [f"{len(self.incidents)} incident(s)"]
        for i in self.incidents:
            span = f"{i.started_at or '?'} → {i.ended_at or 'open'}"
            test = i.test or ("waived: " + str(i.waiver.get("reason")) if i.waiver else "NO TEST")
            lines.append(f"  #{i.seq} [{i.severity}] {i.title} ({span}) test: {test}")
            if i.follow_up:
                lines.append(f"      follow-up: {i.follow_up}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        if not self.incidents:
            return "<p class='relnb-incidents'>No incidents recorded.</p>"
        rows = []
        for i in self.incidents:
            test = html.escape(i.test) if i.test else None
            if test is None:  # outside text is escaped; only relnb's own mark is markup
                test = html.escape("waived: " + str(i.waiver.get("reason"))) if i.waiver else "<b>no test</b>"
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{c}</td>"
                    for c in (
                        f"#{i.seq}",
                        html.escape(i.severity),
                        html.escape(i.title),
                        html.escape(f"{i.started_at or '?'} → {i.ended_at or 'open'}"),
                        html.escape(i.follow_up or ""),
                        test,
                    )
                )
                + "</tr>"
            )
        head = "".join(
            f"<th>{h}</th>" for h in ("", "severity", "incident", "time range", "follow-up", "test")
        )
        return f"<table class='relnb-incidents'><tr>{head}</tr>{''.join(rows)}</table>"


__all__ = [
    "Incident",
    "IncidentList",
    "evaluate_incidents",
    "f2_incidents",
    "incidents_from_events",
    "test_exists",
    "update_incident",
    "waive_incident_test",
]
