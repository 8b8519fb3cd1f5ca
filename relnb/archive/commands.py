"""CLI commands of the archive: archive, verify (chain + manifest), replay, list (index), show.

`register(subparsers)` adds `archive`, `replay` and `show`; the improved `verify` and `list` are
`cmd_verify_archive` and `cmd_list_index`, which relnb/cli.py points its existing parsers at
(argparse cannot register a sub-command name twice). Exit codes follow relnb/cli.py: 0 fine,
1 verification or replay failed, 3 usage errors (raised as RelnbError subclasses).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ReleaseNotFound, RelnbError, UsageError
from ..eventtext import terminal_text
from ..redact import scrub
from . import files as F


def _out(text: str) -> None:
    print(scrub(text), flush=True)


def _config(args: argparse.Namespace) -> Any:
    from ..config import load_config
    from ..release import find_root

    cfg = getattr(args, "config", None)
    return load_config(cfg) if cfg else load_config(start=find_root())


def _release_dir(target: str, config: Any) -> Path:
    from .verify import is_release_dir

    p = Path(target)
    if is_release_dir(p):  # a sealed archive whose journal was deleted is verified (and fails)
        return p
    if p.is_file() and p.name == "journal.jsonl":
        return p.parent
    d = config.releases_dir() / target
    if is_release_dir(d):
        return d
    raise ReleaseNotFound(
        f"no release {target!r} (looked in {config.releases_dir()})",
        fix="pass a release id or a release directory; see `relnb list`",
    )


def cmd_archive(args: argparse.Namespace) -> int:
    from .seal import archive_release

    config = _config(args)
    config.register_available_secrets()
    result = archive_release(args.release, config=config)
    _out(repr(result))
    return 0


INTEGRITY_ONLY = (
    "integrity only, not authenticity: anyone who can write the files can re-hash them "
    "(this project does not require signed approvals)"
)


@dataclass
class Trust:
    """What `relnb verify` judges signatures by: the project's `[signing]` policy and its
    allowed_signers (or the ones `--trust` names), read from outside the archive. An archive's
    own config and allowed_signers copies are covered only by hashes anyone can recompute, so
    they never lower what the project demands (issue 22)."""

    config: Any
    signing: dict[str, Any]
    allowed_text: str | None
    name: str
    explicit_signers: bool = False

    @property
    def required(self) -> bool:
        return bool(self.signing.get("required"))


def _signing_label(signing: Any) -> str:
    if signing.get("required"):
        return "required"
    return "enabled" if signing.get("enabled") else "signing off"


def _signing_on(signing: Any) -> bool:
    return bool(signing.get("enabled") or signing.get("required"))


def _trust(args: argparse.Namespace, config: Any) -> Trust:
    from ..config import load_config
    from ..signing import SigningSettings

    given = getattr(args, "trust", None)
    if given:
        path = Path(given)
        if not path.is_file():
            raise UsageError(
                f"--trust {given}: no such file",
                fix="pass a relnb.toml (its [signing] and allowed_signers) or an allowed_signers file",
            )
        if path.suffix != ".toml":  # an allowed_signers file: signatures by its keys are required
            signing = {**config.data["signing"], "enabled": True, "required": True}
            return Trust(config, signing, path.read_text(encoding="utf-8"), str(path), True)
        config = load_config(path)
    signing = dict(config.data["signing"])
    signers = config.repo_path() / SigningSettings.from_mapping(signing).allowed_signers
    text = signers.read_text(encoding="utf-8") if signers.is_file() else None
    return Trust(config, signing, text, f"the project's {signers}")


def open_releases(config: Any) -> list[str]:
    """Releases under releases/ that are not sealed (archived or abandoned), oldest id first."""
    rdir = config.releases_dir()
    if not rdir.is_dir():
        return []
    from ..release import read_state
    from .index import read_index

    archived = read_index(rdir)
    out = []
    for entry in sorted(rdir.iterdir()):
        if entry.name in archived or not (entry / "journal.jsonl").is_file():
            continue
        try:
            sealed = read_state(entry.name, config=config).sealed
        except RelnbError:  # unreadable: still a release one may mean (its command says why)
            sealed = False
        if not sealed:
            out.append(entry.name)
    return out


def only_open_release(config: Any, command: str) -> str:
    """The release a command means when none is named: the only open one, or a usage error
    naming the ids to choose from."""
    found = open_releases(config)
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(
            f"no open release in {config.releases_dir()}",
            fix=f"name one: relnb {command} <id> (relnb list shows them all), or start one with relnb new <version>",
        )
    raise UsageError(
        f"{len(found)} releases are open: {', '.join(found)}",
        fix=f"name one: relnb {command} <id>, e.g. relnb {command} {found[-1]}",
    )


def cmd_verify_archive(args: argparse.Namespace) -> int:
    from .verify import release_dirs, verify_release_dir

    config = _config(args)
    config.register_available_secrets()
    trust = _trust(args, config)
    if args.all:
        dirs = list(release_dirs(config.releases_dir()))
    else:  # none named: the only open release (`relnb verify` while working on one)
        dirs = [_release_dir(args.target or only_open_release(config, "verify"), config)]
    bad = 0
    reports = []
    for directory in dirs:  # one release at a time: its parsed journal is dropped after it
        rep = verify_release_dir(directory)
        reports.append(rep)
        if not rep.ok or not getattr(args, "quiet", False):
            _out(rep.summary)
            for note in rep.notes:
                _out(f"  note: {note}")
        bad += not rep.ok
        signatures = _verify_signatures(rep, trust)
        if signatures is not None:
            for line in signatures.lines():
                _out(line)
            _out(signatures.summary)
            if not signatures.ok:
                bad += rep.ok
        rep.journal_events = []
    if args.all:
        total = sum(r.bytes for r in reports)
        _out(f"{len(reports)} releases checked ({total} bytes), {bad} with problems")
    if not trust.required:
        _out(INTEGRITY_ONLY)
    return 1 if bad else 0


def _verify_signatures(rep: Any, trust: Trust) -> Any:
    """Approval signatures of one release, judged by the project's policy (`trust`) and never
    by less than it: the archive's own (manifest-covered, re-hashable) policy can only add."""
    from ..signing import SigningSettings, verify_release_signatures

    directory = Path(rep.directory)
    events = rep.journal_events  # parsed once, by the chain check (issue 23)
    archived = directory / F.ALLOWED_SIGNERS
    archived_cfg = _archived_config(directory) if rep.archived and rep.ok else None
    own = archived_cfg.data["signing"] if archived_cfg is not None else None
    project_on = _signing_on(trust.signing)
    if not events or not (
        project_on
        or (own is not None and _signing_on(own))
        or any(isinstance(e.payload.get("approval"), dict) for e in events)
    ):
        return None
    # the project's rules when it signs; else the archive's, as it was released under them
    config = trust.config if project_on or archived_cfg is None else archived_cfg
    rules = trust.signing if project_on or own is None else own
    settings = SigningSettings.from_mapping(rules)
    report = verify_release_signatures(
        events,
        trust.config.repo_path(),
        allowed_signers_path=settings.allowed_signers,
        policy=settings.policy(
            project_release_lead=config.project.get("release_lead"), created=events[0].payload
        ),
        require_signed=trust.required or bool(own and own.get("required")),
        archived_allowed_signers=archived.read_text(encoding="utf-8")
        if archived.is_file() and rep.ok
        else None,
        trusted_allowed_signers=trust.allowed_text,
        trusted_name=trust.name,
        trust_always=trust.explicit_signers,
        trust_required=trust.required,
    )
    if project_on and own is not None and not _signing_on(own):
        report.general.append(
            f"the archive's policy ({_signing_label(own)}) is weaker than the project's "
            f"({_signing_label(trust.signing)})"
        )
    if (
        not trust.required
        and rep.archived
        and (project_on or (own is not None and _signing_on(own)))
    ):
        report.general.extend(_expected_signatures(report, trust.signing if project_on else own))
    if trust.required:
        report.general.extend(
            f"the project requires signed approvals; seq {c.seq} {c.kind}"
            + (f" {c.gate}" if c.gate else "")
            + " is unsigned"
            for c in report.unsigned
        )
    return report


