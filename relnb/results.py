"""Gate outcomes and how they look in a notebook (HTML) and in a CI log (plain text).

A check implements only its core step and returns an `Outcome`; the release lifecycle turns it
into a `GateResult` (timing, attempt, journaling, redaction). Rendering lives here so marimo,
Jupyter, exports and `relnb status` all show the same thing.
"""

from __future__ import annotations

import html
import json
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from .eventtext import terminal_text


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    PENDING = "pending"
    SKIPPED = "skipped"
    WAIVED = "waived"
    # Stopping a running gate or action is neither a pass nor a verdict on the system.
    INTERRUPTED = "interrupted"

    @property
    def ok_for_promotion(self) -> bool:
        return self in (Status.PASSED, Status.SKIPPED, Status.WAIVED)

    @property
    def is_failure(self) -> bool:
        return self in (Status.FAILED, Status.INCONCLUSIVE, Status.INTERRUPTED)


COLOURS = {
    Status.PASSED: ("#1a7f37", "#dafbe1"),
    Status.FAILED: ("#cf222e", "#ffebe9"),
    Status.INCONCLUSIVE: ("#9a6700", "#fff8c5"),
    Status.INTERRUPTED: ("#9a6700", "#fff8c5"),
    Status.PENDING: ("#57606a", "#f6f8fa"),
    Status.SKIPPED: ("#57606a", "#f6f8fa"),
    Status.WAIVED: ("#8250df", "#fbefff"),
}

SYMBOLS = {
    Status.PASSED: "PASS",
    Status.FAILED: "FAIL",
    Status.INCONCLUSIVE: "INCONCLUSIVE",
    Status.INTERRUPTED: "INTERRUPTED",
    Status.PENDING: "PENDING",
    Status.SKIPPED: "SKIP",
    Status.WAIVED: "WAIVED",
}


def plain(text: str) -> str:
    """Outside text (summaries quote commands, servers and people) as one line a terminal shows
    literally: no ESC, BEL, OSC or other control character that could retitle the window, clear
    the screen or plant a link (issue 22), and no line break that would tear a table row."""
    return terminal_text(str(text)).replace("\n", " ").replace("\t", " ")


def last_line(output: str) -> str:
    """The last non-empty line of a command's output or a traceback: when that is all there is,
    it is the reason a one-line summary should quote."""
    return next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip()), "")


@dataclass(frozen=True)
class Outcome:
    """What a check's core step decided, before the lifecycle adds identity and timing."""

    status: Status
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, summary: str, **evidence: Any) -> Outcome:
        return cls(Status.PASSED, summary, evidence)

    @classmethod
    def failed(cls, summary: str, **evidence: Any) -> Outcome:
        return cls(Status.FAILED, summary, evidence)

    @classmethod
    def inconclusive(cls, summary: str, **evidence: Any) -> Outcome:
        return cls(Status.INCONCLUSIVE, summary, evidence)

    @classmethod
    def pending(cls, summary: str, **evidence: Any) -> Outcome:
        return cls(Status.PENDING, summary, evidence)

    @classmethod
    def skipped(cls, summary: str, **evidence: Any) -> Outcome:
        return cls(Status.SKIPPED, summary, evidence)


@dataclass(frozen=True)
class GateResult:
    gate_id: str
    status: Status
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    attempt: int = 0
    title: str = ""
    # True when the result was read back from the journal instead of being produced now.
    recorded: bool = False
    # Extra HTML (inline SVG charts) derived from evidence; never journaled, always re-derivable.
    figures: tuple[str, ...] = ()

    def with_(self, **changes: Any) -> GateResult:
        return replace(self, **changes)

    @property
    def duration_s(self) -> float | None:
        if not (self.started_at and self.finished_at):
            return None
        start = datetime.fromisoformat(self.started_at)
        end = datetime.fromisoformat(self.finished_at)
        return (end - start).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate_id": self.gate_id,
            "status": str(self.status),
            "summary": self.summary,
            "evidence": self.evidence,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempt": self.attempt,
        }

    def __repr__(self) -> str:
        line = f"[{SYMBOLS[self.status]}] {self.gate_id} {plain(self.title)}".rstrip()
        line += f": {plain(self.summary)}"
        if self.recorded:
            line += " (recorded)"
        return line

    __str__ = __repr__

    def _repr_html_(self) -> str:
        fg, bg = COLOURS[self.status]
        title = html.escape(self.title)
        summary = html.escape(self.summary)
        meta = []
        if self.attempt:
            meta.append(f"attempt {self.attempt}")
        if self.duration_s is not None:
            meta.append(f"{self.duration_s:.1f} s")
        if self.finished_at:
            meta.append(html.escape(self.finished_at))
        if self.recorded:
            meta.append("recorded in journal")
        evidence = html.escape(json.dumps(self.evidence, indent=2, sort_keys=True, default=str))
        figures = "".join(f'<div class="relnb-figure">{f}</div>' for f in self.figures)
        return (
            f'<div class="relnb-gate relnb-{self.status}" data-gate="{self.gate_id}" '
            f'data-status="{self.status}" style="border-left:6px solid {fg};background:{bg};'
            'padding:6px 10px;margin:4px 0;font-family:system-ui,sans-serif;font-size:14px">'
            f'<b style="color:{fg}">{SYMBOLS[self.status]}</b> '
            f"<b>{self.gate_id}</b> {title}<br><span>{summary}</span>"
            f'<div style="color:#57606a;font-size:12px">{" · ".join(meta)}</div>'
            f"{figures}"
            "<details><summary>evidence</summary>"
            f'<pre style="white-space:pre-wrap;font-size:12px">{evidence}</pre></details></div>'
        )


