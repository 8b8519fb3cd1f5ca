"""Interactive controls: marimo widgets in marimo, plain prompts in Jupyter, nothing headless.

An action must never start because a cell executed (marimo re-runs dependents; `marimo run`
executes everything on load), so each action waits for a control the person operates: a marimo
run button, or in Jupyter a typed `yes`. Headless runs answer none of them: `relnb run --confirm`
and `--sign-off` speak for the operator instead, and are journaled as such.

Jupyter must not need marimo (the README promises plain `relnb` is enough), so its gate cells
run the gate first and hand the result to `prompt` here (and call `rollback` and `seal`): the
person is asked only when the gate now waits for them, so nobody types "yes" for an action the
promotion guard would refuse, and every hand-checked gate gets its sign-off prompt.

Every control shows the state of its gate (`action_view`): available (a button), refused (a
disabled button and the blockers), done (the recorded result, no button) or skipped; a sealed
release shows no runnable control at all.
"""

from __future__ import annotations

import html
import os
import sys
from typing import TYPE_CHECKING, Any

from .errors import RelnbError
from .gates import Kind, get_gate
from .identity import Identity, whoami
from .notebook_cache import header_line
from .results import GateResult, Status

if TYPE_CHECKING:
    from .release import Release

AVAILABLE = "available"
REFUSED = "refused"
DONE = "done"
SKIPPED = "skipped"
SIGN_OFF = "awaiting sign-off"
CUT_OFF = "interrupted"


def in_marimo() -> bool:
    if sys.modules.get("marimo") is None:  # not imported, or blocked (sys.modules["marimo"] = None)
        return False
    import marimo

    return bool(marimo.running_in_notebook())


def _headless() -> bool:
    return os.environ.get("RELNB_HEADLESS") == "1"


def _ask(prompt: str) -> str | None:
    """One line from the person, or None when nobody can answer (headless, no stdin frontend)."""
    if _headless():
        return None
    try:
        return input(prompt).strip()
    except Exception:  # EOFError, and ipykernel's StdinNotImplementedError when no frontend answers
        return None


# -- who signs -------------------------------------------------------------------------------


def signer(release: Release) -> Identity:
    """Who a sign-off or waiver made here is recorded for: $RELNB_USER (the person at this
    notebook, e.g. from the project's env file), else the project's `[project] release_lead`,
    else git's user. The machine's git user is often a shared or CI account; the release lead
    configured for the project is the person the checklist means."""
    if os.environ.get("RELNB_USER"):
        return whoami()
    lead = release.config.project.get("release_lead")
    if lead:
        try:
            return Identity.parse(str(lead))
        except RelnbError:
            pass
    return whoami()


def signing_problem(release: Release) -> str | None:
    """One line when signing is required and no key is set (the fix included), else None: the
    form says it before anyone types a note, instead of a traceback after."""
    signing = release.config.data["signing"]
    if not signing.get("required"):
        return None
    from pathlib import Path

    from .signing.keys import resolve_key

    try:
        key = resolve_key(None, signing.get("key"), repo=Path(release.config.repo_path()))
    except RelnbError as exc:
        return f"signing is required but the signing key cannot be used: {exc.message}"
    if key is None:
        return (
            "signing is required ([signing] required = true) and no signing key is set: "
            "set RELNB_SIGNING_KEY (or [signing] key) and re-run this cell"
        )
    return None


# -- the state of a gate's control -------------------------------------------------------------


def _blockers(result: GateResult) -> list[tuple[str, str]]:
    ev = result.evidence or {}
    out = ev.get("blockers") or ev.get("waiting_for") or []
    return [(str(b[0]), str(b[1])) for b in out if isinstance(b, (list, tuple)) and len(b) >= 2]


def _takes_sign_off(release: Release, gate_id: str) -> bool:
    from .checklist import provider_for, takes_sign_off

    spec = get_gate(gate_id)
    if spec.kind is Kind.ACTION:
        return provider_for(spec.id)[1]  # an action not automated yet is confirmed by hand
    return takes_sign_off(spec.id, release.config.data["gates"]["manual"])


def control_state(release: Release, result: GateResult) -> str:
    """What the person can do about a gate now, from the result its cell just produced."""
    gid = result.gate_id
    if result.status is Status.SKIPPED:
        return SKIPPED
    if _blockers(result):
        return REFUSED
    if result.status is Status.INTERRUPTED:
        return CUT_OFF
    if result.status is Status.PENDING:
        if _takes_sign_off(release, gid):
            return SIGN_OFF if release.state.gates[gid].sign_off is None else DONE
        return AVAILABLE if get_gate(gid).kind is Kind.ACTION else REFUSED
    if get_gate(gid).kind is Kind.ACTION and result.status.is_failure:
        return AVAILABLE  # a failed action runs again on a person's explicit go
    return DONE


