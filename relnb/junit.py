"""JUnit XML for CI: one testcase per gate (and per rollback step), so a CI dashboard shows the
checklist and how a rollback went."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .redact import scrub
from .results import Status
from .state import ReleaseState


def write_junit(state: ReleaseState, path: str | Path) -> Path:
    table = state.table()
    suite = ET.Element("testsuite", name=f"relnb release {state.release_id}")
    counts = {"tests": 0, "failures": 0, "skipped": 0, "errors": 0}
    total_time = 0.0
    # a rollback's steps are testcases too: a rollback that failed must be red on the dashboard
    rows = [*table.rows, *(r.with_(title=f"rollback: {r.title}") for r in table.rollback)]
    for r in rows:
        counts["tests"] += 1
        case = ET.SubElement(
            suite, "testcase", classname=f"relnb.{state.release_id}.{r.gate_id[0]}", name=f"{r.gate_id} {r.title}"
        )
        if r.duration_s is not None:
            case.set("time", f"{r.duration_s:.3f}")
            total_time += r.duration_s
        msg = scrub(r.summary)
        if r.status in (Status.FAILED, Status.INCONCLUSIVE, Status.INTERRUPTED, Status.PENDING):
            counts["failures"] += 1
            el = ET.SubElement(case, "failure", message=msg, type=str(r.status))
            el.text = scrub(f"{r.status}: {r.summary}")
        elif r.status in (Status.SKIPPED, Status.WAIVED):
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=f"{r.status}: {msg}")
        out = ET.SubElement(case, "system-out")
        out.text = msg
    for k, v in counts.items():
        suite.set(k, str(v))
    suite.set("time", f"{total_time:.3f}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path
