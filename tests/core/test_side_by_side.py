"""Independent checks of a section run side by side in headless runs (issue 23). What runs early
is exactly what its cell would run: the registered check of a gate whose inputs are settled, asked
for by the template's one-liner, with no decision of the run touching it."""

from __future__ import annotations

import threading

import pytest

import relnb
from relnb import Outcome, Release, RunContext, Status
from relnb.checklist import CHECKS

from .helpers import make_project

# the template's cells, with and without the sign-off form every check cell may carry
NOTEBOOK = 'b4 = release.check("B4")\nb6 = release.check("B6", submitted=b6_form.value)\n' + "\n".join(
    f'{g.lower()} = release.check("{g}")' for g in ("B7", "B9")
)


@pytest.fixture
def release(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    root = make_project(tmp_path / "p")
    (root / "nb.py").write_text(NOTEBOOK)
    r = Release.create("1.0.0", root=root, notebook="nb.py")
    r.context = RunContext(headless=True)
    yield r
    r.close()


@pytest.fixture
def providers(monkeypatch):
    """B4, B6, B7, B9 answered by providers that meet at a barrier: B6, B7 and B9 can only pass
    if they run at the same time (one after another, the barrier breaks after its timeout)."""
    barrier = threading.Barrier(3, timeout=20)
    calls: dict[str, str] = {}

    def meet(gate: str):
        def provider(ctx):
            calls[gate] = threading.current_thread().name
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return Outcome.failed(f"{gate} ran alone")
            return Outcome.passed(f"{gate} ran beside the others")

        return provider

    from relnb.checklist import provider_for

    provider_for("B4")  # relnb's own checks are registered: the copy below restores them after
    monkeypatch.setattr(CHECKS, "_items", dict(CHECKS._items))
    relnb.register_check("B4", lambda ctx: calls.setdefault("B4", threading.current_thread().name) and Outcome.passed("ok"))
    for gate in ("B6", "B7", "B9"):
        relnb.register_check(gate, meet(gate))
    return calls


def test_a_sections_independent_checks_run_side_by_side(release, providers):
    release.run("B1", lambda: Outcome.passed("staging runs the SHA"))
    results = {g: release.check(g) for g in ("B4", "B6", "B7", "B9")}
    assert {g: r.status for g, r in results.items()} == dict.fromkeys(results, Status.PASSED), results
    assert providers["B4"] == threading.current_thread().name  # the cell's own gate runs in its cell
    assert len({providers[g] for g in ("B6", "B7", "B9")}) == 3
    started = [e.payload["gate"] for e in release.journal.events if e.type == "gate-started"]
    assert sorted(started) == ["B1", "B4", "B6", "B7", "B9"]  # each once: the cells took the results


def test_nothing_starts_early_without_its_inputs(release, providers):
    """B6/B7/B9 look at staging after B1: with B1 failed nothing starts early (each runs in its
    own cell, whose result then says what it found)."""
    release.run("B1", lambda: Outcome.failed("staging runs another SHA"))
    assert release.check("B4").status is Status.PASSED
    assert set(providers) == {"B4"}


def test_a_gate_whose_cell_runs_its_own_check_is_not_started_early(release, providers):
    (release.config.root / "nb.py").write_text(NOTEBOOK.replace('release.check("B7")', 'release.check("B7", my_check)'))
    release.run("B1", lambda: Outcome.passed("staging runs the SHA"))
    release.check("B4")
    assert "B7" not in providers
    own = release.check("B7", lambda: Outcome.passed("the team's own check"))
    assert own.summary == "the team's own check"


def test_decisions_of_the_run_hold(release, providers):
    release.context = RunContext(headless=True, skips={"B9": "no frontends yet"})
    release.run("B1", lambda: Outcome.passed("staging runs the SHA"))
    release.check("B4")
    assert "B9" not in providers


def test_a_release_lead_stepping_through_cells_runs_one_gate_per_cell(release, providers):
    release.context = RunContext()  # interactive
    release.run("B1", lambda: Outcome.passed("staging runs the SHA"))
    release.check("B4")
    assert set(providers) == {"B4"}


def test_an_action_cell_starts_the_checks_that_can_run_beside_it(release, providers):
    """B2 (staging's migrations) runs in its cell while B6, B7 and B9, which need only B1, run beside it."""
    release.run("B1", lambda: Outcome.passed("staging runs the SHA"))
    release.act("B2", lambda: Outcome.passed("migrated"), confirmed=True)
    assert {"B4", "B6", "B7", "B9"} <= set(providers)
    assert all(release.check(g).status is Status.PASSED for g in ("B6", "B7", "B9"))