@dataclass(frozen=True)
class StatusTable:
    """The whole checklist at a glance: one row per gate, in checklist order."""

    release_id: str
    rows: tuple[GateResult, ...]
    sections: Mapping[str, str] = field(default_factory=dict)
    # the rollback's steps, when one ran: shown under the gates, not counted among them
    rollback: tuple[GateResult, ...] = ()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[str(r.status)] = out.get(str(r.status), 0) + 1
        return out

    def __iter__(self) -> Iterable[GateResult]:  # type: ignore[override]
        return iter(self.rows)

    def __repr__(self) -> str:
        return self.render()

    __str__ = __repr__

    def render(self, width: int | None = None) -> str:
        """The table as plain text; with `width` (a terminal's), no line is longer: long titles
        and summaries wrap at word boundaries inside their own columns."""
        rows = [*self.rows, *self.rollback]
        title_w = max((len(plain(r.title)) for r in rows), default=10)
        summary_w: int | None = None
        if width is not None:
            room = width - 21  # "  A1  " + status column + the two spaces before the summary
            longest = max((len(plain(r.summary)) for r in rows), default=0)
            # summaries get the room they need, titles keep at least 2/5 of it (and 8 columns)
            title_w = max(8, min(title_w, max(room - longest, room * 2 // 5)))
            summary_w = room - title_w
        lines = [plain(f"release {self.release_id}")]
        section = None
        for r in self.rows:
            if r.gate_id[0] != section:
                section = r.gate_id[0]
                lines.append(plain(f"{section}) {self.sections.get(section, '')}"))
            lines += _row(r, title_w, summary_w)
        if self.rollback:
            lines.append("Rollback")
            for r in self.rollback:
                lines += _row(r, title_w, summary_w)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        lines.append(f"total: {counts}")
        if width is not None:
            lines = [part for ln in lines for part in (_wrap(ln, width, "  ") if len(ln) > width else [ln])]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = []
        section = None
        for r in self.rows:
            if r.gate_id[0] != section:
                section = r.gate_id[0]
                name = html.escape(self.sections.get(section, ""))
                body.append(
                    f'<tr><th colspan="4" style="text-align:left;padding-top:8px">{section}) {name}</th></tr>'
                )
            fg, bg = COLOURS[r.status]
            body.append(
                f'<tr data-gate="{r.gate_id}" data-status="{r.status}">'
                f"<td><b>{r.gate_id}</b></td>"
                f'<td style="background:{bg};color:{fg};font-weight:bold">{SYMBOLS[r.status]}</td>'
                f"<td>{html.escape(r.title)}</td><td>{html.escape(r.summary)}</td></tr>"
            )
        if self.rollback:
            body.append('<tr><th colspan="4" style="text-align:left;padding-top:8px">Rollback</th></tr>')
            for r in self.rollback:
                fg, bg = COLOURS[r.status]
                body.append(
                    f'<tr data-rollback-step="{html.escape(r.title)}" data-status="{r.status}">'
                    f"<td><b>{r.gate_id}</b></td>"
                    f'<td style="background:{bg};color:{fg};font-weight:bold">{SYMBOLS[r.status]}</td>'
                    f"<td>{html.escape(r.title)}</td><td>{html.escape(r.summary)}</td></tr>"
                )
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        return (
            f'<div class="relnb-status"><b>release {html.escape(self.release_id)}</b> — {counts}'
            '<table style="border-collapse:collapse;font-family:system-ui,sans-serif;font-size:13px">'
            + "".join(body)
            + "</table></div>"
        )


def _row(r: GateResult, title_w: int, summary_w: int | None) -> list[str]:
    """One gate's row; with a summary width, its title and summary wrap in their columns."""
    head = f"  {r.gate_id:<3} {SYMBOLS[r.status]:<12} "
    title, summary = plain(r.title), plain(r.summary)
    if summary_w is None:
        return [f"{head}{title:<{title_w}}  {summary}".rstrip()]
    titles = _wrap(title, title_w)
    summaries = _wrap(summary, max(summary_w, 8))
    out = []
    for i in range(max(len(titles), len(summaries))):
        t = titles[i] if i < len(titles) else ""
        s = summaries[i] if i < len(summaries) else ""
        out.append(f"{head if i == 0 else ' ' * len(head)}{t:<{title_w}}  {s}".rstrip())
    return out


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