def _sealed(release: Release) -> bool:
    return release.state.sealed is not None or bool(getattr(release.journal, "sealed", False))


def _can_prompt(release: Release) -> bool:
    return not (_headless() or release.context.headless or release.context.recorded is not None or _sealed(release))


# -- Jupyter: cells that ask only for what can happen now --------------------------------------


def prompt(release: Release, result: GateResult) -> GateResult:
    """A gate's Jupyter cell passes the result its gate call just produced: when that gate now
    waits for a person, ask (a sign-off note, as whom it is recorded; or a typed `yes` for an
    action that can run now, `skip: why` for an optional one); otherwise return it unchanged."""
    spec = get_gate(result.gate_id)
    state = control_state(release, result)
    if not _can_prompt(release) or state not in (AVAILABLE, SIGN_OFF):
        return result
    if state == SIGN_OFF:
        return _prompt_sign_off(release, spec.id, result)
    text = f"Run {spec.id}: {result.title or spec.title}"
    again = " again (its last run did not pass)" if result.status.is_failure else ""
    skip = ", 'skip: <reason>' to declare it not needed" if spec.optional else ""
    answer = _ask(f"{text} — type 'yes' to run it now{again}{skip}; empty: not now: ")
    if not answer:
        return result
    if spec.optional and answer.lower().startswith("skip"):
        reason = answer[4:].lstrip(" :").strip()
        if not reason:
            return result.with_(summary=f"{result.summary} — a skip needs a reason: 'skip: <reason>'")
        return _decided(release, spec.id, lambda: release.act(spec.id, skip=reason))
    if answer.lower() != "yes":
        return result
    return _decided(release, spec.id, lambda: release.act(spec.id, confirmed=True))


def _prompt_sign_off(release: Release, gate_id: str, result: GateResult) -> GateResult:
    spec = get_gate(gate_id)
    problem = signing_problem(release)
    if problem:
        return result.with_(summary=f"{result.summary} — sign-off not possible here: {problem}")
    who = signer(release)
    need = (result.evidence or {}).get("sign_off_requires") or "what you checked"
    note = _ask(
        f"{spec.id} {result.title or spec.title}: {result.summary}\n"
        f"Sign off {spec.id} as {who}? Type a note ({need}); empty: not now: "
    )
    if not note:
        return result
    return _decided(release, spec.id, lambda: release.request_sign_off(spec.id, submitted=note, by=who))


def _decided(release: Release, gate_id: str, run: Any) -> GateResult:
    """A decision the signing rules refuse (no key, four-eyes) ends in one line, not a traceback."""
    try:
        out: GateResult = run()
        return out
    except RelnbError as exc:
        current = release.result(gate_id)
        return current.with_(summary=f"{current.summary} — not done: {exc}")


def rerun(release: Release, gate_id: str, reason: str) -> GateResult:
    """Run a settled gate again from a notebook cell (a forced run, journaled with its reason).
    When the signing rules refuse it (signing required and no key set, four-eyes), the cell
    says so in one line with the fix, and the gate keeps its recorded result."""
    spec = get_gate(gate_id)
    if spec.kind is Kind.ACTION:
        return _decided(release, spec.id, lambda: release.act(spec.id, confirmed=True, force=True, reason=reason))
    return _decided(release, spec.id, lambda: release.check(spec.id, rerun=True, reason=reason))


def rollback(release: Release) -> Any:
    """The rollback's Jupyter cell: asks only once something was deployed and not rolled back."""
    from .gates import DEPLOY_GATE

    table = release.rollback(confirmed=False)
    if not _can_prompt(release) or DEPLOY_GATE not in release.state.actions or release.state.rollback is not None:
        return table
    if not any(r.status is Status.PENDING for r in table.rows):
        return table
    hurt = release.production_failures()
    why = f" ({', '.join(hurt)} did not pass)" if hurt else " (only if production is hurt)"
    if (_ask(f"Roll back production now{why}? type 'yes' to roll back; empty: no: ") or "").lower() != "yes":
        return table
    return release.rollback(confirmed=True)


