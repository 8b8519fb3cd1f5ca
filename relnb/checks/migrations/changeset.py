"""The migrations a release brings, for every kind relnb reads, and what each of them does.

Two sources, as a team ships migrations:

- **In the repository** (git): the files added under `project.migrations_dir` between the
  previous tag and the release SHA, read at the release SHA with `git show` (the work tree may
  be on another commit). "No migration" is claimed only when the directory holds migrations of
  the configured kind at that SHA, so a wrong `migrations_dir`/`migrations_kind` cannot read as
  "nothing to undo".
- **In an installed package** (NetBox: `migrations_dir` is a site-packages git does not track):
  the ledger names of the migrations the release brings, read from disk.

A file under the migrations directory that relnb cannot read as the kind's migration makes the
set `incomplete`: A3, A4 and E2/E3 say inconclusive and name it, never "no new migration".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from ... import git
from ...redact import scrub
from .operations import (
    Change,
    Reading,
    Unreadable,
    read_alembic_migration,
    read_django_migration,
    read_sql_migration,
)

# kinds whose migration files relnb reads itself; others (a plug-in ledger, none) are listed only
READ_KINDS = ("prisma", "alembic", "django", "flyway", "golang-migrate")
_SKIP_DIRS = ("site-packages", ".venv", "venv", "node_modules", "__pycache__")


@dataclass
class ReleaseMigration:
    name: str  # as the tool's ledger names it: prisma dir, "app.0002_x", alembic revision, file stem
    path: str
    reading: Reading

    def to_dict(self) -> dict[str, Any]:
        r = self.reading
        return {
            "name": self.name,
            "path": self.path,
            "reversible": r.reversible,
            "reason": r.reason,
            "operations": r.operations[:50],
            "changes": [c.to_dict() for c in r.changes],
            **r.extra,
        }


@dataclass
class ReleaseMigrations:
    kind: str
    source: str  # how they were found, one line for the evidence
    migrations: list[ReleaseMigration] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    modified: list[str] = field(default_factory=list)  # existing migration files changed
    deleted: list[str] = field(default_factory=list)
    problem: str | None = None  # the set itself is unknown (bad ref, no migrations where configured)
    on_disk: int | None = None  # migrations of the kind at the release SHA

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.migrations]

    @property
    def incomplete(self) -> str | None:
        """Why this is not the whole truth about the release's migrations, or None."""
        if self.problem:
            return self.problem
        if self.unreadable:
            first = self.unreadable[0]
            more = f" (+{len(self.unreadable) - 1} more)" if len(self.unreadable) > 1 else ""
            return f"cannot read {first['path']}: {first['reason']}{more}"
        return None

    def changes(self, *effects: str) -> list[tuple[ReleaseMigration, Change]]:
        return [(m, c) for m in self.migrations for c in m.reading.changes if not effects or c.effect in effects]

    def evidence(self) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "migrations_kind": self.kind,
            "found_by": self.source,
            "new_migrations": self.names,
            "migrations": [m.to_dict() for m in self.migrations],
        }
        for key in ("unreadable", "modified", "deleted"):
            if getattr(self, key):
                ev[key] = getattr(self, key)
        if self.on_disk is not None:
            ev["migrations_at_release"] = self.on_disk
        return ev


# --------------------------------------------------------------------------- where files live


class _Tree(Protocol):
    def read(self, path: str) -> str: ...
    def exists(self, path: str) -> bool: ...
    def listdir(self, directory: str) -> list[str]: ...


class _GitTree:
    """The repository at one commit: the release SHA, not whatever the work tree holds."""

    def __init__(self, repo: str | Path, sha: str, files: Sequence[str]) -> None:
        self.repo, self.sha, self.files = repo, sha, set(files)

    def read(self, path: str) -> str:
        got = git.run(self.repo, "show", f"{self.sha}:{path}")
        if got.returncode != 0:
            raise Unreadable(f"git show {self.sha[:12]}:{path}: {scrub(got.stderr.strip())[:200]}")
        return got.stdout

    def exists(self, path: str) -> bool:
        return path in self.files

    def listdir(self, directory: str) -> list[str]:
        prefix = f"{directory}/" if directory else ""
        return sorted(f[len(prefix):] for f in self.files if f.startswith(prefix) and "/" not in f[len(prefix):])


class _DiskTree:
    """Files on disk (migrations of an installed package)."""

    def read(self, path: str) -> str:
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise Unreadable(f"{path}: {exc}") from exc

    def exists(self, path: str) -> bool:
        return Path(path).is_file()

    def listdir(self, directory: str) -> list[str]:
        d = Path(directory)
        return sorted(p.name for p in d.iterdir() if p.is_file()) if d.is_dir() else []


