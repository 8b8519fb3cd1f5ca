"""issue 21: what the release notebook's cells show, rendered in-process against a real journal.

Action cells show one state: available (their button), refused (a disabled button and the
blockers), done (the recorded result, no button) or skipped; a sealed release shows no runnable
control. The header summary is folded from the journal whenever it is shown. Sign-off forms name
the configured identity, and a sign-off or forced re-run that signing refuses ends in one line
with the fix, not a traceback.
"""

from __future__ import annotations

import builtins
import json
import os

import pytest

import relnb
from relnb import Outcome, Release, Status
from relnb import ui as rui
from relnb.archive import archive_release

from ..archive.builders import finish, project_with_history
from .helpers import make_project

LEAD = "Lead <lead@example.org>"
MANUAL = '["A2", "A3", "A4", "A6", "B1", "B4", "B5", "B6", "B7", "B8", "B9", "C1", "C2", "C3", "C4", "C5", "D5", "D7", "E1", "E2", "E3", "F2"]'
CONFIG = f"""
[project]
name = "ui"
migrations_kind = "none"
{{project_extra}}
[gates]
manual = {MANUAL}
[ci]
command = "echo '3 passed'"
[environments.staging]
base_url = "http://127.0.0.1:9"
version_timeout = "1s"
[environments.staging.commands]
migrate = "echo migrated-staging >> {{log}}"
[environments.production]
base_url = "http://127.0.0.1:9"
version_timeout = "1s"
[environments.production.commands]
deploy = "echo deployed >> {{log}}"
{{signing}}
"""


def write_project(tmp_path, *, project_extra: str = "", signing: str = ""):
    root = make_project(tmp_path / "proj")
    (root / "relnb.toml").write_text(CONFIG.format(log=root / "actions.log", project_extra=project_extra, signing=signing))
    return root


@pytest.fixture
def marimo_ui(monkeypatch):
    """The views as marimo shows them: marimo's widgets, built outside a running notebook."""
    pytest.importorskip("marimo", reason="the marimo views need marimo (pip install 'relnb[marimo]')")
    monkeypatch.setattr(rui, "in_marimo", lambda: True)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    monkeypatch.delenv("RELNB_HEADLESS", raising=False)
    monkeypatch.delenv("RELNB_SIGNING_KEY", raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)  # no signing key from the machine's git
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("RELNB_USER", LEAD)


def html(view) -> str:
    if hasattr(view, "text"):  # a marimo Html (vstack, md, widget)
        return str(view.text)
    return view._repr_html_() if hasattr(view, "_repr_html_") else str(view)


def buttons(view) -> list[str]:
    """The marimo buttons a view shows, as their HTML tags (empty: no runnable control)."""
    text = html(view)
    return [part.split(">", 1)[0] for part in text.split("<marimo-button")[1:]]


def test_action_states_refused_available_done_skipped(tmp_path, isolated, marimo_ui, monkeypatch):
    root = write_project(tmp_path)
    monkeypatch.chdir(root)
    r = Release.create("5.0.0", root=root)

    # refused: section D before A–C settled — a disabled button and the gates that block it
    d4_go = rui.run_button("D4")
    d4 = r.act("D4", confirmed=d4_go)
    assert rui.control_state(r, d4) == rui.REFUSED
    view = rui.action_view(r, d4, d4_go)
    [tag] = buttons(view)
    assert "data-disabled='true'" in tag
    assert "Refused" in html(view) and "A3 (pending)" in html(view)

    # B2 waits for B1: refused as well, naming B1
    b2_go = rui.run_button("B2")
    b2 = r.act("B2", confirmed=b2_go)
    assert rui.control_state(r, b2) == rui.REFUSED and "B1" in html(rui.action_view(r, b2, b2_go))

    # available once B1 is signed off: the live button, enabled
    r.check("B1", submitted="staging runs main")
    b2 = r.act("B2", confirmed=b2_go)
    assert rui.control_state(r, b2) == rui.AVAILABLE
    [tag] = buttons(rui.action_view(r, b2, b2_go))
    assert "data-disabled='false'" in tag and "Run B2" in html(b2_go)

    # done: after its run, the recorded result and no button
    b2 = r.act("B2", confirmed=True)
    assert b2.status is Status.PASSED
    again = r.act("B2", confirmed=b2_go)
    assert rui.control_state(r, again) == rui.DONE
    assert buttons(rui.action_view(r, again, b2_go)) == []
    assert "PASS" in html(rui.action_view(r, again, b2_go)).upper()

    # skipped: the decision, no button, no skip form
    b3_go, b3_skip = rui.run_button("B3"), rui.skip_input("B3")
    b3 = r.act("B3", confirmed=b3_go, skip="no images this time")
    view = rui.action_view(r, b3, b3_go, b3_skip)
    assert rui.control_state(r, b3) == rui.SKIPPED and buttons(view) == [] and "marimo-form" not in html(view)
    r.close()


def test_sign_off_form_shows_only_while_a_gate_waits_for_it(tmp_path, isolated, marimo_ui, monkeypatch):
    root = write_project(tmp_path)
    monkeypatch.chdir(root)
    r = Release.create("5.1.0", root=root)
    form = rui.sign_off_input(r, "B1")  # a check the project lists as hand-checked
    b1 = r.check("B1", submitted=form.value)
    assert "marimo-form" in html(rui.sign_off_view(r, b1, form))
    a1_form = rui.sign_off_input(r, "A1")  # automatic: no form, ever
    a1 = r.check("A1", submitted=a1_form.value)
    assert a1.status is Status.PASSED and "marimo-form" not in html(rui.sign_off_view(r, a1, a1_form))
    b1 = r.check("B1", submitted="checked")
    assert b1.status is Status.PASSED and "marimo-form" not in html(rui.sign_off_view(r, b1, form))
    r.close()


