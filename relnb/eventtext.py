"""One line of text per journal event, for everything that narrates a release.

`relnb run` prints these lines as progress while the notebook runs; the archive's timeline (HTML,
ipynb, `relnb show --timeline`) lists them afterwards. Both used to phrase events on their own
and drifted apart; one renderer keeps the live narration and the record telling the same story.

Every approval (sign-off, waiver, skip, forced re-run, promotion, seal) carries its signature
mark from `approval_label`: the signing principal and a short key fingerprint, or
UNSIGNED. The mark depends only on the event, so re-executing an archived notebook reproduces it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .gates import PRODUCTION_WINDOW_GATE
from .journal import Event

# Event types that record a decision somebody must answer for (a forced re-run is a started
# event with `forced`; see `is_approval`).
APPROVAL_TYPES = ("sign-off", "waiver", "skip", "promotion-approved", "sealed")


# C0 and C1 control characters but newline and tab (ESC starts colour, title, OSC-8 link and
# screen-clearing sequences; BEL ends OSC), and the bidi overrides that reorder what is shown
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MD_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\\": "\\\\", "[": "\\[", "]": "\\]"}
_MD_SPECIAL = re.compile(r"[&<>\\\[\]]")
# a link destination (inline `](...)`, reference `[x]: ...` or autolink `<...>`) and the
# schemes a browser runs or inlines instead of following
_MD_DEST = re.compile(r"(\]\(\s*<?|^[ ]{0,3}\[[^\]]+\]:[ \t]*<?|<)([^)\s>]*)", re.MULTILINE)
_BAD_SCHEME = re.compile(r"(?i)^(?:javascript|vbscript|data|file):")


def terminal_text(text: str) -> str:
    """Outside text (incident titles, notes, commit subjects, remote bodies) made safe to print
    on a terminal: control characters but newline and tab removed, so no escape sequence in a
    record can retitle the window, clear the screen or plant a link (issue 22 item 3)."""
    return _CONTROLS.sub("", text)


def md_escape(text: str) -> str:
    """Outside text as Markdown that shows it literally: `<`, `>` and `&` as entities (no raw
    HTML, so no `<script>` or `onerror=`), `[`, `]` and `\\` backslash-escaped (no link or
    image of any scheme can form), control characters removed (issue 22 item 3)."""
    return _MD_SPECIAL.sub(lambda m: _MD_ESCAPES[m.group(0)], terminal_text(text))


def md_code(text: str) -> str:
    """Outside text for inside a Markdown code span, where nothing is interpreted but a backtick
    (which would end the span and let the rest be read as Markdown) and a line break."""
    return " ".join(terminal_text(text).replace("`", "'").split())


def _safe_destination(dest: str) -> bool:
    """Whether a link target is one a reader may follow: its scheme read the way a Markdown
    renderer reads it (entities decoded, escapes and controls removed), never javascript:,
    vbscript:, data: or file:."""
    plain = re.sub(r"[\\\s\x00-\x1f]", "", html.unescape(dest))
    return not _BAD_SCHEME.match(plain)


def md_sanitize(markdown: str) -> str:
    """Markdown assembled elsewhere (a changelog section) made inert: raw HTML shown as text
    and links whose target would run script pointed at `#blocked` instead."""

    def dest(m: re.Match[str]) -> str:
        return m.group(0) if _safe_destination(m.group(2)) else m.group(1) + "#blocked"

    text = _MD_DEST.sub(dest, terminal_text(markdown))
    return text.replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class EventLine:
    subject: str  # gate or action ID, or what the event concerns ("release", "incident", "journal")
    verb: str
    who: str | None = None
    detail: str = ""

    def text(self) -> str:
        """Sentence form, for the timeline: `A3 signed off by Bob <b@x> [UNSIGNED]: reviewed`."""
        out = f"{self.subject} {self.verb}" + (f" by {self.who}" if self.who else "")
        return terminal_text(out + (f": {self.detail}" if self.detail else ""))

    def column(self) -> str:
        """Aligned form, for progress: `A3   SIGNED OFF   by Bob <b@x> [UNSIGNED]: reviewed`."""
        rest = (f"by {self.who}" if self.who else "") + (
            (": " if self.who else "") + self.detail if self.detail else ""
        )
        return terminal_text(f"{self.subject:<4} {self.verb.upper():<12} {rest}".rstrip())


def short_fingerprint(fp: Any) -> str:
    """`SHA256:` plus 12 characters: enough to tell keys apart on one line, like git's short SHA."""
    text = str(fp or "?")
    head, sep, body = text.partition(":")
    return f"{head}:{body[:12]}…" if sep and len(body) > 12 else text


