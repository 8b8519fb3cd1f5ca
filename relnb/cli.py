"""The `relnb` command: a thin skin over the public API.

Each command parses its options, calls the library, and maps `RelnbError` subclasses to exit
codes in one place (`main`). Exit codes: 0 all required gates passed/skipped/waived, 1 a gate
failed/inconclusive (or verification failed), 2 sign-offs or confirmations pending, 3 usage or
configuration errors. Everything printed passes through the redactor, and through `TerminalOut`:
fitted and coloured on a terminal, whole and plain in a pipe, quiet when the reader goes away.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

import relnb
from relnb import (
    JournalLocked,
    Release,
    RelnbError,
    UsageError,
    load_config,
    read_state,
    scrub,
)

EXIT_USAGE = 3

# Options whose value may look like an option (`--window -5m`): argparse would say "expected one
# argument" about a value the user did give, so they are joined as `--window=-5m` and the
# duration type names what is wrong with it.
_DURATION_OPTIONS = ("--window", "--timeout")


_INVALID_CHOICE = re.compile(r"invalid choice: '?([^'\s]*)'? \(choose from (.*)\)")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the command and the help to read (exit 2, mapped to 3);
    a mistyped command or choice (`relnb stauts`) names the one meant."""

    def error(self, message: str) -> NoReturn:
        m = _INVALID_CHOICE.search(message)
        if m:
            choices = [c.strip().strip("'\"") for c in m.group(2).split(",")]
            close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.6)
            if close:
                command = any(
                    isinstance(a, argparse._SubParsersAction) and close[0] in a.choices for a in self._actions
                )
                if command:
                    message = f"unknown command {m.group(1)!r}; did you mean `{self.prog} {close[0]}`?"
                else:
                    message = f"{message.split(': ', 1)[0]}: invalid choice {m.group(1)!r}; did you mean {close[0]!r}?"
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def duration_option(option: str) -> Callable[[str], str]:
    """An argparse type for a positive duration; the value is kept as written (it is journaled)."""

    def check(text: str) -> str:
        try:
            seconds = relnb.parse_duration(text, where=option)
        except RelnbError:
            seconds = None
        if seconds is None or not seconds > 0 or seconds == float("inf"):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a positive duration; write e.g. {option}=30s, {option}=2m, {option}=1h"
            )
        return text

    check.__name__ = "duration"  # argparse names the type in its messages
    return check