def _expected_signatures(report: Any, signing: Any) -> list[str]:
    """Where signing is enabled but not required, unsigned approvals are allowed (marked
    UNSIGNED), so an archive whose signatures were stripped and whose chain was re-hashed would
    look like an honest unsigned one. What tells them apart is the seal: with signing on,
    `relnb archive` signs it over the journal head, so a valid seal signature vouches for every
    event before it, the unsigned approvals included. Without one nothing does, and the
    archive fails, naming the signatures the policy expected (issue 22)."""
    seal = next((c for c in report.checks if c.kind == "seal"), None)
    if seal is not None and seal.signed:
        return []  # a seal signature that does not verify is already a failure of its own
    where = f"seq {seal.seq} seal" if seal is not None else "the seal"
    missing = [c for c in report.unsigned if c is not seal]
    listed = ", ".join(
        f"seq {c.seq} {c.kind}" + (f" {c.gate}" if c.gate else "") for c in missing[:10]
    ) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
    return [
        f"signing is {_signing_label(signing)} but {where} is unsigned: nothing vouches for this "
        f"archive's approvals, whose signatures may have been stripped"
        + (f" (unsigned: {listed})" if missing else "")
        + "; with signing on, `relnb archive` signs the seal"
    ]


def _archived_config(directory: Path) -> Any:
    from ..config import load_config
    from ..errors import RelnbError

    copies = sorted((directory / F.CONFIG_DIR).glob("*.toml"))
    try:
        return load_config(copies[0]) if copies else None
    except RelnbError:  # written by an older relnb: fall back to the project's rules
        return None


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay_archive
    from .verify import release_dirs

    config = _config(args)
    if args.all:
        dirs = [d for d in release_dirs(config.releases_dir()) if (d / "manifest.json").is_file()]
    elif args.release:
        dirs = [_release_dir(args.release, config)]
    else:
        raise UsageError("relnb replay needs a release id or --all")
    bad = 0
    for d in dirs:
        rep = replay_archive(d, timeout_s=float(args.timeout))
        _out(rep.summary)
        if not rep.identical:
            bad += 1
            if rep.returncode != 0:
                _out(rep.output)
    if args.all:
        _out(f"{len(dirs)} archives replayed, {bad} differ")
    return 1 if bad else 0


