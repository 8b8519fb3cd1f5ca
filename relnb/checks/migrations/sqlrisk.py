"""What a migration's SQL says before it touches a database: statements, risks, transactions.

Three sources of findings, all reported with rule, statement text and line:

- **relnb's own AST rules** (pglast, PostgreSQL's real grammar): destructive changes (A4
  evidence), statements that do size-proportional work under a lock (scans, index builds,
  backfills), and statements that cannot run inside a transaction block.
- **squawk** (`squawk --reporter json`), mapped from its 0-based lines back to statements. Its
  findings are advice, never the verdict alone: it flags varchar widening (no rewrite) and
  misses `ADD COLUMN ... bigserial` (rewrite); the lock trace settles both.
- **How the migration tool runs the file.** Prisma's schema engine sends migration.sql as one
  simple-query message (`apply_migration_script` → `simple_query(script)`, prisma-engines
  sql-schema-connector). PostgreSQL runs a multi-statement message as one implicit transaction,
  so the file is atomic, and any statement that refuses transaction blocks (CREATE INDEX
  CONCURRENTLY, VACUUM, ...) fails with SQLSTATE 25001 there — even after an explicit COMMIT in
  the same file (verified on PG 15). A file with a single statement runs in autocommit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...redact import scrub

# How a tool hands a migration file to PostgreSQL.
TOOL_MODES = {
    # One simple-query message: >1 statement ⇒ implicit transaction; 1 statement ⇒ autocommit.
    "prisma": "single-message",
    # golang-migrate's postgres driver also sends the whole file in one Exec by default.
    "golang-migrate": "single-message",
    # Tools that open a transaction per file (flyway default, alembic transaction_per_migration).
    "transaction": "wrapped",
    "flyway": "wrapped",
    # SQL rendered by the tool with its own BEGIN/COMMIT (alembic --sql, django sqlmigrate)
    "alembic": "autocommit",
    "django": "autocommit",
    # `psql -f file` without -1: each statement autocommits unless the file says BEGIN.
    "psql": "autocommit",
}

_STATEMENT_PREVIEW = 400


@dataclass(frozen=True)
class Statement:
    """One top-level statement of a migration file (1-based lines, character offsets)."""

    index: int
    text: str
    line: int
    end_line: int
    kind: str
    node: Any = field(repr=False, compare=False, default=None)

    @property
    def preview(self) -> str:
        one = " ".join(self.text.split())
        return one if len(one) <= _STATEMENT_PREVIEW else one[: _STATEMENT_PREVIEW - 1] + "…"


@dataclass
class Finding:
    """One thing worth a reviewer's attention, tied to a statement when there is one."""

    rule: str
    severity: str  # error (fails C3 unless waived) | warning | info
    message: str
    source: str  # relnb | squawk | trace | apply
    statement: str | None = None
    line: int | None = None
    table: str | None = None
    waived: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not out["detail"]:
            out.pop("detail")
        return out


@dataclass(frozen=True)
class Work:
    """Size-proportional work a statement does on a table while holding its lock."""

    kind: str  # rewrite-candidate | scan | index-build | backfill
    table: str  # schema-qualified when the SQL qualifies it, else bare
    why: str
    column: str | None = None


class SqlParseError(ValueError):
    """Not SQL pglast can parse: C3 turns it into an error finding with pglast's message, never a pass."""


# --------------------------------------------------------------------------- parsing


def parse_statements(sql: str) -> list[Statement]:
    """Split and parse with pglast; raises SqlParseError with pglast's message on bad SQL."""
    from pglast import parse_sql
    from pglast.parser import ParseError

    try:
        raw = parse_sql(sql)
    except ParseError as exc:
        raise SqlParseError(str(exc)) from exc
    out: list[Statement] = []
    for i, rs in enumerate(raw):
        start = rs.stmt_location or 0
        length = rs.stmt_len or (len(sql) - start)
        text = sql[start : start + length].strip()
        line = sql.count("\n", 0, start) + 1
        # Leading comments/blank lines belong to the statement's location in pglast; skip them.
        lead = sql[start : start + length]
        line += lead[: len(lead) - len(lead.lstrip())].count("\n")
        out.append(
            Statement(
                index=i,
                text=text,
                line=line,
                end_line=line + text.count("\n"),
                kind=type(rs.stmt).__name__,
                node=rs.stmt,
            )
        )
    return out


