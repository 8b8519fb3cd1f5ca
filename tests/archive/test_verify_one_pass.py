"""`relnb verify` reads and parses a journal once, and its faster parse judges lines as before
(issue 23).

The chain check hands its events to the signature check (which used to read and parse the
journal a second time) and its bytes to the manifest check. The parse now takes the writer's
canonical lines without re-hashing a re-encoded copy; every other line goes the old way, so a
tampered or hand-formatted line is judged exactly as it was: these tests pin that down.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import relnb.archive.files as files_mod
import relnb.archive.verify as verify_mod
import relnb.journal as journal_mod
from relnb.archive import files as F
from relnb.cli import main
from relnb.journal import GENESIS, JournalWriter, event_hash, verify_file

from ..signing.conftest import Keys, Repo, _no_ambient_keys, keys, repo  # noqa: F401
from .test_signatures_expected import enabled_archive  # noqa: F401


def test_verify_parses_and_reads_the_journal_once(
    enabled_archive: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    parses: list[Path] = []
    reads: list[str] = []
    real_verify = journal_mod.verify_file
    real_read_bytes = Path.read_bytes
    real_sha256_file = files_mod.sha256_file

    def counting_verify(path: Any) -> Any:
        parses.append(Path(path))
        return real_verify(path)

    def counting_read_bytes(self: Path) -> bytes:
        if self.name == F.JOURNAL:
            reads.append("read_bytes")
        return real_read_bytes(self)

    def counting_sha256_file(path: Path, **kw: Any) -> str:
        if Path(path).name == F.JOURNAL:
            reads.append("sha256_file")
        return real_sha256_file(path, **kw)

    monkeypatch.setattr(journal_mod, "verify_file", counting_verify)
    monkeypatch.setattr(verify_mod, "verify_file", counting_verify)
    monkeypatch.setattr(Path, "read_bytes", counting_read_bytes)
    monkeypatch.setattr(files_mod, "sha256_file", counting_sha256_file)
    monkeypatch.chdir(enabled_archive)
    assert main(["verify", "1.0.0"]) == 0
    out = capsys.readouterr().out
    # chain, manifest and signatures all checked ...
    assert "sealed archive OK" in out and "6 validly signed, 0 unsigned — OK" in out, out
    # ... from one parse and one read of the journal
    assert len(parses) == 1, parses
    assert reads == ["read_bytes"], reads


def _journal(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    w = JournalWriter.open(tmp_path / "r", create=True)
    w.append("release-created", {"release_id": "r", "version": "1.0", "note": "ünïcode ✓ \u2028"})
    for i in range(4):
        w.append("gate-finished", {"gate": "A1", "status": "passed", "n": i, "x": 0.1 + i})
    w.close()
    path = tmp_path / "r" / "journal.jsonl"
    # split at "\n" only: str.splitlines would also cut at the U+2028 inside the payload
    return path, [json.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]


def _rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _canonical_lines(objs: list[dict[str, Any]]) -> list[bytes]:
    return [journal_mod.canonical(o) for o in objs]


def _self_hashed(obj: dict[str, Any], render: Any) -> bytes:
    """A line in a non-canonical layout whose hash is the sha256 of that very layout (without
    its hash member): self-consistent bytes that the writer never produces."""
    body = {k: obj[k] for k in ("payload", "prev", "seq", "ts", "type")}
    h = hashlib.sha256(render(body).encode("utf-8")).hexdigest()
    return render({"hash": h, **body}).encode("utf-8")


def _summary(path: Path) -> tuple[Any, ...]:
    r = verify_file(path)
    return r.ok, r.bad_seq, r.problem, r.events, r.head, r.torn_tail, [e.hash for e in r.parsed]


def test_canonical_journal_verifies_with_the_same_events(tmp_path: Path):
    path, objs = _journal(tmp_path)
    r = verify_file(path)
    assert r.ok and r.events == 5 and r.head == objs[-1]["hash"] and r.data == path.read_bytes()
    assert [e.to_dict() for e in r.parsed] == objs
    # the writer's own lines take the one-encode path (else the speed-up silently went away)
    texts = path.read_bytes().decode("utf-8").split("\n")[:-1]
    prevs = [GENESIS, *(o["hash"] for o in objs[:-1])]
    assert all(
        journal_mod._fast_event(t, i, p) for i, (t, p) in enumerate(zip(texts, prevs, strict=True))
    )


def test_reformatted_line_with_a_content_hash_still_verifies(tmp_path: Path):
    """The hash covers the event's content, not its layout: a line re-indented by a tool (hash
    unchanged) verifies, as before."""
    path, objs = _journal(tmp_path)
    lines = _canonical_lines(objs)
    lines[2] = json.dumps(objs[2], sort_keys=False, separators=(", ", ": ")).encode()
    _rewrite(path, lines)
    assert _summary(path)[:4] == (True, None, None, 5)


@pytest.mark.parametrize(
    "render",
    [
        lambda o: json.dumps(o, separators=(", ", ": "), ensure_ascii=False),  # spaces
        lambda o: json.dumps(o, separators=(",", ":"), ensure_ascii=True),  # \\u escapes
        lambda o: json.dumps(dict(reversed(list(o.items()))), separators=(",", ":")),  # key order
    ],
)
def test_self_hashed_non_canonical_line_is_refused(tmp_path: Path, render: Any):
    """Bytes hashed as they stand, but not the canonical form the chain is defined over: the
    hash does not match the event's content, at that seq (the fast path must not take them)."""
    path, objs = _journal(tmp_path)
    lines = _canonical_lines(objs)
    lines[0] = _self_hashed(objs[0], render)
    _rewrite(path, lines)
    ok, bad_seq, problem, events, *_ = _summary(path)
    assert (ok, bad_seq, events) == (False, 0, 0)
    assert problem == "hash does not match the event's content (the event was modified)"