def seal(release: Release) -> Any:
    """The archive's Jupyter cell: asks only when the release is finished and not sealed yet."""
    from .archive import archive

    if _sealed(release):
        return f"archive: release {release.id} is sealed (check it with `relnb verify {release.id}`)"
    blockers = release.state.seal_blockers()
    if not _can_prompt(release) or blockers:
        if blockers and _can_prompt(release):
            names = ", ".join(f"{g} ({s})" for g, s in blockers[:8])
            more = f" and {len(blockers) - 8} more" if len(blockers) > 8 else ""
            return f"archive: not finished yet: {names}{more}"
        return archive(release, confirmed=False)
    answer = _ask(f"Seal release {release.id} (archive it; the journal then takes no more events)? type 'yes': ")
    return archive(release, confirmed=(answer or "").lower() == "yes")


# -- what a gate's cell shows ---------------------------------------------------------------------
#
# The marimo template defines each control in a cell of its own (marimo reads a widget's value in
# the cell that uses it) and shows it in the gate's cell, through these views: the control only
# when the person can use it now. Outside marimo the same views fall back to `prompt`.


def _run_label(gate_id: str, result: GateResult | None = None) -> str:
    spec = get_gate(gate_id)
    return f"Run {spec.id}: {(result.title if result else '') or spec.title}"


def _blocked_line(result: GateResult) -> str:
    names = ", ".join(f"{g} ({s})" for g, s in _blockers(result))
    return f"**Refused** — waiting for {names}" if names else f"**Refused** — {result.summary}"


def action_view(release: Release, result: GateResult, go: Any = None, skip: Any = None) -> Any:
    """An action's cell: available (its button), refused (a disabled button and the blockers),
    done (the recorded result, no button), skipped, or cut off; a sealed release shows no control."""
    if not in_marimo():
        return prompt(release, result) if _can_prompt(release) else result
    import marimo as mo

    if _sealed(release):
        return result
    state = control_state(release, result)
    spec = get_gate(result.gate_id)
    if state == AVAILABLE and go is not None:
        controls = [go] + ([skip] if skip is not None and spec.optional else [])
        return mo.vstack([*controls, result])
    if state == REFUSED:
        button = mo.ui.run_button(label=_run_label(spec.id, result), disabled=True, tooltip="refused: see below")
        return mo.vstack([button, mo.md(_blocked_line(result)), result])
    if state == SIGN_OFF:
        return mo.vstack([mo.md(f"{spec.id} is confirmed by hand: `release.sign_off({spec.id!r}, note=...)`"), result])
    return result


def sign_off_view(release: Release, result: GateResult, form: Any = None) -> Any:
    """A gate's cell: the sign-off form only while the gate waits for one; one line instead of
    the form when signing is required and no key is set; the result otherwise."""
    if not in_marimo():
        return prompt(release, result) if _can_prompt(release) else result
    import marimo as mo

    if _sealed(release) or control_state(release, result) != SIGN_OFF:
        if control_state(release, result) == REFUSED and not _sealed(release):
            return mo.vstack([mo.md(_blocked_line(result)), result])
        return result
    problem = signing_problem(release)
    if problem:
        return mo.vstack([mo.md(f"**Sign-off not possible here:** {problem}"), result])
    if form is None:
        return result
    return mo.vstack([form, result])


def rollback_view(release: Release, table: Any, go: Any = None) -> Any:
    """The rollback's cell: its button only once something was deployed and not rolled back."""
    from .gates import DEPLOY_GATE

    runnable = (
        not _sealed(release)
        and DEPLOY_GATE in release.state.actions
        and release.state.rollback is None
        and any(r.status is Status.PENDING for r in table.rows)
    )
    if not in_marimo():
        return rollback(release) if runnable and _can_prompt(release) else table
    import marimo as mo

    return mo.vstack([go, table]) if runnable and go is not None else table


def seal_view(release: Release, outcome: Any, go: Any = None) -> Any:
    """The archive's cell: its button only when the release is finished and not sealed."""
    if not in_marimo():
        return seal(release) if _can_prompt(release) and isinstance(outcome, str) else outcome
    import marimo as mo

    if not isinstance(outcome, str):  # the archive just written
        return outcome
    if _sealed(release):
        return mo.md(f"Release {release.id} is sealed: check it with `relnb verify {release.id}`")
    blockers = release.state.seal_blockers()
    if blockers:
        names = ", ".join(f"{g} ({s})" for g, s in blockers[:8])
        return mo.md(f"Not finished yet: {names}{' …' if len(blockers) > 8 else ''}")
    return mo.vstack([go, outcome]) if go is not None else outcome


def ticker() -> Any:
    """What makes the header re-read the journal while the release runs (marimo; None elsewhere)."""
    if not in_marimo():
        return None
    import marimo as mo

    return mo.ui.refresh(default_interval="3s", label="")


