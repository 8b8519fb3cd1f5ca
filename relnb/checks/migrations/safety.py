"""C3: is a release's migration safe to run on production?

The verdict rests on measured facts, not on lint alone: the lock trace (locktrace.py) says which
lock each statement takes and whether it rewrote a table; production statistics
(`pg_class.reltuples`, `pg_total_relation_size`, read through a read-only session) say how big
that table is. A statement fails the gate when it does size-proportional work — a rewrite, a
validating scan, an index build, an unbounded UPDATE/DELETE — while holding a lock that blocks
writes (or, for backfills, row locks on every row) on a table at or above the size thresholds.
Without production statistics the size is unknown, and the gate is inconclusive, never green.
squawk findings are advice for the reviewer, not the verdict. A DROP or RENAME of a column or
table the previous release reads breaks the instances still running it during the rollout: it
fails C3 unless A4's sign-off note names it (the team's expand/contract plan).
How the statements are grouped into transactions is the tool's (txmodel.py); the run is
replayed block by block (replay.py) and each migration judged here.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ...redact import connect_error, scrub
from ...results import Outcome
from .included import GitError, Migration, discover_migrations, new_migrations_since
from .ledger import LedgerMissing, display_url, read_ledger, readonly_connect, session_proof
from .locktrace import (
    LOCK_TITLES,
    MigrationTrace,
    blocks_reads,
    blocks_writes,
    server_major,
    shadow_database,
)
from .replay import copy_schema, replay_run
from .sizes import (
    DEFAULT_LARGE_BYTES,
    DEFAULT_LARGE_ROWS,
    bare_name,
    is_large,
    size_text,
    table_sizes,
)
from .sqlrisk import (
    Finding,
    SqlParseError,
    Statement,
    TransactionPlan,
    destructive_changes,
    parse_statements,
    size_proportional_work,
    squawk_lint,
    transaction_plan,
)
from .txmodel import ToolOptions, build_model, reindex

# --------------------------------------------------------------------------- judgement


_PHRASES = {
    "scan": "scans every row while holding it",
    "index-build": "builds an index while holding it",
    "backfill": "locks every row it updates in one transaction",
}
_RULE_BY_PHRASE = {
    "rewrites it": "rewrite",
    _PHRASES["scan"]: "scan-under-lock",
    _PHRASES["index-build"]: "index-build-under-lock",
    _PHRASES["backfill"]: "full-table-backfill",
}


def _judge_statement(
    s: Statement,
    st: Any,
    preexisting: set[str],
    sizes: dict[str, dict[str, Any]] | None,
    large_rows: int | None,
    large_bytes: int | None,
) -> list[Finding]:
    out: list[Finding] = []
    if st is None or not st.executed:
        return out
    held = {bare_name(t): m for t, m in st.held.items()}
    heavy: list[tuple[str, str, str]] = []  # (table, action phrase, lock mode)
    for t in st.rewritten if s.kind != "TruncateStmt" else ():  # TRUNCATE swaps in empty files
        t = bare_name(t)
        if t in preexisting:
            heavy.append((t, "rewrites it", held.get(t, "AccessExclusiveLock")))
    for w in size_proportional_work(s):
        t = bare_name(w.table)
        if t not in preexisting:
            continue
        if w.kind == "rewrite-candidate":
            if t not in {bare_name(x) for x in st.rewritten}:
                out.append(
                    Finding(
                        "no-rewrite",
                        "info",
                        f"{w.why}: the trace shows no rewrite of {t} (catalog-only change)",
                        "trace",
                        s.preview,
                        s.line,
                        t,
                    )
                )
            continue
        if w.kind == "scan" and w.column and w.column in st.proven_not_null:
            out.append(
                Finding(
                    "not-null-proven-by-check",
                    "info",
                    f"a valid CHECK ({w.column} IS NOT NULL) lets PostgreSQL skip the scan of {t}",
                    "trace",
                    s.preview,
                    s.line,
                    t,
                )
            )
            continue
        phrase = _PHRASES[w.kind]
        mode = held.get(t, "RowExclusiveLock" if w.kind == "backfill" else None)
        if w.kind != "backfill" and not blocks_writes(mode):
            continue
        if not any(h[0] == t and h[1] == phrase for h in heavy):
            heavy.append((t, phrase, mode or "?"))
    for t, phrase, mode in heavy:
        lock = LOCK_TITLES.get(mode, mode)
        blocked = "reads and writes" if blocks_reads(mode) else "writes"
        size = (sizes or {}).get(t)
        rule = _RULE_BY_PHRASE[phrase]
        detail = {"lock": lock, "blocks": blocked}
        if sizes is None or size is None:
            out.append(
                Finding(
                    rule,
                    "unknown",
                    f"{s.preview} takes {lock} on {t} and {phrase}; table size unknown"
                    " (give a read-only production URL)",
                    "trace",
                    s.preview,
                    s.line,
                    t,
                    detail=detail,
                )
            )
            continue
        detail["size"] = size
        large = is_large(size, large_rows, large_bytes)
        out.append(
            Finding(
                rule,
                "error" if large else "info",
                f"{s.preview} takes {lock} on {t} ({size_text(size)}) and {phrase}"
                + ("" if large else " — below the size thresholds"),
                "trace",
                s.preview,
                s.line,
                t,
                detail=detail,
            )
        )
    # Catalog-only ACCESS EXCLUSIVE on a big table is brief but queues behind long queries.
    heavy_tables = {h[0] for h in heavy}
    for t, mode in held.items():
        if t in preexisting and t not in heavy_tables and blocks_reads(mode):
            size = (sizes or {}).get(t)
            if size and is_large(size, large_rows, large_bytes):
                out.append(
                    Finding(
                        "brief-access-exclusive",
                        "warning",
                        f"{s.preview} takes ACCESS EXCLUSIVE on {t} ({size_text(size)}) briefly"
                        " (no rewrite/scan); set lock_timeout so it cannot queue behind long queries",
                        "trace",
                        s.preview,
                        s.line,
                        t,
                    )
                )
    return out


class _SqlMigration(Protocol):
    name: str
    path: str

    @property
    def sql(self) -> str: ...


_DESTRUCTIVE = ("drop-column", "drop-table", "rename-column", "rename-table")
_COLUMN_TARGET = re.compile(r"^(?:drops|renames) column (\S+)\.([^.\s]+)")


def _names_in(note: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", note, re.I) is not None


def plan_covers(note: str | None, f: Finding) -> bool:
    """Does A4's sign-off note name this change? A column as `table.column`, or its table and
    column both; a table by its name. The note is the team's expand/contract plan for it."""
    if not note:
        return False
    if m := _COLUMN_TARGET.match(f.message):
        table, col = bare_name(m.group(1)), m.group(2)
        return _names_in(note, f"{table}.{col}") or (_names_in(note, table) and _names_in(note, col))
    return _names_in(note, bare_name(f.table or "?"))


