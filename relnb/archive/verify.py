"""`relnb verify`: recompute the chain and the manifest; name every changed, missing or added
file and every broken event.

A release that is not archived yet is checked as a journal (chain and torn tail). An archived
one must also satisfy: the journal ends with `sealed`; the sealed event carries the sha256 of
manifest.json; the manifest's journal head, event count and sha256 match the journal before the
sealed line; every listed file exists with its sha256; no file exists that is not listed; and no
file holds a registered secret or a token shape. Cost is one pass over each file: linear in the
archive's total size. The journal is read and parsed once: its events stay on the report
(`journal_events`) for the signature check, which used to read and parse it a second time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..journal import Event, verify_file
from . import files as F


@dataclass
class Problem:
    name: str  # file name, or journal.jsonl#seq
    problem: str

    def __str__(self) -> str:
        return f"{self.name}: {self.problem}"


@dataclass
class ArchiveReport:
    release_id: str
    directory: Path
    archived: bool = False
    sealed: bool = False
    events: int = 0
    head: str = ""
    files: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is not tampering but worth saying
    # the chain-checked events (up to a break), so signatures are checked without a second parse
    journal_events: list[Event] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def summary(self) -> str:
        what = "sealed archive" if self.archived else "open release (not archived)"
        if self.ok:
            extra = f", {self.files} files match the manifest" if self.archived else ""
            return f"{self.release_id}: {what} OK — {self.events} events, chain intact{extra}, head {self.head[:12]}"
        listed = "; ".join(str(p) for p in self.problems[:20])
        more = f" (+{len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        return f"{self.release_id}: {what} FAILED — {listed}{more}"


def verify_release_dir(directory: Path, *, scan: bool = True) -> ArchiveReport:
    directory = Path(directory)
    report = ArchiveReport(directory.name, directory)
    add = report.problems.append
    journal = directory / F.JOURNAL
    if not journal.is_file() or journal.is_symlink():
        return _without_journal(report, journal)
    jr = verify_file(journal)
    report.events, report.head, report.sealed = jr.events, jr.head, jr.sealed
    report.journal_events = jr.parsed
    if not jr.ok:
        name = F.JOURNAL if jr.bad_seq is None else f"{F.JOURNAL}#seq {jr.bad_seq}"
        add(Problem(name, jr.problem or "broken"))
    if jr.torn_tail is not None:
        add(Problem(F.JOURNAL, f"torn tail of {len(jr.torn_tail)} bytes after seq {jr.events - 1}"))
    manifest_path = directory / F.MANIFEST
    report.archived = manifest_path.is_file() or jr.sealed
    if not report.archived:
        return report
    if not manifest_path.is_file():
        add(Problem(F.MANIFEST, "missing (the journal is sealed)"))
        return report
    raw = manifest_path.read_bytes()
    try:
        manifest = json.loads(raw)
        listed: dict[str, dict] = dict(manifest["files"])
        jmeta = manifest["journal"]
    except (ValueError, KeyError, TypeError) as exc:
        add(Problem(F.MANIFEST, f"unreadable ({type(exc).__name__})"))
        return report
    sealed_ev = jr.parsed[-1] if jr.sealed else None
    if sealed_ev is None:
        if jr.ok:
            add(
                Problem(
                    F.JOURNAL,
                    "has no sealed event, but a manifest exists (the sealed event was removed, or archiving was cut off)",
                )
            )
    elif sealed_ev.payload.get("manifest_sha256") != F.sha256_bytes(raw):
        add(Problem(F.MANIFEST, "changed (its sha256 differs from the one in the sealed event)"))
    if jr.ok and sealed_ev is not None:
        if jmeta.get("head") != sealed_ev.prev:
            add(
                Problem(
                    F.JOURNAL,
                    f"head before sealing is {sealed_ev.prev[:12]}, manifest says {str(jmeta.get('head'))[:12]}",
                )
            )
        if jmeta.get("events") != jr.events - 1:
            add(
                Problem(
                    F.JOURNAL,
                    f"{jr.events - 1} events before sealing, manifest says {jmeta.get('events')}",
                )
            )
        pre = len(jr.data) - len(sealed_ev.line())  # the bytes already read, not a second read
        if F.sha256_bytes(jr.data[:pre]) != jmeta.get("sha256"):
            add(Problem(F.JOURNAL, "bytes before the sealed event differ from the manifest"))
    links = set(F.symlinks(directory))
    for name in sorted(links):
        add(Problem(name, "is a symlink (refused: an archive holds its files' bytes itself)"))
    present = [
        n
        for n in F.archive_files(directory, include_staging=True)
        if n not in F.NOT_IN_MANIFEST and n not in links
    ]
    for name in sorted(set(listed) - set(present)):
        add(Problem(name, "missing"))
    for name in sorted(set(present) - set(listed)):
        add(Problem(name, "added (not in the manifest)"))
    resaved: dict[str, dict] = {}
    for name in sorted(set(listed) & set(present)):
        path = directory / name
        size = path.stat().st_size
        report.bytes += size
        entry = listed[name]
        if size != entry.get("bytes") or F.sha256_file(path) != entry.get("sha256"):
            if F.resaved(path, entry):  # a notebook an editor saved again: same cells and outputs
                resaved[name] = entry
            else:
                add(Problem(name, "changed (sha256 differs from the manifest)"))
    report.notes = F.jupyter_notes(directory, resaved)  # hashes only the re-saved ones again
    report.files = len(listed)
    report.bytes += len(jr.data)
    if scan:
        from .seal import scan_text  # the archiving code: loaded only for archives

        for name in [F.JOURNAL, *sorted(set(listed) & set(present))]:
            raw = jr.data if name == F.JOURNAL else (directory / name).read_bytes()
            text = raw.decode("utf-8", errors="replace")
            for hit in scan_text(name, text):
                add(Problem(name, f"contains a {hit['kind']} ({hit['what']})"))
    return report


def _without_journal(report: ArchiveReport, journal: Path) -> ArchiveReport:
    """A release directory whose journal is gone (or is a link) was tampered with: the journal
    is the record, so its absence is a failure naming it, never "no release" (issue 22)."""
    report.archived = (report.directory / F.MANIFEST).exists()
    what = (
        "is a symlink (refused)"
        if journal.is_symlink()
        else "missing (deleted: the record is gone)"
    )
    report.problems.append(Problem(F.JOURNAL, what))
    return report


def is_release_dir(entry: Path) -> bool:
    """A journal, or the manifest of a sealed archive (whose journal may have been deleted)."""
    return entry.is_dir() and any(
        (entry / n).exists() or (entry / n).is_symlink() for n in (F.JOURNAL, F.MANIFEST)
    )


def release_dirs(releases_dir: Path) -> Iterator[Path]:
    if not releases_dir.is_dir():
        return
    for entry in sorted(releases_dir.iterdir()):
        if is_release_dir(entry):
            yield entry


def verify_all(releases_dir: Path, *, scan: bool = True) -> list[ArchiveReport]:
    return [_without_events(verify_release_dir(d, scan=scan)) for d in release_dirs(releases_dir)]


def _without_events(report: ArchiveReport) -> ArchiveReport:
    """A thousand reports kept in a list must not keep a thousand parsed journals alive."""
    report.journal_events = []
    return report