def summary(release: Release, tick: Any = None) -> Any:
    """The header: where the release stands, folded from the journal each time it is shown (the
    ticker re-runs it in marimo, so it follows the gates as they settle)."""
    table = release.status()
    line = header_line(release.id, release.state, sealed=_sealed(release))
    if not in_marimo():
        return _Line(line)
    import marimo as mo

    head = mo.md(f"**{html.escape(line)}**")
    return mo.vstack([mo.hstack([head, tick], justify="start") if tick is not None else head, table])


class _Line(str):
    """One line shown as itself (not as a quoted string) in Jupyter, CI logs and the console."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<p><b>{html.escape(self)}</b></p>"


# -- controls: marimo widgets, or deferred to the gate's view (`confirm`, `sign_off_form` and
# `skip_form` stay for notebooks written with the older template) ------------------------------


class PromptConfirm:
    """Jupyter/console stand-in for a run button: asks once, when the action cell evaluates it."""

    def __init__(self, gate_id: str, label: str) -> None:
        self.gate_id = gate_id
        self.label = label

    def ask(self) -> bool:
        answer = _ask(f"{self.label} — type 'yes' to run {self.gate_id} now: ")
        return (answer or "").lower() == "yes"

    def __repr__(self) -> str:
        return f"[{self.gate_id}] {self.label}: runs only when you type 'yes' at the prompt"

    def _repr_html_(self) -> str:
        return f"<p><b>{self.gate_id}</b> {html.escape(self.label)}: runs only after you type <code>yes</code> at the prompt.</p>"


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
        self._value = _ask(f"Sign off {self.gate_id} as {self.who}? Type a note (empty: not now): ") or None
        return self._value

    def __repr__(self) -> str:
        return f"[{self.gate_id}] sign-off by {self.who}: answered at the prompt"


class Deferred:
    """Outside marimo, a control of the current template answers nothing when read: its gate's
    view asks (`prompt`) once the gate's state shows there is something to ask."""

    value = None

    def __init__(self, gate_id: str) -> None:
        self.gate_id = gate_id

    def __repr__(self) -> str:
        return f"[{self.gate_id}] asked in the gate's cell when it can run"


class DeferredGo(Deferred):
    value = False  # type: ignore[assignment]


def run_button(gate_id: str, label: str | None = None) -> Any:
    """The template's go for one action: a marimo run button; elsewhere the view asks."""
    spec = get_gate(gate_id)
    if in_marimo():
        import marimo as mo

        return mo.ui.run_button(label=label or _run_label(spec.id), kind="danger" if spec.section == "D" else "neutral")
    return DeferredGo(spec.id)


def sign_off_input(release: Any, gate_id: str) -> Any:
    """The template's sign-off form (marimo); elsewhere the gate's view asks when it can."""
    if in_marimo():
        return sign_off_form(release, gate_id)
    return Deferred(get_gate(gate_id).id)


def confirm(gate_id: str, label: str | None = None) -> Any:
    """A control whose use is the person's explicit go for one action."""
    spec = get_gate(gate_id)
    text = label or f"Run {spec.id}: {spec.title}"
    if in_marimo():
        import marimo as mo

        return mo.ui.run_button(label=text, kind="danger" if spec.section == "D" else "neutral")
    return PromptConfirm(spec.id, text)


def sign_off_form(release: Any, gate_id: str) -> Any:
    """A note + submit form for a sign-off gate, naming who it will be recorded for; when
    signing is required and no key is set, one line saying so and how to fix it instead."""
    spec = get_gate(gate_id)
    who = str(signer(release))
    if in_marimo():
        import marimo as mo

        problem = signing_problem(release)
        label = f"{spec.id} sign-off note (recorded for {who})"
        if problem:
            label = f"{spec.id} sign-off: {problem}"
        return mo.ui.text_area(
            label=label,
            placeholder="what you checked; for A4 the expand/contract plan",
            full_width=True,
        ).form(submit_button_label=f"Sign off {spec.id}", bordered=False)
    return PromptSignOff(spec.id, who)


def skip_input(gate_id: str) -> Any:
    """The template's skip form for an optional gate (marimo); elsewhere the view asks."""
    return skip_form(gate_id) if in_marimo() else None


def skip_form(gate_id: str) -> Any:
    """For optional gates: a reason that, once submitted, records the item as not needed."""
    spec = get_gate(gate_id)
    if in_marimo():
        import marimo as mo

        return mo.ui.text(label=f"Skip {spec.id} because…", full_width=True).form(
            submit_button_label=f"Skip {spec.id}", bordered=False
        )
    return None
