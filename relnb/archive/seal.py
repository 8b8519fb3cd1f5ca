"""`relnb archive`: export the record beside the journal, scan it, write the manifest, seal.

Order matters for crash safety and tamper evidence:
1. take the journal's writer lock (a notebook still writing makes this fail with JournalLocked);
2. render every export into a staging directory from the journal alone;
3. scan every file, journal included, for registered secrets and common token shapes; any hit
   aborts before anything is placed (the release stays open, the hits are named);
4. write manifest.json (sha256 + size of every file, the journal's sha256, head hash and event
   count, relnb version, who archived and when) and move the files into place;
5. append `sealed` carrying the manifest's sha256, chaining the manifest into the journal:
   editing any file breaks the manifest, editing the manifest breaks the sealed event's hash
   link, editing the sealed event breaks the chain.
A crash between 4 and 5 leaves an unsealed release with exports; archiving again replaces them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RelnbError, UsageError
from ..identity import whoami
from ..journal import JournalWriter, utcnow
from ..notebook_cache import refresh_header_cache
from ..redact import REDACTOR, find_token_shapes
from ..state import fold
from . import files as F
from .incidents import incidents_from_events
from .index import build_summary, index_row, update_index
from .record import ArchiveView, jsonl, sample_rows
from .render import render_html, render_ipynb

if TYPE_CHECKING:
    from ..config import Config
    from ..release import Release


class ArchiveBlocked(RelnbError):
    """Secrets or token shapes were found in files that would be sealed."""

    exit_code = 1

    def __init__(self, message: str, findings: list[dict[str, Any]]) -> None:
        self.findings = findings
        super().__init__(
            message, fix="remove the secret at its source and archive again; nothing was sealed"
        )


class AlreadySealed(UsageError):
    """The release was archived before; the record is closed."""


class NotFinished(UsageError):
    """Sealing closes the journal for good, so only a finished release is sealed: every gate
    settled, a completed rollback, or a person's abandonment. Anything else can still be fixed
    and run again, which a sealed release never can."""

    exit_code = 1


def _refuse_unfinished(state: Any) -> None:
    blockers = state.seal_blockers()
    if not blockers:
        return
    listed = ", ".join(f"{g} {s}" for g, s in blockers[:8]) + (" …" if len(blockers) > 8 else "")
    raise NotFinished(
        f"release {state.release_id} is not finished ({state.verdict()}: {listed}); not sealed",
        fix=f"settle those gates (fix and run again, waive with an approver and reason), roll back, "
        f"or give it up: relnb abandon {state.release_id} --reason '...'",
    )


@dataclass
class ArchiveResult:
    release_id: str
    directory: Path
    manifest: dict[str, Any]
    files: list[str] = field(default_factory=list)
    bytes: int = 0

    def __repr__(self) -> str:
        return (
            f"archived release {self.release_id} into {self.directory}: {len(self.files)} files, "
            f"{self.bytes} bytes, journal head {self.manifest['journal']['head'][:12]} — sealed"
        )


def scan_text(name: str, text: str) -> list[dict[str, Any]]:
    """Registered secrets (by name) and well-known token shapes found in one file's text."""
    hits = [{"file": name, "kind": "secret", "what": s} for s in REDACTOR.contains_secret(text)]
    hits += [{"file": name, "kind": "token-shape", "what": k} for k in find_token_shapes(text)]
    return hits


def scan_files(directory: Path, names: list[str]) -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = []
    for name in names:
        text = (directory / name).read_bytes().decode("utf-8", errors="replace")
        findings += scan_text(name, text)
    return findings


def _notebook_source(
    release_dir: Path, created: dict[str, Any], config: Config
) -> tuple[str, str, str]:
    """(archive file name, text, origin) of the notebook the release ran."""
    from ..template import PLACEHOLDER, template_path

    rel = created.get("notebook")
    if rel:
        path = config.root / rel
        if path.is_file():
            suffix = ".ipynb" if path.suffix == ".ipynb" else ".py"
            return F.NOTEBOOK_STEM + suffix, path.read_text(encoding="utf-8"), f"notebook {rel}"
    # Created through the API without a notebook: archive the template the notebook would be.
    tpl = template_path(config.root, "marimo")
    text = tpl.read_text(encoding="utf-8").replace(PLACEHOLDER, str(created.get("release_id")))
    return (
        F.NOTEBOOK_STEM + ".py",
        text,
        f"template {tpl.name} (no notebook was recorded at creation)",
    )


def _commits(view: ArchiveView, config: Config, changelog_evidence: dict[str, Any]) -> list[Any]:
    from .changelog import Commit

    times = changelog_evidence.get("commit_times") or []
    return [Commit(sha=s, subject="", committed_at=t) for s, t in times]