def test_a_sealed_notebook_shows_no_runnable_control(tmp_path, isolated, marimo_ui, monkeypatch):
    project = project_with_history(tmp_path / "sealed")
    monkeypatch.chdir(project)
    r = Release.create("1.1.0", root=project)
    finish(r)
    r.close()
    archive_release("1.1.0", root=project)
    r = Release.open("1.1.0", root=project)
    try:
        for gate in relnb.GATES:
            if gate.kind is relnb.Kind.ACTION:
                go = rui.run_button(gate.id)
                skip = rui.skip_input(gate.id) if gate.optional else None
                view = rui.action_view(r, r.act(gate.id, confirmed=go, skip=skip), go, skip)
            else:
                form = rui.sign_off_input(r, gate.id)
                view = rui.sign_off_view(r, r.check(gate.id, submitted=form.value), form)
            assert buttons(view) == [] and "marimo-form" not in html(view), gate.id
        go = rui.run_button("E3", "Roll back production now")
        assert buttons(rui.rollback_view(r, r.rollback(confirmed=go), go)) == []
        go = rui.run_button("F3", "Seal the release (archive)")
        assert buttons(rui.seal_view(r, relnb.archive.archive(r, confirmed=go), go)) == []
    finally:
        r.close()


def test_header_summary_is_folded_from_the_journal_when_shown(tmp_path, isolated, marimo_ui, monkeypatch):
    root = write_project(tmp_path)
    monkeypatch.chdir(root)
    r = Release.create("5.2.0", root=root)
    tick = rui.ticker()
    first = html(rui.summary(r, tick))
    assert "33 pending" in first and "marimo-refresh" in first  # the timer that re-reads it
    r.check("A1")
    r.check("B1", submitted="staging runs main")
    assert "2 passed, 31 pending" in html(rui.summary(r, tick))  # updates as gates settle
    r.close()
    # opening the notebook again: the header shows the journal, not "33 pending"
    reopened = Release.open("5.2.0", root=root)
    assert "2 passed, 31 pending" in html(rui.summary(reopened, rui.ticker()))
    reopened.close()


SIGNING_REQUIRED = '[signing]\nrequired = true\n'


def test_sign_off_form_names_the_configured_lead_and_says_when_signing_cannot_work(tmp_path, isolated, marimo_ui, monkeypatch):
    monkeypatch.delenv("RELNB_USER")  # the machine's git user is "T" (helpers.git); the lead is Alice
    root = write_project(tmp_path, project_extra='release_lead = "Alice <alice@example.org>"')
    monkeypatch.chdir(root)
    r = Release.create("5.3.0", root=root, author="Alice <alice@example.org>")
    form = rui.sign_off_input(r, "A3")
    assert "recorded for Alice" in html(form)  # not the machine's user (git's user.name, or the OS user)
    r.close()

    root2 = write_project(tmp_path / "signed", signing=SIGNING_REQUIRED)
    monkeypatch.chdir(root2)
    r = Release.create("5.4.0", root=root2, author=LEAD)
    form = rui.sign_off_input(r, "A3")
    a3 = r.check("A3", submitted=None)
    view = html(rui.sign_off_view(r, a3, form))
    assert "marimo-form" not in view  # no form that can only fail
    assert "no signing key is set" in view and "RELNB_SIGNING_KEY" in view
    assert "Traceback" not in view
    r.close()


def test_jupyter_sign_off_is_recorded_for_the_configured_lead(tmp_path, isolated, monkeypatch):
    monkeypatch.delenv("RELNB_USER")
    root = write_project(tmp_path, project_extra='release_lead = "Alice <alice@example.org>"')
    monkeypatch.chdir(root)
    r = Release.create("5.5.0", root=root, author="Alice <alice@example.org>")
    asked: list[str] = []
    monkeypatch.setattr(builtins, "input", lambda p="": asked.append(p) or "reviewed the migration")
    a3 = rui.prompt(r, r.check("A3"))
    assert a3.status is Status.PASSED
    assert "as Alice <alice@example.org>" in asked[0]
    events = [json.loads(ln) for ln in (r.directory / "journal.jsonl").read_text().splitlines()]
    [signed] = [e for e in events if e["type"] == "sign-off"]
    assert signed["payload"]["by"]["email"] == "alice@example.org"
    r.close()


def test_signing_refusals_end_in_one_line_for_sign_offs_and_forced_reruns(tmp_path, isolated, monkeypatch):
    root = write_project(tmp_path, signing=SIGNING_REQUIRED)
    monkeypatch.chdir(root)
    r = Release.create("5.6.0", root=root, author=LEAD)
    monkeypatch.setattr(builtins, "input", lambda p="": "checked")
    a3 = rui.prompt(r, r.check("A3"))  # Jupyter: the prompt is not even offered
    assert a3.status is Status.PENDING and "RELNB_SIGNING_KEY" in a3.summary
    r.run("A1", lambda: Outcome.passed("ci green"))
    forced = rui.rerun(r, "A1", "flaky runner replaced")
    assert forced.status is Status.PASSED  # the recorded result stands
    assert "not done" in forced.summary and "RELNB_SIGNING_KEY" in forced.summary
    assert "\n" not in forced.summary
    r.close()
