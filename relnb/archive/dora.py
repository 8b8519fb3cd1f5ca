"""Review over many releases: DORA metrics and per-gate failure frequency.

The rows are the sealed releases' index rows (releases/index.json, re-derived from an archive
whose row is missing or stale) plus one row per open release, folded from its journal and
marked `status: open`. Open releases are listed but counted in no figure: their outcome can
still change (a D7 window still running may end in a rollback), and the figures must describe
records that `relnb verify` can check and that no later event can rewrite.

Definitions, computed only from what the sealed archives recorded:
- deployment: a release whose D4 (deploy) finished passed; its deploy time is the finish time of
  that passing D4 action (`deployed_at`), i.e. when the new version was running in production,
  not when the release started or was sealed;
- deployment frequency: deployments per week, over the span from the first to the last
  deployment (at least one week);
- lead time for changes (DORA: commit → running in production): for each commit a shipped
  release carries (previous tag → release SHA, as F3 recorded them), deploy time minus the
  commit's *committer* date (`git log %cI`, the index's `committed_at`), as the median, in
  hours. The committer date is when the commit that ships (that SHA) was made on the branch;
  the author date survives rebases, amends and cherry-picks and so would also count the time a
  change spent on a feature branch, which DORA's lead time for changes leaves out. Only
  releases whose verdict is "passed" count: a rolled-back release's commits are not running in
  production, and they are counted when a later release ships them (once, by SHA);
- change failure rate: deployments that were rolled back, had a major/critical incident, or
  whose D5 (smoke) or D7 (monitoring window) found a fault in any attempt (`failed`, recorded
  per gate as `gate_failed_attempts`; a later waiver or passing rerun does not undo it) or ended
  interrupted, divided by deployments. A D5/D7 that was waived or stayed inconclusive without
  finding a fault (a rehearsal's shortened window, a metrics source with no data) is no
  evidence of failure nor of health: such deployments are counted apart
  (`deployments_unverified`) and named next to the rate;
- time to restore: median of incident end − start over incidents that have both, in minutes;
- gate failure frequency: per gate, the share of sealed releases in which any attempt of it
  failed (failed, inconclusive or interrupted), whatever came after (a waiver, a rerun).

Lead times are only as true as the commit dates. A commit dated before the previous shipped
release's deploy waited through that release, or its history was imported or replayed (rebased
onto old dates, a demo repository with fixed dates): `commits_before_previous_deploy` counts
them, and the review says so next to the median instead of hiding the distortion.
"""

from __future__ import annotations

import html
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

from ..gates import GATE_IDS
from ..journal import read_events
from ..state import fold
from . import files as F
from .index import archive_row, build_summary, read_index, row_is_current, sealed_tail

# A deployment that ended in one of these was a failed change, whatever its gates say.
ROLLED_BACK = ("rolled back", "rollback failed")
_PRODUCTION_CHECKS = ("D5", "D7")


