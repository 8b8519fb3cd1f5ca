"""What one migration does to the schema, read without running it: the changes the previous
release may not survive (A4's evidence) and whether the migration can be undone (E2/E3).

SQL migrations are parsed with PostgreSQL's grammar (sqlrisk). Django and Alembic migrations
are Python: they are read with `ast` and never imported, because importing a team's migration
module runs their code (and Django's needs the project's settings). What `ast` cannot settle
statically (SQL built at run time, an operation class relnb does not know) is reported as an
`unread` change, never assumed harmless.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ...pyast import parse as parse_python
from .sqlrisk import SqlParseError, destructive_changes, parse_statements


class Unreadable(ValueError):
    """A migration file relnb cannot read at all (syntax error, not the tool's shape)."""


@dataclass(frozen=True)
class Change:
    """One operation that old code may not survive, or whose effect relnb could not read.

    effect: drop (column/table and its data) | rename (column/table) | type-change |
    delete-rows | review (other changes a reviewer should see) | unread.
    """

    op: str
    target: str
    effect: str
    message: str
    statement: str | None = None
    line: int | None = None

    @property
    def breaks_previous(self) -> bool:
        """The previous release reads what this removed or renamed: redeploying it fails."""
        return self.effect in ("drop", "rename")

    @property
    def loses_data(self) -> bool:
        return self.effect in ("drop", "delete-rows")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Reading:
    """One migration as read: its operations (one line each), changes and reversibility."""

    operations: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    reversible: bool | None = True
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def not_reversible(self, why: str) -> None:
        if self.reversible is not False:
            self.reversible, self.reason = False, why

    def unknown(self, why: str) -> None:
        if self.reversible is True:
            self.reversible, self.reason = None, why


# --------------------------------------------------------------------------- SQL

# sqlrisk's rule → the effect that decides A4's note and E2/E3's plan
_SQL_EFFECT = {
    "drop-table": "drop",
    "drop-column": "drop",
    "drop-schema": "drop",
    "rename-column": "rename",
    "rename-table": "rename",
    "rename-type": "rename",
    "rename-enum-value": "rename",
    "column-type-change": "type-change",
    "truncate": "delete-rows",
    "delete-all-rows": "delete-rows",
}


def sql_changes(sql: str, op: str = "SQL") -> list[Change]:
    """Changes in a SQL text (raises SqlParseError when pglast cannot parse it)."""
    out = []
    for f in destructive_changes(sql):
        where = f"{op}: " if op != "SQL" else ""
        out.append(
            Change(f.rule, f.table or "", _SQL_EFFECT.get(f.rule, "review"), where + f.message, f.statement, f.line)
        )
    return out


def sql_has_statements(sql: str | None) -> bool:
    """A down script that would do something (comments and blank lines do nothing)."""
    if sql is None:
        return False
    return bool(parse_statements(sql))


def read_sql_migration(up: str, down: str | None, down_name: str | None) -> Reading:
    """A SQL migration with an optional down script (prisma down.sql, golang-migrate, Flyway undo)."""
    try:
        statements = parse_statements(up)
        changes = sql_changes(up)
    except SqlParseError as exc:
        raise Unreadable(f"not SQL PostgreSQL parses: {exc}") from exc
    ops = [s.preview[:160] for s in statements if s.kind not in ("VariableSetStmt", "TransactionStmt")]
    r = Reading(operations=ops, changes=changes, reason="down migration present")
    if down is None:
        r.not_reversible("no down migration")
        return r
    try:
        has_down = sql_has_statements(down)
    except SqlParseError as exc:
        r.unknown(f"down migration {down_name} does not parse: {exc}")
        return r
    if not has_down:
        r.not_reversible("down migration is empty")
    _data_loss(r)
    r.extra["down"] = down_name
    return r


def _data_loss(r: Reading) -> None:
    lost = [c for c in r.changes if c.loses_data]
    if lost:
        r.not_reversible(f"{lost[0].message}: its data does not come back with a down migration")


# --------------------------------------------------------------------------- Python helpers


class _NotLiteral(ValueError):
    pass


def _callee(node: ast.expr) -> str:
    """`migrations.RemoveField` → RemoveField; `op.drop_column` → drop_column."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _dotted(node: ast.expr) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - ast.unparse handles every expression
        return "?"


def _names(body: Iterable[ast.stmt]) -> dict[str, ast.expr]:
    """Simple `NAME = expr` assignments: the constants a migration's SQL is often kept in."""
    env: dict[str, ast.expr] = {}
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            env[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            env[node.target.id] = node.value
    return env


def _const(node: ast.expr | None, env: dict[str, ast.expr], depth: int = 0) -> Any:
    """The value of a literal expression, following module constants, `text(...)`, `dedent(...)`
    and string concatenation; raises _NotLiteral for anything computed at run time."""
    if node is None or depth > 20:
        raise _NotLiteral("no value")
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return _const(env[node.id], env, depth + 1)
    if isinstance(node, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in node.values):
        return "".join(str(v.value) for v in node.values)  # type: ignore[attr-defined]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _const(node.left, env, depth + 1), _const(node.right, env, depth + 1)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
    if isinstance(node, ast.List | ast.Tuple):
        return [_const(e, env, depth + 1) for e in node.elts]
    if isinstance(node, ast.Call) and _callee(node.func) in ("text", "dedent") and len(node.args) == 1:
        return _const(node.args[0], env, depth + 1)
    raise _NotLiteral(_dotted(node))


def _arg(call: ast.Call, pos: int, kw: str) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == kw:
            return k.value
    if pos < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[: pos + 1]):
        return call.args[pos]
    return None


def _str(call: ast.Call, pos: int, kw: str, env: dict[str, ast.expr]) -> str:
    try:
        v = _const(_arg(call, pos, kw), env)
    except _NotLiteral:
        return "?"
    return v if isinstance(v, str) else "?"


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _given(call: ast.Call, pos: int, kw: str) -> bool:
    """An argument is passed and is not the literal None."""
    node = _arg(call, pos, kw)
    return node is not None and not (isinstance(node, ast.Constant) and node.value is None)


def _sql_texts(value: Any) -> list[str]:
    """Django RunSQL / Alembic execute take a string, a list of strings, or (sql, params) pairs."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, list) and v and isinstance(v[0], str):
                out.append(v[0])
            else:
                raise _NotLiteral(repr(v)[:80])
        return out
    raise _NotLiteral(repr(value)[:80])


def _chain(node: ast.expr) -> list[str]:
    """Method names along a call chain: `t.delete().where(...)` → ["delete", "where"]."""
    names: list[str] = []
    while isinstance(node, ast.Call | ast.Attribute):
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        else:
            node = node.func
    return names[::-1]


def _read_sql_arg(r: Reading, op: str, node: ast.expr | None, env: dict[str, ast.expr]) -> None:
    if isinstance(node, ast.Attribute) and node.attr == "noop":
        return  # RunSQL(RunSQL.noop, ...): nothing runs
    chain = _chain(node) if node is not None else []
    verb = next((v for v in ("delete", "update", "insert") if v in chain), None)
    if verb is not None:  # a SQLAlchemy expression: a data change, not a schema change
        effect = "delete-rows" if verb == "delete" and "where" not in chain else "review"
        r.changes.append(Change(op, "", effect, f"{op}: a SQLAlchemy {verb}(){'' if effect == 'review' else ' without where()'}: changes data"))
        return
    try:
        texts = _sql_texts(_const(node, env))
    except _NotLiteral as exc:
        r.changes.append(Change(op, "", "unread", f"{op}: SQL built at run time ({str(exc)[:80]}): relnb cannot read it"))
        return
    for sql in texts:
        try:
            r.changes += sql_changes(sql, op)
        except SqlParseError as exc:
            r.changes.append(Change(op, "", "unread", f"{op}: SQL PostgreSQL cannot parse ({exc})"))


def _parse(text: str, what: str) -> ast.Module:
    try:
        return parse_python(text)
    except SyntaxError as exc:
        raise Unreadable(f"{what}: SyntaxError line {exc.lineno}: {exc.msg}") from exc


# --------------------------------------------------------------------------- Django

# Django's own operations (and django.contrib.postgres'), all reversible by Django itself;
# the ones that change what old code sees are handled one by one below
_DJANGO_PLAIN = frozenset(
    {
        "CreateModel", "AddIndex", "RemoveIndex", "RenameIndex", "AddConstraint", "RemoveConstraint",
        "AlterConstraint", "AlterUniqueTogether", "AlterIndexTogether", "AlterOrderWithRespectTo",
        "AlterModelOptions", "AlterModelManagers", "AlterModelTableComment", "CreateExtension",
        "BloomExtension", "BtreeGinExtension", "BtreeGistExtension", "CITextExtension",
        "CryptoExtension", "HStoreExtension", "TrigramExtension", "UnaccentExtension",
        "AddIndexConcurrently", "RemoveIndexConcurrently", "CreateCollation", "RemoveCollation",
        "AddConstraintNotValid", "ValidateConstraint",
    }
)

@dataclass(frozen=True)
class _Field:
    cls: str
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, node: ast.expr | None, env: dict[str, ast.expr]) -> _Field | None:
        if not isinstance(node, ast.Call):
            return None
        kw: dict[str, Any] = {}
        for k in node.keywords:
            if k.arg is None:
                continue
            try:
                kw[k.arg] = _const(k.value, env)
            except _NotLiteral:
                kw[k.arg] = _dotted(k.value)
        return cls(_callee(node.func), kw)

    def shape(self) -> str:
        sized = [f"{k}={self.kwargs[k]}" for k in ("max_length", "max_digits", "decimal_places") if k in self.kwargs]
        return self.cls + (f"({', '.join(sized)})" if sized else "")


def django_operations(tree: ast.Module) -> tuple[list[ast.expr], dict[str, ast.expr]]:
    """The `operations` of the module's `Migration` class, and the constants around them."""
    env = _names(tree.body)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Migration":
            env = {**env, **_names(node.body)}
            ops = env.get("operations")
            return ([] if ops is None else _op_list(ops, env)), env
    raise Unreadable("no `class Migration` in the module: not a Django migration")


def _op_list(node: ast.expr, env: dict[str, ast.expr], depth: int = 0) -> list[ast.expr]:
    """The elements of an operations list written as a list, a module constant, a concatenation
    or a comprehension (`[Op(t) for t in TABLES]` reads as its one operation)."""
    if isinstance(node, ast.List | ast.Tuple):
        return list(node.elts)
    if isinstance(node, ast.ListComp | ast.GeneratorExp):
        return [node.elt]
    if isinstance(node, ast.Name) and node.id in env and depth < 10:
        return _op_list(env[node.id], env, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and depth < 10:
        return _op_list(node.left, env, depth + 1) + _op_list(node.right, env, depth + 1)
    raise Unreadable(f"Migration.operations is computed ({_dotted(node)[:80]}), not a list relnb can read")


def _field_defs(tree: ast.Module) -> list[tuple[int, str, str, _Field | None, str | None]]:
    """(line, model, field, definition, renamed_from) in the order a migration's operations set them."""
    out: list[tuple[int, str, str, _Field | None, str | None]] = []
    try:
        ops, env = django_operations(tree)
    except Unreadable:
        return out
    for op in _flatten(ops, env):
        if not isinstance(op, ast.Call):
            continue
        name = _callee(op.func)
        if name == "SeparateDatabaseAndState":
            state = _arg(op, 1, "state_operations")
            for inner in state.elts if isinstance(state, ast.List | ast.Tuple) else ():
                out += _field_op(inner, env)
        out += _field_op(op, env)
    return out


def _field_op(op: ast.expr, env: dict[str, ast.expr]) -> list[tuple[int, str, str, _Field | None, str | None]]:
    if not isinstance(op, ast.Call):
        return []
    name, line = _callee(op.func), op.lineno
    if name == "CreateModel":
        model = _str(op, 0, "name", env).lower()
        fields = _arg(op, 1, "fields")
        out = []
        for f in fields.elts if isinstance(fields, ast.List | ast.Tuple) else ():
            if isinstance(f, ast.Tuple) and len(f.elts) == 2:
                try:
                    fname = _const(f.elts[0], env)
                except _NotLiteral:
                    continue
                out.append((line, model, str(fname), _Field.of(f.elts[1], env), None))
        return out
    if name in ("AddField", "AlterField"):
        return [(line, _str(op, 0, "model_name", env).lower(), _str(op, 1, "name", env), _Field.of(_arg(op, 2, "field"), env), None)]
    if name == "RenameField":
        return [(line, _str(op, 0, "model_name", env).lower(), _str(op, 2, "new_name", env), None, _str(op, 1, "old_name", env))]
    return []


def _flatten(ops: Sequence[ast.expr], env: dict[str, ast.expr]) -> list[ast.expr]:
    """Operations as listed; `*[Op(t) for t in X]` counts as its element's operation once."""
    out: list[ast.expr] = []
    for op in ops:
        if isinstance(op, ast.Starred) and isinstance(op.value, ast.ListComp | ast.GeneratorExp):
            out.append(op.value.elt)
        elif isinstance(op, ast.Starred) and isinstance(op.value, ast.Name) and isinstance(env.get(op.value.id), ast.List | ast.Tuple):
            out.extend(env[op.value.id].elts)  # type: ignore[union-attr]
        else:
            out.append(op)
    return out


def previous_field(
    earlier: Callable[[], Sequence[str]],
    model: str,
    name: str,
    own: Sequence[tuple[int, str, str, _Field | None, str | None]] = (),
) -> _Field | None:
    """The field's definition before an AlterField: the newest operation that created, added,
    altered or renamed it, in this migration (`own`, the operations above it) or the app's
    earlier migrations (`earlier()`, oldest first, read only if `own` does not say)."""
    model = model.lower()

    def defs() -> Iterable[tuple[int, str, str, _Field | None, str | None]]:
        yield from reversed(own)
        for text in reversed(earlier()):
            try:
                tree = parse_python(text)
            except SyntaxError:
                continue
            yield from reversed(_field_defs(tree))

    for _line, m, f, definition, renamed_from in defs():
        if m != model or f != name:
            continue
        if renamed_from is not None:
            name = renamed_from  # keep looking under its old name
            continue
        return definition
    return None


def read_django_migration(text: str, earlier: Callable[[], Sequence[str]] = tuple) -> Reading:
    """A Django migration module: its operations, changes and whether Django can reverse it.

    `earlier()` gives the texts of the same app's migrations before this one (oldest first),
    read only when needed: an AlterField is a type change only when compared with the field's
    previous definition."""
    tree = _parse(text, "Django migration")
    ops, env = django_operations(tree)
    r = Reading(reason="Django reverses every operation")
    ctx = _DjangoContext(env, earlier, _field_defs(tree))
    _django_ops(r, _flatten(ops, env), ctx)
    _data_loss(r)
    return r


@dataclass(frozen=True)
class _DjangoContext:
    env: dict[str, ast.expr]
    earlier: Callable[[], Sequence[str]]
    own: list[tuple[int, str, str, _Field | None, str | None]]


def _django_ops(r: Reading, ops: Sequence[ast.expr], ctx: _DjangoContext) -> None:
    env = ctx.env
    for op in ops:
        if not isinstance(op, ast.Call):
            label = _dotted(op)[:80]
            r.operations.append(label)
            r.changes.append(Change(label, "", "unread", f"operation {label} is computed: relnb cannot read it"))
            r.unknown(f"operation {label} is computed")
            continue
        name = _callee(op.func)
        handler = _DJANGO.get(name)
        if handler is not None:
            handler(r, op, ctx)
        elif name == "SeparateDatabaseAndState":
            inner = _arg(op, 0, "database_operations")
            if inner is None:
                r.operations.append("SeparateDatabaseAndState (state only)")
                continue
            if not isinstance(inner, ast.List | ast.Tuple):
                r.changes.append(Change(name, "", "unread", "SeparateDatabaseAndState: database_operations is computed"))
                r.unknown("SeparateDatabaseAndState: database_operations is computed")
                continue
            _django_ops(r, _flatten(inner.elts, env), ctx)
        elif name in _DJANGO_PLAIN:
            target = _str(op, 0, "model_name", env) if name != "CreateModel" else _str(op, 0, "name", env)
            r.operations.append(f"{name} {target}".strip(" ?"))
        else:
            r.operations.append(name or _dotted(op.func))
            r.changes.append(
                Change(name, "", "unread", f"{name or _dotted(op.func)}: not an operation relnb knows; what it does to the schema is not read")
            )
            r.unknown(f"{name}: not an operation relnb knows, so whether it can be undone is not known")


def _dj_target(op: ast.Call, env: dict[str, ast.expr], field_pos: int = 1, field_kw: str = "name") -> tuple[str, str]:
    return _str(op, 0, "model_name", env), _str(op, field_pos, field_kw, env)


def _dj_remove_field(r: Reading, op: ast.Call, ctx: _DjangoContext) -> None:
    env = ctx.env
    model, name = _dj_target(op, env)
    r.operations.append(f"RemoveField {model}.{name}")
    r.changes.append(Change("RemoveField", f"{model}.{name}", "drop", f"RemoveField {model}.{name}: drops the column and its data"))


def _dj_delete_model(r: Reading, op: ast.Call, ctx: _DjangoContext) -> None:
    env = ctx.env
    model = _str(op, 0, "name", env)
    r.operations.append(f"DeleteModel {model}")
    r.changes.append(Change("DeleteModel", model, "drop", f"DeleteModel {model}: drops the table and its rows"))


def _dj_rename_field(r: Reading, op: ast.Call, ctx: _DjangoContext) -> None:
    env = ctx.env
    model, old = _dj_target(op, env, 1, "old_name")
    new = _str(op, 2, "new_name", env)
    r.operations.append(f"RenameField {model}.{old} → {new}")
    r.changes.append(Change("RenameField", f"{model}.{old}", "rename", f"RenameField {model}.{old} → {new}: code that reads {old} fails"))


def _dj_rename_model(r: Reading, op: ast.Call, ctx: _DjangoContext) -> None:
    env = ctx.env
    old, new = _str(op, 0, "old_name", env), _str(op, 1, "new_name", env)
    r.operations.append(f"RenameModel {old} → {new}")
    r.changes.append(Change("RenameModel", old, "rename", f"RenameModel {old} → {new}: renames the table"))


def _dj_model_table(r: Reading, op: ast.Call, ctx: _DjangoContext) -> None:
    env = ctx.env
    model, table = _str(op, 0, "name", env), _str(op, 1, "table", env)
    r.operations.append(f"AlterModelTable {model} → {table}")
    r.changes.append(Change("AlterModelTable", model, "rename", f"AlterModelTable {model} → {table}: renames the table"))


# fields that add no column to the model's table (a join table, or nothing at all)
_NO_COLUMN = frozenset({"ManyToManyField", "TaggableManager", "GenericRelation", "GenericForeignKey"})


def _dj_add_field(r: Reading, op: ast.Call, ctx: _DjangoContext) -> None:
    env = ctx.env
    model, name = _dj_target(op, env)
    f = _Field.of(_arg(op, 2, "field"), env)
    r.operations.append(f"AddField {model}.{name}" + (f" ({f.shape()})" if f else ""))
    if f is None or f.cls in _NO_COLUMN or f.kwargs.get("null") is True or "db_default" in f.kwargs:
        return
    r.changes.append(
        Change(
            "AddField", f"{model}.{name}", "review",
            f"AddField {model}.{name}: NOT NULL without a database default (Django drops the default"
            " after adding the column): the previous release's inserts into it fail",
        )
    )


def _dj_alter_field(r: Reading, op: ast.Call, ctx: _DjangoContext) -> None:
    env = ctx.env
    model, name = _dj_target(op, env)
    new = _Field.of(_arg(op, 2, "field"), env)
    old = previous_field(ctx.earlier, model, name, [d for d in ctx.own if d[0] < op.lineno])
    shape = new.shape() if new else "?"
    r.operations.append(f"AlterField {model}.{name} → {shape}")
    target = f"{model}.{name}"
    if new is None:
        r.changes.append(Change("AlterField", target, "type-change", f"AlterField {target}: the new field is computed: check its type"))
    elif old is None:
        r.changes.append(
            Change("AlterField", target, "type-change", f"AlterField {target} → {shape}: its previous definition is not in this app's migrations: check for a type change")
        )
    elif old.shape() != new.shape():
        r.changes.append(Change("AlterField", target, "type-change", f"AlterField {target}: type {old.shape()} → {new.shape()}"))
    elif old.kwargs.get("null") is True and new.kwargs.get("null") is not True:
        r.changes.append(Change("AlterField", target, "review", f"AlterField {target}: becomes NOT NULL: the previous release may write NULL"))


def _dj_run_python(r: Reading, op: ast.Call, ctx: _DjangoContext) -> None:
    code = _arg(op, 0, "code")
    r.operations.append(f"RunPython {_dotted(code)[:60] if code is not None else '?'}")
    if not _given(op, 1, "reverse_code"):
        r.not_reversible("RunPython without reverse_code: Django cannot reverse it")


def _dj_run_sql(r: Reading, op: ast.Call, ctx: _DjangoContext) -> None:
    env = ctx.env
    r.operations.append("RunSQL")
    _read_sql_arg(r, "RunSQL", _arg(op, 0, "sql"), env)
    if not _given(op, 1, "reverse_sql"):
        r.not_reversible("RunSQL without reverse_sql: Django cannot reverse it")


_DJANGO: dict[str, Callable[[Reading, ast.Call, _DjangoContext], None]] = {
    "RemoveField": _dj_remove_field,
    "DeleteModel": _dj_delete_model,
    "RenameField": _dj_rename_field,
    "RenameModel": _dj_rename_model,
    "AlterModelTable": _dj_model_table,
    "AddField": _dj_add_field,
    "AlterField": _dj_alter_field,
    "RunPython": _dj_run_python,
    "RunSQL": _dj_run_sql,
}


# --------------------------------------------------------------------------- Alembic


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    return None


def _does_nothing(fn: ast.FunctionDef) -> str | None:
    """Why a downgrade() undoes nothing: only `pass`/a docstring/`...`, or it only raises."""
    body = [
        b for b in fn.body
        if not isinstance(b, ast.Pass) and not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))
    ]
    if not body:
        return "downgrade() is empty (pass)"
    if all(isinstance(b, ast.Raise) for b in body):
        return "downgrade() only raises"
    return None


