"""releases/index.json: one small row per sealed release, so `relnb list`, `relnb show` and the
review dashboard never fold a thousand journals.

Each row is the release's `summary.json` (written into the archive, hence covered by its
manifest) minus the per-gate summaries; the index itself is a cache that `rebuild_index` can
always recreate from the archives, so it is not part of any manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ReleaseNotFound
from ..eventtext import approval_label, describe_event, is_approval
from ..gates import GATE_IDS
from ..journal import Event
from ..state import ReleaseState
from .changelog import Commit
from .files import INDEX, SUMMARY, dump_json, write_atomic
from .incidents import incidents_from_events

INDEX_VERSION = 1


def _first_finish(state: ReleaseState, gate: str) -> str | None:
    entry = state.actions.get(gate, {}).get("finished") or {}
    return entry.get("finished_at") if entry.get("status") == "passed" else None


def approval_rows(events: list[Event]) -> list[dict[str, Any]]:
    """Every approval of the release with its signature mark, so `relnb show` and the review can
    say which ones are signed (and by whose key) without reading journals."""
    rows = []
    for ev in events:
        if not is_approval(ev.type, ev.payload):
            continue
        line = describe_event(ev)
        ap = ev.payload.get("approval")
        signed = isinstance(ap, dict) and bool(ap.get("signature"))
        rows.append(
            {
                "seq": ev.seq,
                "type": ev.type,
                "gate": ev.payload.get("gate") or ev.payload.get("action"),
                "signed": signed,
                "principal": ap.get("principal") if signed else None,
                "fingerprint": ap.get("fingerprint") if signed else None,
                "mark": approval_label(ev.payload),
                "text": line.text() if line else ev.type,
            }
        )
    return rows


def build_summary(
    state: ReleaseState,
    events: list[Event],
    *,
    commits: list[Commit] | None = None,
    archived_by: dict[str, Any] | None = None,
    archived_at: str | None = None,
) -> dict[str, Any]:
    """Everything review needs about one release, derived from its journal (and its commits)."""
    table = state.table()
    failures: dict[str, int] = {}
    attempts: dict[str, int] = {}
    for ev in events:
        if ev.type in ("gate-finished", "action-finished") and ev.payload.get("gate") in GATE_IDS:
            gid = ev.payload["gate"]
            attempts[gid] = attempts.get(gid, 0) + 1
            if ev.payload.get("status") in ("failed", "inconclusive", "interrupted"):
                failures[gid] = failures.get(gid, 0) + 1
    incidents = incidents_from_events(events)
    c = state.created
    return {
        "release_id": state.release_id,
        "version": c.get("version"),
        "environment": c.get("environment"),
        "git_sha": c.get("git_sha"),
        "author": c.get("author"),
        "created_at": state.first_ts,
        "last_event_at": state.last_ts,
        "deployed_at": _first_finish(state, "D4"),
        "verdict": state.verdict(),
        "counts": table.counts(),
        "gates": {r.gate_id: str(r.status) for r in table.rows},
        "gate_summaries": {r.gate_id: r.summary for r in table.rows},
        "gate_attempts": attempts,
        "gate_failures": failures,
        "incidents": [
            {
                k: i.to_dict()[k]
                for k in ("seq", "title", "severity", "started_at", "ended_at", "test")
            }
            for i in incidents
        ],
        "commits": [{"sha": cm.sha, "committed_at": cm.committed_at} for cm in (commits or [])],
        "approvals": approval_rows(events),
        "events": state.events,
        "samples": state.samples,
        "archived_by": archived_by,
        "archived_at": archived_at,
    }


def index_row(summary: dict[str, Any], head: str) -> dict[str, Any]:
    row = {k: v for k, v in summary.items() if k != "gate_summaries"}
    row["head"] = head
    return row


@contextlib.contextmanager
def _locked(releases_dir: Path) -> Iterator[None]:
    releases_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(releases_dir / ".index.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_index(releases_dir: Path) -> dict[str, dict[str, Any]]:
    path = releases_dir / INDEX
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError:
        return {}  # a damaged cache: callers fall back to the archives (rebuild_index)
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        return {}
    return dict(data.get("releases") or {})


def update_index(releases_dir: Path, row: dict[str, Any]) -> None:
    with _locked(releases_dir):
        rows = read_index(releases_dir)
        rows[row["release_id"]] = row
        _write(releases_dir, rows)


def _write(releases_dir: Path, rows: dict[str, dict[str, Any]]) -> None:
    body = {"version": INDEX_VERSION, "releases": dict(sorted(rows.items()))}
    write_atomic(
        releases_dir / INDEX, json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"
    )


def rebuild_index(releases_dir: Path) -> int:
    """Recreate the index from every sealed archive's summary.json and sealed event."""
    from ..journal import verify_file

    rows = {}
    for summary_path in sorted(releases_dir.glob(f"*/{SUMMARY}")):
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        report = verify_file(summary_path.parent / "journal.jsonl")
        if report.sealed:
            rows[summary["release_id"]] = index_row(summary, report.parsed[-1].prev)
    with _locked(releases_dir):
        _write(releases_dir, rows)
    return len(rows)


def load_summary(releases_dir: Path, release_id: str) -> dict[str, Any]:
    path = releases_dir / release_id / SUMMARY
    if not path.is_file():
        raise ReleaseNotFound(
            f"release {release_id!r} has no archive summary at {path}",
            fix="archive it first with `relnb archive <id>`, or see `relnb list`",
        )
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = [
    "approval_rows",
    "build_summary",
    "dump_json",
    "index_row",
    "load_summary",
    "read_index",
    "rebuild_index",
    "update_index",
]
