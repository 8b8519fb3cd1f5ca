"""A `prisma migrate deploy` equivalent for the demo, so the release checks meet Prisma's real ledger.

Prisma keeps its ledger in `_prisma_migrations` (DDL below is the one prisma-engines' Postgres
connector creates). `migrate deploy` applies every `<timestamp>_<name>/migration.sql` directory not
yet recorded, in name order: it inserts the row first (started_at, checksum = sha256 hex of the
file's bytes), runs the script as one multi-statement simple query (Postgres runs that as one
implicit transaction, so a failing script leaves no partial schema), then sets finished_at and
applied_steps_count = 1. A failed script keeps its row with finished_at NULL and the error in
`logs`, and later deploys refuse to run until it is resolved — Prisma's P3009.

`down` is not a Prisma command: it applies `down.sql` of the newest applied migration that has one
(the demo's "reversible" migrations) and marks that row rolled back, which is how Prisma's own
`migrate resolve --rolled-back` records it.

CLI: `python -m relnb_demo.migrate deploy|down|status --dir prisma/migrations` with DATABASE_URL
in the environment (or `--url-env NAME`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
)
"""

LEDGER_COLUMNS = (
    "id",
    "checksum",
    "finished_at",
    "migration_name",
    "logs",
    "rolled_back_at",
    "started_at",
    "applied_steps_count",
)


class MigrationError(Exception):
    """A migration could not be applied; the message is what `prisma migrate deploy` would say."""


@dataclass(frozen=True)
class Migration:
    name: str
    path: Path

    @property
    def script(self) -> bytes:
        return (self.path / "migration.sql").read_bytes()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.script).hexdigest()

    @property
    def down_path(self) -> Path:
        return self.path / "down.sql"


def discover(migrations_dir: str | os.PathLike[str]) -> list[Migration]:
    """Migration directories in the order Prisma applies them (lexical = timestamp order)."""
    root = Path(migrations_dir)
    if not root.is_dir():
        raise MigrationError(f"migrations directory {root} does not exist")
    found = [
        Migration(p.name, p)
        for p in root.iterdir()
        if p.is_dir() and (p / "migration.sql").is_file()
    ]
    return sorted(found, key=lambda m: m.name)


def _connect(url: str) -> psycopg.Connection:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def ledger_rows(url: str) -> list[dict[str, Any]]:
    """The ledger as Prisma stored it, oldest first (empty when the table does not exist)."""
    from psycopg.rows import dict_row

    with _connect(url) as conn:
        exists = conn.execute("select to_regclass('_prisma_migrations')").fetchone()
        if not exists or exists[0] is None:
            return []
        cur = conn.cursor(row_factory=dict_row)
        cur.execute(
            f"select {', '.join(LEDGER_COLUMNS)} from _prisma_migrations order by started_at, migration_name"
        )
        return list(cur.fetchall())


def deploy(url: str, migrations_dir: str | os.PathLike[str], *, log=print) -> list[str]:
    """Apply pending migrations; returns the names applied. Raises MigrationError on failure."""
    migrations = discover(migrations_dir)
    applied: list[str] = []
    with _connect(url) as conn:
        conn.execute(LEDGER_DDL)
        rows = conn.execute(
            "select migration_name, checksum, finished_at, rolled_back_at from _prisma_migrations"
        ).fetchall()
        failed = [r[0] for r in rows if r[2] is None and r[3] is None]
        if failed:
            raise MigrationError(
                f"P3009: migrate found failed migrations in the target database: {', '.join(failed)}. "
                "Resolve them (fix and mark rolled back) before deploying new migrations."
            )
        done = {r[0]: r[1] for r in rows if r[2] is not None and r[3] is None}
        on_disk = {m.name for m in migrations}
        for name in done:
            if name not in on_disk:
                log(f"warning: migration {name} is applied in the database but missing locally")
        log(f"{len(migrations)} migrations found in {migrations_dir}")
        for m in migrations:
            if m.name in done:
                if done[m.name] != m.checksum:
                    log(f"warning: migration {m.name} was modified after it was applied")
                continue
            row_id = str(uuid.uuid4())
            conn.execute(
                "insert into _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count)"
                " values (%s, %s, %s, now(), 0)",
                (row_id, m.checksum, m.name),
            )
            try:
                # No parameters: psycopg sends it with the simple query protocol, so the
                # multi-statement script runs as one implicit transaction, as with Prisma.
                conn.execute(m.script.decode())
            except Exception as exc:
                message = f"Migration `{m.name}` failed to apply.\n{type(exc).__name__}: {exc}"
                conn.execute(
                    "update _prisma_migrations set logs = %s where id = %s", (message, row_id)
                )
                raise MigrationError(message) from exc
            conn.execute(
                "update _prisma_migrations set finished_at = now(), applied_steps_count = 1 where id = %s",
                (row_id,),
            )
            applied.append(m.name)
            log(f"applied {m.name}")
    if applied:
        log(f"All migrations have been successfully applied ({len(applied)}).")
    else:
        log("No pending migrations to apply.")
    return applied


def down(url: str, migrations_dir: str | os.PathLike[str], *, log=print) -> str:
    """Run down.sql of the newest applied migration; refuses when that one is not reversible."""
    by_name = {m.name: m for m in discover(migrations_dir)}
    with _connect(url) as conn:
        conn.execute(LEDGER_DDL)
        row = conn.execute(
            "select id, migration_name from _prisma_migrations"
            " where finished_at is not null and rolled_back_at is null"
            " order by migration_name desc limit 1"
        ).fetchone()
        if row is None:
            raise MigrationError("no applied migration to roll back")
        row_id, name = row
        m = by_name.get(name)
        if m is None or not m.down_path.is_file():
            raise MigrationError(
                f"migration {name} is not reversible (no down.sql): restore a snapshot or hotfix forward"
            )
        try:
            conn.execute(m.down_path.read_text())
        except Exception as exc:
            raise MigrationError(
                f"down migration of {name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        conn.execute(
            "update _prisma_migrations set rolled_back_at = now(), logs = coalesce(logs, '') || %s"
            " where id = %s",
            ("rolled back with down.sql\n", row_id),
        )
    log(f"rolled back {name}")
    return name


def status(url: str, migrations_dir: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Applied, pending and failed migration names (what `prisma migrate status` reports)."""
    rows = ledger_rows(url)
    applied = [
        r["migration_name"]
        for r in rows
        if r["finished_at"] is not None and r["rolled_back_at"] is None
    ]
    failed = [
        r["migration_name"]
        for r in rows
        if r["finished_at"] is None and r["rolled_back_at"] is None
    ]
    pending = [m.name for m in discover(migrations_dir) if m.name not in applied]
    return {"applied": applied, "pending": pending, "failed": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m relnb_demo.migrate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("deploy", "down", "status"))
    parser.add_argument("--dir", default="prisma/migrations", help="migrations directory")
    parser.add_argument(
        "--url-env", default="DATABASE_URL", help="env var holding the database URL"
    )
    args = parser.parse_args(argv)
    url = os.environ.get(args.url_env)
    if not url:
        print(f"Error: environment variable {args.url_env} is not set", file=sys.stderr)
        return 2
    try:
        if args.command == "deploy":
            deploy(url, args.dir)
        elif args.command == "down":
            down(url, args.dir)
        else:
            st = status(url, args.dir)
            for key, names in st.items():
                print(f"{key}: {', '.join(names) or '-'}")
            return 1 if st["failed"] or st["pending"] else 0
    except MigrationError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
