"""Archive → manifest → seal; verify names every changed, missing or added file and event."""

from __future__ import annotations

import json
import os

import pytest

import relnb
from relnb import JournalSealed, Outcome, Release
from relnb.archive import (
    AlreadySealed,
    ArchiveBlocked,
    archive_release,
    read_index,
    verify_release_dir,
)
from relnb.archive.seal import NotFinished
from relnb.redact import REDACTOR

from .builders import finish, project_with_history
from .builders import relnb as run_cli

EXPECTED = {
    "CHANGELOG-section.md",
    "config/relnb.toml",
    "incidents.json",
    "junit.xml",
    "notebook.py",
    "release.html",
    "release.ipynb",
    "samples.jsonl",
    "summary.json",
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    return project_with_history(tmp_path / "proj")


def build(project, rid="1.1.0", *, finished=True):
    """A release with a waived failure, an incident and samples; `finished` settles the rest
    (only a finished release is sealed, issue 19 item 5)."""
    r = Release.create(rid, root=project)
    r.check("A1")
    # B1 before the gates that depend on it: running it later would void B6's waiver
    r.run("B1", lambda: Outcome.passed("staging serves the release SHA"))
    r.run("B5", lambda: Outcome.passed("5 smoke flows passed", flows=5))
    r.run("B6", lambda: Outcome.failed("extraction queue stuck: oldest job 12 min"))
    r.waive("B6", approver="Ops <ops@example.org>", reason="worker restarted, queue drained")
    r.incident(
        "upload 503s",
        severity="major",
        started_at="2026-01-05T10:00:00+00:00",
        ended_at="2026-01-05T10:07:00+00:00",
        test="tests/test_upload.py::test_retry",
    )
    for i in range(6):
        r.journal.append(
            "sample", {"gate": "D7", "ts": 1000.0 + 5 * i, "values": {"error_rate": 0.002 * i}}
        )
    if finished:
        finish(r)
    r.close()
    return project / "releases" / rid


def test_archive_writes_manifest_and_seals(project):
    d = build(project, finished=False)
    # half-finished: not sealed, nothing written, the release stays open to be finished
    with pytest.raises(NotFinished, match="not finished"):
        archive_release("1.1.0", root=project)
    assert sorted(os.listdir(d)) == [".lock", "journal.jsonl"]
    r = Release.open("1.1.0", root=project)
    finish(r)
    r.close()
    res = archive_release("1.1.0", root=project)
    assert set(res.manifest["files"]) == EXPECTED
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["verdict"] == "passed"
    assert manifest["archived_by"]["email"] == "lead@example.org"
    assert manifest["relnb_version"] == relnb.__version__
    lines = (d / "journal.jsonl").read_text().splitlines()
    sealed = json.loads(lines[-1])
    assert sealed["type"] == "sealed" and sealed["prev"] == manifest["journal"]["head"]
    assert sealed["payload"]["verdict"] == "passed"
    assert len(lines) - 1 == manifest["journal"]["events"]
    assert len(list((d / "samples.jsonl").read_text().splitlines())) == 6
    assert (
        json.loads((d / "incidents.json").read_text())[0]["test"]
        == "tests/test_upload.py::test_retry"
    )
    assert verify_release_dir(d).ok, verify_release_dir(d).summary
    # sealed: the release refuses appends, and archiving again is a usage error
    r = Release.open("1.1.0", root=project)
    with pytest.raises(JournalSealed):
        r.note("one more thing")
    with pytest.raises(JournalSealed):
        r.check("A1", rerun=True, reason="one more look")
    r.close()
    with pytest.raises(AlreadySealed):
        archive_release("1.1.0", root=project)
    row = read_index(project / "releases")["1.1.0"]
    assert row["gates"]["B6"] == "waived" and row["gate_failures"] == {"B6": 1}


def _flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] = ord("X") if data[i] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", [*sorted(EXPECTED), "manifest.json", "journal.jsonl"])
def test_one_changed_byte_in_any_file_is_named(project, name):
    d = build(project)
    archive_release("1.1.0", root=project)
    _flip_byte(d / name)
    rep = verify_release_dir(d)
    assert not rep.ok
    assert any(p.name.startswith(name) for p in rep.problems), rep.summary


