"""The one step runner: how every gate check and every action runs and is recorded.

A step is journaled when it starts and when it finishes; it is timed; an exception becomes a
failed outcome with scrubbed evidence (never a pass); Ctrl-C is recorded as interrupted and
re-raised; and under `relnb replay` a gate's step is answered from the record instead of run.
Gates, their actions and the rollback's named steps differ only in the keys that identify them
in the journal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from .gates import get_gate
from .identity import whoami
from .journal import utcnow
from .redact import format_exception, scrub, scrub_obj
from .results import GateResult, Outcome, Status

Check = Callable[[], Outcome]


class StepRunner:
    """Mixed into `Release`: runs a check or an action as a journaled step."""

    def execute(
        self,
        gate_id: str,
        fn: Check,
        *,
        event: str,
        forced: bool = False,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> GateResult:
        """Run `fn` as gate `gate_id`'s step, or (with `name`) as a named action of that gate
        (a rollback step), which is journaled under its own name and has no attempt count."""
        spec = get_gate(gate_id)
        if name is None:
            attempt = self.state.gates[gate_id].attempts + 1
            keys: dict[str, Any] = {"gate": gate_id, "attempt": attempt}
            if event == "action":
                keys["action"] = (extra or {}).get("action", gate_id)
            subject = keys.get("action") or gate_id
        else:
            attempt = 0
            keys = {"action": name, "of_gate": gate_id}
            subject = name
        payload = dict(keys)
        if forced:
            payload.update(forced=True, reason=reason)
            if name is None:
                payload["by"] = whoami().to_dict()
            grant = self.approval("force", subject, reason or "")
            if grant:
                payload.update(by=grant.identity, **grant.payload())
        payload.update(extra or {})
        started = utcnow()
        self.journal.append(f"{event}-started", payload)
        recorded = self.context.recorded
        if recorded is not None and name is None:  # `relnb replay`: answer from the archive
            fn = partial(recorded.outcome, gate_id)
        t0 = time.monotonic()
        try:
            outcome = fn()
            if not isinstance(outcome, Outcome):
                outcome = Outcome.failed(
                    f"check returned {type(outcome).__name__}, not an Outcome (a bug in the check)"
                )
        except KeyboardInterrupt:
            elapsed = time.monotonic() - t0
            interrupted = Outcome(Status.INTERRUPTED, f"interrupted by the user after {elapsed:.1f} s", {})
            self._finish(event, keys, spec.title, started, t0, interrupted, gate_id)
            raise
        except Exception as exc:  # a crashing check is a failed gate with the evidence, never a pass
            outcome = Outcome.failed(
                f"{type(exc).__name__}: {scrub(str(exc))}".strip()[:300],
                traceback=format_exception(exc),
            )
        return self._finish(event, keys, spec.title, started, t0, outcome, gate_id)

    def _finish(
        self,
        event: str,
        keys: dict[str, Any],
        title: str,
        started: str,
        t0: float,
        outcome: Outcome,
        gate_id: str,
    ) -> GateResult:
        finished = utcnow()
        body = {  # the keys in the order journals have always had them
            **{k: keys[k] for k in ("gate", "action", "of_gate") if k in keys},
            **({"attempt": keys["attempt"]} if "attempt" in keys else {}),
            "status": str(outcome.status),
            "summary": scrub(" ".join(str(outcome.summary).split())),
            "evidence": scrub_obj(outcome.evidence),
            "started_at": started,
            "finished_at": finished,
            "duration_s": round(time.monotonic() - t0, 3),
        }
        self.journal.append(f"{event}-finished", body)
        return GateResult(
            gate_id, outcome.status, body["summary"], body["evidence"], started, finished,
            keys.get("attempt", 0), title,
        )
