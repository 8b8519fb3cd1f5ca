"""C3 for every migrations kind: the release's migrations, rendered as their tool would send them,
replayed on a shadow of production's schema under the tool's transaction model, judged on
production's table sizes (safety.judge_migrations).

What is read from the project to pick the transaction model (each is said in the evidence):
the Prisma version (node_modules/prisma/package.json, else package.json), Flyway's `mixed` and
`group` (flyway.conf / flyway.toml) and a migration's `executeInTransaction=false` (its
`.sql.conf`). golang-migrate's `x-multi-statement` lives in the database URL the team passes to
the tool, so it is given, not read.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...redact import scrub
from ...results import Outcome
from .included import discover_migrations
from .safety import judge_migrations
from .sizes import DEFAULT_LARGE_BYTES, DEFAULT_LARGE_ROWS
from .toolsql import (
    ALEMBIC_COMMAND,
    DJANGO_COMMAND,
    RenderedMigration,
    RenderError,
    alembic_range,
    find_upwards,
    render_alembic,
    render_django,
    run_tool,
    sql_files,
)
from .txmodel import ToolOptions

if TYPE_CHECKING:
    from .changeset import ReleaseMigrations

C3_KINDS = ("prisma", "alembic", "django", "flyway", "golang-migrate")
_LAYOUT = {"prisma": "prisma", "flyway": "flyway", "golang-migrate": "golang-migrate"}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def prisma_version(repo: Path, migrations_dir: Path) -> str | None:
    """The Prisma CLI the app runs `migrate deploy` with: installed, else declared."""
    for base in dict.fromkeys([repo, *migrations_dir.parents]):
        if not str(base).startswith(str(repo)):
            continue
        got = _read_json(base / "node_modules" / "prisma" / "package.json").get("version")
        if isinstance(got, str):
            return got
        pkg = _read_json(base / "package.json")
        for key in ("devDependencies", "dependencies"):
            deps = pkg.get(key) or {}
            for name in ("prisma", "@prisma/client"):
                if isinstance(deps.get(name), str):
                    return str(deps[name])
    return None


def flyway_options(repo: Path, migrations_dir: Path) -> dict[str, Any]:
    """mixed / group from flyway.conf or flyway.toml beside the migrations or at the repo root."""
    found: dict[str, Any] = {}
    for base in dict.fromkeys([migrations_dir, migrations_dir.parent, repo, repo / "conf"]):
        conf = base / "flyway.conf"
        if conf.is_file():
            for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
                if m := re.match(r"^\s*flyway\.(mixed|group)\s*=\s*(\w+)", line):
                    found.setdefault(m.group(1), m.group(2).lower() == "true")
        toml = base / "flyway.toml"
        if toml.is_file():
            try:
                data = tomllib.loads(toml.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                data = {}
            fw = data.get("flyway") or {}
            for key in ("mixed", "group"):
                if isinstance(fw.get(key), bool):
                    found.setdefault(key, fw[key])
    return found


def _flyway_no_tx(repo: Path, paths: Sequence[tuple[str, str]]) -> frozenset[str]:
    out = set()
    for name, path in paths:
        conf = Path(path) if Path(path).is_absolute() else repo / path
        conf = conf.with_name(conf.name + ".conf")
        if conf.is_file() and re.search(r"^\s*executeInTransaction\s*=\s*false", conf.read_text(errors="replace"), re.M | re.I):
            out.add(name)
    return frozenset(out)


def tool_options(kind: str, repo: Path, migrations_dir: Path, paths: Sequence[tuple[str, str]] = (),
                 golang_multi_statement: bool = False) -> ToolOptions:
    if kind == "prisma":
        return ToolOptions(prisma_version=prisma_version(repo, migrations_dir))
    if kind == "flyway":
        fo = flyway_options(repo, migrations_dir)
        return ToolOptions(flyway_mixed=bool(fo.get("mixed")), flyway_group=bool(fo.get("group")),
                           flyway_no_transaction=_flyway_no_tx(repo, paths))
    if kind == "golang-migrate":
        return ToolOptions(golang_multi_statement=golang_multi_statement)
    return ToolOptions()


def check_release_safety(
    rs: ReleaseMigrations,
    admin_url: str,
    *,
    repo: str | Path,
    migrations_dir: str | Path,
    sha: str | None = None,
    production_url: str | None = None,
    command: str | None = None,
    options: ToolOptions | None = None,
    golang_multi_statement: bool = False,
    expand_contract: str | None = None,
    large_rows: int | None = DEFAULT_LARGE_ROWS,
    large_bytes: int | None = DEFAULT_LARGE_BYTES,
    allow: Sequence[str] = (),
    use_squawk: bool = True,
    online_command: str | None = None,
    online_url_env: str | None = None,
    online_always: bool = False,
    drop_env: Sequence[str] = (),
) -> Outcome:
    """C3 on the migrations `rs` names (changeset.release_migrations / installed_migrations).

    `command` renders alembic/django SQL in the app's environment (defaults: `alembic upgrade
    {range} --sql`, `python manage.py sqlmigrate {app} {migration}`). The shadow gets production's
    schema when `production_url` is given, else the earlier migrations (alembic: rendered base→from;
    django: needs production).

    alembic: `online_command` (an online `alembic upgrade {revision}`, the URL in `{database_url}`
    and/or the `online_url_env` variable) captures the SQL on the wire (wirecapture.py) on a scratch
    copy of production's schema when offline rendering fails, or always with `online_always`."""
    kind = rs.kind
    repo_p = Path(repo).resolve()
    mdir = Path(migrations_dir)
    mdir = (mdir if mdir.is_absolute() else repo_p / mdir).resolve()
    ev: dict[str, Any] = {"migrations_kind": kind, "found_by": rs.source}
    if kind not in C3_KINDS:
        return Outcome.inconclusive(f"C3 cannot render {kind} migrations: replay them by hand and waive C3", **ev)
    if rs.incomplete:
        return Outcome.inconclusive(f"cannot read this release's migrations: {rs.incomplete}",
                                    unreadable=rs.unreadable, **ev)
    if not rs.migrations:
        return Outcome.passed(f"no {kind} migration in this release ({rs.source})", **ev)
    pairs = [(m.name, m.path) for m in rs.migrations]
    opts = options or tool_options(kind, repo_p, mdir, pairs, golang_multi_statement)
    earlier: list[tuple[str, str]] | None = None

    def judge(rendered: list[RenderedMigration], earlier: list[tuple[str, str]] | None) -> Outcome:
        return judge_migrations(
            rendered,
            admin_url,
            tool=kind,
            evidence=ev,
            earlier_sql=earlier,
            schema_from_production=earlier is None,
            production_url=production_url,
            large_rows=large_rows,
            large_bytes=large_bytes,
            allow=allow,
            use_squawk=use_squawk,
            options=opts,
            expand_contract=expand_contract,
        )

    try:
        if kind in _LAYOUT:
            rendered = sql_files(pairs, repo_p, sha)
            if kind == "flyway":
                rendered = _flyway_order(rendered)
            if not production_url:
                new = {m.name for m in rendered}
                earlier = [(m.name, m.sql) for m in discover_migrations(mdir, _LAYOUT[kind]) if m.name not in new]
        elif kind == "alembic":
            cwd = find_upwards(mdir, "alembic.ini", repo_p)
            if cwd is None:
                return Outcome.inconclusive(f"no alembic.ini in {mdir} or above it (up to {repo_p}): relnb runs"
                                            " `alembic upgrade --sql` where it lives", **ev)
            revs = [(m.name, m.path, m.reading.extra.get("down_revision")) for m in rs.migrations]
            if online_command and online_always:
                return _alembic_online(revs, cwd, online_command, online_url_env, drop_env, admin_url, production_url,
                                       ev, None, judge)
            try:
                rendered, rev = render_alembic(revs, cwd, command or ALEMBIC_COMMAND)
            except RenderError as exc:
                if not online_command:
                    raise
                return _alembic_online(revs, cwd, online_command, online_url_env, drop_env, admin_url, production_url,
                                       ev, str(exc), judge)
            ev["rendering"] = rev
            if not production_url:
                earlier = [(f"base→{rev['from']}", run_tool(command or ALEMBIC_COMMAND, cwd, range=rev["from"]))] \
                    if rev["from"] != "base" else []
        else:
            cwd = find_upwards(mdir, "manage.py", repo_p)
            if cwd is None:
                return Outcome.inconclusive(f"no manage.py in {mdir} or above it (up to {repo_p}): relnb runs"
                                            " `manage.py sqlmigrate` where it lives", **ev)
            rendered = render_django(_django_order(pairs), cwd, command or DJANGO_COMMAND)
            ev["rendering"] = {"rendered_by": command or DJANGO_COMMAND, "cwd": str(cwd)}
            if not production_url:
                return Outcome.inconclusive(
                    "the shadow needs production's schema for django migrations: set"
                    " environments.production.database_url_env (relnb copies the schema with pg_dump, read-only)",
                    **ev,
                )
    except RenderError as exc:
        return Outcome.inconclusive(f"cannot render the {kind} SQL of this release's migrations: {exc}", **ev)
    return judge(rendered, earlier)


def _alembic_online(
    revs: list[tuple[str, str, Any]],
    cwd: Path,
    command: str,
    url_env: str | None,
    drop_env: Sequence[str],
    admin_url: str,
    production_url: str | None,
    ev: dict[str, Any],
    offline_error: str | None,
    judge: Callable[[list[RenderedMigration], list[tuple[str, str]] | None], Outcome],
) -> Outcome:
    """C3 on the SQL the online upgrade really sent (wirecapture.py), judged on a fresh shadow."""
    from .wirecapture import CaptureError, capture_alembic, shown_command

    if offline_error:
        ev["offline_rendering"] = offline_error
    try:
        start, head = alembic_range([(r, d) for r, _, d in revs])
    except RenderError as exc:
        return Outcome.inconclusive(f"cannot capture the alembic SQL online: {exc}", **ev)
    shown = shown_command(command, head)
    if not production_url:
        return Outcome.inconclusive(
            f"capturing the alembic SQL online (`{shown}`) needs a scratch copy of production's schema: set"
            " environments.production.database_url_env", **ev)
    try:
        parts, cev = capture_alembic([r for r, _, _ in revs], start, head, str(cwd), command, admin_url,
                                     production_url, url_env=url_env, drop_env=drop_env)
    except CaptureError as exc:
        return Outcome.inconclusive(f"cannot capture the alembic SQL online: {exc}", **ev)
    ev["rendering"] = {**cev, "rendered_by": f"`{shown}` (online capture)", "range": f"{start}:{head}" if start else head}
    unread = [(r, s) for r, _, _ in revs for s in parts[r].unreadable]
    if unread:
        ev["unreadable"] = [{"revision": r, "statement": scrub(s)[:200]} for r, s in unread]
        r, s = unread[0]
        more = f" (+{len(unread) - 1} more)" if len(unread) > 1 else ""
        return Outcome.inconclusive(
            f"{r}: a statement with server-side bound parameters cannot be replayed exactly:"
            f" {scrub(' '.join(s.split()))[:120]}{more}", **ev)
    by_rev = {r: p for r, p, _ in revs}
    rendered = [
        RenderedMigration(r, by_rev.get(r, r), ";\n".join(parts[r].statements) + ";\n",
                          f"`{shown}` captured online on a scratch copy", captured=True)
        for r, _, _ in revs
    ]
    return judge(rendered, None)


def _flyway_order(rendered: list[RenderedMigration]) -> list[RenderedMigration]:
    """Versioned migrations by version, then repeatables (Flyway applies them last)."""
    def key(m: RenderedMigration) -> tuple[int, tuple[int, ...], str]:
        if got := re.match(r"^V([0-9][0-9._]*)__", m.name):
            return 0, tuple(int(x) for x in re.split(r"[._]", got.group(1)) if x), m.name
        return 1, (), m.name
    return sorted(rendered, key=key)


def _django_order(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(pairs, key=lambda p: (p[0].split(".")[0], p[0]))