def _join_dashed_values(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        if args[i] in _DURATION_OPTIONS and i + 1 < len(args) and args[i + 1].startswith("-") and args[i + 1][1:2].isdigit():
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out


def _out(text: str) -> None:
    print(scrub(text), flush=True)


# -- output: fitted to a terminal, plain in a pipe --------------------------------------------------

# C0 and C1 controls but newline and tab, and the bidi overrides: the set relnb.eventtext's
# terminal_text removes from records (the CLI reaches the library through its public API only)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_GREEN, _RED, _YELLOW, _MAGENTA, _DIM = "32", "31", "33", "35", "2"
STATUS_COLOURS = {
    "PASS": _GREEN, "PASSED": _GREEN, "OK": _GREEN,
    "FAIL": _RED, "FAILED": _RED, "REFUSED": _RED,
    "INCONCLUSIVE": _YELLOW, "INTERRUPTED": _YELLOW,
    "PENDING": _DIM, "SKIP": _DIM, "SKIPPED": _DIM,
    "WAIVED": _MAGENTA,
}  # fmt: skip
_STATUS_WORD = re.compile(r"\b(" + "|".join(sorted(STATUS_COLOURS, key=len, reverse=True)) + r")\b")
_VERDICT = re.compile(r"^(verdict: )(\w[\w ]*?)( \(exit \d+\))?$")
# where a line's text column starts: after a gap of two or more spaces that follows a word
_COLUMN_GAP = re.compile(r"\S( {2,})")
MIN_WIDTH = 20


def _sgr(code: str, text: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def colour_wanted(stream: Any) -> bool:
    """Colour only for a person at a terminal: never in a pipe, a file or CI's log capture, and
    never when the user set NO_COLOR (https://no-color.org) or the terminal is `dumb`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return _is_tty(stream)


def hanging_indent(line: str, width: int) -> int:
    """Where continuation lines start: under the line's text column (after its last gap of two
    or more spaces in the first half, as in `B7   FAILED       dlq grew`), else two columns in
    from its own indentation."""
    column = 0
    for m in _COLUMN_GAP.finditer(line):
        if m.end() <= width // 2:
            column = m.end()
    lead = len(line) - len(line.lstrip(" "))
    return column or min(lead + 2, width // 2)


def fit_line(line: str, width: int) -> list[str]:
    """A line as lines of at most `width` characters, broken at spaces; a word longer than the
    room left (a URL, a path) is split, since nothing may run past the edge."""
    line = line.rstrip()
    if len(line) <= width:
        return [line]
    return textwrap.wrap(
        line, width=width, subsequent_indent=" " * hanging_indent(line, width),
        break_on_hyphens=False, replace_whitespace=False,
    ) or [""]  # fmt: skip


def paint(line: str) -> str:
    """A plain line with its status words (PASS, FAILED, …) and a verdict line's verdict coloured."""
    m = _VERDICT.match(line)
    if m:
        colour = {"passed": _GREEN, "pending": _YELLOW}.get(m.group(2), _RED)
        return m.group(1) + _sgr("1;" + colour, m.group(2)) + (m.group(3) or "")
    return _STATUS_WORD.sub(lambda w: _sgr(STATUS_COLOURS[w.group(1)], w.group(1)), line)


@dataclass(frozen=True)
class Fit:
    """How text is shaped for one stream: a width to wrap to (None keeps lines whole, for pipes
    and files, where a script or a CI log wants the full text), and colour or not."""

    width: int | None
    colour: bool

    @classmethod
    def for_stream(cls, stream: Any) -> Fit:
        width = max(MIN_WIDTH, shutil.get_terminal_size((80, 24)).columns) if _is_tty(stream) else None
        return cls(width, colour_wanted(stream))

    def text(self, text: str) -> str:
        out: list[str] = []
        for line in _CONTROLS.sub("", text).split("\n"):
            fitted = fit_line(line, self.width) if self.width else [line]
            out += [paint(f) for f in fitted] if self.colour else fitted
        return "\n".join(out)


class TerminalOut(io.TextIOBase):
    """sys.stdout while a command runs. Each complete line is cleaned of control characters,
    fitted and coloured for the stream underneath. Once the reader has gone (`relnb list | head`)
    the rest is dropped quietly and the command finishes its work: a `relnb run` must not stop
    mid-release, nor end in a BrokenPipeError traceback, because `head` stopped reading."""

    def __init__(self, stream: TextIO, fit: Fit | None = None) -> None:
        super().__init__()
        self.stream = stream
        self.fit = fit or Fit.for_stream(stream)
        self.pending = ""
        self.reader_gone = False

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return _is_tty(self.stream)

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def write(self, s: str) -> int:
        self.pending += s
        if "\n" in self.pending:
            complete, _, self.pending = self.pending.rpartition("\n")
            self._emit(self.fit.text(complete) + "\n")
        return len(s)

    def flush(self) -> None:
        if self.pending:  # a partial line (a prompt): shown as it is, cleaned
            text, self.pending = self.pending, ""
            self._emit(self.fit.text(text))
        self._emit("")

    def _emit(self, text: str) -> None:
        if self.reader_gone:
            return
        try:
            if text:
                self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self._reader_went_away()

    def _reader_went_away(self) -> None:
        """Point the descriptor at /dev/null, so neither later writes nor the interpreter's final
        flush of what the stream still buffers raise again."""
        self.reader_gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass


def _width() -> int | None:
    """The terminal's width while stdout is one, else None (a pipe keeps whole lines)."""
    fit = getattr(sys.stdout, "fit", None)
    return fit.width if isinstance(fit, Fit) else None


def _config(args: argparse.Namespace) -> relnb.Config:
    return load_config(args.config) if args.config else load_config(start=relnb.find_root())


def cmd_new(args: argparse.Namespace) -> int:
    config = _config(args)
    fmt = args.format
    rid = args.id or args.version
    suffix = ".ipynb" if fmt == "ipynb" else ".py"
    nb_dir = config.notebooks_dir()
    nb_path = nb_dir / f"release-{rid}{suffix}"
    if nb_path.exists():
        raise UsageError(f"{nb_path} already exists", path=str(nb_path), fix="open it, or pass --id for a new release")
    text, sha = relnb.instantiate_template(relnb.template_path(config.root, fmt), rid)
    release = Release.create(
        args.version,
        release_id=rid,
        environment=args.env,
        notebook=str(nb_path.relative_to(config.root)),
        template_sha256=sha,
        config=config,
    )
    release.close()
    nb_dir.mkdir(parents=True, exist_ok=True)
    nb_path.write_text(text, encoding="utf-8")
    relnb.refresh_header_cache(rid, config=config, notebook=nb_path)  # marimo edit shows it on open
    _out(f"created release {rid}: journal {release.directory / 'journal.jsonl'}")
    _out(f"notebook: {nb_path}")
    if fmt == "ipynb":
        _out(f"open it with: jupyter lab {nb_path}   (headless: relnb run {nb_path})")
    else:
        _out(f"open it with: marimo edit {nb_path}   (headless: relnb run {nb_path})")
        from importlib.util import find_spec

        if find_spec("marimo") is None:
            _out("marimo is not installed here: pip install 'relnb[marimo]'")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    relnb.check_declared_flows(config)
    for key, var in config.secret_refs():
        config.secret(var, key=key)  # a missing secret is a usage error (exit 3) before anything runs
    sign_offs: dict[str, dict[str, Any]] = {}
    # --sign-offs FILE, else $RELNB_SIGNOFFS: plain sign-offs, or a `relnb sign` approvals file
    sign_offs_path = args.sign_offs or os.environ.get(relnb.ENV_SIGNOFFS)
    approvals = None
    if sign_offs_path:
        sign_offs.update(relnb.load_sign_offs_file(Path(sign_offs_path)))
        if relnb.approvals_file_at(Path(sign_offs_path)) is not None:
            approvals = Path(sign_offs_path)
    for text in args.sign_off or []:
        gid, entry = relnb.parse_sign_off(text)
        sign_offs[gid] = entry
    skips = {}
    for text in args.skip or []:
        gate, _, reason = text.partition("=")
        spec = relnb.get_gate(gate)
        if not spec.optional:  # a required gate is never skipped: saying nothing would hide that
            optional = ", ".join(g.id for g in relnb.GATES if g.optional)
            raise UsageError(f"--skip {text!r}: {spec.id} is required, only {optional} can be skipped",
                             key="--skip", fix=f"run {spec.id}, or waive its failure with an approver and a reason")
        if not reason.strip():
            raise UsageError(f"--skip {text!r} needs a reason", fix="write ID=reason")
        skips[spec.id] = reason.strip()
    if approvals is not None:  # a pre-signed skip is the decision to skip, in the signed words
        for gid, reason in relnb.skips_for_run(relnb.approvals_file_at(approvals)).items():
            skips.setdefault(gid, reason)
    waivers: dict[str, str] = {}
    for text in args.waive or []:
        gid, reason = _parse_waiver(text)
        if gid in waivers and waivers[gid] != reason:
            raise UsageError(f"--waive {gid} is given twice", key="--waive", fix=f"give one reason for {gid}")
        waivers[gid] = reason
    confirm = [c.strip().upper() for c in (args.confirm or "").split(",") if c.strip()]
    for c in confirm:
        if c not in ("ALL", "ROLLBACK", relnb.ROLLBACK_ON_FAILURE) and not (len(c) == 1 and c in relnb.SECTIONS):
            relnb.get_gate(c)
    rerun = [relnb.get_gate(c).id for c in (args.rerun or "").split(",") if c.strip()]
    if rerun and not (args.rerun_reason or "").strip():
        raise UsageError(f"--rerun {','.join(rerun)} needs --rerun-reason", key="--rerun",
                         fix="say why the settled gates must run again (it is journaled, and voids waivers after them)")
    if args.window_reason is not None and not args.window_reason.strip():
        raise UsageError("--window-reason is empty", key="--window-reason", fix="say why the window is shortened")
    opts = relnb.RunOptions(
        notebook=Path(args.notebook),
        junit=Path(args.junit) if args.junit else None,
        sign_offs=sign_offs,
        confirm=confirm,
        rerun=rerun,
        skips=skips,
        window=args.window,
        window_reason=args.window_reason,
        rerun_reason=args.rerun_reason,
        timeout_s=relnb.parse_duration(args.timeout),
        approvals=approvals,
        waivers=waivers,
    )
    code, state = relnb.run_notebook(opts, config)
    _out(state.table().render(_width()))
    _out(f"verdict: {state.verdict()} (exit {code})")
    return code


def _parse_waiver(text: str) -> tuple[str, str]:
    """`--waive B7=DLQ probe known flaky, OPS-12` → ("B7", "DLQ probe known flaky, OPS-12")."""
    fix = "write --waive ID=REASON, e.g. --waive 'B7=DLQ probe known flaky, OPS-12'"
    gate, sep, reason = text.partition("=")
    if not sep:
        raise UsageError(f"--waive {text!r} names no reason (no '=')", key="--waive", fix=fix)
    try:
        gid = relnb.get_gate(gate.strip()).id
    except UsageError as exc:
        raise UsageError(f"--waive {text!r}: {exc.message}", key="--waive", fix=exc.fix) from None
    if not reason.strip():
        raise UsageError(f"--waive {text!r} has an empty reason", key="--waive", fix=fix)
    return gid, reason.strip()


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    state = read_state(args.release or relnb.archive.only_open_release(config, "status"), config=config)
    plugins = relnb.installed_plugins()
    if args.json:
        _out(json.dumps([r.to_dict() for r in state.table().rows], indent=2))
    else:
        _out(state.table().render(_width()))
        if plugins:  # what answers a gate, or reads a queue, besides relnb itself
            _out("plug-ins installed:\n" + "\n".join(f"  {p}" for p in plugins))
    return 0


def cmd_abandon(args: argparse.Namespace) -> int:
    """A person ends a release that will not finish (a fix goes into a new release): journaled
    with who and why, then sealed, so the archive says "abandoned" instead of a verdict it never had."""
    release = Release.open(args.release, config=_config(args))
    try:
        release.abandon(reason=args.reason, by=args.by)
    finally:
        release.close()
    result = relnb.archive.archive_release(args.release, config=_config(args))
    _out(f"release {args.release} abandoned and sealed: {result.directory}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from relnb_demo import list_faults, run_demo
    except ImportError as exc:  # relnb_demo's own message names the extra and what is missing
        raise UsageError(str(exc) if "relnb[demo]" in str(exc) else f"the demo cannot start: {exc}",
                         fix=None if "relnb[demo]" in str(exc) else "pip install 'relnb[demo]'") from None
    if args.list_faults:  # the fault table only: nothing is installed or started
        list_faults(_out)
        return 0
    return run_demo(
        faults=args.fault or [],
        window=args.window,
        keep=args.keep,
        postgres_url=args.postgres_url or os.environ.get("RELNB_DEMO_POSTGRES_URL"),
        redis_url=args.redis_url or os.environ.get("RELNB_DEMO_REDIS_URL"),
        workdir=args.workdir,
        install=not args.no_install,
    )


# -- `relnb sign` ----------------------------------------------------------------------------------


def add_sign_parser(subparsers: Any) -> argparse.ArgumentParser:
    sp = subparsers.add_parser(
        "sign",
        help="sign an approval in advance for a headless run (writes a detached approvals file)",
        description="Sign a sign-off, waiver, skip, forced re-run or production promotion for one release "
        "with your SSH key; `relnb run --sign-offs FILE` consumes it.",
    )
    sp.add_argument("release", help="release id, e.g. 1.4.0")
    sp.add_argument("gate", help="gate ID (A3 …), or D for a production promotion")
    sp.add_argument("--kind", default="sign-off", choices=list(relnb.PRESIGNABLE_KINDS))
    sp.add_argument(
        "--note",
        "--reason",
        dest="text",
        default="",
        help="the sign-off note or the reason (signed verbatim)",
    )
    sp.add_argument(
        "--sha",
        help="release SHA (default: the release's recorded SHA, else the repository's HEAD)",
    )
    sp.add_argument(
        "--key",
        help="SSH private key, or a .pub held in ssh-agent (default: $RELNB_SIGNING_KEY, [signing] key, git user.signingkey)",
    )
    sp.add_argument(
        "--principal", help="allowed_signers principal to sign as (when the key has several)"
    )
    sp.add_argument(
        "--out",
        "-o",
        help="approvals file to create or add to (default: releases/<id>/approvals.json)",
    )
    sp.set_defaults(func=cmd_sign)
    return sp


def cmd_sign(args: argparse.Namespace) -> int:
    config = (
        load_config(args.config)
        if getattr(args, "config", None)
        else load_config(start=relnb.find_root())
    )
    settings = relnb.SigningSettings.from_mapping(config.data.get("signing"))
    try:
        created = read_state(args.release, config=config).created
    except UsageError:
        created = {}
    out = Path(args.out) if args.out else config.releases_dir() / args.release / "approvals.json"
    approval = relnb.presign(
        args.release,
        args.gate,
        kind=args.kind,
        text=args.text,
        repo=config.repo_path(),
        settings=settings,
        out=out,
        sha=args.sha,
        key=args.key,
        principal=args.principal,
        created=created,
        project_release_lead=config.project.get("release_lead"),
    )
    st = approval.statement
    print(
        scrub(
            f"signed {st['kind']} of {st['gate']} for release {args.release} at {str(st['release_sha'])[:12]} "
            f"as {approval.principal} ({approval.fingerprint}) into {out}"
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="relnb", description="Notebook-driven release journal.")
    p.add_argument("--version", action="version", version=f"relnb {relnb.__version__}")
    p.add_argument("--config", help="relnb.toml or pyproject.toml to use (default: nearest one)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    n = sub.add_parser("new", help="create a release notebook and its journal")
    n.add_argument("version", help="version being released, e.g. 1.4.0")
    n.add_argument("--env", default="production", choices=["staging", "production"], help="target environment")
    n.add_argument("--format", default="marimo", choices=["marimo", "ipynb"], help="notebook format")
    n.add_argument("--id", help="release id (default: the version)")
    n.set_defaults(func=cmd_new)

    r = sub.add_parser("run", help="run a release notebook headlessly")
    r.add_argument("notebook", help="notebooks/release-<version>.py or .ipynb")
    r.add_argument("--junit", help="write JUnit XML (one testcase per gate) here")
    r.add_argument("--sign-off", action="append", metavar="ID=WHO:NOTE", help="give a sign-off (repeatable)")
    r.add_argument("--sign-offs", metavar="FILE", help='JSON file {"A3": {"by": "Name <email>", "note": "..."}}, or an approvals file from `relnb sign` '
        "(default: $RELNB_SIGNOFFS)")
    r.add_argument("--confirm", metavar="IDS", help="actions allowed to run: all, section letters or gate IDs, comma separated; "
        "`rollback` (never implied by all) runs the prepared rollback; `rollback-on-failure` runs it "
        "only when a production gate did not pass after the deploy")
    r.add_argument("--rerun", metavar="IDS", help="settled gates to run again, comma separated (needs --rerun-reason)")
    r.add_argument("--rerun-reason", metavar="TEXT", help="why the --rerun gates must run again (journaled)")
    r.add_argument("--skip", action="append", metavar="ID=REASON", help="declare an optional gate not needed")
    r.add_argument("--waive", action="append", metavar="ID=REASON", help="accept this gate's failure (failed, "
        "inconclusive or interrupted, before or during the run) with a reason, in your name (RELNB_USER or git: "
        "`Name <email>`), signed like a sign-off when [signing] is on; the failure stays on record and the gates "
        "it held back run (repeatable)")
    r.add_argument("--window", type=duration_option("--window"), help="shorten the monitoring windows for a rehearsal (journaled), e.g. 2m: "
        "a shortened window never passes, it is at most waived (see --window-reason)")
    r.add_argument("--window-reason", metavar="TEXT", help="why the windows are shortened: a window that was "
        "clean but shorter than configured is waived in these words, by you (or by the approval signed for them)")
    r.add_argument("--timeout", default="6h", type=duration_option("--timeout"), help="stop the run after this long (default 6h)")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("status", help="print the gate table of a release")
    s.add_argument("release", nargs="?", help="release id (default: the only open release)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    ab = sub.add_parser("abandon", help="end a release that will not finish, with a reason, and seal it")
    ab.add_argument("release")
    ab.add_argument("--reason", required=True, help="why it is abandoned (journaled, shown in the archive)")
    ab.add_argument("--by", help="who abandons it, `Name <email>` (default: you, from RELNB_USER or git)")
    ab.set_defaults(func=cmd_abandon)

    v = sub.add_parser("verify", help="verify a release: journal chain, and for archives the manifest")
    relnb.archive.add_verify_args(v)

    ls = sub.add_parser("list", help="list releases (fast, from releases/index.json)")
    relnb.archive.add_list_args(ls)

    relnb.archive.register_commands(sub)
    add_sign_parser(sub)

    d = sub.add_parser(
        "demo",
        help="run the whole checklist against an embedded demo stack",
        description="Run the whole checklist against an embedded demo stack. The demo is the "
        "relnb_demo package; its servers come with pip install 'relnb[demo]'.",
    )
    d.add_argument("--fault", action="append", metavar="NAME[@ENV]", help="inject a fault (repeatable), e.g. dlq@production")
    d.add_argument("--window", default="2m", type=duration_option("--window"), help="monitoring window (default 2m; 30m for the real thing)")
    d.add_argument("--keep", action="store_true", help="leave the stack running and print how to stop it")
    d.add_argument("--postgres-url", help="use this PostgreSQL (superuser) instead of an embedded one")
    d.add_argument("--redis-url", help="use this Redis instead of an embedded one")
    d.add_argument("--workdir", help="where the stack and the project live (default: a temp dir)")
    d.add_argument(
        "--no-install",
        action="store_true",
        help="never apt-get install Prometheus, Alertmanager or docker-registry; stop when one is missing",
    )
    d.add_argument(
        "--list-faults",
        action="store_true",
        help="print each fault (NAME[@ENV]) and the gates it must turn, comma separated, then exit",
    )
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    stdout = sys.stdout
    sys.stdout = out = TerminalOut(stdout)
    try:
        return _main(parser, sys.argv[1:] if argv is None else argv, out)
    finally:
        out.flush()
        sys.stdout = stdout


def _main(parser: argparse.ArgumentParser, argv: Sequence[str], out: TerminalOut) -> int:
    try:
        args = parser.parse_args(_join_dashed_values(argv))
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else 0
    if getattr(args, "json", False):  # for a program: whole lines, no colour, even on a terminal
        out.fit = Fit(None, False)
    relnb.redact.install_logging_filter()
    try:
        return int(args.func(args))
    except JournalLocked as exc:
        print(f"relnb: error: {_CONTROLS.sub('', scrub(str(exc)))}", file=sys.stderr)
        return exc.exit_code
    except RelnbError as exc:
        print(f"relnb: error: {_CONTROLS.sub('', scrub(str(exc)))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("relnb: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: show it, scrubbed
        print(relnb.redact.format_exception(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
