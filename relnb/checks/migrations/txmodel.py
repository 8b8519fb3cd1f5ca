"""How each migration tool wraps statements in transactions: the fact C3's verdict turns on.

The same SQL is safe under one tool and broken under another: `CREATE INDEX CONCURRENTLY` runs
when the tool sends it on its own and fails with SQLSTATE 25001 inside a transaction block, and
`ADD CONSTRAINT ... NOT VALID` followed by `VALIDATE` only avoids a long lock when the two are
committed separately. So every run is cut into *blocks*: statements that share one transaction
(the trace holds their locks together, the apply commits them together) or a statement that
runs on its own (autocommit). The models, with the tool behaviour each stands for:

- **prisma before 7.4, golang-migrate** (default driver): the file is sent as one simple-query
  message; PostgreSQL runs a multi-statement message as one implicit transaction.
- **prisma 7.4 and later, golang-migrate `x-multi-statement`**: the file is split and each
  statement sent alone (autocommit), except inside the file's own BEGIN … COMMIT.
- **flyway**: one transaction per migration. A migration made only of statements PostgreSQL
  refuses in a transaction (or with `executeInTransaction=false` in its `.conf`) runs without
  one; a migration mixing both is refused unless `mixed = true`, which runs it without one.
  `group = true` runs all pending migrations in one transaction.
- **alembic, django**: the SQL the tool renders (`alembic upgrade --sql`, `manage.py sqlmigrate`)
  carries its BEGIN/COMMIT as the tool would issue them — Alembic's one transaction for the whole
  run (or one per migration with `transaction_per_migration`, and `autocommit_block()`'s COMMIT/BEGIN),
  Django's BEGIN/COMMIT around each migration unless `atomic = False` — so the blocks follow them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .sqlrisk import Statement, TransactionPlan, is_transaction_control, non_transactional_reason

PRISMA_SPLIT_FROM = (7, 4)
SCRIPT_KINDS = ("alembic", "django")


@dataclass(frozen=True)
class Step:
    """One statement of the run and the migration it belongs to."""

    migration: str
    stmt: Statement


@dataclass
class Block:
    in_transaction: bool
    steps: list[Step]
    apply: str  # single-message | transaction | autocommit
    sql: str | None = None  # the message, for single-message


@dataclass
class ToolOptions:
    """What decides a tool's transaction model, read from the project (or given)."""

    prisma_version: str | None = None
    golang_multi_statement: bool = False
    flyway_mixed: bool = False
    flyway_group: bool = False
    flyway_no_transaction: frozenset[str] = frozenset()  # migrations whose .conf says executeInTransaction=false

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["flyway_no_transaction"] = sorted(self.flyway_no_transaction)
        return out


@dataclass
class RunModel:
    tool: str
    model: str  # one line for the evidence: which transaction model was used
    blocks: list[Block] = field(default_factory=list)
    how: dict[str, str] = field(default_factory=dict)  # migration → how its statements run
    refused: dict[str, str] = field(default_factory=dict)  # migration → why the tool refuses it

    def plan_for(self, migration: str, statements: Sequence[Statement], pg_major: int) -> TransactionPlan:
        """The per-migration view analyze_migration judges: which statements end up in a
        transaction block, and which of those PostgreSQL refuses there."""
        inside: dict[int, bool] = {}
        mode = "autocommit"
        for b in self.blocks:
            for st in b.steps:
                if st.migration == migration:
                    inside[st.stmt.index] = b.in_transaction
                    if b.in_transaction:
                        mode = b.apply
        body = [s for s in statements if not is_transaction_control(s)]
        nontx = tuple(
            {"line": s.line, "statement": s.preview, "reason": r, "in_transaction": inside.get(s.index, False)}
            for s in body
            if (r := non_transactional_reason(s, pg_major))
        )
        explicit = any(is_transaction_control(s) and s.text.split(None, 1)[0].upper().rstrip(";") in ("BEGIN", "START")
                       for s in statements if s.text.strip())
        return TransactionPlan(
            self.tool, mode, any(inside.values()), explicit, self.how.get(migration, self.model), nontx
        )