def approval_label(payload: Mapping[str, Any]) -> str:
    """How progress lines, `relnb show`, the archive and the review mark an approval event.

    The mark is derived from the recorded approval alone (never from config or the clock), so
    an archived notebook re-executed later shows exactly the same text. It lives here, not in
    relnb.signing, because every rendering of the journal needs it and signing is a leaf.
    """
    ap = payload.get("approval")
    if isinstance(ap, Mapping) and ap.get("signature"):
        return f"signed by {ap.get('principal')} ({short_fingerprint(ap.get('fingerprint'))})"
    return "UNSIGNED"


def who_text(identity: Any) -> str:
    """`Name <email>` for a recorded identity (dict or text), `?` when nobody is named."""
    if isinstance(identity, Mapping):
        name = identity.get("name") or "?"
        return f"{name} <{identity['email']}>" if identity.get("email") else str(name)
    return str(identity) if identity else "?"


def approver(payload: Mapping[str, Any], key: str) -> str:
    """Who approved, with the signature mark: `Bob <b@x> [signed by b@x (SHA256:…)]`."""
    return f"{who_text(payload.get(key))} [{approval_label(payload)}]"


def is_approval(type_: str, payload: Mapping[str, Any]) -> bool:
    return type_ in APPROVAL_TYPES or (
        type_ in ("gate-started", "action-started") and bool(payload.get("forced"))
    )


def describe_event(ev: Event | Mapping[str, Any]) -> EventLine | None:
    """The line for one event, or None for events nobody reads line by line (samples, notes,
    ordinary starts)."""
    if isinstance(ev, Event):
        t, p = ev.type, ev.payload
    else:
        t, p = str(ev.get("type")), dict(ev.get("payload") or {})
    gate = p.get("gate")
    if t == "release-created":
        return EventLine(
            f"release {p.get('release_id')}",
            "created",
            who_text(p.get("author")),
            f"git {str(p.get('git_sha'))[:12]}",
        )
    if t in ("gate-started", "action-started"):
        name = p.get("action") or gate or p.get("of_gate") or "?"
        if p.get("forced"):
            return EventLine(str(name), "forced re-run", approver(p, "by"), str(p.get("reason") or ""))
        if t == "gate-started" and gate == PRODUCTION_WINDOW_GATE:  # the long wait: say it began
            return EventLine(str(gate), "started", detail="monitoring window")
        return None
    if t in ("gate-finished", "action-finished"):
        name = gate or p.get("action") or "?"
        return EventLine(str(name), str(p.get("status", "?")).upper(), detail=str(p.get("summary", "")))
    if t == "sign-off":
        return EventLine(str(gate), "signed off", approver(p, "by"), str(p.get("note") or ""))
    if t == "waiver":
        return EventLine(str(gate), "waived", approver(p, "approver"), str(p.get("reason") or ""))
    if t == "skip":
        return EventLine(str(gate), "skipped", approver(p, "by"), str(p.get("reason") or ""))
    if t == "promotion-approved":
        return EventLine("D", "promotion approved", approver(p, "by"), str(p.get("note") or ""))
    if t == "refused":
        return EventLine(str(gate), "refused", detail=str(p.get("summary", "")))
    if t == "approval-refused":
        return EventLine(
            str(gate or p.get("kind") or "?"),
            f"{p.get('kind')} refused",
            str(p.get("principal") or "?"),
            str(p.get("summary", "")),
        )
    if t == "note":  # a decision's reasoning written down by relnb (e.g. why a rollback ran)
        return EventLine("relnb", "noted", detail=str(p.get("text") or ""))
    if t == "incident":
        return EventLine("incident", f"({p.get('severity')})", detail=str(p.get("title")))
    if t == "incident-update":
        changes = ", ".join(f"{k}={v}" for k, v in p.items() if k != "incident")
        return EventLine(f"incident #{p.get('incident')}", "updated", detail=changes)
    if t == "incident-waiver":
        return EventLine(
            f"incident #{p.get('incident')}",
            "test waived",
            approver(p, "approver"),
            str(p.get("reason") or ""),
        )
    if t == "torn-tail":
        return EventLine(
            "journal", "torn tail", detail=f"{p.get('bytes')} bytes set aside in {p.get('kept_in')}"
        )
    if t == "sealed":
        return EventLine(
            "release",
            "sealed",
            approver(p, "archived_by"),
            f"manifest {str(p.get('manifest_sha256'))[:12]}",
        )
    return None


__all__ = [
    "EventLine",
    "approval_label",
    "approver",
    "describe_event",
    "is_approval",
    "md_code",
    "md_escape",
    "md_sanitize",
    "short_fingerprint",
    "terminal_text",
    "who_text",
]