def test_deleted_reordered_and_sealed_events_and_added_removed_files(project):
    d = build(project)
    archive_release("1.1.0", root=project)
    journal = d / "journal.jsonl"
    original = journal.read_bytes()
    lines = original.splitlines(keepends=True)

    journal.write_bytes(b"".join(lines[:3] + lines[4:]))  # delete event 3
    rep = verify_release_dir(d)
    assert any(p.name == "journal.jsonl#seq 3" and "removed" in p.problem for p in rep.problems), (
        rep.summary
    )

    journal.write_bytes(b"".join([*lines[:2], lines[3], lines[2], *lines[4:]]))  # swap 2 and 3
    rep = verify_release_dir(d)
    assert any(p.name == "journal.jsonl#seq 2" for p in rep.problems), rep.summary

    journal.write_bytes(b"".join(lines[:-1]))  # drop the sealed event: chain fine, seal gone
    rep = verify_release_dir(d)
    assert any("no sealed event" in p.problem for p in rep.problems), rep.summary

    journal.write_bytes(original)
    assert verify_release_dir(d).ok
    (d / "extra.txt").write_text("planted")
    (d / "config" / "more.toml").write_text("x = 1")
    rep = verify_release_dir(d)
    assert {p.name for p in rep.problems} == {"extra.txt", "config/more.toml"}
    assert all("added" in p.problem for p in rep.problems)
    (d / "extra.txt").unlink()
    (d / "config" / "more.toml").unlink()
    (d / "junit.xml").unlink()
    rep = verify_release_dir(d)
    assert [(p.name, p.problem) for p in rep.problems] == [("junit.xml", "missing")]


def test_cli_verify_names_the_file_and_exits_1(project):
    build(project)
    run_cli("archive", "1.1.0", cwd=project, check=True)
    assert run_cli("verify", "1.1.0", cwd=project).returncode == 0
    _flip_byte(project / "releases" / "1.1.0" / "release.html")
    proc = run_cli("verify", "--all", cwd=project)
    assert proc.returncode == 1
    assert "release.html: changed" in proc.stdout
    again = run_cli("archive", "1.1.0", cwd=project)
    assert again.returncode == 3 and "already sealed" in again.stderr


def test_registered_secret_blocks_sealing(project):
    r = Release.create("2.0.0", root=project)
    value = "s3cr3t-canary-value-42"
    r.note(f"debug dump: token={value}")  # journaled before the secret was known to the redactor
    r.abandon(reason="debug release, never shipped")  # unfinished releases are sealed abandoned
    r.close()
    REDACTOR.register(value, "CANARY_TOKEN")
    try:
        with pytest.raises(ArchiveBlocked) as exc:
            archive_release("2.0.0", root=project)
        assert "journal.jsonl: secret CANARY_TOKEN" in str(exc.value)
        assert value not in str(exc.value)
    finally:
        REDACTOR.forget_all()
    d = project / "releases" / "2.0.0"
    assert sorted(os.listdir(d)) == [".lock", "journal.jsonl"]  # nothing placed, nothing sealed
    Release.open("2.0.0", root=project).note("still open")


@pytest.mark.parametrize(
    "text, kind",
    [
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345", "bearer-header"),
        ("key AKIAIOSFODNN7EXAMPLE leaked", "aws-access-key"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
        ),
    ],
)
def test_token_shapes_block_sealing(project, text, kind):
    r = Release.create("3.0.0", root=project)
    r.run("B5", lambda: Outcome.failed("smoke failed", body=text))
    r.abandon(reason="smoke failed, the fix ships in 3.0.1")  # unfinished releases are sealed abandoned
    r.close()
    with pytest.raises(ArchiveBlocked) as exc:
        archive_release("3.0.0", root=project)
    assert any(f["kind"] == "token-shape" and f["what"] == kind for f in exc.value.findings)
    assert not (project / "releases" / "3.0.0" / "manifest.json").exists()


def test_list_and_show_from_the_index(project):
    build(project)
    archive_release("1.1.0", root=project)
    Release.create("1.2.0", root=project).close()  # open, not archived
    lst = run_cli("list", cwd=project, check=True).stdout
    assert "1.1.0" in lst and "sealed" in lst
    assert "1.2.0" in lst and "open" in lst
    show = run_cli("show", "1.1.0", "--timeline", cwd=project, check=True).stdout
    assert "B6  WAIVED" in show and "upload 503s" in show and "## [1.1.0]" in show
    assert "B6 waived by Ops" in show
    missing = run_cli("show", "9.9.9", cwd=project)
    assert missing.returncode == 3
