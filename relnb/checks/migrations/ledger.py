"""B2/D3: does the database's migration ledger match the migrations on disk?

Read-only by construction: the session is opened with `default_transaction_read_only=on` and
statement/lock timeouts as connection options, and the settings the server reports back are
part of the evidence. Each ledger is compared the way its own tool compares it:

- Prisma `_prisma_migrations`: checksum = lowercase hex SHA-256 of migration.sql (prisma-engines
  `schema-core` checksum module). Prisma also accepts the checksum of the file with CRLF↔LF
  swapped, and old rows whose hex was not zero-padded; so does this. Rows with `rolled_back_at`
  are ignored (as Prisma does); a row with neither `finished_at` nor `rolled_back_at` is a failed
  (or still running) migration that blocks `migrate deploy`.
- Flyway `flyway_schema_history`: checksum = CRC-32 over the UTF-8 bytes of each line without
  its terminator (Java `readLine`), BOM dropped from the first line, stored as a signed int —
  as Flyway's `ChecksumCalculator` does. `success = false` is a failed migration.
- Alembic `alembic_version`: no checksums; the rows must equal the head revision(s) computed from
  `revision`/`down_revision` in versions/*.py.
- Django `django_migrations`: no checksums; (app, name) against `<app>/migrations/*.py`, app
  label = directory name (a custom `AppConfig.label` is not read), squashed migrations count as
  applied when everything they replace is recorded.
- golang-migrate `schema_migrations`: no checksums; one row, `dirty = false`, version = newest
  `*.up.sql` on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...plugins import Registry
from ...redact import connect_error, scrub
from ...results import Outcome
from .ondisk import (
    DISK_READERS,
    DiskMigration,
    alembic_heads,
    flyway_version,
    prisma_checksum,
    prisma_checksum_matches,
)

if TYPE_CHECKING:
    import psycopg



# --------------------------------------------------------------------------- sessions


def display_url(url: str) -> str:
    """The URL without its password (for evidence)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        p = conninfo_to_dict(url)
    except Exception:
        return "<unparseable database url>"
    host = p.get("host", "")
    if host.startswith("/"):
        host = f"[socket {host}]"
    port = f":{p['port']}" if p.get("port") else ""
    user = f"{p['user']}@" if p.get("user") else ""
    return f"postgresql://{user}{host}{port}/{p.get('dbname', '')}"


def readonly_connect(
    url: str,
    *,
    statement_timeout_ms: int = 5000,
    lock_timeout_ms: int = 1000,
    connect_timeout_s: int = 10,
) -> psycopg.Connection:
    """A session on production/staging that cannot write and cannot wait long."""
    import psycopg

    options = (
        "-c default_transaction_read_only=on"
        f" -c statement_timeout={int(statement_timeout_ms)}"
        f" -c lock_timeout={int(lock_timeout_ms)}"
    )
    return psycopg.connect(
        url,
        options=options,
        connect_timeout=connect_timeout_s,
        autocommit=True,
        application_name="relnb-readonly",
    )


def session_proof(conn: psycopg.Connection) -> dict[str, Any]:
    """What the server says about this session: read-only and bounded."""
    row = conn.execute(
        "select current_setting('default_transaction_read_only'),"
        " current_setting('transaction_read_only'), current_setting('statement_timeout'),"
        " current_setting('lock_timeout'), current_setting('server_version_num')::int,"
        " current_user"
    ).fetchone()
    assert row is not None
    return {
        "default_transaction_read_only": row[0],
        "transaction_read_only": row[1],
        "statement_timeout": row[2],
        "lock_timeout": row[3],
        "server_version_num": row[4],
        "user": row[5],
    }


# --------------------------------------------------------------------------- comparison


@dataclass
class LedgerReport:
    kind: str
    on_disk: list[str]
    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    checksum_mismatch: list[dict[str, Any]] = field(default_factory=list)
    applied_not_on_disk: list[str] = field(default_factory=list)
    checksums_compared: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.pending or self.failed or self.checksum_mismatch or self.applied_not_on_disk
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "on_disk": len(self.on_disk),
            "applied": len(self.applied),
            "pending": self.pending,
            "failed": self.failed,
            "checksum_mismatch": self.checksum_mismatch,
            "applied_not_on_disk": self.applied_not_on_disk,
            "checksums_compared": self.checksums_compared,
            "notes": self.notes,
        }