def _destructive_verdicts(
    destructive: Sequence[Finding], preexisting: set[str] | None, expand_contract: str | None
) -> list[Finding]:
    out = []
    for f in destructive:
        if f.rule not in _DESTRUCTIVE:
            continue
        t = bare_name(f.table or "")
        if preexisting is not None and t not in preexisting:
            continue  # made by this release: the previous one never read it
        if plan_covers(expand_contract, f):
            out.append(Finding("destructive-change-planned", "info",
                               f"{f.message}: A4's sign-off names the expand/contract plan for it", "relnb",
                               f.statement, f.line, f.table))
        else:
            out.append(Finding(
                "destructive-without-plan", "error",
                f"{f.message}, which the previous release still reads: A4's sign-off must name the"
                " expand/contract plan for it" + ("" if expand_contract else " (A4 is not signed off)"),
                "relnb", f.statement, f.line, f.table))
    return out


def analyze_migration(
    migration: _SqlMigration,
    trace: MigrationTrace | None,
    *,
    tool: str,
    pg_major: int,
    sizes: dict[str, dict[str, Any]] | None,
    large_rows: int | None = DEFAULT_LARGE_ROWS,
    large_bytes: int | None = DEFAULT_LARGE_BYTES,
    use_squawk: bool = True,
    statements: Sequence[Statement] | None = None,
    plan: TransactionPlan | None = None,
    expand_contract: str | None = None,
    refused: str | None = None,
) -> tuple[list[Finding], dict[str, Any]]:
    """All findings for one migration, plus its evidence record. `statements`/`plan` come from
    the run's transaction model when it spans migrations (txmodel); else they are read from the
    file. `expand_contract` is A4's sign-off note; `refused` why the tool will not run it."""
    sql = migration.sql
    ev: dict[str, Any] = {"name": migration.name, "path": migration.path}
    if getattr(migration, "rendered_by", None):
        ev["rendered_by"] = migration.rendered_by  # type: ignore[attr-defined]
        ev["sql"] = sql[:4000]
    try:
        stmts = list(statements) if statements is not None else parse_statements(sql)
    except SqlParseError as exc:
        f = Finding("parse-error", "error", f"does not parse: {exc}", "relnb")
        return [f], {**ev, "findings": [f.to_dict()]}
    findings: list[Finding] = []
    plan = plan or transaction_plan(stmts, tool, pg_major)
    ev["transaction"] = plan.to_dict()
    if refused:
        findings.append(Finding("tool-refuses", "error", refused, "relnb"))
    for op in getattr(migration, "opaque", ()) or ():
        findings.append(Finding(
            "unseen-operation", "unknown",
            f"a {op} operation: its SQL is not rendered, so what it locks or rewrites cannot be traced"
            " (review it, then waive with allow)", "relnb"))
    for n in plan.non_transactional:
        if plan.inside(n):
            findings.append(
                Finding(
                    "non-transactional-in-transaction",
                    "error",
                    f"{n['reason']}, but {plan.how}: it will fail (SQLSTATE 25001)",
                    "relnb",
                    n["statement"],
                    n["line"],
                )
            )
        else:
            findings.append(
                Finding(
                    "runs-outside-transaction",
                    "warning",
                    f"{n['reason']}: it runs outside a transaction; a failure leaves partial"
                    " state (e.g. an INVALID index) to clean up by hand",
                    "relnb",
                    n["statement"],
                    n["line"],
                )
            )
    body = [s for s in stmts if s.kind != "TransactionStmt"]
    if not plan.runs_in_transaction and len(body) > 1:
        findings.append(
            Finding(
                "not-atomic",
                "warning",
                f"{len(body)} statements without a transaction ({plan.how}): a failure part way"
                " leaves the schema half migrated",
                "relnb",
            )
        )
    destructive = destructive_changes(stmts)
    findings.extend(destructive)
    preexisting_t = {bare_name(t) for t in trace.tables_before} if trace is not None else set()
    findings.extend(_destructive_verdicts(destructive, preexisting_t if trace is not None else None, expand_contract))
    for f in destructive:
        t = bare_name(f.table or "")
        size = (sizes or {}).get(t)
        rows = (size or {}).get("rows") or 0
        if f.rule == "add-column-not-null-no-default" and t in preexisting_t and rows > 0:
            findings.append(
                Finding(
                    "will-fail-not-null",
                    "error",
                    f"adds a NOT NULL column without a default to {t}, which has {rows:,} rows"
                    " in production: it fails there (SQLSTATE 23502)",
                    "relnb",
                    f.statement,
                    f.line,
                    t,
                )
            )
    if use_squawk:
        sq, err = squawk_lint(
            sql, stmts, assume_in_transaction=plan.runs_in_transaction, pg_version=f"{pg_major}.0"
        )
        findings.extend(sq)
        if err:
            findings.append(Finding("squawk-unavailable", "warning", err, "squawk"))
    if trace is not None:
        ev["trace"] = trace.to_dict()
        preexisting = {bare_name(t) for t in trace.tables_before}
        by_index = {st.index: st for st in trace.statements}
        skipped_before = False
        for s in stmts:
            st = by_index.get(s.index)
            if st is None:
                continue
            if st.not_traced and s.kind != "TransactionStmt":
                skipped_before = True
            if st.error:
                findings.append(
                    Finding(
                        "fails-on-shadow" if not skipped_before else "not-traceable",
                        "error" if not skipped_before else "warning",
                        f"fails on the shadow database: {st.error['message']}"
                        f" (SQLSTATE {st.error['sqlstate']})"
                        + (
                            " — may depend on a statement the trace could not run"
                            if skipped_before
                            else ""
                        ),
                        "trace",
                        s.preview,
                        s.line,
                    )
                )
            findings.extend(_judge_statement(s, st, preexisting, sizes, large_rows, large_bytes))
        if trace.apply and not trace.apply.get("ok"):
            err = trace.apply.get("error") or {}
            findings.append(
                Finding(
                    "apply-fails",
                    "error",
                    f"applying it the way {tool} does fails: {err.get('message')}"
                    f" (SQLSTATE {err.get('sqlstate')})",
                    "apply",
                )
            )
    ev["findings"] = [f.to_dict() for f in findings]
    return findings, ev