def _changelog_section(view: ArchiveView, config: Config) -> tuple[str | None, dict[str, Any], str]:
    """F3's recorded section if F3 ran; else generated now from git (not written to the repo)."""
    res = view.state.result("F3")
    if res.evidence.get("section"):
        return res.evidence["section"], res.evidence, "F3 evidence"
    verdict = view.state.verdict()
    if verdict != "passed":  # a changelog entry claims the version shipped
        return None, {}, f"none: the release ended {verdict}, it did not ship"
    from .changelog import find_previous_tag, gather, render_section, section_evidence

    repo = config.repo_path()
    sha = view.info.get("git_sha")
    if not sha:
        return None, {}, "none: no git SHA recorded"
    prev = find_previous_tag(repo, config.project, str(view.info.get("version")), sha)
    try:
        inputs = gather(view.state, view.events, repo, prev, sha)
    except ValueError as exc:
        return None, {}, f"none: {exc}"
    section = render_section(inputs)
    return section, section_evidence(inputs, section), "generated at archive time (F3 did not run)"


def archive(release: Release, *, confirmed: Any = True) -> ArchiveResult | str:
    """The template's last cell: seal this release (needs the person's explicit go)."""
    if release.context.recorded is not None:
        return "replay: the archived run's archive cell is not executed again"
    from ..release import confirmation

    go = confirmation(confirmed, "F3", release)
    if not go and not release.context.confirmed("F") and "ARCHIVE" not in release.context.confirm:
        return "archive: waiting for confirmation (click the button, or `relnb archive <id>`)"
    try:
        return archive_release(release.id, config=release.config)
    except NotFinished as exc:  # the cell says why in one line; the release stays open to be finished
        return f"archive: {exc}"


def archive_release(
    release_id: str,
    *,
    config: Config | None = None,
    root: str | os.PathLike[str] | None = None,
) -> ArchiveResult:
    from ..config import load_config
    from ..junit import write_junit
    from ..release import find_root, release_dir

    config = config or load_config(start=find_root(root))
    directory = release_dir(config.root, release_id, config)
    if not (directory / F.JOURNAL).is_file():
        from ..errors import ReleaseNotFound

        raise ReleaseNotFound(
            f"no release {release_id!r} (looked for {directory / F.JOURNAL})",
            fix="see `relnb list`",
        )
    writer = JournalWriter.open(directory)
    opened_here = not writer._listeners  # a Release in this process (the notebook) subscribed to it
    try:
        if writer.sealed:
            raise AlreadySealed(
                f"release {release_id} is already sealed",
                fix=f"check it with `relnb verify {release_id}`",
            )
        _refuse_unfinished(fold(release_id, writer.events))
        _refuse_unsignable_seal(config)
        result = _archive(writer, directory, config, write_junit)
        refresh_header_cache(release_id, config=config)  # the live notebook opens saying "sealed"
        return result
    finally:
        # Close only a writer this call opened: the notebook's own release keeps its writer.
        if opened_here:
            writer.close()


