"""A fixed journal with window samples, and every static chart the archive draws from it.

`python -m tests.metrics._svgchart_sample` wrote tests/metrics/data/svgchart_v1.json with the
renderer as it was before chart styles existed (commit 9210c26): a journal that records no chart
style must keep rendering those bytes, because sealed archives re-execute against them (nbval).
Only APIs that renderer already had are used here, so the fixture can be regenerated on that
commit and nowhere else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from relnb.archive import ArchiveView
from relnb.journal import Event

FIXTURE = Path(__file__).parent / "data" / "svgchart_v1.json"
T0 = 1795606086.5851457  # 2026-11-25T11:28:06Z, like the committed demo archive

D7_EVIDENCE: dict[str, Any] = {
    "rules": [
        {"metric": "error_rate", "max": 0.01},
        {"metric": "latency_p95", "max": 0.5},
        {"metric": "dlq_depth", "max": 0},
    ],
    "breaches": [
        {"metric": "error_rate", "kind": "max", "start_ts": T0 + 300, "end_ts": T0 + 345},
        {"metric": "latency_p95", "kind": "max", "start_ts": T0 + 330},  # still open
    ],
}


def sample_events(created: dict[str, Any] | None = None) -> list[Event]:
    """release-created (as `created`, default: no chart style), then B8, C1 and D7 windows."""
    evs: list[tuple[str, dict[str, Any]]] = [
        (
            "release-created",
            created
            if created is not None
            else {"release_id": "fx-1", "version": "1.0.0", "environment": "production", "git_sha": "0" * 40},
        )
    ]

    def window(gate: str, samples: list[dict[str, Any]], status: str, evidence: dict[str, Any]) -> None:
        evs.append(("gate-started", {"attempt": 1, "gate": gate}))
        evs.extend(("sample", {"gate": gate, **s}) for s in samples)
        evs.append(
            (
                "gate-finished",
                {
                    "attempt": 1, "gate": gate, "status": status, "summary": f"{gate} window {status}",
                    "evidence": evidence, "started_at": "2026-11-25T11:28:00+00:00",
                    "finished_at": "2026-11-25T11:40:00+00:00", "duration_s": 600.0,
                },
            )
        )

    # B8: a 57 s window every 3 s, the DLQ only on the first poll (as the demo records it)
    b8 = [{"ts": T0, "ok": True, "values": {"dlq_depth": 0.0}}] + [
        {
            "ts": T0 + 3 * i,
            "ok": True,
            "values": {"error_rate": 0.0, "latency_p95": 0.0085 + 0.0003 * i, "request_rate": 7.9 + 0.01 * i},
        }
        for i in range(1, 20)
    ]
    window("B8", b8, "passed", {"rules": [{"metric": "error_rate", "max": 0.02}]})
    # C1: samples recorded without a timestamp (an old shape): drawn by their order
    window("C1", [{"values": {"error_rate": 0.001 * i}} for i in range(4)], "passed", {})
    # D7: 12 minutes every 30 s, a gap, an error spike and a latency climb
    d7 = []
    for i in range(25):
        values: dict[str, Any] = {
            "error_rate": 0.05 if 10 <= i <= 11 else 0.001 * (i % 4),
            "latency_p95": 0.12 + 0.02 * max(0, i - 11),
            "dlq_depth": float(i // 5),
        }
        if i == 7:
            values = {"error_rate": None, "latency_p95": None, "dlq_depth": None}
        d7.append({"ts": T0 + 30 * i, "ok": i != 7, "values": values})
    window("D7", d7, "failed", D7_EVIDENCE)
    return [Event(n, f"2026-11-25T11:{28 + n // 60:02d}:{n % 60:02d}+00:00", t, p, "", "") for n, (t, p) in enumerate(evs)]


def rendered(events: list[Event]) -> dict[str, Any]:
    """Every chart output an archive's cells show, keyed by where it appears."""
    out: dict[str, Any] = {}
    view = ArchiveView(".", events=events, marks=True)
    for gate in ("B8", "C1", "D7"):
        out[f"result:{gate}"] = list(view.result(gate).figures)
    # without marks (archives sealed before them), a gate's figures are its charts below
    out["charts"] = [[repr(c), c._repr_svg_()] for c in view.charts()]
    return out


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(rendered(sample_events()), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
