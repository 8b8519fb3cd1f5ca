"""The one step runner: how every gate check, gate action and rollback step runs and is recorded.

The lifecycle is written once (`StepRunner._run_step`): a forced step gets its approval; the
start is journaled; under `relnb replay` a step is answered from the record instead of run; the
step is timed; an exception becomes a failed outcome with scrubbed evidence (never a pass); a
value that is not an Outcome is a bug in the check and fails the step; Ctrl-C is journaled as
interrupted and re-raised; the finish is journaled and returned as a `GateResult`.

What differs between steps is only how they are named in the journal, and that is data of the
step (`GateStep`, `NamedStep`), so the event shapes committed archives were written with stay
exactly as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from .gates import get_gate
from .identity import whoami
from .journal import utcnow
from .promotion import PromotionGuard
from .redact import format_exception, scrub, scrub_obj
from .results import GateResult, Outcome, Status

Check = Callable[[], Outcome]


class Step(Protocol):
    """A step as the runner sees it: who it is in the journal, and the bodies it journals."""

    gate_id: str
    title: str
    event: str  # "gate" or "action": the journal's f"{event}-started" / f"{event}-finished"
    attempt: int
    subject: str  # what a forced run's approval is for
    replayable: bool  # `relnb replay` answers it from the archive

    def forcer(self) -> dict[str, Any]: ...

    def started(self, force: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]: ...

    def finished(self, outcome: Outcome, started: str, t0: float) -> dict[str, Any]: ...

    def interrupted(self, elapsed: float, started: str, t0: float) -> dict[str, Any]: ...


def _ending(outcome: Outcome, summary: str, started: str, t0: float) -> dict[str, Any]:
    """The part of a finish every step shares, in the order journals have always had it."""
    return {
        "status": str(outcome.status),
        "summary": summary,
        "evidence": scrub_obj(outcome.evidence),
        "started_at": started,
        "finished_at": utcnow(),
        "duration_s": round(time.monotonic() - t0, 3),
    }


@dataclass(frozen=True)
class GateStep:
    """A gate's own step (its check, its evidence, or its action): an attempt of the gate."""

    gate_id: str
    title: str
    event: str
    attempt: int
    action: str | None = None  # set for an action: the key its run-once record lives under
    replayable: bool = True

    @property
    def subject(self) -> str:
        return self.action or self.gate_id

    def forcer(self) -> dict[str, Any]:
        return {"by": whoami().to_dict()}

    def started(self, force: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        keys: dict[str, Any] = {"gate": self.gate_id, "attempt": self.attempt}
        if self.action is not None:
            keys["action"] = self.action
        return {**keys, **force, **extra}

    def finished(self, outcome: Outcome, started: str, t0: float) -> dict[str, Any]:
        keys: dict[str, Any] = {"gate": self.gate_id}
        if self.action is not None:
            keys["action"] = self.action
        summary = scrub(" ".join(str(outcome.summary).split()))
        return {**keys, "attempt": self.attempt, **_ending(outcome, summary, started, t0)}

    def interrupted(self, elapsed: float, started: str, t0: float) -> dict[str, Any]:
        stop = Outcome(Status.INTERRUPTED, f"interrupted by the user after {elapsed:.1f} s", {})
        return self.finished(stop, started, t0)


@dataclass(frozen=True)
class NamedStep:
    """A step that is not a gate's verdict (a rollback step): journaled under its own name with
    the gate it belongs to, and no attempt of that gate."""

    gate_id: str
    title: str
    name: str
    event: str = "action"
    attempt: int = 0
    replayable: bool = False

    @property
    def subject(self) -> str:
        return self.name

    def forcer(self) -> dict[str, Any]:
        return {}  # who forced it is the approval's (or the `confirmed_by` in extra)

    def _keys(self) -> dict[str, Any]:
        return {"action": self.name, "of_gate": self.gate_id}

    def started(self, force: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        return {**self._keys(), **extra, **force}

    def finished(self, outcome: Outcome, started: str, t0: float) -> dict[str, Any]:
        return {**self._keys(), **_ending(outcome, scrub(outcome.summary), started, t0)}

    def interrupted(self, elapsed: float, started: str, t0: float) -> dict[str, Any]:
        return {**self._keys(), "status": "interrupted", "summary": "interrupted by the user"}


class StepRunner(PromotionGuard):
    """`Release`'s step runner: gates, actions and rollback steps all run through `_run_step`."""

    def _execute(
        self,
        gate_id: str,
        fn: Check,
        *,
        event: str,
        forced: bool = False,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
        adopting: dict[str, Any] | None = None,
    ) -> GateResult:
        """Run `fn` as the next attempt of gate `gate_id` (a check when `event` is "gate", its
        action when "action"), or finish the cut-off attempt being adopted."""
        spec = get_gate(gate_id)
        action = (extra or {}).get("action", gate_id) if event == "action" else None
        attempts = self.state.gates[spec.id].attempts
        attempt = int(adopting["started"].get("attempt", attempts)) if adopting else attempts + 1
        step = GateStep(spec.id, self._title(spec.id), event, attempt, action)
        return self._run_step(step, fn, forced=forced, reason=reason, extra=extra, adopting=adopting)

    def _execute_named(
        self,
        gate_id: str,
        name: str,
        fn: Check,
        *,
        forced: bool,
        reason: str | None,
        extra: dict[str, Any],
        adopting: dict[str, Any] | None = None,
    ) -> GateResult:
        """Run `fn` as the step `name` of gate `gate_id` (a rollback step)."""
        step = NamedStep(gate_id, self._title(gate_id), name)
        return self._run_step(step, fn, forced=forced, reason=reason, extra=extra, adopting=adopting)

    def _run_step(
        self,
        step: Step,
        fn: Check,
        *,
        forced: bool,
        reason: str | None,
        extra: dict[str, Any] | None,
        adopting: dict[str, Any] | None = None,
    ) -> GateResult:
        """`adopting` is the record of an action attempt cut off mid-way whose commands were
        recorded: that attempt is finished with what its commands did (processes.py) instead of
        starting a new one; `CutOff` propagates when they cannot tell."""
        from .actions.processes import PROCESS_EVENT, CutOff, ProcessLedger, private_dir

        ledger = None
        if step.event == "action":
            ledger = ProcessLedger(
                private_dir(self.id, self.journal.path),
                record=lambda info: self.journal.append(PROCESS_EVENT, {"action": step.subject, **info}),
                adopt=adopting.get("processes", []) if adopting else None,
            )
        if adopting:
            started = str(adopting.get("at") or utcnow())
        else:
            started = utcnow()
            force: dict[str, Any] = {}
            if forced:
                force = {"forced": True, "reason": reason, **step.forcer()}
                grant = self._approval("force", step.subject, reason or "")
                if grant:
                    force.update(by=grant.identity, **grant.payload())
            self.journal.append(f"{step.event}-started", step.started(force, extra or {}))
        recorded = self.context.recorded
        if recorded is not None and step.replayable:  # `relnb replay`: answer from the archive
            fn = partial(recorded.outcome, step.gate_id)
        t0 = time.monotonic()
        try:
            if ledger is not None:
                with ledger.active():
                    outcome = fn()
            else:
                outcome = fn()
            if not isinstance(outcome, Outcome):
                outcome = Outcome.failed(
                    f"check returned {type(outcome).__name__}, not an Outcome (a bug in the check)"
                )
        except KeyboardInterrupt:
            self.journal.append(f"{step.event}-finished", step.interrupted(time.monotonic() - t0, started, t0))
            raise
        except CutOff:
            raise
        except Exception as exc:  # a crashing step is a failure with the evidence, never a pass
            outcome = Outcome.failed(
                f"{type(exc).__name__}: {scrub(str(exc))}"[:300], traceback=format_exception(exc)
            )
        if adopting:
            outcome = Outcome(
                outcome.status,
                f"finished while relnb was away: {outcome.summary}",
                {**outcome.evidence, "adopted_from_seq": adopting.get("seq")},
            )
        body = step.finished(outcome, started, t0)
        self.journal.append(f"{step.event}-finished", body)
        if ledger is not None:
            ledger.cleanup()
        return GateResult(
            step.gate_id, outcome.status, body["summary"], body["evidence"], started, body["finished_at"],
            step.attempt, step.title,
        )
