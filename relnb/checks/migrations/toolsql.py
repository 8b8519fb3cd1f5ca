"""The SQL each migration tool would run for the release's migrations, as the tool itself renders it.

- **prisma, flyway, golang-migrate**: the files as they are (the tools send them unchanged;
  Flyway placeholders are not expanded).
- **alembic**: offline mode, `alembic upgrade <from>:<to> --sql`, run as a command in the app's
  environment (its env.py, its dialect, its `transaction_per_migration`): relnb never imports a
  team's migration code into its own process. The output is split per revision at Alembic's
  `-- Running upgrade a -> b` comments.
- **django**: `python manage.py sqlmigrate <app> <migration>` per migration, in the app's
  environment. A `RunPython` renders as a comment only: what it runs cannot be seen, and C3
  says so rather than passing it.

A command that fails, or a migration it does not render, is a RenderError: C3 is then
inconclusive, naming it — never passed on SQL it did not see.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import git
from ...redact import scrub

ALEMBIC_COMMAND = "alembic upgrade {range} --sql"
DJANGO_COMMAND = "python manage.py sqlmigrate {app} {migration}"
_RUNNING = re.compile(r"^-- Running upgrade (\S*) -> (\S+)\s*$", re.M)
_RAW_PYTHON = re.compile(r"^--\s*Raw Python operation\s*$", re.M | re.I)


class RenderError(RuntimeError):
    """The tool could not render a migration's SQL: the one-line reason, secrets scrubbed."""


@dataclass(frozen=True)
class RenderedMigration:
    """A migration as SQL the tool would send (duck-types included.Migration for safety.py)."""

    name: str
    path: str
    sql: str
    rendered_by: str
    opaque: tuple[str, ...] = field(default=())  # operations whose SQL cannot be seen (Django RunPython)
    captured: bool = False  # sent by the tool to a server (wirecapture.py), not rendered offline


