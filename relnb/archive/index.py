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
    failed: dict[str, int] = {}  # the attempts that found a fault (not "could not tell")
    attempts: dict[str, int] = {}
    for ev in events:
        if ev.type in ("gate-finished", "action-finished") and ev.payload.get("gate") in GATE_IDS:
            gid = ev.payload["gate"]
            attempts[gid] = attempts.get(gid, 0) + 1
            if ev.payload.get("status") in ("failed", "inconclusive", "interrupted"):
                failures[gid] = failures.get(gid, 0) + 1
            if ev.payload.get("status") == "failed":
                failed[gid] = failed.get(gid, 0) + 1
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
        "gate_failed_attempts": failed,
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
    return read_index_checked(releases_dir)[0]


def read_index_checked(releases_dir: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The index rows, and why there are none to trust when the file is missing or damaged
    (None when it read cleanly): a damaged cache is rebuilt from the archives, never fatal."""
    path = releases_dir / INDEX
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, "missing"
    except (OSError, ValueError) as exc:
        return {}, f"unreadable ({type(exc).__name__})"
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        version = data.get("version") if isinstance(data, dict) else None
        return {}, f"not a relnb index (version {version!r}, expected {INDEX_VERSION})"
    rows = data.get("releases")
    if not isinstance(rows, dict) or not all(isinstance(r, dict) for r in rows.values()):
        return {}, "unreadable (its releases are not rows)"
    return dict(rows), None


_TAIL_CHUNK = 8192
_TAIL_LIMIT = 1 << 22  # a sealed event is a few KiB; a last line longer than 4 MiB is not one


def sealed_tail(journal: Path) -> dict[str, Any] | None:
    """The journal's last line when it is a complete `sealed` event, else None.

    Only the end of the file is read: what `relnb list` needs to tell a sealed release from an
    open one, and to see that an archive changed since it was indexed (its head moved), without
    folding a thousand journals. It says nothing about the chain; that is `relnb verify`'s job."""
    try:
        with journal.open("rb") as fh:
            size = fh.seek(0, 2)
            chunk = _TAIL_CHUNK
            while True:
                start = max(0, size - chunk)
                fh.seek(start)
                data = fh.read(size - start)
                if not data.endswith(b"\n"):
                    return None  # empty, or a torn last line: not sealed
                cut = data.rfind(b"\n", 0, len(data) - 1)
                if cut >= 0 or start == 0:
                    line = data[cut + 1 : -1]
                    break
                if chunk >= _TAIL_LIMIT:
                    return None
                chunk *= 4
        obj = json.loads(line)
    except (OSError, ValueError):
        return None
    if not isinstance(obj, dict) or obj.get("type") != "sealed":
        return None
    if not isinstance(obj.get("payload"), dict) or not isinstance(obj.get("prev"), str):
        return None
    return obj


def _first_event(journal: Path) -> dict[str, Any]:
    try:
        with journal.open("rb") as fh:
            obj = json.loads(fh.readline(_TAIL_LIMIT))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def row_is_current(row: dict[str, Any] | None, sealed: dict[str, Any]) -> bool:
    """An index row still describes the archive when it names the head the sealed event closes
    and the verdict the sealed event records."""
    if row is None or row.get("head") != sealed["prev"]:
        return False
    verdict = sealed["payload"].get("verdict")
    return verdict is None or row.get("verdict") == verdict


def archive_row(directory: Path, sealed: dict[str, Any]) -> dict[str, Any]:
    """The index row of one sealed archive: its summary.json (covered by the manifest), keyed by
    the directory's name, with the head and the verdict taken from the sealed event, which is
    what the archive says it is. A missing or damaged summary leaves the row to what the first
    and last events say, and says so."""
    try:
        summary = json.loads((directory / SUMMARY).read_text(encoding="utf-8"))
        if not isinstance(summary, dict):
            raise ValueError("not an object")
        row = index_row(summary, sealed["prev"])
    except (OSError, ValueError) as exc:
        created = _first_event(directory / "journal.jsonl")
        payload = created.get("payload") if isinstance(created.get("payload"), dict) else {}
        row = {
            "version": payload.get("version"),
            "environment": payload.get("environment"),
            "git_sha": payload.get("git_sha"),
            "created_at": created.get("ts") if isinstance(created.get("ts"), str) else None,
            "head": sealed["prev"],
            "problem": f"{SUMMARY} missing or unreadable ({type(exc).__name__}): run `relnb verify {directory.name}`",
        }
    row["release_id"] = directory.name
    verdict = sealed["payload"].get("verdict")
    if verdict is not None:
        row["verdict"] = verdict
    return row


def refresh_index(releases_dir: Path, current: dict[str, dict[str, Any]], stale: set[str]) -> None:
    """Write the rows `relnb list` re-derived (`current`) and drop the `stale` ones, under the
    index lock and over what is in the file then, so a release sealed meanwhile keeps its row."""
    with _locked(releases_dir):
        rows = read_index(releases_dir)
        for rid in stale:
            rows.pop(rid, None)
        rows.update(current)
        _write(releases_dir, rows)


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
    rows = {}
    if releases_dir.is_dir():
        for entry in sorted(releases_dir.iterdir()):
            sealed = sealed_tail(entry / "journal.jsonl") if entry.is_dir() else None
            if sealed is not None:
                rows[entry.name] = archive_row(entry, sealed)
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
    "archive_row",
    "build_summary",
    "dump_json",
    "index_row",
    "load_summary",
    "read_index",
    "read_index_checked",
    "rebuild_index",
    "refresh_index",
    "row_is_current",
    "sealed_tail",
    "update_index",
]