def list_rows(config: Any, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """Every release under releases/: sealed ones from the index, open ones folded (few).

    Whether a release is sealed comes from its journal's last event, read from the end of the
    file, never from the index alone. The index is a cache this keeps true: a missing or damaged
    one, an archive it lacks, a row whose archive moved on (another head or verdict) or is gone
    are re-derived from the archives and written back, with one line in `notes` saying why."""
    from ..release import read_state
    from .index import archive_row, read_index_checked, refresh_index, row_is_current, sealed_tail

    rdir = config.releases_dir()
    rows, damage = read_index_checked(rdir)
    out: list[dict[str, Any]] = []
    current: dict[str, dict[str, Any]] = {}
    stale = {rid for rid in rows if not (rdir / rid / F.JOURNAL).is_file()}
    entries = sorted(rdir.iterdir()) if rdir.is_dir() else []
    for entry in entries:
        journal = entry / F.JOURNAL
        if not journal.is_file() and not (entry / F.MANIFEST).is_file():
            continue
        sealed = sealed_tail(journal) if journal.is_file() else None
        if sealed is not None:
            row = rows.get(entry.name)
            if row is None or not row_is_current(row, sealed):
                row = current[entry.name] = archive_row(entry, sealed)
            out.append({**row, "status": "sealed"})
            continue
        if entry.name in rows:
            stale.add(entry.name)  # indexed as sealed, but its journal no longer ends sealed
        if (entry / F.MANIFEST).is_file():  # an archive whose seal (or journal) is gone
            out.append(
                {
                    **rows.get(entry.name, {}),
                    "release_id": entry.name,
                    "verdict": "damaged",
                    "status": "damaged",
                    "problem": "an archive whose journal is missing or does not end with its "
                    f"sealed event: run `relnb verify {entry.name}`",
                }
            )
            continue
        out.append(_open_row(entry, read_state, config))
    # a project with open releases only has no index to miss: nothing is rebuilt or noted
    rebuild = current or stale or (damage is not None and damage != "missing")
    if rdir.is_dir() and rebuild:
        refresh_index(rdir, current, stale)
        if notes is not None:
            notes.append(_index_note(rdir, damage, current, stale, rows))
    return sorted(out, key=lambda r: (r.get("created_at") or "", r["release_id"]))


def _open_row(entry: Path, read_state: Any, config: Any) -> dict[str, Any]:
    try:
        st = read_state(entry.name, config=config)
    except Exception as exc:  # a broken journal is listed, not fatal for the listing
        return {
            "release_id": entry.name,
            "verdict": f"unreadable: {exc}",
            "open": True,
            "status": "open",
        }
    c = st.created
    return {
        "release_id": entry.name,
        "version": c.get("version"),
        "environment": c.get("environment"),
        "verdict": st.verdict(),
        "incidents": st.incidents,
        "created_at": st.first_ts,
        "open": True,
        "status": "open",
        "sealed": bool(st.sealed),
    }


def _index_note(
    rdir: Path,
    damage: str | None,
    current: dict[str, Any],
    stale: set[str],
    rows: dict[str, Any],
) -> str:
    path = rdir / F.INDEX
    if damage:
        why = f"{path} was {damage}"
    else:
        added = [rid for rid in current if rid not in rows]
        parts = [f"{len(added)} archive(s) not in it"] if added else []
        if len(current) > len(added):
            parts.append(f"{len(current) - len(added)} row(s) whose archive changed")
        if stale:
            parts.append(f"{len(stale)} row(s) without a sealed archive")
        why = f"{path} was stale ({', '.join(parts)})"
    return f"{why}: rebuilt from the archives"


def cmd_list_index(args: argparse.Namespace) -> int:
    import sys

    config = _config(args)
    notes: list[str] = []
    rows = list_rows(config, notes)
    for note in notes:  # on stderr: `--json` keeps stdout a document
        print(f"relnb: note: {scrub(note)}", file=sys.stderr, flush=True)
    if getattr(args, "json", False):
        _out(json.dumps(rows, indent=2, default=str))
        return 0
    lines = []
    for r in rows:
        state = r.get("status") or ("open" if r.get("open") else "sealed")
        lines.append(
            f"{r['release_id']:<16} {r.get('version', '?')!s:<10} {r.get('environment', '?')!s:<11} "
            f"{r.get('verdict')!s:<8} {len(r.get('incidents') or []):>2} incidents  "
            f"{(r.get('created_at') or '')[:19]}  {state}"
        )
    _out("\n".join(lines) if lines else f"no releases in {config.releases_dir()}")
    return 0


def show_text(summary: dict[str, Any], changelog: str | None, timeline: str | None) -> str:
    from ..gates import GATES

    out = [
        f"release {summary['release_id']}  version {summary.get('version')}  environment {summary.get('environment')}",
        f"git {summary.get('git_sha')}  verdict {summary.get('verdict')}  "
        f"archived by {(summary.get('archived_by') or {}).get('name')} at {summary.get('archived_at')}",
        "",
        "gates:",
    ]
    summaries = summary.get("gate_summaries") or {}
    for g in GATES:
        status = summary.get("gates", {}).get(g.id, "?")
        fails = summary.get("gate_failures", {}).get(g.id)
        note = f"  ({fails} failed attempt(s))" if fails else ""
        out.append(f"  {g.id:<3} {status.upper():<12} {summaries.get(g.id, '')}{note}")
    out += ["", "incidents:"]
    for i in summary.get("incidents") or []:
        out.append(
            f"  #{i['seq']} [{i['severity']}] {i['title']} ({i.get('started_at') or '?'} → {i.get('ended_at') or 'open'}) test: {i.get('test') or '-'}"
        )
    if not summary.get("incidents"):
        out.append("  none")
    if "approvals" in summary:  # summaries archived before approvals were listed lack the key
        out += ["", "approvals:"]
        out += [f"  #{a['seq']:<4} {a['text']}" for a in summary["approvals"]] or ["  none"]
    if timeline:
        out += ["", "timeline:", *("  " + ln for ln in timeline.splitlines())]
    out += ["", "changelog:", changelog.rstrip() if changelog else "  (none)"]
    # incidents, sign-offs, notes and commit subjects are outside text: no escape sequence in
    # them may reach the terminal (issue 22 item 3)
    return terminal_text("\n".join(out))


def cmd_show(args: argparse.Namespace) -> int:
    from .index import load_summary
    from .record import ArchiveView

    config = _config(args)
    rdir = config.releases_dir()
    args.release = args.release or only_open_release(config, "show")
    d = rdir / args.release
    if (d / "summary.json").is_file():
        summary = load_summary(rdir, args.release)
        view = ArchiveView(d) if args.timeline else None
    else:  # an open release: fold its journal
        from .index import build_summary

        view = ArchiveView(_release_dir(args.release, config))
        summary = build_summary(view.state, view.events)
    cl = d / "CHANGELOG-section.md"
    text = show_text(
        summary,
        cl.read_text(encoding="utf-8") if cl.is_file() else None,
        repr(view.timeline()) if view is not None and args.timeline else None,
    )
    _out(text)
    return 0


def register(sub: Any) -> None:
    """Add `archive`, `replay` and `show` to relnb's sub-command parsers."""
    a = sub.add_parser("archive", help="seal a release: exports, manifest, sealed event")
    a.add_argument("release", help="release id")
    a.set_defaults(func=cmd_archive)

    r = sub.add_parser("replay", help="re-execute an archived notebook offline from its journal")
    r.add_argument("release", nargs="?", help="release id or archive directory")
    r.add_argument("--all", action="store_true", help="every sealed archive under releases/")
    r.add_argument("--timeout", default="600", help="seconds per replay (default 600)")
    r.set_defaults(func=cmd_replay)

    s = sub.add_parser(
        "show", help="gate table, incidents, changelog (and --timeline) of a release"
    )
    s.add_argument("release", nargs="?", help="release id (default: the only open release)")
    s.add_argument("--timeline", action="store_true", help="also print the event timeline")
    s.set_defaults(func=cmd_show)


def add_verify_args(v: argparse.ArgumentParser) -> None:
    v.add_argument(
        "target", nargs="?", help="release id, release directory or journal path (default: the only open release)"
    )
    v.add_argument("--all", action="store_true", help="every release under releases/")
    v.add_argument(
        "--quiet", action="store_true", help="print only releases with problems and the total"
    )
    v.add_argument(
        "--trust",
        metavar="FILE",
        help="judge signatures by this relnb.toml's [signing] and allowed_signers, or by this "
        "allowed_signers file (signatures then required); default: the project's own",
    )
    v.set_defaults(func=cmd_verify_archive)


def add_list_args(ls: argparse.ArgumentParser) -> None:
    ls.add_argument("--json", action="store_true", help="rows as JSON")
    ls.set_defaults(func=cmd_list_index)
