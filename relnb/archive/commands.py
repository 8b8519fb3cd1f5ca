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

from ..errors import ReleaseNotFound, UsageError
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


def cmd_verify_archive(args: argparse.Namespace) -> int:
    from .verify import verify_all, verify_release_dir

    config = _config(args)
    config.register_available_secrets()
    trust = _trust(args, config)
    if args.all:
        reports = verify_all(config.releases_dir())
    elif args.target:
        reports = [verify_release_dir(_release_dir(args.target, config))]
    else:
        raise UsageError("relnb verify needs a release id, a path, or --all")
    bad = 0
    for rep in reports:
        if not rep.ok or not getattr(args, "quiet", False):
            _out(rep.summary)
        bad += not rep.ok
        signatures = _verify_signatures(rep, trust)
        if signatures is not None:
            for line in signatures.lines():
                _out(line)
            _out(signatures.summary)
            if not signatures.ok:
                bad += rep.ok
    if args.all:
        total = sum(r.bytes for r in reports)
        _out(f"{len(reports)} releases checked ({total} bytes), {bad} with problems")
    if not trust.required:
        _out(INTEGRITY_ONLY)
    return 1 if bad else 0


def _verify_signatures(rep: Any, trust: Trust) -> Any:
    """Approval signatures of one release, judged by the project's policy (`trust`) and never
    by less than it: the archive's own (manifest-covered, re-hashable) policy can only add."""
    from ..journal import JOURNAL_NAME, read_events
    from ..signing import SigningSettings, verify_release_signatures

    directory = Path(rep.directory)
    path = directory / JOURNAL_NAME
    if not path.is_file():
        return None
    events = read_events(path, strict=False)
    archived = directory / F.ALLOWED_SIGNERS
    archived_cfg = _archived_config(directory) if rep.archived and rep.ok else None
    own = archived_cfg.data["signing"] if archived_cfg is not None else None
    signed = any(isinstance(e.payload.get("approval"), dict) for e in events)
    project_on = _signing_on(trust.signing)
    if not (project_on or (own is not None and _signing_on(own)) or signed) or not events:
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
    if trust.required:
        report.general.extend(
            f"the project requires signed approvals; seq {c.seq} {c.kind}"
            + (f" {c.gate}" if c.gate else "")
            + " is unsigned"
            for c in report.unsigned
        )
    return report


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


def list_rows(config: Any) -> list[dict[str, Any]]:
    """Archived releases from the index, plus open releases (folded; there are few of those)."""
    from ..release import read_state
    from .index import read_index

    rdir = config.releases_dir()
    rows = read_index(rdir)
    out = list(rows.values())
    if rdir.is_dir():
        for entry in sorted(rdir.iterdir()):
            if entry.name in rows or not (entry / "journal.jsonl").is_file():
                continue
            try:
                st = read_state(entry.name, config=config)
            except Exception as exc:  # a broken journal is listed, not fatal for the listing
                out.append(
                    {"release_id": entry.name, "verdict": f"unreadable: {exc}", "open": True}
                )
                continue
            c = st.created
            out.append(
                {
                    "release_id": entry.name,
                    "version": c.get("version"),
                    "environment": c.get("environment"),
                    "verdict": st.verdict(),
                    "incidents": st.incidents,
                    "created_at": st.first_ts,
                    "open": True,
                    "sealed": bool(st.sealed),
                }
            )
    return sorted(out, key=lambda r: (r.get("created_at") or "", r["release_id"]))


def cmd_list_index(args: argparse.Namespace) -> int:
    config = _config(args)
    rows = list_rows(config)
    if getattr(args, "json", False):
        _out(json.dumps(rows, indent=2, default=str))
        return 0
    lines = []
    for r in rows:
        state = "open" if r.get("open") else "sealed"
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
    s.add_argument("release")
    s.add_argument("--timeline", action="store_true", help="also print the event timeline")
    s.set_defaults(func=cmd_show)


def add_verify_args(v: argparse.ArgumentParser) -> None:
    v.add_argument("target", nargs="?", help="release id, release directory or journal path")
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
