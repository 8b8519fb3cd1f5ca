"""kill -9 at random moments: every append that returned survives; at most a torn tail remains."""

import random
import signal
import subprocess
import sys
import textwrap
import time

from relnb.journal import JournalWriter, verify_file

CHILD = textwrap.dedent(
    """
    import sys
    from relnb.journal import JournalWriter
    w = JournalWriter.open(sys.argv[1], create=True)
    base = len(w.events)
    i = 0
    while True:
        ev = w.append("gate-finished", {"gate": "A1", "status": "passed", "i": i, "pad": "x" * (i % 700)})
        print(ev.seq, flush=True)
        i += 1
    """
)


def test_kill9_loses_no_acknowledged_append(tmp_path):
    rng = random.Random(1234)
    acked_total: set[int] = set()
    for trial in range(50):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        # wait until it is appending, then kill at a random moment
        first = proc.stdout.readline()
        assert first.strip().isdigit(), f"trial {trial}: child did not start"
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acked = {int(first)} | {int(x) for x in out.split() if x.isdigit()}
        acked_total |= acked
        report = verify_file(tmp_path / "journal.jsonl")
        assert report.ok, f"trial {trial}: {report.summary}"
        present = {e.seq for e in report.parsed}
        assert acked <= present, f"trial {trial}: lost {sorted(acked - present)[:5]}"
    # a writer that opens the journal afterwards keeps everything and sets any torn tail aside
    w = JournalWriter.open(tmp_path)
    seqs = {e.seq for e in w.events}
    w.close()
    assert acked_total <= seqs
    final = verify_file(tmp_path / "journal.jsonl")
    assert final.ok and final.torn_tail is None
    torn_events = [e for e in final.parsed if e.type == "torn-tail"]
    for e in torn_events:
        assert (tmp_path / e.payload["kept_in"]).exists()