def _alembic_target(call: ast.Call, env: dict[str, ast.expr], n: int) -> str:
    parts = []
    for a in call.args[:n]:
        try:
            v = _const(a, env)
        except _NotLiteral:
            continue
        if isinstance(v, str):
            parts.append(v)
    return ".".join(parts)


def _reached(tree: ast.Module, fn: ast.FunctionDef) -> list[ast.FunctionDef]:
    """upgrade() and the module's own functions it calls (an upgrade often delegates to helpers)."""
    local = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    out, todo = [], [fn]
    while todo:
        f = todo.pop()
        if f in out:
            continue
        out.append(f)
        for node in ast.walk(f):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in local:
                todo.append(local[node.func.id])
    return out


def _alembic_upgrade(r: Reading, tree: ast.Module, up: ast.FunctionDef) -> None:
    for fn in _reached(tree, up):
        _alembic_calls(r, fn, {**_names(tree.body), **_names(fn.body)})


def _alembic_calls(r: Reading, fn: ast.FunctionDef, env: dict[str, ast.expr]) -> None:
    calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    for node in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):
        func = node.func
        if not isinstance(func, ast.Attribute):
            continue
        name, recv = func.attr, _dotted(func.value)
        label = f"{recv}.{name}"
        if name == "drop_column":
            t = _alembic_target(node, env, 2)
            r.operations.append(f"{label} {t}")
            r.changes.append(Change(label, t, "drop", f"{label} {t}: drops the column and its data"))
        elif name == "drop_table":
            t = _alembic_target(node, env, 1)
            r.operations.append(f"{label} {t}")
            r.changes.append(Change(label, t, "drop", f"{label} {t}: drops the table and its rows"))
        elif name == "rename_table":
            old_name, new_name = _str(node, 0, "old_table_name", env), _str(node, 1, "new_table_name", env)
            r.operations.append(f"{label} {old_name} → {new_name}")
            r.changes.append(Change(label, old_name, "rename", f"{label} {old_name} → {new_name}: renames the table"))
        elif name == "alter_column":
            t = _alembic_target(node, env, 2)
            r.operations.append(f"{label} {t}")
            new_name = _kw(node, "new_column_name")
            if new_name is not None:
                r.changes.append(Change(label, t, "rename", f"{label} {t}: renames the column (new_column_name)"))
            if (type_ := _kw(node, "type_")) is not None:
                r.changes.append(Change(label, t, "type-change", f"{label} {t}: changes its type (type_={_dotted(type_)[:40]})"))
            nullable = _kw(node, "nullable")
            if isinstance(nullable, ast.Constant) and nullable.value is False:
                r.changes.append(Change(label, t, "review", f"{label} {t}: becomes NOT NULL: the previous release may write NULL"))
        elif name == "add_column":
            col = next((a for a in node.args if isinstance(a, ast.Call) and _callee(a.func) == "Column"), None)
            t = ".".join(x for x in (_alembic_target(node, env, 1), col and _alembic_target(col, env, 1)) if x)
            r.operations.append(f"{label} {t}".strip())
            if col is not None and _not_null_without_default(col):
                r.changes.append(
                    Change(label, t, "review", f"{label} {t}: NOT NULL column without server_default: the previous release's inserts fail")
                )
        elif name == "execute":
            r.operations.append(label)
            _read_sql_arg(r, label, _arg(node, 0, "sqltext"), env)


