"""Interactive controls that work in marimo and degrade to explicit prompts in Jupyter.

An action must never start because a cell executed (marimo re-runs dependents; `marimo run`
executes everything on load), so each action waits for a control the person operates: a marimo
run button, or in Jupyter a typed `yes`. Headless runs answer none of them: `relnb run --confirm`
and `--sign-off` speak for the operator instead, and are journaled as such.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .gates import get_gate


def in_marimo() -> bool:
    if "marimo" not in sys.modules:
        return False
    import marimo

    return bool(marimo.running_in_notebook())


def _headless() -> bool:
    return os.environ.get("RELNB_HEADLESS") == "1"


class PromptConfirm:
    """Jupyter/console stand-in for a run button: asks once, when the action cell evaluates it."""

    def __init__(self, gate_id: str, label: str) -> None:
        self.gate_id = gate_id
        self.label = label

    def ask(self) -> bool:
        if _headless():
            return False
        try:
            answer = input(f"{self.label} — type 'yes' to run {self.gate_id} now: ")
        except (EOFError, OSError, RuntimeError, NotImplementedError):
            return False
        except Exception:  # ipykernel's StdinNotImplementedError when no frontend can answer
            return False
        return answer.strip().lower() == "yes"

    def __repr__(self) -> str:
        return f"[{self.gate_id}] {self.label}: runs only when you type 'yes' at the prompt"

    def _repr_html_(self) -> str:
        return f"<p><b>{self.gate_id}</b> {self.label}: runs only after you type <code>yes</code> at the prompt.</p>"


class PromptSignOff:
    """Jupyter/console stand-in for a sign-off form; `.value` is the note, or None."""

    def __init__(self, gate_id: str, who: str) -> None:
        self.gate_id = gate_id
        self.who = who
        self._value: str | None = None
        self._asked = False

    @property
    def value(self) -> str | None:
        if self._asked or _headless():
            return self._value
        self._asked = True
        try:
            note = input(f"Sign off {self.gate_id} as {self.who}? Type a note (empty: not now): ")
        except Exception:
            return None
        self._value = note.strip() or None
        return self._value

    def __repr__(self) -> str:
        return f"[{self.gate_id}] sign-off by {self.who}: answered at the prompt"


def confirm(gate_id: str, label: str | None = None) -> Any:
    """A control whose use is the person's explicit go for one action."""
    spec = get_gate(gate_id)
    text = label or f"Run {spec.id}: {spec.title}"
    if in_marimo():
        import marimo as mo

        return mo.ui.run_button(label=text, kind="danger" if spec.section == "D" else "neutral")
    return PromptConfirm(spec.id, text)


def sign_off_form(release: Any, gate_id: str) -> Any:
    """A note + submit form for a sign-off gate (shows the recorded sign-off once given)."""
    from .identity import whoami

    spec = get_gate(gate_id)
    who = str(whoami())
    if in_marimo():
        import marimo as mo

        return mo.ui.text_area(
            label=f"{spec.id} sign-off note (recorded with your identity: {who})",
            placeholder="what you checked; for A4 the expand/contract plan",
            full_width=True,
        ).form(submit_button_label=f"Sign off {spec.id}", bordered=False)
    return PromptSignOff(spec.id, who)


def skip_form(gate_id: str) -> Any:
    """For optional gates: a reason that, once submitted, records the item as not needed."""
    spec = get_gate(gate_id)
    if in_marimo():
        import marimo as mo

        return mo.ui.text(label=f"Skip {spec.id} because…", full_width=True).form(
            submit_button_label=f"Skip {spec.id}", bordered=False
        )
    return None