def _rangevar(rv: Any) -> str:
    if rv is None:
        return "?"
    name = rv.relname
    return f"{rv.schemaname}.{name}" if getattr(rv, "schemaname", None) else name


def _names(seq: Any) -> str:
    return ".".join(getattr(s, "sval", str(s)) for s in (seq or ()))


def _subtype(cmd: Any) -> str:
    from pglast.enums import AlterTableType

    try:
        return AlterTableType(cmd.subtype).name
    except ValueError:  # pragma: no cover - grammar drift
        return str(cmd.subtype)


def _constraints(coldef: Any) -> list[Any]:
    return list(getattr(coldef, "constraints", None) or ())


def _contype(c: Any) -> str:
    from pglast.enums import ConstrType

    return ConstrType(c.contype).name


# --------------------------------------------------------------------------- transactions


def is_transaction_control(stmt: Statement) -> bool:
    return stmt.kind == "TransactionStmt"


def non_transactional_reason(stmt: Statement, pg_major: int = 16) -> str | None:
    """Why this statement cannot run inside a transaction block (None if it can)."""
    n, kind = stmt.node, stmt.kind
    if kind == "IndexStmt" and n.concurrent:
        return "CREATE INDEX CONCURRENTLY cannot run inside a transaction block"
    if kind == "DropStmt" and n.concurrent:
        return "DROP INDEX CONCURRENTLY cannot run inside a transaction block"
    if kind == "ReindexStmt":
        params = {d.defname for d in (n.params or ())}
        if "concurrently" in params:
            return "REINDEX CONCURRENTLY cannot run inside a transaction block"
        from pglast.enums import ReindexObjectType

        if ReindexObjectType(n.kind).name in ("REINDEX_OBJECT_DATABASE", "REINDEX_OBJECT_SYSTEM"):
            return "REINDEX DATABASE/SYSTEM cannot run inside a transaction block"
    if kind == "VacuumStmt" and n.is_vacuumcmd:
        return "VACUUM cannot run inside a transaction block"
    if kind in ("CreatedbStmt", "DropdbStmt"):
        return "CREATE/DROP DATABASE cannot run inside a transaction block"
    if kind in ("CreateTableSpaceStmt", "DropTableSpaceStmt", "AlterSystemStmt"):
        return f"{kind.removesuffix('Stmt')} cannot run inside a transaction block"
    if kind == "AlterEnumStmt" and n.newVal is not None and n.oldVal is None and pg_major < 12:
        return "ALTER TYPE ... ADD VALUE cannot run inside a transaction block before PostgreSQL 12"
    if kind == "AlterTableStmt":
        for cmd in n.cmds or ():
            if _subtype(cmd) == "AT_DetachPartition" and getattr(cmd.def_, "concurrent", False):
                return "DETACH PARTITION CONCURRENTLY cannot run inside a transaction block"
    return None


@dataclass(frozen=True)
class TransactionPlan:
    """Whether the migration will run inside a transaction, and what that breaks."""

    tool: str
    mode: str
    runs_in_transaction: bool
    explicit_begin: bool
    how: str
    non_transactional: tuple[dict[str, Any], ...] = ()

    def inside(self, entry: dict[str, Any]) -> bool:
        """Does this non-transactional statement end up inside a transaction block? A tool model
        says per statement (txmodel); the file-level plan says for the whole file."""
        return bool(entry.get("in_transaction", self.runs_in_transaction))

    @property
    def will_fail(self) -> bool:
        """A statement that refuses transaction blocks is inside one."""
        return any(self.inside(n) for n in self.non_transactional)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "mode": self.mode,
            "runs_in_transaction": self.runs_in_transaction,
            "explicit_begin": self.explicit_begin,
            "how": self.how,
            "non_transactional": list(self.non_transactional),
            "will_fail": self.will_fail,
        }


