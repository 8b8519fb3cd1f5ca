"""Side effects: actions that run exactly once per release, and the rollback made of them.

Deploying twice because a cell was re-executed is the failure this prevents. A finished action
answers with its recorded result; a failed one runs again only on a person's explicit go (a
blanket headless --confirm never retries); one cut off mid-way needs `resume=True` after someone
looked at the system; `force=True` needs a reason. The rollback is the prepared plan run as named
actions of the rollback gate, and only after the deploy gate's action ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .decisions import Decisions
from .errors import ActionRefused, RelnbError
from .gates import DEPLOY_GATE, GATE_IDS, GUARDED_SECTION, ROLLBACK_GATE, SAFE_MODE_GATE, get_gate
from .identity import Identity, whoami
from .results import GateResult, Outcome, Status, StatusTable
from .runcontext import ROLLBACK_CONFIRM, ROLLBACK_ON_FAILURE, confirmation

Check = Callable[[], Outcome]
SAFE_MODE_OFF = "safe-mode-off"  # the named step that undoes the safe-mode gate's action


class Effects(Decisions):
    """`Release`'s side effects: run-once actions and the rollback."""

    def act(
        self,
        gate_id: str,
        fn: Check | None = None,
        *,
        confirmed: Any = False,
        force: bool = False,
        reason: str | None = None,
        resume: bool = False,
        skip: Any = None,
    ) -> GateResult:
        """The template's one-liner for an action gate: run the registered provider once.

        `skip` (a reason, or a submitted skip form) declares an optional gate not needed.
        """
        from .checklist import provider_for
        from .gatecontext import GateContext
        from .sidebyside import start_beside

        spec = get_gate(gate_id)
        start_beside(self, spec.id)  # type: ignore[arg-type]  # headless: the section's checks that can run now
        current = self.result(spec.id)
        if current.status is Status.SKIPPED and not (force or spec.id in self.context.rerun):
            return current  # a recorded skip is a decision: it holds until someone re-runs the gate
        reason_to_skip = getattr(skip, "value", skip) or self.context.skips.get(spec.id)
        if reason_to_skip and current.status is not Status.PASSED:
            return self.skip(spec.id, reason=str(reason_to_skip))
        provider, manual = provider_for(spec.id)
        ctx = GateContext(self, spec.id)
        step: Check = fn or (lambda: provider(ctx))
        if manual and fn is None:  # not automated yet: an honest sign-off, still behind the guard
            if not self.result(spec.id).status.ok_for_promotion:
                refused = self._guard(spec.id)
                if refused is not None:
                    return refused
            return self.request_sign_off(spec.id, evidence=step)
        result = self.action(
            spec.id, step, confirmed=confirmation(confirmed, spec.id, self), force=force, reason=reason, resume=resume
        )
        if spec.id == DEPLOY_GATE and result.status is Status.PASSED:
            self._safe_mode_off()
        return result

    def _safe_mode_off(self) -> GateResult | None:
        """Safe mode (the optional first production step) is switched off again once the deploy
        passed, or by the rollback: a release must not leave production in safe mode. Runs once,
        as a named step of the safe-mode gate; a failure is an incident, not a quiet line."""
        from .actions.gates import safe_mode_off
        from .gatecontext import GateContext

        done = self.action_result(SAFE_MODE_GATE)
        if not done or done.get("status") != str(Status.PASSED) or SAFE_MODE_OFF in self.state.actions:
            return None
        res = self.action(
            SAFE_MODE_GATE, lambda: safe_mode_off(GateContext(self, SAFE_MODE_GATE)), name=SAFE_MODE_OFF, confirmed=True
        )
        if res.status is not Status.PASSED:
            self.incident(
                f"safe mode could not be switched off: {res.summary}", severity="major", gate=SAFE_MODE_GATE,
                evidence={"step": SAFE_MODE_OFF, "status": str(res.status)},
            )
        return res

    def rollback(self, *, confirmed: Any = False) -> StatusTable:
        """Run the prepared rollback plan as named, journaled, run-once steps of the rollback gate.

        It is confirmed by name (never by `all`), or in advance for one case only: production
        did not pass after the deploy (ROLLBACK-ON-FAILURE).
        """
        from .actions.gates import rollback_steps
        from .gatecontext import GateContext

        title = self._title(ROLLBACK_GATE)
        heading = {get_gate(ROLLBACK_GATE).section: "Rollback"}
        go = confirmation(confirmed, ROLLBACK_GATE, self) or self.context.confirmed(ROLLBACK_CONFIRM)
        hurt = self.production_failures()
        in_advance = not go and ROLLBACK_ON_FAILURE in self.context.confirm and bool(hurt)
        go = go or in_advance
        if DEPLOY_GATE not in self.state.actions:  # started counts: a deploy cut off mid-way may be live
            off = self._safe_mode_off() if go else None
            summary = f"nothing deployed in this release ({DEPLOY_GATE} has not run): no rollback needed"
            if off is not None:
                summary += f"; {SAFE_MODE_OFF}: {off.summary}"
            row = GateResult(ROLLBACK_GATE, Status.PENDING, summary, {}, title=title)
            return StatusTable(self.id, (row,), heading)
        try:
            steps = rollback_steps(GateContext(self, ROLLBACK_GATE))
        except RelnbError as exc:
            row = GateResult(ROLLBACK_GATE, Status.FAILED, f"rollback cannot start: {exc}", {}, title=title)
            if go and self.state.rollback is None:
                self._rollback_finished([row.with_(title="rollback-plan")], ["rollback-plan"])
            return StatusTable(self.id, (row,), heading)
        if in_advance and any(name not in self.state.actions for name, _ in steps):
            self.note(
                f"rollback confirmed in advance ({ROLLBACK_ON_FAILURE}) and due: "
                f"{', '.join(hurt)} did not pass after the deploy",
                gates=hurt,
            )
        results = []
        ran = False
        for name, step in steps:
            before = self.state.actions.get(name, {}).get("seq")
            res = self.action(ROLLBACK_GATE, step, name=name, confirmed=go, confirm_key=ROLLBACK_CONFIRM)
            ran = ran or self.state.actions.get(name, {}).get("seq") != before
            results.append(res.with_(gate_id=ROLLBACK_GATE, title=name, summary=f"{name}: {res.summary}"))
            if res.status is not Status.PASSED:
                break
        if ran:
            self._rollback_finished(results, [name for name, _ in steps])
        return StatusTable(self.id, tuple(results), heading)

    def _rollback_finished(self, results: list[GateResult], planned: list[str]) -> None:
        """Journal how the rollback ended. A step that did not pass leaves production in neither
        version's known state: the release's verdict becomes "rollback failed" and an incident is
        recorded, so nobody reads the run as green."""
        last = results[-1]
        if last.status is Status.PENDING:
            return  # waiting for a confirmation: not finished either way
        done = last.status is Status.PASSED and len(results) == len(planned)
        if done:
            off = self._safe_mode_off()
            if off is not None and off.status is not Status.PASSED:
                done = False
        self.journal.append(
            "rollback-finished",
            {"status": str(Status.PASSED if done else Status.FAILED), "steps": planned,
             "summary": "rollback completed" if done else f"rollback failed: {last.summary}"},
        )
        if not done:
            self.incident(
                f"rollback failed: {last.summary}", severity="critical", gate=ROLLBACK_GATE,
                evidence={"step": last.title, "status": str(last.status)},
            )

    def production_failures(self) -> list[str]:
        """Production gates that ended failed, inconclusive or interrupted: the case in which a
        rollback confirmed with ROLLBACK-ON-FAILURE goes ahead."""
        bad = (Status.FAILED, Status.INCONCLUSIVE, Status.INTERRUPTED)
        return [
            g for g in GATE_IDS if get_gate(g).section == GUARDED_SECTION and self.result(g).status in bad
        ]

    def action(
        self,
        gate_id: str,
        fn: Check,
        *,
        confirmed: bool = False,
        name: str | None = None,
        force: bool = False,
        reason: str | None = None,
        resume: bool = False,
        by: Identity | str | None = None,
        confirm_key: str | None = None,
    ) -> GateResult:
        """Run a side effect once per release.

        `confirmed` is the person's explicit go (a button click); headless runs get it from
        `relnb run --confirm`. Without it the action is `pending`, never silently skipped.
        """
        spec = get_gate(gate_id)
        key = name or spec.id
        if force and not (reason and reason.strip()):
            raise ActionRefused(
                f"force=True on {key} needs a reason", gate=spec.id, fix="pass reason='why it must run again'"
            )
        entry = self.state.actions.get(key)
        # A person's click (or typed yes) is an explicit "run this now", and may retry a failed
        # action; a blanket headless --confirm only starts actions that never finished.
        explicit = confirmed or spec.id in self.context.rerun
        confirmed = confirmed or self.context.confirmed(confirm_key or spec.id)
        cut_off = bool(entry) and (
            entry.get("state") == "running" or entry.get("finished", {}).get("status") == Status.INTERRUPTED
        )
        if entry and entry.get("state") == "finished" and not force and not cut_off:
            finished = entry["finished"]
            if Status(finished["status"]) is Status.PASSED or not explicit:
                return self._recorded_action(spec.id, key, finished)
        if cut_off and not (resume and confirmed) and not force:
            started = entry["started"]
            why = ""
            if entry.get("state") == "running" and entry.get("processes"):
                adopted = self._adopt(spec.id, key, fn, entry)
                if isinstance(adopted, GateResult):
                    return adopted
                why = f" ({adopted})"
            return GateResult(
                spec.id,
                Status.INTERRUPTED,
                f"{key} started at {entry.get('at')} and was cut off{why}: check the system, "
                f"then confirm it again with resume=True (or `relnb run --resume {spec.id}`)",
                {"started": started},
                title=self._title(spec.id),
                recorded=True,
            )
        refused = self._guard(spec.id)
        if refused is not None:
            return refused
        if not confirmed:
            return GateResult(
                spec.id,
                Status.PENDING,
                f"waiting for confirmation to run {key} (click its button, or `relnb run --confirm {spec.id}`)",
                {},
                title=self._title(spec.id),
            )
        who = Identity.parse(by) if by else whoami()
        extra = {"action": key, "confirmed_by": who.to_dict()}
        if resume:
            extra["resumed"] = True
        if key != spec.id:  # a rollback step: journaled under its own name
            return self._execute_named(spec.id, key, fn, forced=force, reason=reason, extra=extra)
        return self._execute(spec.id, fn, event="action", forced=force, reason=reason, extra=extra)

    def _adopt(self, gate_id: str, key: str, fn: Check, entry: dict[str, Any]) -> GateResult | str:
        """Finish an attempt cut off mid-way from what its recorded commands did (they outlive
        relnb: actions/processes.py); the reason it cannot, when it cannot."""
        from .actions.processes import CutOff

        try:
            if key != gate_id:
                return self._execute_named(gate_id, key, fn, forced=False, reason=None, extra={}, adopting=entry)
            return self._execute(gate_id, fn, event="action", extra={"action": key}, adopting=entry)
        except CutOff as exc:
            return str(exc)

    def _recorded_action(self, gate_id: str, key: str, finished: dict[str, Any]) -> GateResult:
        """An action that ran already answers with its record: run once means once."""
        spec = get_gate(gate_id)
        return GateResult(
            gate_id,
            Status(finished["status"]),
            finished.get("summary", ""),
            finished.get("evidence", {}),
            finished.get("started_at"),
            finished.get("finished_at"),
            finished.get("attempt", 0),
            self._title(spec.id),
            recorded=True,
        )

    def action_result(self, key: str) -> dict[str, Any] | None:
        """The recorded finish of an action (for later gates: the rollback reads the pre-deploy snapshot's key)."""
        entry = self.state.actions.get(key)
        return entry.get("finished") if entry else None
