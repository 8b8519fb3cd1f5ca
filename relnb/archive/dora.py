"""Review over many releases: DORA metrics and per-gate failure frequency, from releases/index.json.

Definitions (computed only from what the archives recorded):
- deployment frequency: releases whose D4 (deploy) passed, per week, over the span from the first
  to the last deployment (at least one week);
- lead time for changes: for each commit in a deployed release (previous tag → release SHA),
  deploy time minus commit time; reported as the median, in hours;
- change failure rate: deployed releases with a major/critical incident, or whose D5 or D7 ended
  failed, inconclusive or waived, divided by deployed releases;
- time to restore: median of incident end − start over incidents that have both, in minutes;
- gate failure frequency: per gate, the share of releases in which any attempt failed.
"""

from __future__ import annotations

import html
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

from ..gates import GATE_IDS
from .index import read_index


def _t(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        return None


def load_rows(releases_dir: Path) -> list[dict[str, Any]]:
    return sorted(read_index(Path(releases_dir)).values(), key=lambda r: r.get("created_at") or "")


def dora_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    deployed = [r for r in rows if _t(r.get("deployed_at"))]
    times = sorted(_t(r["deployed_at"]) for r in deployed)
    weeks = max(1.0, (times[-1] - times[0]).total_seconds() / 604800) if times else 1.0
    leads = []
    for r in deployed:
        dep = _t(r["deployed_at"])
        for c in r.get("commits") or []:
            at = _t(c.get("committed_at"))
            if at and dep and dep >= at:
                leads.append((dep - at).total_seconds() / 3600)
    failed = 0
    for r in deployed:
        bad_incident = any(
            i.get("severity") in ("major", "critical") for i in r.get("incidents") or []
        )
        bad_gate = any(
            r.get("gates", {}).get(g) in ("failed", "inconclusive", "waived", "interrupted")
            for g in ("D5", "D7")
        )
        failed += bad_incident or bad_gate
    restore = []
    for r in rows:
        for i in r.get("incidents") or []:
            s, e = _t(i.get("started_at")), _t(i.get("ended_at"))
            if s and e and e >= s:
                restore.append((e - s).total_seconds() / 60)
    return {
        "releases": len(rows),
        "deployments": len(deployed),
        "deployment_frequency_per_week": round(len(deployed) / weeks, 3) if deployed else 0.0,
        "lead_time_hours_median": round(statistics.median(leads), 2) if leads else None,
        "change_failure_rate": round(failed / len(deployed), 3) if deployed else None,
        "time_to_restore_minutes_median": round(statistics.median(restore), 1) if restore else None,
        "incidents": sum(len(r.get("incidents") or []) for r in rows),
    }


def gate_failure_frequency(rows: list[dict[str, Any]]) -> dict[str, float]:
    if not rows:
        return {g: 0.0 for g in GATE_IDS}
    return {
        g: round(sum(1 for r in rows if (r.get("gate_failures") or {}).get(g)) / len(rows), 3)
        for g in GATE_IDS
    }


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


def _bars(freq: dict[str, float]) -> str:
    w, row_h = 420, 14
    h = row_h * len(freq) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 120}" height="{h}" style="font:11px system-ui,sans-serif">'
    ]
    for i, (g, v) in enumerate(freq.items()):
        y = 2 + i * row_h
        parts.append(f'<text x="0" y="{y + 10}">{g}</text>')
        parts.append(
            f'<rect x="30" y="{y}" width="{max(0.0, v) * w:.1f}" height="{row_h - 3}" fill="#cf222e"/>'
        )
        parts.append(
            f'<text x="{36 + v * w:.1f}" y="{y + 10}" fill="#57606a">{v * 100:.0f}%</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def report_html(rows: list[dict[str, Any]]) -> str:
    """A self-contained review page (inline CSS and SVG, no scripts, no external assets)."""
    m = dora_metrics(rows)
    freq = gate_failure_frequency(rows)
    metric_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in m.items()
    )
    rel_rows = []
    for r in rows:
        rel_rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(x))}</td>"
                for x in (
                    r.get("release_id"),
                    r.get("version"),
                    r.get("verdict"),
                    (r.get("created_at") or "")[:19],
                    (r.get("deployed_at") or "")[:19],
                    len(r.get("incidents") or []),
                    ", ".join(sorted(r.get("gate_failures") or {})) or "-",
                    approvals_count(r),
                )
            )
            + "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "release",
            "version",
            "verdict",
            "created",
            "deployed",
            "incidents",
            "gates that failed",
            "approvals",
        )
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
        f"<h2>Gate failure frequency</h2>{_bars(freq)}"
        f"<h2>Releases (timeline)</h2><table><tr>{head}</tr>{''.join(rel_rows)}</table>"
        "<h2>Approvals</h2><table><tr><th>release</th><th>seq</th><th>gate</th><th>signature</th>"
        f"<th>approval</th></tr>{approval_html}</table></body></html>\n"
    )


def write_report(releases_dir: Path, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_html(load_rows(releases_dir)), encoding="utf-8")
    return out