def transaction_plan(
    statements: Sequence[Statement], tool: str = "prisma", pg_major: int = 16
) -> TransactionPlan:
    mode = TOOL_MODES.get(tool)
    if mode is None:
        raise ValueError(f"unknown migration tool {tool!r}; known: {', '.join(TOOL_MODES)}")
    body = [s for s in statements if not is_transaction_control(s)]
    explicit = any(_txkind(s) in ("TRANS_STMT_BEGIN", "TRANS_STMT_START") for s in statements)
    nontx = tuple(
        {"line": s.line, "statement": s.preview, "reason": r}
        for s in body
        if (r := non_transactional_reason(s, pg_major))
    )
    if mode == "single-message":
        multi = len(statements) > 1
        in_tx = multi or explicit
        how = f"{tool} sends the file as one simple-query message: " + (
            f"{len(statements)} statements run as one implicit transaction (atomic)"
            if multi
            else "a single statement runs in autocommit (its own transaction)"
        )
    elif mode == "wrapped":
        in_tx = True
        how = f"{tool} runs the file inside one transaction"
    else:
        in_tx = explicit
        how = "each statement autocommits" + (
            " except inside the file's BEGIN…COMMIT" if explicit else ""
        )
        if explicit:
            nontx = tuple(n for n in nontx if _inside_explicit(statements, n["line"]))
    return TransactionPlan(tool, mode, in_tx, explicit, how, nontx)


def _txkind(stmt: Statement) -> str:
    if stmt.kind != "TransactionStmt":
        return ""
    from pglast.enums import TransactionStmtKind

    return TransactionStmtKind(stmt.node.kind).name


def _inside_explicit(statements: Sequence[Statement], line: int) -> bool:
    depth = False
    for s in statements:
        k = _txkind(s)
        if k in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            depth = True
        elif k in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK"):
            depth = False
        elif s.line == line:
            return depth
    return False


# --------------------------------------------------------------------------- rules


def destructive_changes(sql: str | Sequence[Statement]) -> list[Finding]:
    """Changes old app code may not survive (A4 evidence): drops, renames, new NOT NULLs, types."""
    from pglast.enums import ObjectType

    stmts = parse_statements(sql) if isinstance(sql, str) else list(sql)
    out: list[Finding] = []

    def add(rule: str, msg: str, s: Statement, table: str | None) -> None:
        out.append(Finding(rule, "warning", msg, "relnb", s.preview, s.line, table))

    for s in stmts:
        n = s.node
        if s.kind == "DropStmt":
            typ = ObjectType(n.removeType).name.removeprefix("OBJECT_").lower()
            for obj in n.objects or ():
                name = (
                    _names(obj)
                    if isinstance(obj, tuple | list)
                    else _names(getattr(obj, "names", ()))
                )
                if typ in (
                    "table",
                    "index",
                    "view",
                    "materialized_view",
                    "type",
                    "schema",
                    "sequence",
                ):
                    add(
                        f"drop-{typ.replace('_', '-')}",
                        f"drops {typ.replace('_', ' ')} {name}",
                        s,
                        name,
                    )
        elif s.kind == "TruncateStmt":
            for rv in n.relations or ():
                add("truncate", f"deletes every row of {_rangevar(rv)}", s, _rangevar(rv))
        elif s.kind == "DeleteStmt" and n.whereClause is None:
            add(
                "delete-all-rows",
                f"deletes every row of {_rangevar(n.relation)}",
                s,
                _rangevar(n.relation),
            )
        elif s.kind == "RenameStmt":
            rt = ObjectType(n.renameType).name
            table = _rangevar(n.relation) if n.relation else None
            if rt == "OBJECT_COLUMN":
                add("rename-column", f"renames column {table}.{n.subname} to {n.newname}", s, table)
            elif rt == "OBJECT_TABLE":
                add("rename-table", f"renames table {table} to {n.newname}", s, table)
            elif rt == "OBJECT_TABCONSTRAINT":
                add("rename-constraint", f"renames constraint {n.subname} on {table}", s, table)
            elif rt == "OBJECT_TYPE":
                add("rename-type", f"renames type {_names(n.object)} to {n.newname}", s, None)
        elif s.kind == "AlterEnumStmt" and n.oldVal is not None:
            typ = _names(n.typeName)
            add("rename-enum-value", f"renames value {n.oldVal!r} of {typ} to {n.newVal!r} (old code writes {n.oldVal!r})", s, None)
        elif s.kind == "AlterTableStmt":
            table = _rangevar(n.relation)
            for cmd in n.cmds or ():
                st = _subtype(cmd)
                if st == "AT_DropColumn":
                    add("drop-column", f"drops column {table}.{cmd.name}", s, table)
                elif st == "AT_SetNotNull":
                    add("set-not-null", f"makes {table}.{cmd.name} NOT NULL", s, table)
                elif st == "AT_AlterColumnType":
                    add(
                        "column-type-change",
                        # what the old app version sees: PostgreSQL answers "cached plan must
                        # not change result type" to statements it prepared before the change
                        f"changes the type of {table}.{cmd.name} (old app instances' prepared "
                        "statements on it fail until they reconnect)",
                        s,
                        table,
                    )
                elif st == "AT_DropConstraint":
                    add("drop-constraint", f"drops constraint {cmd.name} on {table}", s, table)
                elif st == "AT_AddColumn":
                    col = cmd.def_
                    kinds = {_contype(c) for c in _constraints(col)}
                    has_default = "CONSTR_DEFAULT" in kinds or "CONSTR_IDENTITY" in kinds
                    has_default = has_default or "CONSTR_GENERATED" in kinds
                    serial = _names(col.typeName.names).split(".")[-1] in (
                        "serial",
                        "bigserial",
                        "smallserial",
                        "serial4",
                        "serial8",
                        "serial2",
                    )
                    if ("CONSTR_NOTNULL" in kinds or "CONSTR_PRIMARY" in kinds) and not (
                        has_default or serial
                    ):
                        add(
                            "add-column-not-null-no-default",
                            f"adds NOT NULL column {table}.{col.colname} without a default"
                            " (fails on a non-empty table; old code cannot insert)",
                            s,
                            table,
                        )
    return out


