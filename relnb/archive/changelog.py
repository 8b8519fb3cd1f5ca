"""F3: the release's CHANGELOG.md section, in Keep a Changelog form, generated from the record.

Entries come from Conventional Commits since the previous tag (`feat` → Added, `fix` → Fixed,
...; `!` or a `BREAKING CHANGE:` footer marks a breaking change), followed by what the journal
knows and git does not: the migrations with their reversibility, API changes found by A2/A4, and
the incidents. Insertion is idempotent: the section for a version replaces an existing one of the
same version, so running F3 twice changes nothing the second time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..eventtext import md_code, md_escape
from ..redact import scrub
from ..results import Outcome

if TYPE_CHECKING:
    from ..gatecontext import GateContext
    from ..state import ReleaseState
    from .incidents import Incident

CATEGORIES = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
TYPE_TO_CATEGORY = {
    "feat": "Added",
    "fix": "Fixed",
    "perf": "Changed",
    "refactor": "Changed",
    "revert": "Removed",
    "remove": "Removed",
    "deprecate": "Deprecated",
    "security": "Security",
}
# docs, style, test, chore, ci, build: not user-visible, left out of the changelog (counted).
_HEADER = re.compile(r"^(?P<type>[a-zA-Z]+)(?:\((?P<scope>[^)]*)\))?(?P<bang>!)?:\s+(?P<desc>.+)$")
_BREAKING = re.compile(r"^BREAKING[ -]CHANGE:\s*(?P<text>.+)$", re.MULTILINE)

CHANGELOG_PREAMBLE = (
    "# Changelog\n\n"
    "All notable changes to this project will be documented in this file.\n\n"
    "The format is based on [Keep a Changelog](https://keepachangelog.com/en/1.1.0/),\n"
    "and this project adheres to [Semantic Versioning](https://semver.org/spec/v2.0.0.html).\n\n"
    "## [Unreleased]\n"
)


@dataclass
class Commit:
    sha: str
    subject: str
    body: str = ""
    committed_at: str | None = None
    type: str | None = None
    scope: str | None = None
    breaking: bool = False
    breaking_note: str | None = None
    description: str = ""

    @property
    def category(self) -> str | None:
        if self.type is None:
            return None
        if self.type == "fix" and (self.scope or "").lower() == "security":
            return "Security"
        return TYPE_TO_CATEGORY.get(self.type)


def parse_commit(sha: str, subject: str, body: str = "", committed_at: str | None = None) -> Commit:
    c = Commit(sha, subject.strip(), body, committed_at)
    m = _HEADER.match(c.subject)
    if m:
        c.type = m.group("type").lower()
        c.scope = m.group("scope") or None
        c.description = m.group("desc").strip()
        c.breaking = bool(m.group("bang"))
    b = _BREAKING.search(body or "")
    if b and c.type is not None:
        c.breaking = True
        c.breaking_note = b.group("text").strip()
    return c


def commits_between(repo: Path, since: str | None, until: str = "HEAD") -> list[Commit]:
    """Commits in `since..until` (all of `until`'s history when there is no previous tag), oldest first."""
    rng = f"{since}..{until}" if since else until
    from .. import git

    out = git.run(
        repo, "log", "--reverse", "--no-merges", "--format=%H%x1f%s%x1f%b%x1f%cI%x1e", rng, timeout=60
    )
    if out.returncode != 0:
        raise ValueError(f"git log {rng} failed in {repo}: {scrub(out.stderr.strip())[:200]}")
    commits = []
    for rec in out.stdout.split("\x1e"):
        rec = rec.strip("\n")
        if not rec:
            continue
        sha, subject, body, at = ([*rec.split("\x1f"), "", "", "", ""])[:4]
        commits.append(parse_commit(sha.strip(), subject, body.strip(), at.strip() or None))
    return commits


@dataclass
class ChangelogInputs:
    version: str
    date: str
    commits: list[Commit] = field(default_factory=list)
    migrations: list[dict[str, Any]] = field(default_factory=list)
    api: dict[str, Any] = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)
    previous_tag: str | None = None


def _entry(c: Commit) -> str:
    """A commit's line; its text is the author's, so it is escaped: a changelog is rendered
    (GitHub, nbconvert, the archive), and a subject must not become HTML or a link (issue 22
    item 3)."""
    scope = f"**{md_escape(c.scope)}:** " if c.scope else ""
    prefix = "**BREAKING:** " if c.breaking else ""
    line = f"- {prefix}{scope}{md_escape(c.description)} ({md_escape(c.sha[:7])})"
    if c.breaking_note:
        line += f"\n  {md_escape(' '.join(c.breaking_note.split()))}"
    return line