# --------------------------------------------------------------------------- each kind's layout

_GOLANG = re.compile(r"^([0-9]+)_(.+)\.(up|down)\.sql$")
_FLYWAY = re.compile(r"^([VU])([0-9][0-9._]*)__(.+)\.sql$")
_FLYWAY_R = re.compile(r"^R__(.+)\.sql$")
_FLYWAY_OTHER = re.compile(r"^[VRU][0-9._]*__.+\.\w+$")


def _classify(kind: str, rest: str, path: str, versions: str) -> tuple[str, str]:
    """A file under the migrations directory: ("migration", name) | ("companion", "") |
    ("other", "") | ("unknown", why). `rest` is relative to the directory, `path` to the repo."""
    parts = PurePosixPath(rest).parts
    leaf = parts[-1] if parts else rest
    if kind == "prisma":
        if len(parts) == 2 and leaf == "migration.sql":
            return "migration", parts[0]
        if len(parts) == 2 and leaf == "down.sql":
            return "companion", ""
        if leaf.endswith(".sql"):
            return "unknown", "not <name>/migration.sql, the layout Prisma applies"
        return "other", ""
    if kind == "django":
        if any(p in _SKIP_DIRS for p in parts[:-1]):
            return "other", ""
        full = PurePosixPath(path).parts
        if len(full) >= 3 and full[-2] == "migrations" and leaf.endswith(".py") and leaf != "__init__.py":
            return "migration", f"{full[-3]}.{leaf.removesuffix('.py')}"
        return "other", ""
    if kind == "alembic":
        if versions and not rest.startswith(versions + "/"):
            return "other", ""  # env.py, script.py.mako, README: not revisions
        if leaf.endswith(".py") and leaf != "__init__.py" and "__pycache__" not in parts and (versions or leaf != "env.py"):
            return "migration", leaf.removesuffix(".py")
        return "other", ""
    if kind == "flyway":
        if m := _FLYWAY.match(leaf):
            return ("migration", leaf.removesuffix(".sql")) if m.group(1) == "V" else ("companion", "")
        if _FLYWAY_R.match(leaf):
            return "migration", leaf.removesuffix(".sql")
        if re.match(r"^B[0-9._]+__.+\.sql$", leaf):
            return "other", ""  # a baseline migration: applied to empty databases only
        if leaf.endswith(".sql"):
            return "unknown", "not a Flyway migration name (V<version>__<description>.sql)"
        if _FLYWAY_OTHER.match(leaf):
            return "unknown", "a Flyway Java or script migration: relnb reads SQL migrations only"
        return "other", ""
    if kind == "golang-migrate":
        if len(parts) == 1 and (m := _GOLANG.match(leaf)):
            return ("migration", f"{m.group(1)}_{m.group(2)}") if m.group(3) == "up" else ("companion", "")
        if len(parts) == 1 and leaf.endswith(".sql"):
            return "unknown", "not <version>_<title>.up.sql / .down.sql, the names golang-migrate applies"
        return "other", ""
    if kind == "none":
        return "unknown", "project.migrations_kind = none: relnb reads no migrations"
    return "unknown", f"relnb cannot read {kind} migrations itself (a plug-in ledger): review them by hand"


def _read(kind: str, path: str, tree: _Tree) -> tuple[str | None, Reading]:
    """One migration file as its tool reads it: (ledger name if the file says it, reading)."""
    p = PurePosixPath(path)
    if kind == "django":
        def earlier() -> list[str]:
            names = [n for n in tree.listdir(str(p.parent)) if n.endswith(".py") and n != "__init__.py" and n < p.name]
            out = []
            for n in names:
                try:
                    out.append(tree.read(str(p.parent / n)))
                except Unreadable:
                    continue
            return out

        return None, read_django_migration(tree.read(path), earlier)
    if kind == "alembic":
        r = read_alembic_migration(tree.read(path))
        return r.extra["revision"], r
    up = tree.read(path)
    down_path: str | None = None
    if kind == "prisma":
        down_path = str(p.parent / "down.sql")
    elif kind == "golang-migrate":
        down_path = str(p.with_name(p.name.removesuffix(".up.sql") + ".down.sql"))
    elif kind == "flyway":
        if _FLYWAY_R.match(p.name):
            r = read_sql_migration(up, None, None)
            r.reversible, r.reason = False, "repeatable migration: Flyway re-applies it when it changes, it has no undo"
            r.extra["sql"] = up[:4000]
            return None, r
        version = _FLYWAY.match(p.name).group(2)  # type: ignore[union-attr]
        undo = [n for n in tree.listdir(str(p.parent)) if (m := _FLYWAY.match(n)) and m.group(1) == "U" and m.group(2) == version]
        down_path = str(p.parent / undo[0]) if undo else None
    else:
        raise Unreadable(f"relnb cannot read {kind} migrations")
    down = tree.read(down_path) if down_path and tree.exists(down_path) else None
    r = read_sql_migration(up, down, down_path if down is not None else None)
    r.extra["sql"] = up[:4000]
    return None, r


