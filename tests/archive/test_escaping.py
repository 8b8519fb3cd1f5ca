"""Outside text (commit subjects, incidents, sign-off notes) is escaped for the medium it is
shown in: the archived ipynb's Markdown, release.html and the terminal (issue 22 item 3)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from relnb import Outcome, Release
from relnb.archive import archive_release

from ..core.helpers import git
from .builders import REVIEWER, finish, project_with_history, relnb

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
LINK = "[x](javascript:alert(1))"
TERMINAL = "\x1b]0;pwned\x07\x1b[2J"
PAYLOAD = f"{SCRIPT} {IMG} {LINK} {TERMINAL}"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class _LiveParts(HTMLParser):
    """What a browser would run or follow in a page: script elements, event-handler
    attributes, and link/source targets with a scheme that runs script."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.live: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "embed"):
            self.live.append(f"<{tag}>")
        for name, value in attrs:
            target = re.sub(r"[\s\x00-\x1f]", "", value or "").lower()
            if name.startswith("on"):
                self.live.append(f"{tag} {name}=")
            elif name in ("href", "src", "action", "formaction", "xlink:href") and target.startswith(
                ("javascript:", "vbscript:", "data:text/html")
            ):
                self.live.append(f"{tag} {name}={value}")


def live_html(text: str) -> list[str]:
    parser = _LiveParts()
    parser.feed(text)
    parser.close()
    return parser.live


def live_markdown(source: str) -> list[str]:
    """Raw HTML or a link of a script-running scheme in Markdown, as CommonMark reads it
    (backslash-escaped characters are literal text and begin nothing)."""
    plain = re.sub(r"\\.", "", source)
    found = re.findall(r"<\s*/?\s*[A-Za-z][^>]*>?", plain)
    found += re.findall(r"(?i)\[[^\]]*\]\(\s*<?\s*(?:javascript|vbscript|data):[^)]*", plain)
    found += re.findall(r"(?im)^\s{0,3}\[[^\]]+\]:\s*<?\s*(?:javascript|vbscript|data):.*$", plain)
    found += re.findall(r"(?i)<\s*(?:javascript|vbscript|data):", plain)
    return found


@pytest.fixture(scope="module")
def hostile_archive(tmp_path_factory):
    """A finished, sealed release whose commit subject, incident title and sign-off note carry
    script, an event handler, a javascript: link and terminal escape sequences."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RELNB_USER", "Lead <lead@example.org>")
        mp.delenv("RELNB_ROOT", raising=False)
        root = project_with_history(tmp_path_factory.mktemp("escaping") / "proj")
        git(root, "commit", "-q", "--allow-empty", "-m", f"feat(ui): {PAYLOAD}", date="2026-01-04T10:00:00+00:00")
        r = Release.create("1.1.0", root=root)
        try:
            r.incident(f"incident {PAYLOAD}", severity="minor", started_at="2026-01-05T10:00:00+00:00")
            r.request_sign_off("A3", evidence=lambda: Outcome.passed("migrations listed"))
            r.sign_off("A3", by=REVIEWER, note=f"note {PAYLOAD}")
            finish(r)
        finally:
            r.close()
        archive_release("1.1.0", root=root)
        yield root


def test_ipynb_markdown_cells_hold_no_live_html_or_script_links(hostile_archive):
    """issue 22 item 3: the changelog cell quotes the commit subject and the incident title as
    text; `jupyter nbconvert --to html` would otherwise run the script and keep the link live."""
    nb = json.loads((hostile_archive / "releases" / "1.1.0" / "release.ipynb").read_text())
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    changelog = next(m for m in markdown if m.startswith("## Changelog"))
    # the hostile text is there, escaped (a dropped line would also have "passed")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in changelog and "incident &lt;script&gt;" in changelog
    assert {m: live_markdown(m) for m in markdown if live_markdown(m)} == {}
    assert not any(CONTROL.search(m) for m in markdown)
    # the outputs are HTML a notebook viewer inserts as it is
    outputs = [
        o["data"]["text/html"]
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c["outputs"]
        if "text/html" in o.get("data", {})
    ]
    assert [live_html(h) for h in outputs if live_html(h)] == []


def test_release_html_runs_nothing_from_outside_text(hostile_archive):
    """issue 22 item 3: release.html shows the payloads as text (no element, handler or link).
    A guard: the page already escaped them on today's main; the notebook's Markdown did not."""
    page = (hostile_archive / "releases" / "1.1.0" / "release.html").read_text()
    assert "alert(1)" in page  # the text is shown
    assert live_html(page) == []


def test_relnb_show_prints_no_escape_sequences(hostile_archive):
    """issue 22 item 3: `relnb show` copied ESC/BEL/OSC from incident and sign-off text to the
    terminal (window title, screen clear)."""
    out = relnb("show", "1.1.0", "--timeline", cwd=hostile_archive, check=True)
    assert "incident" in out.stdout and "pwned" in out.stdout  # the text itself is shown
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert not CONTROL.search(out.stdout.replace("\n", "").replace("\t", ""))


def test_progress_lines_strip_control_characters():
    """issue 22 item 3: the lines `relnb run` prints per event (describe_event) carry no escape
    sequence from a sign-off note or an incident title."""
    from relnb.eventtext import describe_event

    events = [
        {"type": "sign-off", "payload": {"gate": "A3", "by": {"name": "R", "email": "r@x"}, "note": PAYLOAD}},
        {"type": "incident", "payload": {"severity": "minor", "title": PAYLOAD}},
        {"type": "note", "payload": {"text": PAYLOAD}},
    ]
    for ev in events:
        line = describe_event(ev)
        assert line is not None
        for text in (line.text(), line.column()):
            assert "pwned" in text and not CONTROL.search(text), repr(text)


def test_old_changelog_sections_are_sanitised_when_rendered():
    """issue 22 item 3: a changelog section written before subjects were escaped (raw HTML, a
    javascript: link, an entity-disguised one) is made inert in the archived notebook."""
    from relnb.archive.render import _md_to_html
    from relnb.eventtext import md_escape, md_sanitize

    old = (
        f"## [1.0.0] - 2026-01-01\n\n### Added\n\n- {PAYLOAD} (abc1234)\n"
        "- [y](java&#115;cript:alert(2)) <javascript:alert(3)> [ok](https://example.org)\n"
        "[ref]: vbscript:msgbox(1)\n"
    )
    safe = md_sanitize(old)
    assert live_markdown(safe) == [] and "[ok](https://example.org)" in safe
    assert live_html(_md_to_html(safe)) == []
    escaped = md_escape(PAYLOAD)
    assert live_markdown(escaped) == [] and not CONTROL.search(escaped)
    # what the reader sees is the text that was written, not entities
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _md_to_html(escaped)
    assert "[x](javascript:alert(1))" in _md_to_html(escaped).replace("&#91;", "[").replace("&#93;", "]")
