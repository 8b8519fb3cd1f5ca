"""CLI commands of the archive: archive, verify (chain + manifest), replay, list (index), show.

`register(subparsers)` adds `archive`, `replay` and `show`; the improved `verify` and `list` are
`cmd_verify_archive` and `cmd_list_index`, which relnb/cli.py points its existing parsers at
(argparse cannot register a sub-command name twice). Exit codes follow relnb/cli.py: 0 fine,
1 verification or replay failed, 3 usage errors (raised as RelnbError subclasses).
"""

from __future__ import annotations

import argparse
import json
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
    p = Path(target)
    if p.is_dir() and (p / "journal.jsonl").is_file():
        return p
    if p.is_file() and p.name == "journal.jsonl":
        return p.parent
    d = config.releases_dir() / target
    if (d / "journal.jsonl").is_file():
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


def cmd_verify_archive(args: argparse.Namespace) -> int:
    from .verify import verify_all, verify_release_dir

    config = _config(args)
    config.register_available_secrets()
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
        signatures = _verify_signatures(rep, config)
        if signatures is not None:
            for line in signatures.lines():
                _out(line)
            _out(signatures.summary)
            if not signatures.ok:
                bad += rep.ok
    if args.all:
        total = sum(r.bytes for r in reports)
        _out(f"{len(reports)} releases checked ({total} bytes), {bad} with problems")
    return 1 if bad else 0


def _verify_signatures(rep: Any, config: Any) -> Any:
    """Approval signatures of one release, when signing is on (or any approval is signed)."""
    from ..journal import JOURNAL_NAME, read_events
    from ..signing import SigningSettings, verify_release_signatures

    directory = Path(rep.directory)
    path = directory / JOURNAL_NAME
    if not path.is_file():
        return None
    events = read_events(path, strict=False)
    archived = directory / F.ALLOWED_SIGNERS
    # a sealed archive is judged by the rules it was released under (its own relnb.toml copy),
    # so it verifies the same from the project, a reviewer's checkout, or another repository
    if archived.is_file() and rep.ok:
        config = _archived_config(directory) or config
    signing = config.data["signing"]
    signed = any(isinstance(e.payload.get("approval"), dict) for e in events)
    if not (signing["enabled"] or signing["required"] or signed) or not events:
        return None
    settings = SigningSettings.from_mapping(signing)
    return verify_release_signatures(
        events,
        config.repo_path(),
        allowed_signers_path=settings.allowed_signers,
        policy=settings.policy(project_release_lead=config.project.get("release_lead"), created=events[0].payload),
        require_signed=settings.required,
        archived_allowed_signers=archived.read_text(encoding="utf-8") if archived.is_file() and rep.ok else None,
    )


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
    v.set_defaults(func=cmd_verify_archive)


def add_list_args(ls: argparse.ArgumentParser) -> None:
    ls.add_argument("--json", action="store_true", help="rows as JSON")
    ls.set_defaults(func=cmd_list_index)