def _t(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        return None


def _open_row(entry: Path) -> dict[str, Any]:
    """An open release, folded from its journal (a torn last line is what a live writer leaves)."""
    try:
        events = read_events(entry / F.JOURNAL, strict=False)
        state = fold(entry.name, events)
        row = build_summary(state, events)
        row.pop("gate_summaries", None)
    except Exception as exc:  # a broken journal is listed, never fatal for the review
        row = {"release_id": entry.name, "verdict": f"unreadable: {type(exc).__name__}"}
    return {**row, "release_id": entry.name, "status": "open"}


def load_rows(releases_dir: Path) -> list[dict[str, Any]]:
    """Every release under `releases_dir`, oldest first: sealed ones from the index (`status:
    sealed`), open ones folded from their journals (`status: open`).

    Whether a release is sealed comes from its journal's last event, as for `relnb list`; a
    sealed archive the index lacks or describes at another head is read from its own summary,
    so a stale cache never drops a release from the review. Nothing is written."""
    releases_dir = Path(releases_dir)
    index = read_index(releases_dir)
    out = []
    for entry in sorted(releases_dir.iterdir()) if releases_dir.is_dir() else []:
        journal = entry / F.JOURNAL
        if not journal.is_file():
            continue
        sealed = sealed_tail(journal)
        if sealed is not None:
            row = index.get(entry.name)
            if not row_is_current(row, sealed):
                row = archive_row(entry, sealed)
            out.append({**row, "status": "sealed"})
        elif (entry / F.MANIFEST).is_file():  # archived, but its journal no longer ends sealed
            out.append({"release_id": entry.name, "verdict": "damaged", "status": "damaged"})
        else:
            out.append(_open_row(entry))
    return sorted(out, key=lambda r: (r.get("created_at") or "", r["release_id"]))


def counted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows the figures count: sealed releases (a row without a status is an index row)."""
    return [r for r in rows if r.get("status", "sealed") == "sealed"]


def is_change_failure(row: dict[str, Any]) -> bool:
    """Whether a deployment failed in production (DORA's change failure): it was rolled back,
    caused a major/critical incident, or its smoke test (D5) or window (D7) found a fault in
    some attempt (a later rerun or waiver does not undo what production went through)."""
    if row.get("verdict") in ROLLED_BACK:
        return True
    if any(i.get("severity") in ("major", "critical") for i in row.get("incidents") or []):
        return True
    gates = row.get("gates") or {}
    found = row.get("gate_failed_attempts") or {}
    return any(gates.get(g) in ("failed", "interrupted") or found.get(g) for g in _PRODUCTION_CHECKS)


def is_unverified(row: dict[str, Any]) -> bool:
    """A deployment that is no change failure, but whose D5 or D7 did not pass on its own: it
    was waived or stayed inconclusive (a shortened window, no data), so nobody saw it healthy
    either. An archive sealed before `gate_failed_attempts` was recorded cannot tell a fault
    from "could not tell", so its failed-or-inconclusive attempts land here too."""
    if is_change_failure(row):
        return False
    gates = row.get("gates") or {}
    if any(gates.get(g) in ("waived", "inconclusive") for g in _PRODUCTION_CHECKS):
        return True
    return "gate_failed_attempts" not in row and any(
        (row.get("gate_failures") or {}).get(g) for g in _PRODUCTION_CHECKS
    )


def lead_times(rows: list[dict[str, Any]]) -> tuple[list[float], int]:
    """Hours from each shipped commit's committer date to its release's deploy, and how many of
    those commits are dated before the previous shipped release's deploy (see the module doc)."""
    shipped = sorted(
        (r for r in counted(rows) if r.get("verdict") == "passed" and _t(r.get("deployed_at"))),
        key=lambda r: _t(r["deployed_at"]),
    )
    seen: set[str] = set()
    hours: list[float] = []
    early = 0
    previous: datetime | None = None
    for r in shipped:
        dep = _t(r["deployed_at"])
        for c in r.get("commits") or []:
            at, sha = _t(c.get("committed_at")), c.get("sha")
            if at is None or dep is None or at > dep or (sha and sha in seen):
                continue
            if sha:
                seen.add(sha)
            hours.append((dep - at).total_seconds() / 3600)
            early += previous is not None and at < previous
        previous = dep
    return hours, early


def dora_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sealed = counted(rows)
    deployed = [r for r in sealed if _t(r.get("deployed_at"))]
    times = sorted(_t(r["deployed_at"]) for r in deployed)
    weeks = max(1.0, (times[-1] - times[0]).total_seconds() / 604800) if times else 1.0
    leads, early = lead_times(sealed)
    failed = sum(is_change_failure(r) for r in deployed)
    unverified = sum(is_unverified(r) for r in deployed)
    restore = []
    for r in sealed:
        for i in r.get("incidents") or []:
            s, e = _t(i.get("started_at")), _t(i.get("ended_at"))
            if s and e and e >= s:
                restore.append((e - s).total_seconds() / 60)
    return {
        "releases": len(sealed),
        "open_releases": len(rows) - len(sealed),
        "deployments": len(deployed),
        "deployment_frequency_per_week": round(len(deployed) / weeks, 3) if deployed else 0.0,
        "lead_time_hours_median": round(statistics.median(leads), 2) if leads else None,
        "lead_time_commits": len(leads),
        "commits_before_previous_deploy": early,
        "change_failures": failed,
        "change_failure_rate": round(failed / len(deployed), 3) if deployed else None,
        "deployments_unverified": unverified,
        "time_to_restore_minutes_median": round(statistics.median(restore), 1) if restore else None,
        "incidents": sum(len(r.get("incidents") or []) for r in sealed),
    }


def _releases_failing(sealed: list[dict[str, Any]]) -> dict[str, int]:
    """Per gate, in how many of these releases any attempt of it failed."""
    return {g: sum(1 for r in sealed if (r.get("gate_failures") or {}).get(g)) for g in GATE_IDS}


def gate_failure_frequency(rows: list[dict[str, Any]]) -> dict[str, float]:
    sealed = counted(rows)
    failing = _releases_failing(sealed)
    return {g: round(n / len(sealed), 3) if sealed else 0.0 for g, n in failing.items()}


def gate_failure_counts(rows: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(gate, releases in which it failed, sealed releases) for every gate that failed at least
    once, most often first: what the failure chart draws. Empty means no gate failed, which the
    review says in words rather than as a chart of zero-length bars."""
    sealed = counted(rows)
    failing = [(g, n, len(sealed)) for g, n in _releases_failing(sealed).items() if n]
    return sorted(failing, key=lambda x: (-x[1], GATE_IDS.index(x[0])))


def metric_lines(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The figures as (label, value with its unit and basis), for the notebook and the page."""
    m = dora_metrics(rows)
    n_open = m["open_releases"]
    lead = m["lead_time_hours_median"]
    lead_text = (
        f"{lead} h ({lead / 24:.1f} days), median over {m['lead_time_commits']} commits; "
        "committer date → D4 passed"
        if lead is not None
        else "no shipped release recorded commit dates"
    )
    if m["commits_before_previous_deploy"]:
        lead_text += (
            f"; {m['commits_before_previous_deploy']} of them are dated before the previous "
            "release's deploy (held back, or imported/replayed history with old dates)"
        )
    cfr = m["change_failure_rate"]
    return [
        ("sealed releases", f"{m['releases']}" + (f" ({n_open} open, not counted)" if n_open else "")),
        ("deployments (D4 passed)", str(m["deployments"])),
        ("deployment frequency", f"{m['deployment_frequency_per_week']} per week"),
        ("lead time for changes", lead_text),
        (
            "change failure rate",
            f"{cfr * 100:.0f}% ({m['change_failures']} of {m['deployments']} deployments)"
            + (
                f"; {m['deployments_unverified']} more not seen healthy either (D5/D7 waived or "
                "inconclusive, e.g. a shortened window)"
                if m["deployments_unverified"]
                else ""
            )
            if cfr is not None
            else "no deployments",
        ),
        (
            "time to restore",
            f"{m['time_to_restore_minutes_median']} min (median)"
            if m["time_to_restore_minutes_median"] is not None
            else "no incident with a start and an end",
        ),
        ("incidents", str(m["incidents"])),
    ]


def approval_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per recorded approval across releases, with its signature mark (UNSIGNED or the
    signer and short key fingerprint): a review must see which decisions nobody can vouch for."""
    out = []
    for r in rows:
        for a in r.get("approvals") or []:
            out.append(
                {
                    "release": r.get("release_id"),
                    "seq": a.get("seq"),
                    "gate": a.get("gate") or "-",
                    "signed": bool(a.get("signed")),
                    "mark": a.get("mark") or ("signed" if a.get("signed") else "UNSIGNED"),
                    "approval": a.get("text") or a.get("type"),
                }
            )
    return out


def approvals_count(row: dict[str, Any]) -> str:
    """`3 signed, 1 UNSIGNED` for one release row (`-` when it recorded no approvals)."""
    approvals = row.get("approvals") or []
    if not approvals:
        return "-"
    unsigned = sum(1 for a in approvals if not a.get("signed"))
    parts = [f"{len(approvals) - unsigned} signed"] if len(approvals) > unsigned else []
    return ", ".join([*parts, f"{unsigned} UNSIGNED"] if unsigned else parts)


def _failure_mark(row: dict[str, Any]) -> str:
    return "yes" if is_change_failure(row) else "unverified" if is_unverified(row) else "no"


def release_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline's rows: every release, open ones marked as not counted in the figures."""
    out = []
    for r in rows:
        status = r.get("status", "sealed")
        out.append(
            {
                "release": r.get("release_id"),
                "version": r.get("version"),
                "status": status if status == "sealed" else f"{status.upper()} (not counted)",
                "verdict": r.get("verdict"),
                "created": (r.get("created_at") or "")[:19],
                "deployed": (r.get("deployed_at") or "")[:19],
                "change failure": _failure_mark(r) if status == "sealed" and r.get("deployed_at") else "-",
                "incidents": len(r.get("incidents") or []),
                "gates that failed": ", ".join(sorted(r.get("gate_failures") or {})) or "-",
                "approvals": approvals_count(r),
            }
        )
    return out


def _bars(counts: list[tuple[str, int, int]]) -> str:
    if not counts:
        return "<p class='none'>No gate failed in any sealed release.</p>"
    w, row_h = 420, 16
    h = row_h * len(counts) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 160}" height="{h}" '
        'style="font:11px system-ui,sans-serif" role="img" aria-label="gate failure frequency">'
    ]
    for i, (g, n, total) in enumerate(counts):
        v = n / total
        y = 2 + i * row_h
        parts.append(f'<text x="0" y="{y + 11}">{g}</text>')
        parts.append(f'<rect x="30" y="{y}" width="{v * w:.1f}" height="{row_h - 3}" fill="#cf222e"/>')
        parts.append(
            f'<text x="{36 + v * w:.1f}" y="{y + 11}" fill="#57606a">{v * 100:.0f}% ({n} of {total})</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(items: list[dict[str, Any]], empty: str) -> str:
    if not items:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in items[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in it.values()) + "</tr>"
        for it in items
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def report_html(rows: list[dict[str, Any]]) -> str:
    """A self-contained review page (inline CSS and SVG, no scripts, no external assets)."""
    metric_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in metric_lines(rows)
    )
    approval_html = "".join(
        f"<tr class='{'signed' if a['signed'] else 'unsigned'}'>"
        + "".join(
            f"<td>{html.escape(str(a[k]))}</td>" for k in ("release", "seq", "gate", "mark", "approval")
        )
        + "</tr>"
        for a in approval_rows(rows)
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>relnb review</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto}"
        "td,th{padding:2px 8px;border-bottom:1px solid #eaeef2;text-align:left}</style></head><body>"
        f"<h1>Release review</h1><h2>DORA metrics</h2><table>{metric_rows}</table>"
        "<p>Sealed releases only; open ones are listed below and counted in no figure.</p>"
        f"<h2>Gate failure frequency</h2>{_bars(gate_failure_counts(rows))}"
        f"<h2>Releases (timeline)</h2>{_table(release_table(rows), 'No releases.')}"
        "<h2>Approvals</h2><table><tr><th>release</th><th>seq</th><th>gate</th><th>signature</th>"
        f"<th>approval</th></tr>{approval_html}</table></body></html>\n"
    )


def write_report(releases_dir: Path, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_html(load_rows(releases_dir)), encoding="utf-8")
    return out
