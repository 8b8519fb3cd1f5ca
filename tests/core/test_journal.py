"""The journal's chain detects any change, removal or reordering, and tolerates nothing torn."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relnb import JournalCorrupt, JournalLocked, JournalSealed
from relnb.journal import JournalWriter, verify_file

payloads = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.none(), st.floats(allow_nan=True)),
    max_size=4,
)
event_lists = st.lists(st.tuples(st.sampled_from(["note", "sample", "gate-finished"]), payloads), min_size=1, max_size=12)


def _write(directory: Path, events) -> Path:
    w = JournalWriter.open(directory, create=True)
    try:
        for t, p in events:
            w.append(t, p)
    finally:
        w.close()
    return directory / "journal.jsonl"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_lists, data=st.data())
def test_random_sequences_verify_and_any_byte_flip_is_detected(tmp_path_factory, events, data):
    d = tmp_path_factory.mktemp("j")
    path = _write(d, events)
    report = verify_file(path)
    assert report.ok and report.events == len(events) and report.torn_tail is None
    raw = bytearray(path.read_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = (raw[i] + data.draw(st.integers(1, 255))) % 256
    path.write_bytes(bytes(raw))
    bad = verify_file(path)
    assert not bad.ok or bad.torn_tail is not None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.tuples(st.just("note"), payloads), min_size=2, max_size=10), data=st.data())
def test_deleting_or_reordering_any_event_is_detected(tmp_path_factory, events, data):
    d = tmp_path_factory.mktemp("j")
    path = _write(d, events)
    lines = path.read_bytes().splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 1))
    if data.draw(st.booleans()):
        del lines[i]
        expect = i if i < len(lines) else None
    else:
        j = data.draw(st.integers(0, len(lines) - 1).filter(lambda j: j != i))
        lines[i], lines[j] = lines[j], lines[i]
        expect = min(i, j)
    path.write_bytes(b"".join(lines))
    report = verify_file(path)
    if expect is None:  # the last event was removed: the chain is intact but shorter
        assert report.events == len(events) - 1
    else:
        assert not report.ok and report.bad_seq == expect


def test_verify_names_first_bad_seq(tmp_path):
    path = _write(tmp_path, [("note", {"n": i}) for i in range(5)])
    lines = path.read_text().splitlines()
    ev = json.loads(lines[3])
    ev["payload"]["n"] = 99
    lines[3] = json.dumps(ev)
    path.write_text("\n".join(lines) + "\n")
    report = verify_file(path)
    assert not report.ok and report.bad_seq == 3
    assert "seq 3" in report.summary


def test_torn_tail_is_reported_and_set_aside_not_dropped(tmp_path):
    path = _write(tmp_path, [("note", {"n": 1}), ("note", {"n": 2})])
    with path.open("ab") as fh:
        fh.write(b'{"hash":"abc","payload":{"n":3')
    report = verify_file(path)
    assert report.ok and report.torn_tail is not None and report.events == 2
    assert "torn tail" in report.summary
    w = JournalWriter.open(tmp_path)
    try:
        assert w.recovered_tail is not None
        assert w.recovered_tail.read_bytes().startswith(b'{"hash":"abc"')
        assert w.events[-1].type == "torn-tail"
    finally:
        w.close()
    final = verify_file(path)
    assert final.ok and final.torn_tail is None and final.events == 3


def test_writer_refuses_a_broken_chain(tmp_path):
    path = _write(tmp_path, [("note", {"n": 1}), ("note", {"n": 2})])
    lines = path.read_text().splitlines()
    path.write_text(lines[1] + "\n" + lines[0] + "\n")
    with pytest.raises(JournalCorrupt) as exc:
        JournalWriter.open(tmp_path)
    assert exc.value.seq == 0


def test_sealed_journal_refuses_appends(tmp_path):
    w = JournalWriter.open(tmp_path, create=True)
    w.append("note", {})
    w.append("sealed", {})
    with pytest.raises(JournalSealed):
        w.append("note", {"late": True})
    w.close()
    # and a hand-appended event after the seal breaks verification
    with (tmp_path / "journal.jsonl").open("a") as fh:
        fh.write("{}\n")
    assert not verify_file(tmp_path / "journal.jsonl").ok


HOLDER = textwrap.dedent(
    """
    import sys, time
    from relnb.journal import JournalWriter
    w = JournalWriter.open(sys.argv[1], create=True)
    for i in range(200):
        w.append("note", {"writer": "first", "i": i})
    print("ready", flush=True)
    time.sleep(30)
    """
)


def test_second_process_is_refused_with_holder_pid(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(JournalLocked) as exc:
            JournalWriter.open(tmp_path)
        assert exc.value.pid == proc.pid
        assert str(proc.pid) in str(exc.value)
        second = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom relnb.journal import JournalWriter\nJournalWriter.open(sys.argv[1])", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )
        assert second.returncode != 0 and f"pid {proc.pid}" in second.stderr
    finally:
        proc.kill()
        proc.wait()
    report = verify_file(tmp_path / "journal.jsonl")
    assert report.ok and report.events == 200
    assert {e.payload["writer"] for e in report.parsed} == {"first"}


def test_same_process_reopen_shares_the_writer(tmp_path):
    a = JournalWriter.open(tmp_path, create=True)
    b = JournalWriter.open(tmp_path)
    assert a is b
    a.close()
    assert os.path.exists(tmp_path / ".lock")