def _archive(
    writer: JournalWriter, directory: Path, config: Config, write_junit: Any
) -> ArchiveResult:
    events = writer.events
    view = ArchiveView(directory, events=events, marks=True)
    state = fold(view.release_id, events)
    stage = directory / F.STAGING
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        nb_name, nb_text, nb_origin = _notebook_source(directory, state.created, config)
        section, cl_evidence, cl_origin = _changelog_section(view, config)
        who = whoami().to_dict()
        at = utcnow()
        out: dict[str, str | bytes] = {
            nb_name: nb_text,
            F.IPYNB: render_ipynb(view, section),
            F.SAMPLES: jsonl(sample_rows(events)),
            F.INCIDENTS: F.dump_json([i.to_dict() for i in incidents_from_events(events)]),
        }
        if section:
            out[F.CHANGELOG] = section
        if config.path is not None and config.path.is_file():
            out[f"{F.CONFIG_DIR}/{config.path.name}"] = config.path.read_bytes()
        signers = _allowed_signers_at_release(events, config)
        if signers is not None:
            out[F.ALLOWED_SIGNERS] = signers
        summary = build_summary(
            state,
            view.events,
            commits=_commits(view, config, cl_evidence),
            archived_by=who,
            archived_at=at,
        )
        out[F.SUMMARY] = F.dump_json(summary)
        meta = {
            "release": view.release_id,
            "version": state.created.get("version"),
            "environment": state.created.get("environment"),
            "git sha": state.created.get("git_sha"),
            "verdict": state.verdict(),
            "archived by": f"{who.get('name')} <{who.get('email')}>"
            if who.get("email")
            else who.get("name"),
            "archived at": at,
            "journal head": writer.head,
            "notebook": nb_origin,
        }
        out[F.HTML] = render_html(view, section, nb_text, nb_name, meta)
        for name, data in out.items():
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        write_junit(state, stage / F.JUNIT)
        names = F.archive_files(stage)
        # Existing extra files the release directory already holds (set-aside torn tails).
        carried = [
            n for n in F.archive_files(directory) if n not in F.NOT_IN_MANIFEST and n not in names
        ]
        findings = scan_files(stage, names) + scan_files(directory, [F.JOURNAL, *carried])
        if findings:
            listed = "; ".join(f"{f['file']}: {f['kind']} {f['what']}" for f in findings[:6])
            raise ArchiveBlocked(f"release {view.release_id} not sealed: {listed}", findings)
        journal_bytes = (directory / F.JOURNAL).read_bytes()
        manifest = {
            "format": F.FORMAT,
            "release_id": view.release_id,
            "relnb_version": _version(),
            "archived_by": who,
            "archived_at": at,
            "journal": {
                "file": F.JOURNAL,
                "head": writer.head,
                "events": len(events),
                "sha256": F.sha256_bytes(journal_bytes),
                "bytes": len(journal_bytes),
            },
            "notebook": {
                "file": nb_name,
                "origin": nb_origin,
                "template_sha256": state.created.get("template_sha256"),
            },
            "changelog": {"origin": cl_origin},
            "verdict": state.verdict(),
            "files": {
                n: F.manifest_entry(p)
                for n in [*names, *carried]
                for p in [(stage / n) if n in names else (directory / n)]
            },
        }
        manifest_text = F.dump_json(manifest)
        for name in names:
            dest = directory / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / name, dest)
        F.write_atomic(directory / F.MANIFEST, manifest_text)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    manifest_sha = F.sha256_bytes(manifest_text.encode("utf-8"))
    grant = _seal_approval(writer, config, manifest_sha)
    writer.append(
        "sealed",
        {
            "manifest_sha256": manifest_sha,
            "files": len(manifest["files"]),
            "verdict": manifest["verdict"],
            "archived_by": grant.identity if grant else who,
            "relnb_version": manifest["relnb_version"],
            **(grant.payload() if grant else {}),
        },
    )
    update_index(config.releases_dir(), index_row(summary, manifest["journal"]["head"]))
    total = (
        sum(f["bytes"] for f in manifest["files"].values())
        + len(journal_bytes)
        + len(manifest_text)
    )
    return ArchiveResult(view.release_id, directory, manifest, sorted(manifest["files"]), total)


def _allowed_signers_at_release(events: list[Any], config: Config) -> str | None:
    """The allowed_signers file at the release SHA, when the release carries signatures.

    Kept in the archive (and so under the manifest and the signed seal), it lets `relnb verify`
    check the signatures where the project's repository is not at hand, e.g. an archive
    committed elsewhere as a record.
    """
    from ..signing import SigningSettings, allowed_signers_at
    from ..signing.statement import release_binding

    signing = config.data["signing"]
    signed = any(isinstance(e.payload.get("approval"), dict) for e in events)
    if not (signing["enabled"] or signing["required"] or signed):
        return None
    _, sha = release_binding(events)
    if not sha:
        return None
    path = SigningSettings.from_mapping(signing).allowed_signers
    try:
        return allowed_signers_at(config.repo_path(), sha, path)
    except RelnbError:
        return None


def _refuse_unsignable_seal(config: Config) -> None:
    """With [signing] enabled, `relnb verify` accepts only a signed seal (a seal without one
    cannot be told from an archive whose signatures were stripped): say so before anything is
    written, not with an archive that then fails verification."""
    from ..signing.keys import resolve_key

    signing = config.data["signing"]
    on = signing["enabled"] or signing["required"]
    if on and resolve_key(None, signing.get("key"), repo=Path(config.repo_path())) is None:
        raise UsageError(
            "signing is on, and the seal must be signed: no signing key is set",
            key="signing.key",
            fix="set RELNB_SIGNING_KEY (or [signing] key) to your SSH key, then archive again",
        )


def _seal_approval(writer: JournalWriter, config: Any, manifest_sha: str) -> Any:
    """With [signing] on, the seal is signed over the manifest hash and the journal head."""
    signing = config.data["signing"]
    if not (signing["enabled"] or signing["required"]):
        return None
    from ..signing import SigningSettings, approve

    return approve(
        writer,
        kind="seal",
        gate=None,
        text=manifest_sha,
        settings=SigningSettings.from_mapping(signing),
        repo=config.repo_path(),
        project_release_lead=config.project.get("release_lead"),
        email=whoami().email,
    )


def _version() -> str:
    from .._version import __version__

    return __version__