def parse_version(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    digits = text.strip().lstrip("^~>=v ")
    parts = []
    for p in digits.split("."):
        num = "".join(ch for ch in p if ch.isdigit()) if p[:1].isdigit() else ""
        if not num:
            break
        parts.append(int(num))
    return tuple(parts) or None


def prisma_splits(version: str | None) -> bool:
    v = parse_version(version)
    return v is not None and v[:2] >= PRISMA_SPLIT_FROM


def _script(tool: str, steps: Sequence[Step]) -> list[Block]:
    """Blocks from explicit BEGIN/COMMIT: inside them one transaction, outside each statement alone."""
    blocks: list[Block] = []
    current: Block | None = None
    for st in steps:
        if is_transaction_control(st.stmt):
            word = st.stmt.text.split(None, 1)[0].upper().rstrip(";") if st.stmt.text.strip() else ""
            if word in ("BEGIN", "START"):
                current = Block(True, [], "transaction")
                blocks.append(current)
            elif word in ("COMMIT", "END", "ROLLBACK", "ABORT"):
                current = None
            continue
        if current is not None:
            current.steps.append(st)
        else:
            blocks.append(Block(False, [st], "autocommit"))
    return [b for b in blocks if b.steps]


def _single_message(name: str, sql: str, stmts: Sequence[Statement]) -> Block:
    steps = [Step(name, s) for s in stmts if not is_transaction_control(s)]
    return Block(len(stmts) > 1, steps, "single-message", sql)


def build_model(
    tool: str,
    migrations: Sequence[tuple[str, str, Sequence[Statement]]],
    options: ToolOptions | None = None,
    pg_major: int = 16,
    captured: bool = False,
) -> RunModel:
    """The run's blocks for `migrations` ((name, sql, statements) in apply order); `captured`: the
    SQL is what the tool sent to a server, BEGIN/COMMIT included, not an offline rendering."""
    o = options or ToolOptions()
    if tool in SCRIPT_KINDS:
        steps = [Step(n, s) for n, _, stmts in migrations for s in stmts]
        blocks = _script(tool, steps)
        run = RunModel(tool, _script_model(tool, migrations, blocks, captured), blocks)
        for n, _, _ in migrations:
            inside = {b.in_transaction for b in blocks for st in b.steps if st.migration == n}
            shared = any(b.in_transaction and len({st.migration for st in b.steps}) > 1
                         for b in blocks if any(st.migration == n for st in b.steps))
            where = ("inside a transaction it shares with other migrations of the run" if shared
                     else "inside its own transaction")
            run.how[n] = f"{tool} runs it " + (
                where if inside == {True} else
                "without a transaction (each statement alone)" if inside == {False} else
                f"partly {where}, partly outside any transaction" if inside else "(no statement)"
            )
        return run
    if tool == "prisma":
        split = prisma_splits(o.prisma_version)
        ver = o.prisma_version or "unknown (assumed before 7.4)"
        if split:
            model = f"prisma {ver}: statements sent one by one (autocommit, except inside the file's BEGIN…COMMIT)"
        else:
            model = f"prisma {ver}: each file sent as one simple-query message (several statements = one implicit transaction)"
        return _per_file(tool, model, migrations, split)
    if tool == "golang-migrate":
        if o.golang_multi_statement:
            model = "golang-migrate x-multi-statement: statements sent one by one, no transaction of its own"
        else:
            model = ("golang-migrate: no transaction of its own; each file sent as one multi-statement Exec"
                     " (several statements = one implicit transaction)")
        return _per_file(tool, model, migrations, o.golang_multi_statement)
    if tool == "flyway":
        return _flyway(migrations, o, pg_major)
    if tool == "transaction":
        run = RunModel(tool, "each file inside one transaction")
        for n, _, stmts in migrations:
            run.blocks.append(Block(True, [Step(n, s) for s in stmts if not is_transaction_control(s)], "transaction"))
        return run
    if tool == "psql":
        steps = [Step(n, s) for n, _, stmts in migrations for s in stmts]
        return RunModel(tool, "each statement autocommits except inside the file's BEGIN…COMMIT", _script(tool, steps))
    raise ValueError(f"unknown migration tool {tool!r}: prisma, alembic, django, flyway, golang-migrate, transaction, psql")


def _per_file(tool: str, model: str, migrations: Sequence[tuple[str, str, Sequence[Statement]]], split: bool) -> RunModel:
    run = RunModel(tool, model)
    for n, sql, stmts in migrations:
        if split:
            run.blocks += _script(tool, [Step(n, s) for s in stmts])
            run.how[n] = model
        else:
            run.blocks.append(_single_message(n, sql, stmts))
            run.how[n] = (
                f"{tool} sends the file as one simple-query message: "
                + (f"{len(stmts)} statements run as one implicit transaction (atomic)" if len(stmts) > 1
                   else "a single statement runs in autocommit (its own transaction)")
            )
    return run


def _flyway(migrations: Sequence[tuple[str, str, Sequence[Statement]]], o: ToolOptions, pg_major: int) -> RunModel:
    run = RunModel(
        "flyway",
        "flyway: one transaction per migration; without one for migrations of only non-transactional statements"
        f" (mixed = {str(o.flyway_mixed).lower()}, group = {str(o.flyway_group).lower()})",
    )
    group: Block | None = None
    for n, _, stmts in migrations:
        body = [s for s in stmts if not is_transaction_control(s)]
        nontx = [s for s in body if non_transactional_reason(s, pg_major)]
        steps = [Step(n, s) for s in body]
        if n in o.flyway_no_transaction or (nontx and len(nontx) == len(body)):
            why = "executeInTransaction=false" if n in o.flyway_no_transaction else "only non-transactional statements"
            run.blocks += [Block(False, [st], "autocommit") for st in steps]
            run.how[n] = f"flyway runs it without a transaction ({why})"
            group = None
            continue
        if nontx:
            run.blocks += [Block(False, [st], "autocommit") for st in steps]
            group = None
            if o.flyway_mixed:
                run.how[n] = "flyway runs it without a transaction (mixed = true: it mixes transactional and non-transactional statements)"
            else:
                run.how[n] = "flyway refuses it (mixed = false)"
                run.refused[n] = (
                    "Flyway refuses a migration that mixes transactional and non-transactional statements"
                    f" ({nontx[0].preview[:80]}) unless mixed = true: split it into its own migration"
                )
            continue
        if o.flyway_group:
            if group is None:
                group = Block(True, [], "transaction")
                run.blocks.append(group)
            group.steps += steps
            run.how[n] = "flyway runs all pending migrations in one transaction (group = true)"
        else:
            run.blocks.append(Block(True, steps, "transaction"))
            run.how[n] = "flyway runs it inside one transaction"
    return run


def _script_model(
    tool: str, migrations: Sequence[tuple[str, str, Sequence[Statement]]], blocks: Sequence[Block], captured: bool
) -> str:
    spans = [len({st.migration for st in b.steps}) for b in blocks if b.in_transaction]
    if captured:
        rendered = "the online upgrade sent them (captured on the wire)"
    else:
        rendered = ("alembic upgrade --sql (offline)" if tool == "alembic" else "manage.py sqlmigrate") + " renders them"
    if not spans:
        shape = "no transaction: each statement autocommits"
    elif tool == "alembic" and max(spans) > 1:
        shape = "one transaction for the whole run (transaction_per_migration = False)"
    elif tool == "alembic":
        shape = "one transaction per migration" + (" (transaction_per_migration = True)" if len(migrations) > 1 else "")
    else:
        shape = "one transaction per atomic migration"
    outside = sum(1 for b in blocks if not b.in_transaction)
    if outside and spans:
        shape += f"; {outside} statement(s) outside any transaction" + (
            " (autocommit_block or transactional_ddl off)" if tool == "alembic" else " (atomic = False)"
        )
    return f"{tool}: BEGIN/COMMIT as {rendered}: {shape}"


def reindex(migrations: Sequence[tuple[str, str, Sequence[Statement]]]) -> list[tuple[str, str, list[Statement]]]:
    """Statements numbered across the whole run, so one trace can span migrations."""
    out, i = [], 0
    for n, sql, stmts in migrations:
        numbered = []
        for s in stmts:
            numbered.append(replace(s, index=i))
            i += 1
        out.append((n, sql, numbered))
    return out