def _waive(findings: list[Finding], migration: str, allow: Sequence[str]) -> None:
    for f in findings:
        if f.severity in ("error", "unknown") and (
            f.rule in allow or f"{migration}:{f.rule}" in allow
        ):
            f.waived = True


def _select_pending(
    migrations: list[Migration],
    pending: Sequence[str] | None,
    ledger_url: str | None,
    ledger_kind: str,
    migrations_dir: str | Path,
    repo: str | os.PathLike[str] | None,
    since_tag: str | None,
) -> tuple[list[str] | None, dict[str, Any], str | None]:
    if pending is not None:
        return list(pending), {"pending_from": "given"}, None
    if ledger_url:
        try:
            session = readonly_connect(ledger_url)
        except Exception as exc:
            return None, {}, f"cannot read the {ledger_kind} ledger: {connect_error(exc, ledger_url)}"
        try:
            with session as conn:
                proof = session_proof(conn)
                try:
                    rep = read_ledger(conn, ledger_kind, migrations_dir)
                    names = rep.pending + [f["migration"] for f in rep.failed]
                except LedgerMissing:
                    names = [m.name for m in migrations]
        except Exception as exc:
            return (
                None,
                {},
                f"cannot read the {ledger_kind} ledger at {display_url(ledger_url)}: {scrub(str(exc))[:200]}",
            )
        return (
            names,
            {"pending_from": f"ledger at {display_url(ledger_url)}", "ledger_session": proof},
            None,
        )
    if repo is not None and since_tag:
        rel = os.path.relpath(Path(migrations_dir).resolve(), Path(repo).resolve())
        try:
            names = new_migrations_since(repo, since_tag, rel)
        except GitError as exc:
            return None, {}, f"cannot list migrations new since {since_tag}: {exc}"
        return names, {"pending_from": f"git: added since {since_tag}"}, None
    return (
        None,
        {},
        "no way to tell which migrations are pending: give pending, ledger_url/production_url, or repo+since_tag",
    )


