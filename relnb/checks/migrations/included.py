"""Migrations in a release: which exist, and which are new since the previous tag (A3).

The other questions about the same files live beside it: is it safe to run (C3,
safety.py), can it be undone (E2/E3, reversibility.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ... import git
from ...redact import scrub
from ...results import Outcome

# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Migration:
    name: str
    path: str
    down_path: str | None = None

    @property
    def sql(self) -> str:
        return Path(self.path).read_text(encoding="utf-8")


_GOLANG_UP = re.compile(r"^([0-9]+)_(.+)\.up\.sql$")
_FLYWAY_V = re.compile(r"^V([0-9][0-9._]*)__(.+)\.sql$")


def discover_migrations(migrations_dir: str | Path, layout: str = "prisma") -> list[Migration]:
    """SQL migrations in apply order. Layouts: prisma, golang-migrate, flyway, sql (sorted files)."""
    d = Path(migrations_dir)
    if not d.is_dir():
        return []
    if layout == "prisma":
        out = []
        for sub in sorted(p for p in d.iterdir() if p.is_dir()):
            if (sub / "migration.sql").is_file():
                down = sub / "down.sql"
                out.append(
                    Migration(
                        sub.name, str(sub / "migration.sql"), str(down) if down.is_file() else None
                    )
                )
        return out
    if layout == "golang-migrate":
        found = []
        for f in d.iterdir():
            if m := _GOLANG_UP.match(f.name):
                down = f.with_name(f.name.replace(".up.sql", ".down.sql"))
                found.append(
                    (
                        int(m.group(1)),
                        Migration(
                            f.name.removesuffix(".up.sql"),
                            str(f),
                            str(down) if down.is_file() else None,
                        ),
                    )
                )
        return [m for _, m in sorted(found, key=lambda x: x[0])]
    if layout == "flyway":
        found = []
        for f in d.glob("V*__*.sql"):
            if m := _FLYWAY_V.match(f.name):
                ver = tuple(int(x) for x in re.split(r"[._]", m.group(1)) if x)
                undo = f.with_name("U" + f.name[1:])
                found.append(
                    (ver, Migration(f.stem, str(f), str(undo) if undo.is_file() else None))
                )
        return [m for _, m in sorted(found, key=lambda x: x[0])]
    if layout == "sql":
        return [Migration(f.stem, str(f)) for f in sorted(d.glob("*.sql"))]
    raise ValueError(f"unknown migrations layout {layout!r}: prisma, golang-migrate, flyway, sql")


# --------------------------------------------------------------------------- git (A3)


class GitError(RuntimeError):
    """git could not answer (not a repository, unknown revision): the gate says so, not passed."""


def _diff(
    repo: str | os.PathLike[str], tag: str, head: str, paths: Sequence[str], filt: str
) -> list[str]:
    for ref in (tag, head):
        if git.run(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
            raise GitError(f"{ref!r} is not a commit in {repo}")
    got = git.run(repo, "diff", "--name-only", f"--diff-filter={filt}", f"{tag}", head, "--", *paths)
    if got.returncode != 0:
        raise GitError(scrub(got.stderr.strip()[:300]))
    return [line for line in got.stdout.splitlines() if line.strip()]


def schema_changed_since(
    repo: str | os.PathLike[str], tag: str, paths: Sequence[str], head: str = "HEAD"
) -> list[str]:
    """Files under `paths` that differ between `tag` and `head` (raises GitError on bad refs)."""
    return _diff(repo, tag, head, paths, "ACDMRT")


def new_migrations_since(
    repo: str | os.PathLike[str], tag: str, migrations_dir: str, head: str = "HEAD"
) -> list[str]:
    """Migration names (Prisma directory / file stem) added between `tag` and `head`."""
    rel = migrations_dir.rstrip("/")
    names: list[str] = []
    for f in _diff(repo, tag, head, [rel], "A"):
        rest = f[len(rel) + 1 :] if f.startswith(rel + "/") else f
        if "/" in rest:  # prisma: <name>/migration.sql
            name, leaf = rest.split("/", 1)
            if leaf != "migration.sql":
                continue
        elif rest.endswith(".sql") and not rest.endswith(".down.sql"):
            name = rest.removesuffix(".sql").removesuffix(".up")
        else:
            continue
        if name not in names:
            names.append(name)
    return sorted(names)


def check_migration_included(
    repo: str | os.PathLike[str],
    tag: str,
    schema_paths: Sequence[str],
    migrations_dir: str,
    head: str = "HEAD",
    kind: str = "prisma",
) -> Outcome:
    """A3 evidence: a schema change since the last release comes with a migration, and every
    migration the release adds, read as its tool reads it, for the reviewer."""
    from .changeset import release_migrations

    try:
        changed = schema_changed_since(repo, tag, schema_paths, head)
    except GitError as exc:
        return Outcome.inconclusive(f"cannot diff {tag}..{head}: {exc}")
    rs = release_migrations(repo, kind, migrations_dir, tag, head)
    ev = {"since": tag, "head": head, "schema_changed": changed, **rs.evidence()}
    if rs.incomplete:
        return Outcome.inconclusive(f"cannot list this release's migrations: {rs.incomplete}", **ev)
    added = rs.names
    if changed and not added:
        return Outcome.failed(
            f"schema changed since {tag} ({', '.join(changed[:3])}) but no new migration in {migrations_dir}",
            **ev,
        )
    if added:
        more = f" (+{len(added) - 3} more)" if len(added) > 3 else ""
        n = len(rs.changes())
        flagged = f"; {n} change(s) for the reviewer (A4)" if n else ""
        return Outcome.passed(
            f"{len(added)} new {kind} migration(s) since {tag}: {', '.join(added[:3])}{more}{flagged}", **ev
        )
    if kind == "none":
        return Outcome.passed(
            f"no schema change and no file under {migrations_dir} changed since {tag}"
            " (project.migrations_kind = none: relnb reads no migrations)",
            **ev,
        )
    return Outcome.passed(
        f"no schema change and no new migration since {tag} ({rs.on_disk} {kind} migration(s) in {migrations_dir})",
        **ev,
    )