class LedgerMissing(Exception):
    """The ledger table does not exist: nothing was ever migrated with this tool here."""


def _rows(conn: psycopg.Connection, sql: str, table: str) -> list[tuple[Any, ...]]:
    import psycopg

    try:
        return list(conn.execute(sql).fetchall())
    except psycopg.errors.UndefinedTable as exc:
        raise LedgerMissing(f"no {table} table") from exc


def _compare_prisma(conn: psycopg.Connection, disk: list[DiskMigration]) -> LedgerReport:
    rows = _rows(
        conn,
        "select migration_name, checksum, finished_at, rolled_back_at, logs, started_at"
        " from _prisma_migrations order by started_at",
        "_prisma_migrations",
    )
    rep = LedgerReport("prisma", [m.name for m in disk], checksums_compared=True)
    by_name: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        by_name.setdefault(r[0], []).append(r)
    on_disk = {m.name: m for m in disk}
    for name, rs in by_name.items():
        live = [r for r in rs if r[3] is None]  # rolled-back rows are ignored by Prisma
        done = [r for r in live if r[2] is not None]
        if any(r[2] is None for r in live):
            r = next(r for r in live if r[2] is None)
            rep.failed.append(
                {
                    "migration": name,
                    "started_at": str(r[5]),
                    "logs": scrub((r[4] or "")[:500]),
                }
            )
        if done:
            rep.applied.append(name)
            if name not in on_disk:
                rep.applied_not_on_disk.append(name)
            elif not prisma_checksum_matches(on_disk[name].checksum, done[-1][1]):
                rep.checksum_mismatch.append(
                    {
                        "migration": name,
                        "recorded": done[-1][1],
                        "on_disk": prisma_checksum(on_disk[name].checksum),
                    }
                )
    failed_names = {f["migration"] for f in rep.failed}
    rep.pending = [m.name for m in disk if m.name not in rep.applied and m.name not in failed_names]
    return rep


def _compare_alembic(conn: psycopg.Connection, disk: list[DiskMigration]) -> LedgerReport:
    rows = _rows(conn, "select version_num from alembic_version", "alembic_version")
    rep = LedgerReport("alembic", [m.name for m in disk])
    rep.notes.append("alembic records no checksums: only revisions are compared")
    heads = alembic_heads(disk)
    current = sorted(r[0] for r in rows)
    known = {m.name: m for m in disk}
    rep.applied_not_on_disk = [c for c in current if c not in known]
    # Everything reachable downwards from the recorded revisions is applied.
    applied: set[str] = set()
    stack = [c for c in current if c in known]
    while stack:
        rev = stack.pop()
        if rev in applied:
            continue
        applied.add(rev)
        stack.extend(d for d in known[rev].extra["down_revisions"] if d in known)
    rep.applied = [m.name for m in disk if m.name in applied]
    rep.pending = [m.name for m in disk if m.name not in applied]
    rep.notes.append(f"heads on disk: {heads}; recorded: {current}")
    if not rep.pending and not rep.applied_not_on_disk and sorted(heads) != current:
        rep.notes.append("recorded revisions are not exactly the heads")
    return rep


def _compare_django(
    conn: psycopg.Connection, disk: list[DiskMigration], apps: Sequence[str] | None
) -> LedgerReport:
    rows = _rows(conn, "select app, name from django_migrations", "django_migrations")
    scope = set(apps) if apps else {m.name.split(".", 1)[0] for m in disk}
    disk = [m for m in disk if m.name.split(".", 1)[0] in scope]
    rep = LedgerReport("django", [m.name for m in disk])
    rep.notes.append("django records no checksums: only (app, name) pairs are compared")
    recorded = {f"{a}.{n}" for a, n in rows if a in scope}
    replaced = {f"{a}.{n}" for m in disk for a, n in m.extra.get("replaces", ())}
    for m in disk:
        reps = [f"{a}.{n}" for a, n in m.extra.get("replaces", ())]
        if m.name in recorded or (reps and all(r in recorded for r in reps)):
            rep.applied.append(m.name)
        else:
            rep.pending.append(m.name)
    names = {m.name for m in disk}
    rep.applied_not_on_disk = sorted(r for r in recorded if r not in names and r not in replaced)
    return rep