def check_migration_safety(
    migrations_dir: str | Path,
    admin_url: str,
    *,
    pending: Sequence[str] | None = None,
    production_url: str | None = None,
    ledger_url: str | None = None,
    ledger_kind: str = "prisma",
    repo: str | os.PathLike[str] | None = None,
    since_tag: str | None = None,
    tool: str = "prisma",
    layout: str = "prisma",
    large_rows: int | None = DEFAULT_LARGE_ROWS,
    large_bytes: int | None = DEFAULT_LARGE_BYTES,
    allow: Sequence[str] = (),
    use_squawk: bool = True,
    statement_timeout_ms: int = 60_000,
    options: ToolOptions | None = None,
    expand_contract: str | None = None,
) -> Outcome:
    """C3: lint, transaction plan and lock trace of every pending migration, judged on prod sizes.

    Pending = `pending` if given, else the ledger at `ledger_url` (default: `production_url`),
    else migrations added in git since `since_tag`. `allow` waives error findings by rule
    ("rewrite") or per migration ("20261101_widen_ids:rewrite"); waived findings stay in evidence.
    The shadow is rebuilt from the earlier migrations on disk; `options` carry what decides the
    tool's transaction model (the Prisma version, Flyway's mixed/group, ...);
    `expand_contract` is A4's sign-off note (destructive changes fail unless it names them).
    """
    migrations = discover_migrations(migrations_dir, layout)
    if not migrations:
        return Outcome.inconclusive(f"no {layout} migrations found in {migrations_dir}")
    names, ev, err = _select_pending(
        migrations,
        pending,
        ledger_url or (production_url if pending is None and not since_tag else None),
        ledger_kind,
        migrations_dir,
        repo,
        since_tag,
    )
    if err or names is None:
        return Outcome.inconclusive(err or "pending migrations unknown")
    known = {m.name for m in migrations}
    unknown = [n for n in names if n not in known]
    if unknown:
        return Outcome.failed(f"pending migration(s) not on disk: {', '.join(unknown)}", **ev)
    ev.update(migrations_dir=str(migrations_dir))
    pend = [m for m in migrations if m.name in names]
    earlier = [m for m in migrations if m.name not in names]
    return judge_migrations(
        pend,
        admin_url,
        tool=tool,
        evidence=ev,
        earlier_sql=[(m.name, m.sql) for m in earlier],
        production_url=production_url,
        large_rows=large_rows,
        large_bytes=large_bytes,
        allow=allow,
        use_squawk=use_squawk,
        statement_timeout_ms=statement_timeout_ms,
        options=options,
        expand_contract=expand_contract,
    )