def _add(out: ReleaseMigrations, kind: str, name: str, path: str, tree: _Tree) -> None:
    try:
        own_name, reading = _read(kind, path, tree)
    except Unreadable as exc:
        out.unreadable.append({"path": path, "reason": str(exc)})
        return
    out.migrations.append(ReleaseMigration(own_name or name, path, reading))


# --------------------------------------------------------------------------- git


class _RefError(RuntimeError):
    pass


def _verify(repo: str | Path, *refs: str) -> dict[str, str]:
    shas = {}
    for ref in refs:
        sha = git.output(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if not sha:
            raise _RefError(f"{ref!r} is not a commit in {repo}")
        shas[ref] = sha
    return shas


def release_migrations(
    repo: str | Path, kind: str, migrations_dir: str, tag: str, head: str = "HEAD"
) -> ReleaseMigrations:
    """The migrations added under `migrations_dir` between `tag` and `head`, read at `head`."""
    rel = migrations_dir.strip("/")
    rel = "" if rel in ("", ".") else rel
    shown = head[:12] if len(head) == 40 else head
    out = ReleaseMigrations(kind, f"git: added under {rel or '.'} between {tag} and {shown}")
    try:
        shas = _verify(repo, tag, head)
    except _RefError as exc:
        out.problem = f"cannot diff {tag}..{head}: {exc}"
        return out
    sha = shas[head]
    listed = git.run(repo, "ls-tree", "-r", "--name-only", sha, "--", rel or ".")
    diff = git.run(repo, "diff", "--name-status", "--no-renames", shas[tag], sha, "--", rel or ".")
    for got in (listed, diff):
        if got.returncode != 0:
            out.problem = f"git cannot list {rel or '.'} at {head}: {scrub(got.stderr.strip())[:200]}"
            return out
    files = [f for f in listed.stdout.splitlines() if f]
    tree = _GitTree(repo, sha, files)
    versions = "versions" if kind == "alembic" and any(_rest(f, rel).startswith("versions/") for f in files) else ""

    def classify(path: str) -> tuple[str, str]:
        return _classify(kind, _rest(path, rel), path, versions)

    if kind in READ_KINDS:
        out.on_disk = sum(1 for f in files if classify(f)[0] == "migration")
    for line in diff.stdout.splitlines():
        status, _, path = line.partition("\t")
        what, name = classify(path)
        if what == "unknown":
            if status[:1] != "D":
                out.unreadable.append({"path": path, "reason": name})
        elif what != "migration":
            continue
        elif status[:1] == "A" or (status[:1] == "M" and kind == "flyway" and _FLYWAY_R.match(PurePosixPath(path).name)):
            _add(out, kind, name, path, tree)
        elif status[:1] == "D":
            out.deleted.append(path)
        else:
            out.modified.append(path)
    out.migrations.sort(key=lambda m: m.path)
    if kind in READ_KINDS and not out.on_disk:
        out.problem = (
            f"no {kind} migrations under {rel or '.'} at {head}: set project.migrations_dir to where the"
            " project keeps them (and project.migrations_kind to its tool)"
        )
    return out


def _rest(path: str, rel: str) -> str:
    return path[len(rel) + 1 :] if rel and path.startswith(rel + "/") else path


# --------------------------------------------------------------------------- installed package


def installed_migrations(kind: str, migrations_dir: str | Path, names: Sequence[str], found_by: str) -> ReleaseMigrations:
    """The named migrations (ledger names) of a package installed under `migrations_dir`."""
    from .ledger import LEDGERS

    out = ReleaseMigrations(kind, found_by)
    if kind not in LEDGERS:
        out.problem = f"unknown migrations kind {kind!r}"
        return out
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return out
    disk = {m.name: m.path for m in LEDGERS.get(kind).read_disk(Path(migrations_dir)) if m.name in wanted}
    tree = _DiskTree()
    for name in wanted:
        path = disk.get(name)
        if path is None:
            out.unreadable.append({"path": name, "reason": f"not found under {migrations_dir}"})
        elif kind not in READ_KINDS:
            out.unreadable.append({"path": path, "reason": f"relnb cannot read {kind} migrations itself (a plug-in ledger)"})
        else:
            _add(out, kind, name, str(path), tree)
    return out
