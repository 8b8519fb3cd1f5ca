"""The promotion guard, and the signed approvals every decision of a release goes through.

Production must not start on a hunch: the guarded section refuses to run until the sections
before it are passed, skipped or waived, and (with `[signing] min_production_approvers`) until
enough people voted to promote. Each refusal is journaled once per distinct reason, so a notebook
re-run in a loop does not flood the journal. Approvals live here too because the promotion votes
are approvals, and the guard is the first to consume the ones signed in advance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import PromotionRefused
from .gates import (
    GUARDED_SECTION,
    ROLLBACK_GATE,
    SHIP_RECORDS,
    WAITS_FOR_INPUTS,
    Kind,
    earlier_in_sequence,
    get_gate,
)
from .identity import Identity, whoami
from .results import GateResult, Status
from .state import guarded

if TYPE_CHECKING:
    from .config import Config
    from .journal import JournalWriter
    from .runcontext import RunContext
    from .state import ReleaseState


class PromotionGuard:
    """The base of `Release`'s concepts: the guard in front of every step, and approvals."""

    id: str
    journal: JournalWriter
    config: Config
    context: RunContext

    if TYPE_CHECKING:  # provided by Release

        @property
        def state(self) -> ReleaseState: ...

        def result(self, gate_id: str) -> GateResult: ...

    def _title(self, gate_id: str) -> str:
        """The gate's title in this release: the project's own words when it named them."""
        return self.state.gates[get_gate(gate_id).id].title

    def _guard(self, gate_id: str) -> GateResult | None:
        """Refuse the guarded section before the sections ahead of it allow it, and actions or
        gates whose inputs are missing (a pending result naming what they wait for)."""
        spec = get_gate(gate_id)
        if guarded(gate_id):
            blockers = self.state.promotion_blockers()
            if not blockers:
                self._take_presigned_promotions()
                missing = self.promotion_votes_missing()
                if missing:
                    return self._refuse(gate_id, f"{gate_id} refused: {missing}", [(GUARDED_SECTION, missing)])
            if blockers:
                err = PromotionRefused(gate_id, blockers)
                last = self.state.gates[gate_id].refused
                if not last or last.get("blockers") != [list(b) for b in blockers]:
                    self.journal.append(
                        "refused", {"gate": gate_id, "summary": err.message, "blockers": [list(b) for b in blockers]}
                    )
                return GateResult(gate_id, Status.PENDING, err.message, {"blockers": blockers}, title=self._title(spec.id))
        stopped = self._sequence_stop(gate_id)
        if stopped is not None:
            return stopped
        if spec.id in SHIP_RECORDS and self.state.rollback_started():
            return self._refuse(
                gate_id, f"{gate_id} refused: the release was rolled back, it did not ship", [(ROLLBACK_GATE, "rolled back")]
            )
        if spec.kind is Kind.ACTION or spec.section in WAITS_FOR_INPUTS:
            waiting = [
                (d, str(self.result(d).status)) for d in spec.depends_on if not self.result(d).status.ok_for_promotion
            ]
            if waiting:
                names = ", ".join(f"{d} ({s})" for d, s in waiting)
                return GateResult(gate_id, Status.PENDING, f"waiting for {names}", {"waiting_for": waiting}, title=self._title(spec.id))
        return None

    def _sequence_stop(self, gate_id: str) -> GateResult | None:
        """The guarded section runs in order: a step that failed, was inconclusive or cut off stops
        every step after it (the rollback and the sections after it still run), and a step that
        has not settled yet is waited for."""
        earlier = [(g, self.result(g).status) for g in earlier_in_sequence(gate_id)]
        broken = [(g, str(st)) for g, st in earlier if st.is_failure]
        if broken:
            names = ", ".join(f"{g} {st}" for g, st in broken)
            return self._refuse(
                gate_id, f"{gate_id} not started: {names} — section {GUARDED_SECTION} stops at a failed step "
                "(roll back or fix it, then run it again)", broken,
            )
        waiting = [(g, str(st)) for g, st in earlier if not st.ok_for_promotion]
        if waiting:
            names = ", ".join(f"{g} ({st})" for g, st in waiting)
            return GateResult(
                gate_id, Status.PENDING, f"waiting for {names}: section {GUARDED_SECTION} runs in order",
                {"waiting_for": waiting}, title=self._title(gate_id),
            )
        return None

    def _refuse(self, gate_id: str, summary: str, blockers: list[tuple[str, str]]) -> GateResult:
        """A pending result naming what blocks the gate, journaled once per distinct reason."""
        last = self.state.gates[gate_id].refused
        if not last or last.get("summary") != summary:
            self.journal.append(
                "refused", {"gate": gate_id, "summary": summary, "blockers": [list(b) for b in blockers]}
            )
        return GateResult(gate_id, Status.PENDING, summary, {"blockers": blockers}, title=self._title(gate_id))

    def _approval(self, kind: str, gate: str | None, text: str, presigned: Any = None) -> Any:
        """An SSH-signed approval for this decision when signing is on ([signing] in relnb.toml).

        Runs the policy (roles, four-eyes) first: a violation is journaled and raised. Returns
        None in unsigned mode; the caller then records the approval as unsigned.
        """
        if self.context.recorded is not None:
            # `relnb replay` re-enacts recorded decisions in a scratch journal it throws away;
            # the archived approvals themselves are what `relnb verify` checks.
            return None
        signing = self.config.data["signing"]
        if presigned is None:
            presigned = self.context.presigned_for(kind, gate, text)
            if presigned is not None and self._used(presigned):
                presigned = None
        if not (signing["enabled"] or signing["required"] or presigned):
            return None
        from .signing import SigningSettings, approve

        return approve(
            self.journal,
            kind=kind,
            gate=gate,
            text=text or "",
            settings=SigningSettings.from_mapping(signing),
            repo=self.config.repo_path(),
            presigned=presigned,
            project_release_lead=self.config.project.get("release_lead"),
            email=whoami().email,
        )

    def _used(self, approval: dict[str, Any]) -> bool:
        """Was this pre-signed approval consumed already? (Each one is good for one event.)"""
        st = approval.get("statement")
        return any(
            isinstance(ev.payload.get("approval"), dict) and ev.payload["approval"].get("statement") == st
            for ev in self.journal.events
        )

    def approve_promotion(self, *, by: Identity | str | None = None, note: str = "") -> str:
        """Record one approval to promote this release to production (`[signing]
        min_production_approvers`): signed like a sign-off, refused for the release lead under
        four-eyes and for a second vote by the same person. Returns what is still missing ("" when
        the guarded section may start)."""
        self.require_promotion()
        who = Identity.parse(by) if by else whoami()
        grant = self._approval("promote", GUARDED_SECTION, note)
        if grant:
            who = Identity.parse(grant.identity)
        self.journal.append(
            "promotion-approved",
            {"gate": GUARDED_SECTION, "by": who.to_dict(), "note": note, **(grant.payload() if grant else {})},
        )
        return self.promotion_votes_missing()

    def promotion_votes_missing(self) -> str:
        """What the promotion policy still needs before the guarded section, or "" (also when it
        is off)."""
        signing = self.config.data["signing"]
        if int(signing["min_production_approvers"] or 0) <= 0:
            return ""
        from .signing import SigningSettings
        from .signing.approve import recorded_approvals

        events = self.journal.events
        policy = SigningSettings.from_mapping(signing).policy(
            project_release_lead=self.config.project.get("release_lead"),
            created=events[0].payload if events else None,
        )
        violations = policy.check_promotion(recorded_approvals(events))
        if not violations:
            return ""
        return (
            f"{violations[0].message} — the approver runs release.approve_promotion(note=...), "
            f"or signs one in advance: relnb sign {self.id} {GUARDED_SECTION} --kind promote"
        )

    def _take_presigned_promotions(self) -> None:
        """Headless runs: record the promotion votes signed in advance (relnb run --sign-offs)."""
        for approval in self.context.presigned_of_kind("promote", GUARDED_SECTION):
            if self._used(approval):
                continue
            note = str((approval.get("statement") or {}).get("text") or "")
            grant = self._approval("promote", GUARDED_SECTION, note, presigned=approval)
            who = Identity.parse(grant.identity) if grant else whoami()
            self.journal.append(
                "promotion-approved",
                {"gate": GUARDED_SECTION, "by": who.to_dict(), "note": note, **(grant.payload() if grant else {})},
            )

    def require_promotion(self) -> None:
        """Raise PromotionRefused unless the sections before the guarded one allow production
        steps (for scripts that prefer errors)."""
        blockers = self.state.promotion_blockers()
        if blockers:
            raise PromotionRefused(GUARDED_SECTION, blockers)