def judge_migrations(
    pend: Sequence[_SqlMigration],
    admin_url: str,
    *,
    tool: str,
    evidence: dict[str, Any] | None = None,
    earlier_sql: Sequence[tuple[str, str]] | None = None,
    schema_from_production: bool = False,
    production_url: str | None = None,
    large_rows: int | None = DEFAULT_LARGE_ROWS,
    large_bytes: int | None = DEFAULT_LARGE_BYTES,
    allow: Sequence[str] = (),
    use_squawk: bool = True,
    statement_timeout_ms: int = 60_000,
    options: ToolOptions | None = None,
    expand_contract: str | None = None,
    refused: dict[str, str] | None = None,
) -> Outcome:
    """C3 on SQL the tool would run (`pend`, in apply order): the shadow gets the current schema
    (production's, copied with pg_dump, when `schema_from_production`; else `earlier_sql` replayed),
    then the run is traced and applied block by block under the tool's transaction model."""
    ev: dict[str, Any] = dict(evidence or {})
    opts = options or ToolOptions()
    ev.update(
        tool=tool,
        pending=[m.name for m in pend],
        thresholds={"rows": large_rows, "bytes": large_bytes},
        allow=list(allow),
    )
    if not pend:
        return Outcome.passed("no pending migrations", **ev)

    parsed: list[tuple[str, str, list[Statement]]] = []
    for m in pend:
        try:
            parsed.append((m.name, m.sql, parse_statements(m.sql)))
        except SqlParseError:
            continue
    numbered = reindex(parsed)
    stmts_of = {n: st for n, _, st in numbered}

    sizes: dict[str, dict[str, Any]] | None = None
    traces: dict[str, MigrationTrace] = {}
    import psycopg

    opened = False
    try:
        with shadow_database(admin_url) as shadow_url:
            pg_major = 16
            if schema_from_production and production_url:
                try:
                    ev["shadow_schema"] = copy_schema(production_url, shadow_url)
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    return Outcome.inconclusive(
                        f"cannot copy production's schema to the shadow database: {scrub(str(exc))[:300]}", **ev
                    )
            with psycopg.connect(shadow_url, autocommit=True) as conn:
                opened = True
                pg_major = server_major(conn)
                ev["shadow"] = {
                    "server": display_url(admin_url),
                    "pg_major": pg_major,
                    "schema_from": "production (pg_dump --schema-only)" if schema_from_production
                    else f"{len(earlier_sql or ())} earlier migration(s) replayed",
                }
                if not schema_from_production:
                    for name, sql in earlier_sql or ():
                        try:
                            conn.execute(sql)
                        except Exception as exc:
                            return Outcome.inconclusive(
                                f"cannot rebuild the current schema: earlier migration {name} fails on the"
                                f" shadow database: {scrub(str(exc)).splitlines()[0]}",
                                **ev,
                            )
                captured = any(getattr(m, "captured", False) for m in pend)
                run = build_model(tool, numbered, opts, pg_major, captured)
                run.refused.update(refused or {})
                ev["transaction_model"] = run.model
                ev["tool_options"] = opts.to_dict()
                traces = replay_run(
                    conn, run, [n for n, _, _ in numbered], pg_major=pg_major,
                    statement_timeout_ms=statement_timeout_ms,
                )
    except psycopg.Error as exc:
        # the driver quotes what it cannot parse of the admin URL: until a session is open
        # its text is not used (issue 22 item 2)
        why = scrub(str(exc)).strip()[:200] if opened else connect_error(exc, admin_url)
        return Outcome.inconclusive(
            f"cannot use a shadow database on {display_url(admin_url)}: {why}", **ev
        )

    touched = {
        bare_name(t)
        for tr in traces.values()
        for st in tr.statements
        for t in [*st.held, *st.rewritten]
        if bare_name(t) in {bare_name(x) for x in tr.tables_before}
    }
    if production_url:
        try:
            sizes, proof = table_sizes(production_url, touched)
            ev["production"] = {
                "url": display_url(production_url),
                "session": proof,
                "sizes": sizes,
            }
        except Exception as exc:
            error = connect_error(exc, production_url, "the production database")
            ev["production"] = {"url": display_url(production_url), "error": error}
            sizes = None

    all_findings: list[tuple[str, Finding]] = []
    ev["migrations"] = []
    for m in pend:
        stmts = stmts_of.get(m.name)
        fs, mev = analyze_migration(
            m,
            traces.get(m.name),
            tool=tool,
            pg_major=pg_major,
            sizes=sizes,
            large_rows=large_rows,
            large_bytes=large_bytes,
            use_squawk=use_squawk,
            statements=stmts,
            plan=run.plan_for(m.name, stmts, pg_major) if stmts is not None else None,
            expand_contract=expand_contract,
            refused=run.refused.get(m.name),
        )
        _waive(fs, m.name, allow)
        mev["findings"] = [f.to_dict() for f in fs]
        ev["migrations"].append(mev)
        all_findings.extend((m.name, f) for f in fs)

    errors = [(n, f) for n, f in all_findings if f.severity == "error" and not f.waived]
    unknown_f = [(n, f) for n, f in all_findings if f.severity == "unknown" and not f.waived]
    waived = [(n, f) for n, f in all_findings if f.waived]
    ev["counts"] = {
        "errors": len(errors),
        "unknown": len(unknown_f),
        "waived": len(waived),
        "warnings": sum(1 for _, f in all_findings if f.severity == "warning"),
    }
    more = lambda xs: f" (+{len(xs) - 1} more)" if len(xs) > 1 else ""  # noqa: E731
    if errors:
        n, f = errors[0]
        return Outcome.failed(f"{n}: {f.message}{more(errors)}", **ev)
    if unknown_f:
        n, f = unknown_f[0]
        why = ev.get("production", {}).get("error")
        tail = f" (production statistics unavailable: {why})" if why else ""
        return Outcome.inconclusive(f"{n}: {f.message}{more(unknown_f)}{tail}", **ev)
    note = f"; {len(waived)} finding(s) waived" if waived else ""
    return Outcome.passed(
        f"{len(pend)} pending migration(s) traced ({run.model.split(':')[0]} model): no long locks on large"
        f" tables, no rewrites or backfills of large tables, transactions OK{note}",
        **ev,
    )