def size_proportional_work(stmt: Statement) -> list[Work]:
    """Work whose duration grows with table size, as the SQL states it (the trace adds rewrites)."""
    n, kind = stmt.node, stmt.kind
    out: list[Work] = []
    if kind == "IndexStmt" and not n.concurrent:
        out.append(
            Work("index-build", _rangevar(n.relation), "builds an index without CONCURRENTLY")
        )
    elif kind in ("UpdateStmt", "DeleteStmt") and n.whereClause is None:
        verb = "updates" if kind == "UpdateStmt" else "deletes"
        out.append(Work("backfill", _rangevar(n.relation), f"{verb} every row (no WHERE)"))
    elif kind == "AlterTableStmt":
        table = _rangevar(n.relation)
        for cmd in n.cmds or ():
            st = _subtype(cmd)
            if st == "AT_SetNotNull":
                out.append(
                    Work("scan", table, f"SET NOT NULL scans {table} to check {cmd.name}", cmd.name)
                )
            elif st == "AT_AlterColumnType":
                out.append(
                    Work("rewrite-candidate", table, f"changes the type of {cmd.name}", cmd.name)
                )
            elif st == "AT_ValidateConstraint":
                # Normally under SHARE UPDATE EXCLUSIVE (harmless); judged by the lock really held,
                # which is stronger when the constraint was added in the same transaction.
                out.append(Work("scan", table, f"VALIDATE CONSTRAINT {cmd.name} scans every row"))
            elif st == "AT_AddConstraint":
                c = cmd.def_
                ct = _contype(c)
                if ct in ("CONSTR_CHECK", "CONSTR_FOREIGN") and not c.skip_validation:
                    what = "CHECK" if ct == "CONSTR_CHECK" else "FOREIGN KEY"
                    out.append(
                        Work("scan", table, f"adds {what} without NOT VALID (validates every row)")
                    )
                elif ct in ("CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION") and not getattr(
                    c, "indexname", None
                ):
                    out.append(
                        Work(
                            "index-build", table, "adds a constraint that builds its index in place"
                        )
                    )
            elif st == "AT_AddColumn":
                col = cmd.def_
                if _names(col.typeName.names).split(".")[-1] in (
                    "serial",
                    "bigserial",
                    "smallserial",
                ):
                    out.append(
                        Work("rewrite-candidate", table, "adds a serial column (volatile default)")
                    )
                for c in _constraints(col):
                    ct = _contype(c)
                    if ct == "CONSTR_FOREIGN" and not c.skip_validation:
                        out.append(
                            Work("scan", table, "adds a column with a validated FOREIGN KEY")
                        )
                    if ct in ("CONSTR_PRIMARY", "CONSTR_UNIQUE"):
                        out.append(
                            Work(
                                "index-build",
                                table,
                                "adds a column with a PRIMARY KEY/UNIQUE index",
                            )
                        )
    return out