def render_section(inputs: ChangelogInputs) -> str:
    """The `## [version] - date` section; deterministic for the same inputs."""
    lines = [f"## [{inputs.version}] - {inputs.date}", ""]
    by_cat: dict[str, list[Commit]] = {cat: [] for cat in CATEGORIES}
    for c in inputs.commits:
        if c.category:
            by_cat[c.category].append(c)
    for cat in CATEGORIES:
        if by_cat[cat]:
            lines += [f"### {cat}", "", *(_entry(c) for c in by_cat[cat]), ""]
    if inputs.migrations:
        lines += ["### Migrations", ""]
        for m in inputs.migrations:
            rev = m.get("reversible")
            how = (
                "reversible"
                if rev
                else ("not reversible" if rev is False else "reversibility unknown")
            )
            reason = f": {md_escape(str(m['reason']))}" if m.get("reason") else ""
            lines.append(f"- `{md_code(str(m['name']))}` — {how}{reason}")
        lines.append("")
    api = inputs.api
    api_lines = [f"- Added `{md_code(str(op))}`" for op in api.get("added", [])]
    api_lines += [f"- Removed `{md_code(str(op))}`" for op in api.get("removed", [])]
    api_lines += [f"- Changed `{md_code(str(op))}`" for op in api.get("changed", [])]
    for b in api.get("breaking_changes", []):
        what = md_code(str(b.get("operation") or b.get("field") or ""))
        detail = f" {md_escape(str(b['field']))}" if b.get("field") and b.get("operation") else ""
        kind = md_escape(str(b.get("kind", "change")))
        api_lines.append(f"- **BREAKING:** {kind} `{what}`{detail}")
    if api_lines:
        lines += ["### API", "", *api_lines, ""]
    if inputs.incidents:
        lines += ["### Incidents", ""]
        for i in inputs.incidents:
            test = f"test `{md_code(i.test)}`" if i.test else ("test waived" if i.waiver else "no test yet")
            span = md_escape(f"{i.started_at or '?'} – {i.ended_at or 'open'}")
            lines.append(f"- [{md_escape(i.severity)}] {md_escape(i.title)} ({span}); {test}")
        lines.append("")
    if len(lines) == 2:
        lines += ["No user-visible changes.", ""]
    return scrub("\n".join(lines).rstrip("\n") + "\n")


_VERSION_HEADING = re.compile(r"^## \[?v?(?P<v>[^\]\s]+)\]?.*$", re.MULTILINE)
_LINK_REFS = re.compile(r"(?:^\[[^\]]+\]:\s*\S+.*\n?)+\Z", re.MULTILINE)


def insert_section(text: str | None, version: str, section: str) -> tuple[str, bool]:
    """Put `section` into a Keep a Changelog document; (new text, changed?).

    An existing section for the same version is replaced (idempotent); otherwise the new
    section goes after `## [Unreleased]` and before the newest released version.
    """
    if not text or not text.strip():
        text = CHANGELOG_PREAMBLE
    section = section.rstrip("\n") + "\n"
    headings = list(_VERSION_HEADING.finditer(text))
    v = version.lstrip("v")
    for i, h in enumerate(headings):
        if h.group("v").lstrip("v") == v:
            end = headings[i + 1].start() if i + 1 < len(headings) else _body_end(text)
            new = text[: h.start()] + section + ("\n" if end < len(text) else "") + text[end:]
            return new, new != text
    releases = [h for h in headings if h.group("v").lower() != "unreleased"]
    if releases:
        at = releases[0].start()
        new = text[:at] + section + "\n" + text[at:]
    else:
        end = _body_end(text)
        head, tail = text[:end].rstrip("\n"), text[end:]
        new = head + "\n\n" + section + ("\n" + tail if tail else "")
    return new, True


def _body_end(text: str) -> int:
    """Where the body ends: before trailing link reference definitions (`[1.0.0]: https://...`)."""
    m = _LINK_REFS.search(text)
    return m.start() if m else len(text)


def update_changelog(path: Path, version: str, section: str) -> bool:
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    new, changed = insert_section(old, version, section)
    if changed:
        path.write_text(new, encoding="utf-8")
    return changed


