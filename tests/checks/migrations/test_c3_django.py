"""C3 on Django: `manage.py sqlmigrate` of a tiny real Django app renders each new migration
(BEGIN/COMMIT around atomic ones, none with `atomic = False`), replayed on a copy of
production's schema (PostgreSQL, 52,000 documents) migration by migration, as `migrate` runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relnb.checks.migrations.changeset import release_migrations
from relnb.checks.migrations.release_safety import check_release_safety
from relnb.results import Outcome, Status

from ...core.helpers import commit
from .c3_apps import DJANGO_CMD, django_env, django_migration, django_production, django_repo

pytest.importorskip("django", reason="C3's Django tests run the real `manage.py sqlmigrate`: pip install django")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prod(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from django_production(pg_admin_url, tmp_path_factory.mktemp("django-prod"))


@pytest.fixture(autouse=True)
def _settings_env(prod: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the app's environment: its settings read the database from these (sqlmigrate reads the ledger)
    for k, v in django_env(prod).items():
        monkeypatch.setenv(k, v)


def c3(tmp_path: Path, admin: str, prod: str, migrations: dict[str, str], production: bool = True, **kw) -> Outcome:
    root = django_repo(tmp_path / "app")
    commit(root, {f"docs/migrations/{n}.py": t for n, t in migrations.items()}, "the release")
    rs = release_migrations(root, "django", ".", "v1.0.0", "HEAD")
    return check_release_safety(
        rs, admin, repo=root, migrations_dir=".", production_url=prod if production else None, command=DJANGO_CMD, **kw
    )


def errors(out: Outcome) -> set[str]:
    return {f["rule"] for m in out.evidence["migrations"] for f in m["findings"] if f["severity"] == "error" and not f["waived"]}


def one(ops: str, **kw) -> dict[str, str]:
    return {"0002_change": django_migration("0001_initial", ops, **kw)}


FK_NOT_VALID = (
    'migrations.RunSQL("ALTER TABLE docs_document ADD CONSTRAINT docs_ws_fk FOREIGN KEY (workspace_id)'
    ' REFERENCES docs_workspace (id) NOT VALID")'
)
FK_VALIDATE = 'migrations.RunSQL("ALTER TABLE docs_document VALIDATE CONSTRAINT docs_ws_fk")'

FAILS = {
    "volatile db_default": (
        one('migrations.AddField("document", "r", models.FloatField(db_default=Random()))',
            imports="from django.db.models.functions import Random"),
        "rewrite",
    ),
    "integer to bigint": (one('migrations.AlterField("document", "workspace_id", models.BigIntegerField())'), "rewrite"),
    "plain index": (
        one('migrations.AddIndex("document", models.Index(fields=["title"], name="docs_title_idx"))'),
        "index-build-under-lock",
    ),
    "validated fk": (
        one('migrations.RunSQL("ALTER TABLE docs_document ADD CONSTRAINT docs_ws_fk FOREIGN KEY (workspace_id)'
            ' REFERENCES docs_workspace (id)")'),
        "scan-under-lock",
    ),
    "concurrently in an atomic migration": (
        one('migrations.RunSQL("CREATE INDEX CONCURRENTLY docs_title_idx ON docs_document (title)")'),
        "non-transactional-in-transaction",
    ),
    "not valid and validate in one atomic migration": (one(FK_NOT_VALID + ",\n" + FK_VALIDATE), "scan-under-lock"),
}

PASSES = {
    "constant db_default": one('migrations.AddField("document", "n", models.IntegerField(db_default=0))'),
    "nullable field": one('migrations.AddField("document", "note", models.TextField(null=True))'),
    "AddIndexConcurrently with atomic = False": one(
        'AddIndexConcurrently("document", models.Index(fields=["title"], name="docs_title_idx"))',
        atomic=False, imports="from django.contrib.postgres.operations import AddIndexConcurrently",
    ),
    "not valid, then validate in the next migration": {
        "0002_fk": django_migration("0001_initial", FK_NOT_VALID),
        "0003_validate": django_migration("0002_fk", FK_VALIDATE),
    },
}


@pytest.mark.parametrize("case", sorted(FAILS))
def test_unsafe_django_migration_fails(case: str, tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    migrations, rule = FAILS[case]
    out = c3(tmp_path, pg_admin_url, prod, migrations)
    assert out.status is Status.FAILED, out.summary
    assert rule in errors(out), out.evidence["migrations"]
    assert out.summary.startswith("docs.0002_change: ")
    assert "sqlmigrate" in out.evidence["migrations"][0]["rendered_by"]
    assert out.evidence["transaction_model"].startswith("django: BEGIN/COMMIT as manage.py sqlmigrate renders them")


@pytest.mark.parametrize("case", sorted(PASSES))
def test_safe_django_migration_passes(case: str, tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path, pg_admin_url, prod, PASSES[case])
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["shadow"]["schema_from"].startswith("production")
    if "atomic = False" in case:
        (mig,) = out.evidence["migrations"]
        assert "CONCURRENTLY" in mig["sql"] and "BEGIN" not in mig["sql"]
        assert mig["transaction"]["runs_in_transaction"] is False and mig["trace"]["apply"]["ok"] is True
    if "next migration" in case:
        # Django commits each migration apart: the VALIDATE runs under SHARE UPDATE EXCLUSIVE only
        names = [m["name"] for m in out.evidence["migrations"]]
        assert names == ["docs.0002_fk", "docs.0003_validate"]
        (st,) = out.evidence["migrations"][1]["trace"]["statements"]
        assert st["held"]["docs_document"] == "SHARE UPDATE EXCLUSIVE"


def test_run_python_is_inconclusive_not_passed(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    ops = 'migrations.RunPython(lambda apps, schema_editor: None, migrations.RunPython.noop)'
    out = c3(tmp_path, pg_admin_url, prod, one(ops))
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "RunPython" in out.summary


def test_remove_field_needs_a4s_expand_contract_plan(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    ops = one('migrations.RemoveField("document", "body")')
    out = c3(tmp_path / "a", pg_admin_url, prod, ops)
    assert out.status is Status.FAILED and "destructive-without-plan" in errors(out), out.summary
    out = c3(tmp_path / "b", pg_admin_url, prod, ops, expand_contract="docs_document.body is unread since 1.3; dropped now")
    assert out.status is Status.PASSED, out.summary


def test_without_production_schema_or_with_a_broken_migration_is_inconclusive(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path / "noprod", pg_admin_url, prod, PASSES["nullable field"], production=False)
    assert out.status is Status.INCONCLUSIVE and "production's schema" in out.summary, out.summary
    out = c3(tmp_path / "broken", pg_admin_url, prod, {"0002_broken": "class Migration(:\n"})
    assert out.status is Status.INCONCLUSIVE and "cannot read" in out.summary, out.summary