def referenced_tables(stmt: Statement) -> list[str]:
    """Tables a statement names (targets and FK targets), for lock/size lookups."""
    n, kind = stmt.node, stmt.kind
    out: list[str] = []
    rel = getattr(n, "relation", None)
    if rel is not None and hasattr(rel, "relname"):
        out.append(_rangevar(rel))
    if kind == "AlterTableStmt":
        for cmd in n.cmds or ():
            c = cmd.def_
            if c is not None and type(c).__name__ == "Constraint" and getattr(c, "pktable", None):
                out.append(_rangevar(c.pktable))
    return out


# --------------------------------------------------------------------------- squawk


def squawk_binary() -> str | None:
    """The squawk executable beside this Python (the squawk-cli wheel), or on PATH."""
    import sys

    beside = Path(sys.executable).parent / "squawk"
    if beside.exists():
        return str(beside)
    return shutil.which("squawk")


def squawk_lint(
    sql: str,
    statements: Sequence[Statement] | None = None,
    *,
    assume_in_transaction: bool = False,
    pg_version: str | None = None,
    exclude: Iterable[str] = (),
    timeout: float = 60,
) -> tuple[list[Finding], str | None]:
    """Run squawk on `sql`; returns (findings, error). Squawk exits 1 when it finds anything."""
    exe = squawk_binary()
    if exe is None:
        return [], "squawk not found: pip install squawk-cli"
    stmts = list(statements) if statements is not None else parse_statements(sql)
    with tempfile.TemporaryDirectory(prefix="relnb-squawk-") as tmp:
        path = os.path.join(tmp, "migration.sql")
        Path(path).write_text(sql, encoding="utf-8")
        cmd = [exe, "--reporter", "json", path]
        if assume_in_transaction:
            cmd.append("--assume-in-transaction")
        if pg_version:
            cmd.append(f"--pg-version={pg_version}")
        excluded = list(exclude)
        if excluded:
            cmd.append(f"--exclude={','.join(excluded)}")
        try:
            got = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except (subprocess.TimeoutExpired, OSError) as exc:
            return [], scrub(f"squawk did not run: {exc}")
    if got.returncode not in (0, 1):
        return [], scrub(f"squawk exited {got.returncode}: {got.stderr.strip()[:300]}")
    try:
        raw = json.loads(got.stdout or "[]")
    except json.JSONDecodeError:
        return [], scrub(f"squawk printed no JSON: {got.stdout[:200]!r}")
    findings = []
    for v in raw:
        line = int(v.get("line", 0)) + 1  # squawk lines are 0-based
        stmt = next((s for s in stmts if s.line <= line <= s.end_line), None)
        level = str(v.get("level", "warning")).lower()
        msg = str(v.get("message", ""))
        if v.get("help"):
            msg += f" (help: {v['help']})"
        findings.append(
            Finding(
                rule=f"squawk:{v.get('rule_name', '?')}",
                # Advice only: the lock trace decides (squawk has known false positives/misses).
                severity="warning",
                message=msg,
                source="squawk",
                statement=stmt.preview if stmt else None,
                line=line,
                detail={"squawk_level": level},
            )
        )
    return findings, None