def migrations_from_state(state: ReleaseState) -> list[dict[str, Any]]:
    """Migrations with reversibility as the gates recorded them (E2/E3, C3, A3 evidence)."""
    found: dict[str, dict[str, Any]] = {}
    for gid in ("E3", "E2", "C3", "A3", "D3", "B2"):
        ev = state.result(gid).evidence
        for m in ev.get("migrations") or []:
            if isinstance(m, dict) and m.get("name") and m["name"] not in found:
                found[m["name"]] = {
                    "name": m["name"],
                    "reversible": m.get("reversible"),
                    "reason": m.get("reason"),
                }
        for name in ev.get("new_migrations") or []:
            if isinstance(name, str) and name not in found:
                found[name] = {"name": name, "reversible": None, "reason": None}
    return [found[k] for k in sorted(found)]


def api_changes_from_state(state: ReleaseState) -> dict[str, Any]:
    out: dict[str, list[Any]] = {"added": [], "removed": [], "changed": [], "breaking_changes": []}
    for gid in ("A2", "A4"):
        ev = state.result(gid).evidence
        for key in out:
            for item in ev.get(key) or []:
                if item not in out[key]:
                    out[key].append(item)
    return {k: v for k, v in out.items() if v}


def release_date(state: ReleaseState) -> str:
    deployed = state.actions.get("D4", {}).get("finished", {})
    when = deployed.get("finished_at") if deployed.get("status") == "passed" else None
    return (when or datetime.now(UTC).isoformat())[:10]


def gather(
    state: ReleaseState,
    events: Iterable[Any],
    repo: Path,
    previous_tag: str | None,
    sha: str | None,
    *,
    date: str | None = None,
) -> ChangelogInputs:
    from .incidents import incidents_from_events

    commits = commits_between(repo, previous_tag, sha or "HEAD")
    return ChangelogInputs(
        version=str(state.created.get("version") or state.release_id),
        date=date or release_date(state),
        commits=commits,
        migrations=migrations_from_state(state),
        api=api_changes_from_state(state),
        incidents=incidents_from_events(events),
        previous_tag=previous_tag,
    )


def section_evidence(inputs: ChangelogInputs, section: str) -> dict[str, Any]:
    skipped = [c.subject for c in inputs.commits if c.category is None]
    return {
        "version": inputs.version,
        "previous_tag": inputs.previous_tag,
        "commits": len(inputs.commits),
        "commits_in_changelog": len(inputs.commits) - len(skipped),
        "commits_left_out": skipped[:50],
        "commit_times": [(c.sha[:12], c.committed_at) for c in inputs.commits],
        "migrations": inputs.migrations,
        "section": section,
    }


def find_previous_tag(repo: Path, project: dict[str, Any], version: str, sha: str) -> str | None:
    """project.previous_tag, else the newest tag with tag_prefix reachable from `sha` (not ours)."""
    from .. import git

    if project.get("previous_tag"):
        return project["previous_tag"]
    prefix = project.get("tag_prefix") or ""
    return git.newest_tag(repo, sha, prefix, exclude=f"{prefix}{version}")


def f3_changelog(ctx: GateContext) -> Outcome:
    """F3 action: write this release's section into the repository's CHANGELOG.md."""
    repo = ctx.repo()
    sha = ctx.release_sha()
    if not sha:
        return Outcome.failed(f"{repo} is not a git repository with commits: set project.repo")
    prev = find_previous_tag(repo, ctx.config.project, str(ctx.release.info.get("version")), sha)
    try:
        inputs = gather(ctx.release.state, ctx.release.journal.events, repo, prev, sha)
    except ValueError as exc:
        return Outcome.failed(str(exc))
    section = render_section(inputs)
    path = repo / ctx.config.project["changelog"]
    changed = update_changelog(path, inputs.version, section)
    ev = section_evidence(inputs, section)
    ev.update(path=str(path), changed=changed)
    verb = "updated" if changed else "already had"
    return Outcome.passed(
        f"{verb} {path.name} section [{inputs.version}]: {ev['commits_in_changelog']} of "
        f"{len(inputs.commits)} commit(s) since {prev or 'the first commit'}",
        **ev,
    )


def sections_in(text: str) -> Sequence[str]:
    return [h.group("v") for h in _VERSION_HEADING.finditer(text)]