def _compare_flyway(conn: psycopg.Connection, disk: list[DiskMigration]) -> LedgerReport:
    rows = _rows(
        conn,
        "select installed_rank, version, script, checksum, success, type"
        " from flyway_schema_history order by installed_rank",
        "flyway_schema_history",
    )
    rep = LedgerReport("flyway", [m.name for m in disk], checksums_compared=True)
    versioned = {m.name: m for m in disk if not m.extra["repeatable"]}
    repeatable = {m.name: m for m in disk if m.extra["repeatable"]}
    baseline: str | None = None
    seen: dict[str, tuple[Any, ...]] = {}
    for r in rows:
        _, version, script, _checksum, success, typ = r
        if typ in ("SCHEMA", "DELETE"):
            continue
        if typ == "BASELINE":
            baseline = version
            continue
        key = flyway_version(version) if version else script
        if not success:
            rep.failed.append({"migration": key, "script": script, "rank": r[0]})
            continue
        seen[key] = r
    for key, r in seen.items():
        disk_m = versioned.get(key) or repeatable.get(key)
        if disk_m is None:
            rep.applied_not_on_disk.append(key)
            continue
        rep.applied.append(key)
        if r[3] != disk_m.checksum:
            if disk_m.extra["repeatable"]:
                rep.pending.append(key)  # a changed repeatable migration is re-run by flyway
            else:
                rep.checksum_mismatch.append(
                    {"migration": key, "recorded": r[3], "on_disk": disk_m.checksum}
                )

    def _vkey(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    failed = {f["migration"] for f in rep.failed}
    for m in disk:
        if m.name in seen or m.name in failed:
            continue
        if (
            baseline
            and not m.extra["repeatable"]
            and _vkey(m.name) <= _vkey(flyway_version(baseline))
        ):
            continue
        rep.pending.append(m.name)
    if baseline:
        rep.notes.append(f"baseline at version {baseline}")
    return rep


def _compare_golang(conn: psycopg.Connection, disk: list[DiskMigration]) -> LedgerReport:
    rows = _rows(conn, "select version, dirty from schema_migrations", "schema_migrations")
    rep = LedgerReport("golang-migrate", [m.name for m in disk])
    rep.notes.append("golang-migrate records no checksums: only the version and dirty flag")
    if len(rows) != 1:
        rep.notes.append(f"schema_migrations has {len(rows)} rows (expected 1)")
        if not rows:
            rep.pending = [m.name for m in disk]
            return rep
    version, dirty = int(rows[0][0]), bool(rows[0][1])
    if dirty:
        rep.failed.append({"migration": str(version), "dirty": True})
    versions = [m.extra["version"] for m in disk]
    if version not in versions:
        rep.applied_not_on_disk.append(str(version))
    # A dirty version failed part way: the ones below it are applied, it is not.
    rep.applied = [
        m.name
        for m in disk
        if m.extra["version"] < version or (m.extra["version"] == version and not dirty)
    ]
    rep.pending = [m.name for m in disk if m.extra["version"] > version]
    return rep


@dataclass(frozen=True)
class LedgerKind:
    """One migration tool, as relnb needs it: its migrations on disk and its ledger table.

    A plug-in for another tool registers one under the entry point group
    `relnb.migration_ledgers` (name: the `project.migrations_kind` it answers to).
    """

    read_disk: Callable[[Path], list[DiskMigration]]
    compare: Callable[[psycopg.Connection, list[DiskMigration], Sequence[str] | None], LedgerReport]


def _ledger_shape(value: Any) -> str | None:
    if callable(getattr(value, "read_disk", None)) and callable(getattr(value, "compare", None)):
        return None
    return "needs read_disk(migrations_dir) and compare(conn, disk, apps), like relnb's LedgerKind"


LEDGERS: Registry[LedgerKind] = Registry("migration ledger", "relnb.migration_ledgers", _ledger_shape)
for _kind, _compare in (
    ("prisma", lambda conn, disk, apps: _compare_prisma(conn, disk)),
    ("alembic", lambda conn, disk, apps: _compare_alembic(conn, disk)),
    ("django", _compare_django),
    ("flyway", lambda conn, disk, apps: _compare_flyway(conn, disk)),
    ("golang-migrate", lambda conn, disk, apps: _compare_golang(conn, disk)),
):
    LEDGERS.register(_kind, LedgerKind(DISK_READERS[_kind], _compare))


def read_ledger(
    conn: psycopg.Connection,
    kind: str,
    migrations_dir: str | Path,
    *,
    apps: Sequence[str] | None = None,
) -> LedgerReport:
    """Compare the ledger on `conn` with the files; raises LedgerMissing if there is no ledger."""
    ledger = LEDGERS.get(kind)
    return ledger.compare(conn, ledger.read_disk(Path(migrations_dir)), apps)


def _short(items: Iterable[Any], n: int = 3) -> str:
    items = [str(i) for i in items]
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def verify_ledger(
    database_url: str,
    kind: str,
    migrations_dir: str | Path,
    *,
    apps: Sequence[str] | None = None,
    statement_timeout_ms: int = 5000,
    lock_timeout_ms: int = 1000,
    connect_timeout_s: int = 10,
) -> Outcome:
    """B2/D3 verification: every migration on disk applied, unchanged, none failed or unknown."""
    if kind not in LEDGERS:
        return Outcome.failed(
            f"unknown ledger kind {kind!r}; use one of {', '.join(LEDGERS.names())}"
            " (or install the plug-in that reads it)"
        )
    mdir = Path(migrations_dir)
    if not mdir.is_dir():
        return Outcome.inconclusive(f"migrations directory {mdir} does not exist")
    where = display_url(database_url)
    ev: dict[str, Any] = {"database": where, "migrations_dir": str(mdir), "kind": kind}
    try:
        conn = readonly_connect(
            database_url,
            statement_timeout_ms=statement_timeout_ms,
            lock_timeout_ms=lock_timeout_ms,
            connect_timeout_s=connect_timeout_s,
        )
    except Exception as exc:
        return Outcome.inconclusive(connect_error(exc, database_url, where), **ev)
    try:
        with conn:
            ev["session"] = session_proof(conn)
            try:
                rep = read_ledger(conn, kind, mdir, apps=apps)
            except LedgerMissing as exc:
                return Outcome.failed(
                    f"{exc} in {where}: no {kind} migration has ever been applied there", **ev
                )
    except Exception as exc:
        return Outcome.inconclusive(
            f"reading the {kind} ledger in {where} failed: {scrub(str(exc)).strip()[:200]}", **ev
        )
    ev["ledger"] = rep.to_dict()
    if not rep.on_disk:
        return Outcome.inconclusive(f"no {kind} migrations found in {mdir}", **ev)
    problems = []
    if rep.failed:
        problems.append(f"{len(rep.failed)} failed: {_short(f['migration'] for f in rep.failed)}")
    if rep.checksum_mismatch:
        problems.append(
            f"{len(rep.checksum_mismatch)} changed after being applied (checksum mismatch): "
            + _short(c["migration"] for c in rep.checksum_mismatch)
        )
    if rep.applied_not_on_disk:
        problems.append(
            f"{len(rep.applied_not_on_disk)} applied but not on disk: "
            + _short(rep.applied_not_on_disk)
        )
    if rep.pending:
        problems.append(f"{len(rep.pending)} not applied: {_short(rep.pending)}")
    if problems:
        return Outcome.failed(f"{kind} ledger in {where}: " + "; ".join(problems), **ev)
    how = "checksums match" if rep.checksums_compared else "no checksums in this ledger"
    return Outcome.passed(
        f"all {len(rep.on_disk)} {kind} migrations applied in {where} ({how})", **ev
    )
