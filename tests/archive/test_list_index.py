"""`relnb list` keeps releases/index.json true (issue 23).

The index is a cache of one row per sealed archive. `relnb list` tells sealed from open by each
journal's last event, so an archive the index lacks (it was deleted, damaged, or the archive was
restored from elsewhere) is listed as sealed, never as "open", and the index is rebuilt from the
archives, with one note on stderr, no traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from relnb import Release
from relnb.archive import archive_release
from relnb.archive import files as F

from .builders import project_with_history
from .builders import relnb as run_cli

SEALED = ("1.1.0", "1.2.0")
OPEN = "1.3.0"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sealed archives (abandoned, so they may be sealed unfinished) and one open release."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RELNB_USER", "Lead <lead@example.org>")
    mp.delenv("RELNB_ROOT", raising=False)
    try:
        root = project_with_history(tmp_path_factory.mktemp("list") / "proj")
        for rid in SEALED:
            r = Release.create(rid, root=root)
            r.abandon(reason="rehearsal, sealed for the listing")
            r.close()
            archive_release(rid, root=root)
        Release.create(OPEN, root=root).close()
    finally:
        mp.undo()
    return root


@pytest.fixture
def project(pristine: Path, tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(pristine, root)
    return root


def listed(root: Path) -> tuple[dict[str, dict], str]:
    out = run_cli("list", "--json", cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return {r["release_id"]: r for r in json.loads(out.stdout)}, out.stderr


def index_rows(root: Path) -> dict[str, dict]:
    data = json.loads((root / "releases" / F.INDEX).read_text())
    return data["releases"]


def states(root: Path) -> dict[str, str]:
    """The state column of the plain listing, by release id."""
    out = run_cli("list", cwd=root)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stdout + out.stderr
    return {ln.split()[0]: ln.split()[-1] for ln in out.stdout.splitlines() if ln.strip()}


def test_missing_index_is_rebuilt_and_sealed_archives_are_not_open(project: Path):
    index = project / "releases" / F.INDEX
    index.unlink()
    assert states(project) == {"1.1.0": "sealed", "1.2.0": "sealed", OPEN: "open"}
    rows = index_rows(project)
    assert set(rows) == set(SEALED)  # rewritten, one row per sealed archive, none for the open one
    for rid in SEALED:
        sealed = json.loads((project / "releases" / rid / F.JOURNAL).read_text().splitlines()[-1])
        assert rows[rid]["head"] == sealed["prev"]
        assert rows[rid]["verdict"] == sealed["payload"]["verdict"] == "abandoned"
    again, note = listed(project)
    assert note == ""  # a fresh index is read as it is, without a note
    assert again["1.1.0"]["verdict"] == "abandoned" and again[OPEN]["status"] == "open"


def test_an_archive_the_index_lacks_appears_as_sealed(project: Path):
    releases = project / "releases"
    shutil.copytree(releases / "1.2.0", releases / "1.2.1")  # e.g. restored from a backup
    rows, note = listed(project)
    assert rows["1.2.1"]["verdict"] == "abandoned"
    assert "1 archive(s) not in it" in note and note.count("\n") == 1, note
    assert "1.2.1" in index_rows(project)
    assert states(project)["1.2.1"] == "sealed"


def test_a_damaged_index_is_rebuilt_with_one_note(project: Path):
    index = project / "releases" / F.INDEX
    index.write_text('{"version": 1, "releases": {"1.1.0": ')
    rows, note = listed(project)
    assert set(rows) == {*SEALED, OPEN}
    assert note.startswith("relnb: note: ") and note.count("\n") == 1, note
    assert "index.json was unreadable" in note and "rebuilt from the archives" in note
    assert set(index_rows(project)) == set(SEALED)
    assert states(project) == {"1.1.0": "sealed", "1.2.0": "sealed", OPEN: "open"}


def test_rows_whose_archive_changed_or_vanished_are_redone(project: Path):
    releases = project / "releases"
    body = json.loads((releases / F.INDEX).read_text())
    body["releases"]["1.1.0"]["verdict"] = "passed"  # the sealed event says "abandoned"
    body["releases"]["0.9.0"] = {**body["releases"]["1.2.0"], "release_id": "0.9.0"}
    (releases / F.INDEX).write_text(json.dumps(body))
    shutil.rmtree(releases / "1.2.0")  # its row stays behind in the index
    rows, note = listed(project)
    assert set(rows) == {"1.1.0", OPEN}
    assert rows["1.1.0"]["verdict"] == "abandoned"
    assert "1 row(s) whose archive changed" in note and "2 row(s) without a sealed archive" in note
    assert set(index_rows(project)) == {"1.1.0"}
    assert index_rows(project)["1.1.0"]["verdict"] == "abandoned"


def test_an_archive_whose_journal_lost_its_seal_is_damaged_not_open(project: Path):
    journal = project / "releases" / "1.2.0" / F.JOURNAL
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]))  # the sealed event removed: tampering, not "open"
    assert states(project)["1.2.0"] == "damaged"
    rows, _ = listed(project)
    assert "relnb verify 1.2.0" in rows["1.2.0"]["problem"]
    assert "1.2.0" not in index_rows(project)
    journal.unlink()  # the record deleted: still listed, as damaged
    assert states(project)["1.2.0"] == "damaged"