def _not_null_without_default(col: ast.Call) -> bool:
    kw = {k.arg: k.value for k in col.keywords if k.arg}
    nullable = kw.get("nullable")
    pk = kw.get("primary_key")
    not_null = isinstance(nullable, ast.Constant) and nullable.value is False
    not_null = not_null or (isinstance(pk, ast.Constant) and pk.value is True)
    return not_null and "server_default" not in kw and "server_onupdate" not in kw


def read_alembic_migration(text: str) -> Reading:
    """An Alembic revision file: revision/down_revision, what upgrade() changes, and whether
    downgrade() undoes it."""
    from .ondisk import py_assign

    tree = _parse(text, "Alembic revision")
    found, rev = py_assign(tree, "revision")
    if not found or not isinstance(rev, str):
        raise Unreadable("no literal `revision = '...'`: not an Alembic revision file")
    _, down_rev = py_assign(tree, "down_revision")
    up = _function(tree, "upgrade")
    if up is None:
        raise Unreadable(f"revision {rev} has no upgrade()")
    r = Reading(reason="downgrade() undoes it")
    r.extra["revision"] = rev
    r.extra["down_revision"] = down_rev if isinstance(down_rev, str | type(None)) else list(down_rev)
    _alembic_upgrade(r, tree, up)
    down = _function(tree, "downgrade")
    if down is None:
        r.not_reversible("no downgrade()")
    elif why := _does_nothing(down):
        r.not_reversible(why)
    _data_loss(r)
    return r