def test_duplicate_key_line_is_refused(tmp_path: Path):
    path, objs = _journal(tmp_path)
    lines = _canonical_lines(objs)
    text = lines[3].decode()
    forged = text.replace('"payload":{', '"payload":{"status":"failed",', 1)
    body = "{" + forged[forged.index('"payload"') :]
    h = hashlib.sha256(body.encode()).hexdigest()
    lines[3] = ('{"hash":"' + h + '",' + body[1:]).encode()
    _rewrite(path, lines)
    ok, bad_seq, problem, events, *_ = _summary(path)
    assert (ok, bad_seq, events) == (False, 3, 3)
    assert problem is not None and "hash does not match" in problem


def test_edited_payload_invalid_utf8_and_torn_tail(tmp_path: Path):
    path, objs = _journal(tmp_path)
    lines = _canonical_lines(objs)
    edited = lines.copy()
    edited[1] = edited[1].replace(b'"n":0', b'"n":7')
    _rewrite(path, edited)
    assert _summary(path)[:4] == (
        False,
        1,
        "hash does not match the event's content (the event was modified)",
        1,
    )
    broken = lines.copy()
    broken[2] = broken[2].replace(b"passed", b"pass\xffed")
    _rewrite(path, broken)
    ok, bad_seq, problem, events, *_ = _summary(path)
    assert (ok, bad_seq, events) == (False, 2, 2) and problem is not None
    assert problem.startswith("not valid JSON")
    path.write_bytes(b"".join(line + b"\n" for line in lines) + lines[0][:40])
    ok, bad_seq, _, events, head, torn, _ = _summary(path)
    assert ok and events == 5 and head == objs[-1]["hash"] and torn == lines[0][:40]


def test_wrong_seq_prev_and_genesis_are_named(tmp_path: Path):
    path, objs = _journal(tmp_path)
    lines = _canonical_lines(objs)
    _rewrite(path, [lines[0], lines[2], lines[3]])
    assert _summary(path)[1:3] == (
        1,
        "expected seq 1, found 2 (event removed, added or reordered)",
    )
    first = dict(objs[1], seq=0)
    first["hash"] = event_hash(0, first["ts"], first["type"], first["payload"], GENESIS)
    _rewrite(path, [journal_mod.canonical(first)])  # prev is not the genesis hash
    assert _summary(path)[1:3] == (0, "prev does not match the hash of the event before it")
