"""Decisions people record about gates: sign-offs, waivers, skips, incidents and notes.

Each is journaled with who made it (signed when [signing] is on, or taken from an approval signed
in advance), and none can turn a failure into a pass: a sign-off needs evidence that did not
fail, a waiver needs an approver and a reason and keeps the failure on record, only optional gates
can be skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import RelnbError, UsageError
from .gates import GATE_IDS, Kind, get_gate
from .identity import Identity, require_email, whoami
from .results import GateResult, Outcome, Status
from .steps import StepRunner

Check = Callable[[], Outcome]


class Decisions(StepRunner):
    """`Release`'s decisions: what a person records about a gate."""

    def request_sign_off(
        self,
        gate_id: str,
        *,
        evidence: Check | None = None,
        submitted: str | dict[str, Any] | None = None,
        by: Identity | str | None = None,
    ) -> GateResult:
        """A sign-off gate: gather evidence first (once), then wait for a person's sign-off.

        `submitted` is what the notebook's form returned (a note), or None; headless runs take
        sign-offs from `relnb run --sign-off`. Without one the gate stays `pending`.
        """
        spec = get_gate(gate_id)
        gs = self.state.gates[spec.id]
        rerun = spec.id in self.context.rerun
        if gs.sign_off is not None and not rerun:
            return self.result(spec.id)
        if evidence is not None and (gs.result is None or rerun):
            self._execute(spec.id, _as_pending(evidence), event="gate", forced=rerun)
        provided = self.context.sign_offs.get(spec.id)
        try:
            if submitted is not None:
                note = submitted.get("note", "") if isinstance(submitted, dict) else str(submitted)
                return self.sign_off(spec.id, by=by or whoami(), note=note)
            if provided is not None:
                return self.sign_off(
                    spec.id, by=provided.get("by") or whoami(), note=provided.get("note", ""), approval=provided.get("approval")
                )
        except RelnbError as exc:
            # A sign-off the rules refuse (evidence that failed, no note, no email) leaves the gate
            # as it is and says why in its cell, instead of stopping the notebook mid-release.
            return self._sign_off_refused(spec.id, exc)
        return self.result(spec.id)

    def _sign_off_refused(self, gate_id: str, exc: RelnbError) -> GateResult:
        text = f"sign-off of {gate_id} not recorded: {exc}"
        if not any(ev.type == "note" and ev.payload.get("text") == text for ev in self.journal.events):
            self.note(text, gate=gate_id)
        current = self.result(gate_id)
        return current.with_(summary=f"{current.summary} — {text}")

    def sign_off(
        self, gate_id: str, *, by: Identity | str | None = None, note: str = "", approval: Any = None
    ) -> GateResult:
        """A person's sign-off of a gate, on evidence that did not fail (signed when [signing] is on)."""
        from .checklist import takes_sign_off

        spec = get_gate(gate_id)
        who = Identity.parse(by) if by else whoami()
        if not takes_sign_off(spec.id, self.config.data["gates"]["manual"]):
            what = "an action: it runs (once) and verifies itself" if spec.kind is Kind.ACTION else "an automatic check: its evidence decides"
            raise UsageError(
                f"{spec.id} is {what}; a sign-off cannot settle it",
                gate=spec.id,
                fix=f"run it; if its failure is acceptable, waive it: release.waive({spec.id!r}, approver=..., reason=...)"
                + (" (or skip it: it is optional)" if spec.optional else ""),
            )
        gs = self.state.gates[spec.id]
        base = gs.result
        if gs.running_since is not None:
            raise UsageError(
                f"{spec.id} started at {gs.running_since} and has no result (running, or cut off)",
                gate=spec.id,
                fix="let it finish, or run it again, before signing it off",
            )
        if base is not None and (base.status.is_failure or gs.result_event == "action"):
            raise UsageError(
                f"{spec.id} is {base.status} ({base.summary}); a sign-off cannot turn that into a pass",
                gate=spec.id,
                fix="fix the cause and re-run the gate, or record a waiver with an approver and reason",
            )
        requires = base.evidence.get("sign_off_requires") if base else None
        if not (note or "").strip():
            raise UsageError(
                f"{spec.id} sign-off needs a note: {requires or 'what you checked'}",
                gate=spec.id,
                fix="describe it in the sign-off note",
            )
        signing = self.config.data["signing"]
        if approval is None and not (signing["enabled"] or signing["required"]):
            require_email(who, f"{spec.id} sign-off")  # signed ones are identified by their key
        grant = self._approval("sign-off", spec.id, note, presigned=approval)
        extra = grant.payload() if grant else {}
        if grant:
            who = Identity.parse(grant.identity)
        self.journal.append("sign-off", {"gate": spec.id, "by": who.to_dict(), "note": note, **extra})
        return self.result(spec.id)

    def waive(self, gate_id: str, *, approver: Identity | str, reason: str) -> GateResult:
        """Accept a failed, inconclusive or interrupted gate for this release, with who and why:
        the failure stays on record, the promotion guard lets it through."""
        spec = get_gate(gate_id)
        if not reason or not reason.strip():
            raise UsageError(f"a waiver of {spec.id} needs a reason", gate=spec.id, fix="say why it is acceptable")
        current = self.result(spec.id)
        if not current.status.is_failure:
            raise UsageError(
                f"{spec.id} is {current.status}; only failed, inconclusive or interrupted gates can be waived",
                gate=spec.id,
            )
        who = require_email(Identity.parse(approver), f"a waiver of {spec.id}")
        grant = self._approval("waiver", spec.id, reason)
        if grant:
            who = Identity.parse(grant.identity)
        self.journal.append(
            "waiver",
            {"gate": spec.id, "approver": who.to_dict(), "reason": reason, "waives": str(current.status),
             **(grant.payload() if grant else {})},
        )
        return self.result(spec.id)

    def skip(self, gate_id: str, *, reason: str, by: Identity | str | None = None) -> GateResult:
        """Declare an optional gate not needed for this release, with a reason."""
        spec = get_gate(gate_id)
        if not spec.optional:
            raise UsageError(
                f"{spec.id} is not optional; only {', '.join(g for g in GATE_IDS if get_gate(g).optional)} can be skipped",
                gate=spec.id,
                fix="run it, or waive a failure with an approver and reason",
            )
        if not reason.strip():
            raise UsageError(f"skipping {spec.id} needs a reason", gate=spec.id)
        current = self.result(spec.id)
        if current.status is Status.SKIPPED:
            return current
        # an optional item declared not needed passes nothing: a CI runner's bare user name will do
        who = Identity.parse(by) if by else whoami()
        grant = self._approval("skip", spec.id, reason)
        if grant:
            who = Identity.parse(grant.identity)
        self.journal.append("skip", {"gate": spec.id, "by": who.to_dict(), "reason": reason, **(grant.payload() if grant else {})})
        return self.result(spec.id)

    def abandon(self, *, reason: str, by: Identity | str | None = None) -> dict[str, Any]:
        """A person ends this release unfinished (the fix ships in another release): with who and
        why, so the release can be sealed with the verdict "abandoned" instead of a pass or a
        failure it never reached."""
        if not (reason or "").strip():
            raise UsageError("abandoning a release needs a reason", fix="say why it will not finish")
        if self.state.abandoned is not None:
            return self.state.abandoned
        who = require_email(Identity.parse(by) if by else whoami(), f"abandoning release {self.id}")
        grant = self._approval("abandon", None, reason.strip())
        if grant:
            who = Identity.parse(grant.identity)
        return self.journal.append(
            "abandoned",
            {"by": who.to_dict(), "reason": reason.strip(), "verdict_before": self.state.verdict(),
             **(grant.payload() if grant else {})},
        ).payload

    def incident(
        self,
        title: str,
        *,
        severity: str = "minor",
        evidence: dict[str, Any] | None = None,
        started_at: str | None = None,
        ended_at: str | None = None,
        gate: str | None = None,
        follow_up: str | None = None,
        test: str | None = None,
    ) -> dict[str, Any]:
        """Record something that went wrong during the release (the post-mortem reads these)."""
        if severity not in ("minor", "major", "critical"):
            raise UsageError(f"incident severity {severity!r}", fix="use minor, major or critical")
        payload = {
            "title": title,
            "severity": severity,
            "evidence": evidence or {},
            "started_at": started_at,
            "ended_at": ended_at,
            "gate": gate,
            "follow_up": follow_up,
            "test": test,
            "by": whoami().to_dict(),
        }
        return self.journal.append("incident", payload).payload

    def note(self, text: str, **data: Any) -> None:
        """Leave a free remark in the journal (it carries no decision)."""
        self.journal.append("note", {"text": text, **data})


def _as_pending(evidence: Check) -> Check:
    """Evidence for a sign-off never passes by itself: a pass becomes `pending` awaiting a person."""

    def run() -> Outcome:
        out = evidence()
        if out.status is Status.PASSED:
            return Outcome(Status.PENDING, f"evidence gathered, awaiting sign-off: {out.summary}", out.evidence)
        return out

    return run