def run_tool(template: str, cwd: str | Path, timeout_s: float = 180, **fields: str) -> str:
    """Run a rendering command (a template with {fields}) in the app's directory; its stdout."""
    try:
        argv = [part.format(**fields) for part in shlex.split(template)]
    except (KeyError, ValueError) as exc:
        raise RenderError(f"bad command template {template!r}: {exc}") from exc
    shown = " ".join(argv)
    try:
        got = subprocess.run(argv, cwd=str(cwd), capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RenderError(scrub(f"`{shown}` did not run in {cwd}: {exc}")) from exc
    if got.returncode != 0:
        tail = [ln for ln in got.stderr.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
        raise RenderError(scrub(f"`{shown}` exited {got.returncode} in {cwd}: {tail[0][:300]}"))
    return got.stdout


# --------------------------------------------------------------------------- files as they are


def file_text(repo: str | Path | None, sha: str | None, path: str) -> str:
    """A migration file at the release SHA (git), else on disk (installed package, no repo)."""
    if repo is not None and sha:
        got = git.run(repo, "show", f"{sha}:{path}")
        if got.returncode == 0:
            return got.stdout
    p = Path(path) if Path(path).is_absolute() or repo is None else Path(repo) / path
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"cannot read {path}: {exc}") from exc


def sql_files(items: Sequence[tuple[str, str]], repo: str | Path | None, sha: str | None) -> list[RenderedMigration]:
    return [RenderedMigration(n, p, file_text(repo, sha, p), "the file as is") for n, p in items]


# --------------------------------------------------------------------------- alembic


def alembic_range(new: Sequence[tuple[str, Any]]) -> tuple[str | None, str]:
    """(from, to) revisions for `upgrade from:to --sql` from the new revisions and their
    down_revision(s): from = the one revision they start on (None = base), to = their one head."""
    revs = {r for r, _ in new}
    downs: set[str] = set()
    starts: set[str | None] = set()
    for _, down in new:
        ds = [down] if isinstance(down, str) or down is None else list(down)
        for d in ds:
            if d is not None:
                downs.add(d)
            if d not in revs:
                starts.add(d)
    heads = sorted(revs - downs)
    if len(heads) != 1:
        raise RenderError(f"the release's revisions have {len(heads)} heads ({', '.join(heads)}): render each branch by hand")
    if len(starts) != 1:
        raise RenderError(
            f"the release's revisions start from {len(starts)} revisions ({', '.join(str(s) for s in starts)}):"
            " a merge across releases; relnb renders one range"
        )
    return next(iter(starts)), heads[0]


def split_alembic(sql: str, revisions: Sequence[str]) -> dict[str, str]:
    """Offline output per revision, cut at `-- Running upgrade a -> b`; the preamble (BEGIN,
    CREATE TABLE alembic_version) goes with the first, a BEGIN that opens the next one with it."""
    marks = list(_RUNNING.finditer(sql))
    got = [m.group(2) for m in marks]
    missing = [r for r in revisions if r not in got]
    if missing:
        raise RenderError(f"alembic did not render revision(s) {', '.join(missing)} (output names {', '.join(got) or 'none'})")
    out: dict[str, str] = {}
    for i, m in enumerate(marks):
        start = 0 if i == 0 else m.start()
        end = marks[i + 1].start() if i + 1 < len(marks) else len(sql)
        out[m.group(2)] = sql[start:end]
    # a trailing "BEGIN;" belongs to the next revision's transaction
    keys = list(out)
    for a, b in itertools.pairwise(keys):
        body = out[a].rstrip()
        if body.upper().endswith("BEGIN;"):
            out[a] = body[: -len("BEGIN;")] + "\n"
            out[b] = "BEGIN;\n" + out[b]
    return out


def render_alembic(
    revisions: Sequence[tuple[str, str, Any]],
    cwd: str | Path,
    command: str = ALEMBIC_COMMAND,
) -> tuple[list[RenderedMigration], dict[str, Any]]:
    """(rendered revisions in order, evidence: the command, the range, `from` for rebuilding the schema).
    `revisions`: (revision, path, down_revision) of the release's new revisions."""
    start, head = alembic_range([(r, d) for r, _, d in revisions])
    rng = f"{start}:{head}" if start else head
    sql = run_tool(command, cwd, range=rng)
    parts = split_alembic(sql, [r for r, _, _ in revisions])
    by_rev = {r: p for r, p, _ in revisions}
    shown = command.format(range=rng)
    out = [RenderedMigration(r, by_rev.get(r, r), parts[r], f"`{shown}`") for r in parts if r in by_rev]
    ev = {"rendered_by": shown, "range": rng, "from": start or "base", "to": head, "cwd": str(cwd)}
    return out, ev


# --------------------------------------------------------------------------- django


def render_django(
    names: Sequence[tuple[str, str]], cwd: str | Path, command: str = DJANGO_COMMAND
) -> list[RenderedMigration]:
    """`sqlmigrate` for each (ledger name "app.0002_x", path), in order."""
    out = []
    for name, path in names:
        app, _, mig = name.partition(".")
        if not mig:
            raise RenderError(f"{name}: not an app.migration name")
        sql = run_tool(command, cwd, app=app, migration=mig)
        opaque = tuple("RunPython" for _ in _RAW_PYTHON.finditer(sql))
        out.append(RenderedMigration(name, path, sql, f"`{command.format(app=app, migration=mig)}`", opaque))
    return out


# --------------------------------------------------------------------------- where the app lives


def find_upwards(start: str | Path, filename: str, stop: str | Path) -> Path | None:
    """The nearest directory from `start` up to `stop` holding `filename` (alembic.ini, manage.py)."""
    here, stop_p = Path(start).resolve(), Path(stop).resolve()
    while True:
        if (here / filename).is_file():
            return here
        if here == stop_p or here.parent == here:
            break
        here = here.parent
    if stop_p.is_dir():
        for p in sorted(stop_p.glob(f"*/{filename}")):
            return p.parent
    return None
