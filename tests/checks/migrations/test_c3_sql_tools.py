"""C3 on the SQL-file tools — Flyway, golang-migrate, Prisma by version — and on the gate: each
tool's transaction model decides the verdict of the same SQL, against a real PostgreSQL whose
"production" holds 52,000 documents; destructive changes wait for A4's expand/contract plan."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from relnb import Outcome, Release, Status
from relnb.checks.migrations.changeset import release_migrations
from relnb.checks.migrations.gates import migration_safety
from relnb.checks.migrations.release_safety import (
    check_release_safety,
    flyway_options,
    prisma_version,
)
from relnb.checks.migrations.txmodel import ToolOptions
from relnb.gatecontext import GateContext

from ...core.helpers import commit, make_project
from .c3_apps import database, fill

pytestmark = pytest.mark.integration

BASE = """CREATE TABLE workspaces (id integer PRIMARY KEY, name text);
CREATE TABLE documents (id integer PRIMARY KEY, workspace_id integer NOT NULL, title text, body text);
"""
LAYOUT = {
    "flyway": ("db/migration", "V1__base.sql", lambda i, n: f"V{i}__{n}.sql"),
    "golang-migrate": ("migrations", "1_base.up.sql", lambda i, n: f"{i}_{n}.up.sql"),
    "prisma": ("prisma/migrations", "20260101000000_base/migration.sql", lambda i, n: f"2026110100000{i}_{n}/migration.sql"),
}


@pytest.fixture(scope="module")
def prod(pg_admin_url: str) -> Iterator[str]:
    import psycopg

    with database(pg_admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(BASE)
        fill(url)
        yield url


def c3(tmp_path: Path, admin: str, prod: str | None, kind: str, files: list[tuple[str, str]],
       extra: dict[str, str] | None = None, **kw) -> Outcome:
    d, base, name = LAYOUT[kind]
    root = make_project(tmp_path / "app")
    commit(root, {f"{d}/{base}": BASE, **(extra or {})}, "v1", tag="v1.0.0")
    commit(root, {f"{d}/{name(i, n)}": sql for i, (n, sql) in enumerate(files, 2)}, "the release")
    rs = release_migrations(root, kind, d, "v1.0.0", "HEAD")
    return check_release_safety(rs, admin, repo=root, migrations_dir=d, production_url=prod, **kw)


def errors(out: Outcome) -> set[str]:
    return {f["rule"] for m in out.evidence["migrations"] for f in m["findings"] if f["severity"] == "error" and not f["waived"]}


UNSAFE = {
    "volatile default": ("ALTER TABLE documents ADD COLUMN seen timestamptz DEFAULT clock_timestamp();", "rewrite"),
    "int to bigint": ("ALTER TABLE documents ALTER COLUMN workspace_id TYPE bigint;", "rewrite"),
    "plain index": ("CREATE INDEX documents_title_idx ON documents (title);", "index-build-under-lock"),
    "validated fk": (
        "ALTER TABLE documents ADD CONSTRAINT documents_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id);",
        "scan-under-lock",
    ),
}
SAFE = {
    "constant default": "ALTER TABLE documents ADD COLUMN n integer DEFAULT 0;",
    "fk not valid": (
        "ALTER TABLE documents ADD CONSTRAINT documents_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id) NOT VALID;"
    ),
    "concurrently alone": "CREATE INDEX CONCURRENTLY documents_title_idx ON documents (title);",
}
CONCURRENTLY_AND_MORE = "CREATE INDEX CONCURRENTLY documents_title_idx ON documents (title);\nALTER TABLE documents ADD COLUMN note text;\n"


@pytest.mark.parametrize("kind", sorted(LAYOUT))
@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_sql_fails_for_every_tool(kind: str, case: str, tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    sql, rule = UNSAFE[case]
    out = c3(tmp_path, pg_admin_url, prod, kind, [("change", sql)])
    assert out.status is Status.FAILED, out.summary
    assert rule in errors(out)
    assert out.evidence["transaction_model"].startswith(kind)
    assert out.evidence["shadow"]["schema_from"].startswith("production")


@pytest.mark.parametrize("kind", sorted(LAYOUT))
@pytest.mark.parametrize("case", sorted(SAFE))
def test_safe_sql_passes_for_every_tool(kind: str, case: str, tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path, pg_admin_url, prod, kind, [("change", SAFE[case])])
    assert out.status is Status.PASSED, out.summary


def test_not_valid_then_validate_passes_apart_and_fails_in_one_transaction(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    add, check = SAFE["fk not valid"], "ALTER TABLE documents VALIDATE CONSTRAINT documents_ws_fk;"
    assert c3(tmp_path / "apart", pg_admin_url, prod, "flyway", [("fk", add), ("validate", check)]).status is Status.PASSED
    out = c3(tmp_path / "one", pg_admin_url, prod, "flyway", [("fk", add + "\n" + check)])
    assert out.status is Status.FAILED and "scan-under-lock" in errors(out), out.summary
    # flyway group = true: every pending migration in one transaction, so apart is not apart
    out = c3(tmp_path / "group", pg_admin_url, prod, "flyway", [("fk", add), ("validate", check)],
             extra={"flyway.conf": "flyway.group=true\n"})
    assert out.status is Status.FAILED and "group = true" in out.evidence["transaction_model"], out.summary


def test_flyway_mixed_mode(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path / "strict", pg_admin_url, prod, "flyway", [("mixed", CONCURRENTLY_AND_MORE)])
    assert out.status is Status.FAILED and "tool-refuses" in errors(out), out.summary
    assert "mixed = true" in out.summary
    out = c3(tmp_path / "mixed", pg_admin_url, prod, "flyway", [("mixed", CONCURRENTLY_AND_MORE)],
             extra={"flyway.toml": "[flyway]\nmixed = true\n"})
    assert out.status is Status.PASSED, out.summary
    (mig,) = out.evidence["migrations"]
    assert "without a transaction (mixed = true" in mig["transaction"]["how"]
    assert flyway_options(tmp_path / "mixed" / "app", tmp_path / "mixed" / "app" / "db" / "migration") == {"mixed": True}


def test_golang_migrate_sends_the_file_as_one_exec(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path / "exec", pg_admin_url, prod, "golang-migrate", [("idx", CONCURRENTLY_AND_MORE)])
    assert out.status is Status.FAILED, out.summary
    assert {"non-transactional-in-transaction", "apply-fails"} <= errors(out)
    assert "one multi-statement Exec" in out.evidence["transaction_model"]
    out = c3(tmp_path / "multi", pg_admin_url, prod, "golang-migrate", [("idx", CONCURRENTLY_AND_MORE)],
             options=ToolOptions(golang_multi_statement=True))
    assert out.status is Status.PASSED, out.summary


@pytest.mark.parametrize(("version", "verdict"), [("5.22.0", Status.FAILED), ("^7.4.0", Status.PASSED), (None, Status.FAILED)])
def test_prisma_by_version(version: str | None, verdict: Status, tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    extra = {"package.json": json.dumps({"devDependencies": {"prisma": version}})} if version else {}
    out = c3(tmp_path, pg_admin_url, prod, "prisma", [("idx", CONCURRENTLY_AND_MORE)], extra=extra)
    assert out.status is verdict, out.summary
    model = out.evidence["transaction_model"]
    assert (version or "unknown (assumed before 7.4)") in model
    if verdict is Status.FAILED:
        assert "one simple-query message" in model and "apply-fails" in errors(out)
    assert prisma_version(tmp_path / "app", tmp_path / "app" / "prisma" / "migrations") == version


def test_without_production_the_earlier_files_build_the_schema(tmp_path: Path, pg_admin_url: str) -> None:
    out = c3(tmp_path, pg_admin_url, None, "golang-migrate", [("change", UNSAFE["int to bigint"][0])])
    assert out.status is Status.INCONCLUSIVE and "size unknown" in out.summary, out.summary
    assert out.evidence["shadow"]["schema_from"] == "1 earlier migration(s) replayed"


def test_unparsable_sql_is_never_passed(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path, pg_admin_url, prod, "flyway", [("broken", "ALTER TABLE documents ADD COLUMN;")])
    assert out.status is Status.INCONCLUSIVE and "cannot read" in out.summary, out.summary


def test_postgres_that_does_not_answer_is_inconclusive(tmp_path: Path, prod: str) -> None:
    out = c3(tmp_path, "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2", prod, "flyway",
             [("change", SAFE["constant default"])])
    assert out.status is Status.INCONCLUSIVE and "cannot use a shadow database" in out.summary, out.summary


# --------------------------------------------------------------------------- the gate

FLYWAY_TOML = """[project]
migrations_kind = "flyway"
migrations_dir = "db/migration"
schema_paths = ["db/migration"]
shadow_database_url_env = "C3_SHADOW_URL"
[environments.production]
base_url = "http://127.0.0.1:9"
database_url_env = "C3_PROD_URL"
"""


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_admin_url: str, prod: str) -> Iterator[Callable[[str], Release]]:
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    monkeypatch.setenv("C3_SHADOW_URL", pg_admin_url)
    monkeypatch.setenv("C3_PROD_URL", prod)
    made: list[Release] = []

    def make(sql: str) -> Release:
        root = make_project(tmp_path / f"app{len(made)}", FLYWAY_TOML)
        commit(root, {"db/migration/V1__base.sql": BASE}, "v1", tag="v1.0.0")
        commit(root, {"db/migration/V2__change.sql": sql}, "the release")
        r = Release.create("1.1.0", root=root)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_gate_fails_a_drop_until_a4s_sign_off_names_the_plan(release: Callable[[str], Release]) -> None:
    from relnb.checks.migrations.gates import backwards_compatibility

    r = release("ALTER TABLE documents DROP COLUMN body;")
    out = migration_safety(GateContext(r, "C3"))
    assert out.status is Status.FAILED, out.summary
    assert "A4 is not signed off" in out.summary and "documents.body" in out.summary
    r.request_sign_off("A4", evidence=lambda: backwards_compatibility(GateContext(r, "A4")))
    r.sign_off("A4", by="Reviewer <reviewer@example.org>", note="expand/contract: 1.0 stopped reading documents.body")
    out = migration_safety(GateContext(r, "C3"))
    assert out.status is Status.PASSED, out.summary
    planned = [f for f in out.evidence["migrations"][0]["findings"] if f["rule"] == "destructive-change-planned"]
    assert planned and planned[0]["table"] == "documents"


def test_gate_traces_flyway_against_production(release: Callable[[str], Release]) -> None:
    out = migration_safety(GateContext(release(UNSAFE["validated fk"][0]), "C3"))
    assert out.status is Status.FAILED and "SHARE ROW EXCLUSIVE on documents (52,000 rows" in out.summary, out.summary
    assert out.evidence["migrations_kind"] == "flyway" and out.evidence["pending"] == ["V2__change"]
