"""A project's own words for its gates (issue 20): `[gates] titles` in relnb.toml, fixed in the
release's first event, shown wherever a gate is named; a wrong entry is a config error."""

from __future__ import annotations

import pytest

import relnb
from relnb import ConfigError, Outcome
from relnb.junit import write_junit

from .helpers import make_project

TITLES = '[gates]\ntitles = { D3 = "Run migrations (alembic upgrade head)", e1 = "Previous wheel on the index" }\n'


def test_the_projects_titles_reach_the_table_results_and_junit(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    root = make_project(tmp_path / "p", TITLES)
    r = relnb.Release.create("1.0.0", root=root)
    try:
        rows = {row.gate_id: row.title for row in r.status().rows}
        assert rows["D3"] == "Run migrations (alembic upgrade head)"
        assert rows["E1"] == "Previous wheel on the index"
        assert rows["D4"] == relnb.get_gate("D4").title == "Deploy the new version"
        assert r.run("E1", lambda: Outcome.passed("found")).title == "Previous wheel on the index"
        # fixed at creation: editing relnb.toml later does not rename this release's gates
        (root / "relnb.toml").write_text('[gates]\ntitles = { D3 = "something else" }\n')
        reopened = relnb.Release.open("1.0.0", root=root)
        assert reopened.result("D3").title == "Run migrations (alembic upgrade head)"
        junit = write_junit(reopened.state, tmp_path / "junit.xml").read_text()
        reopened.close()
    finally:
        r.close()
    assert 'name="E1 Previous wheel on the index"' in junit


@pytest.mark.parametrize(
    "toml, needle",
    [
        ('[gates]\ntitles = { Z9 = "x" }\n', "unknown gate ID 'Z9'"),
        ('[gates]\ntitles = { D3 = "" }\n', "gates.titles.D3"),
        ('[gates]\ntitles = { D3 = 5 }\n', "gates.titles.D3"),
    ],
)
def test_a_wrong_title_entry_names_the_key(tmp_path, toml, needle):
    root = make_project(tmp_path / "p", toml)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        relnb.load_config(root / "relnb.toml")


def test_a_journal_from_before_titles_were_recorded_keeps_its_words():
    """The committed archives were written with the checklist's words as titles: re-rendering
    them (nbval, replay) must show those, not today's."""
    from relnb.journal import Event
    from relnb.state import fold

    old = fold("old", [Event(0, "2026-01-01T00:00:00+00:00", "release-created", {"release_id": "old"}, "", "h")])
    assert old.result("D3").title == "Run migrations (prisma migrate deploy)"
    new = fold("new", [Event(0, "2026-01-01T00:00:00+00:00", "release-created", {"titles": {"D3": "Run migrations"}}, "", "h")])
    assert new.result("D3").title == "Run migrations" and new.result("D4").title == relnb.get_gate("D4").title
