"""A3 (git: schema changed / new migrations) and E2/E3 (reversibility, rollback plan)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relnb.checks.migrations.changeset import release_migrations
from relnb.checks.migrations.included import (
    check_migration_included,
    new_migrations_since,
    schema_changed_since,
)
from relnb.checks.migrations.reversibility import rollback_plan
from relnb.results import Status


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.git("init", "-q")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=r@example.com", "-c", "user.name=r", *args],
            cwd=self.path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def commit(self, files: dict[str, str], msg: str) -> None:
        for p, text in files.items():
            f = self.path / p
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
        self.git("add", ".")
        self.git("commit", "-qm", msg)


@pytest.fixture
def repo(tmp_path):
    r = Repo(tmp_path)
    r.commit(
        {
            "prisma/schema.prisma": "model Doc { id Int @id }\n",
            "prisma/migrations/20261001000000_init/migration.sql": "CREATE TABLE d (id int);\n",
            "prisma/migrations/migration_lock.toml": 'provider = "postgresql"\n',
        },
        "init",
    )
    r.git("tag", "v1.0.0")
    return r


def test_schema_change_with_migration(repo):
    repo.commit(
        {
            "prisma/schema.prisma": "model Doc { id Int @id\n title String? }\n",
            "prisma/migrations/20261101000000_title/migration.sql": "ALTER TABLE d ADD title text;\n",
            "prisma/migrations/20261101000000_title/down.sql": "ALTER TABLE d DROP title;\n",
        },
        "title",
    )
    assert schema_changed_since(repo.path, "v1.0.0", ["prisma/schema.prisma"]) == [
        "prisma/schema.prisma"
    ]
    assert new_migrations_since(repo.path, "v1.0.0", "prisma/migrations") == [
        "20261101000000_title"
    ]
    out = check_migration_included(
        repo.path, "v1.0.0", ["prisma/schema.prisma"], "prisma/migrations"
    )
    assert out.status is Status.PASSED and "20261101000000_title" in out.summary


def test_schema_change_without_migration_fails(repo):
    repo.commit({"prisma/schema.prisma": "model Doc { id BigInt @id }\n"}, "oops")
    out = check_migration_included(
        repo.path, "v1.0.0", ["prisma/schema.prisma"], "prisma/migrations"
    )
    assert out.status is Status.FAILED and "no new migration" in out.summary
    out = check_migration_included(repo.path, "v9", ["prisma/schema.prisma"], "prisma/migrations")
    assert out.status is Status.INCONCLUSIVE


def test_reversibility_and_rollback_plan(repo):
    repo.commit(
        {
            "prisma/migrations/20261101000000_title/migration.sql": "ALTER TABLE d ADD title text;\n",
            "prisma/migrations/20261101000000_title/down.sql": "ALTER TABLE d DROP title;\n",
        },
        "title",
    )
    repo.git("tag", "v1.1.0")
    repo.commit(
        {
            "prisma/migrations/20261102000000_drop/migration.sql": "ALTER TABLE d DROP title;\n",
            "prisma/migrations/20261102000000_drop/down.sql": "ALTER TABLE d ADD title text;\n",
            "prisma/migrations/20261103000000_idx/migration.sql": "CREATE INDEX i ON d (id);\n",
            "prisma/migrations/20261103000000_idx/down.sql": "-- nothing\n",
        },
        "three",
    )
    whole = release_migrations(repo.path, "prisma", "prisma/migrations", "v1.0.0")
    rev = {m.name: m.reading for m in whole.migrations}
    assert rev["20261101000000_title"].reversible is True
    assert rev["20261102000000_drop"].reversible is False
    assert "its data does not come back" in rev["20261102000000_drop"].reason
    assert rev["20261103000000_idx"].reversible is False
    assert rev["20261103000000_idx"].reason == "down migration is empty"

    first = release_migrations(repo.path, "prisma", "prisma/migrations", "v1.0.0", "v1.1.0")
    assert first.names == ["20261101000000_title"]
    plan = rollback_plan(first, "v1.0.0", None)
    assert plan.plan == "run down migration(s) or restore the D2 snapshot" and plan.gate == "E3"
    # a DROP of what v1.0.0 reads, not undoable: no plan redeploys v1.0.0 over it
    plan = rollback_plan(whole, "v1.0.0", None)
    assert plan.status is Status.FAILED and plan.gate == "E2" and plan.redeploy_safe is False
    assert "non-reversible: 20261102000000_drop: drops column d.title" in plan.summary
    plan = rollback_plan(whole, "v1.0.0", {"status": "passed", "evidence": {"key": "snap-1"}})
    assert plan.status is Status.PASSED and plan.plan == "restore the D2 snapshot before redeploying v1.0.0"
    none = release_migrations(repo.path, "prisma", "prisma/migrations", "HEAD")
    plan = rollback_plan(none, "HEAD", None)
    assert plan.status is Status.PASSED and plan.plan == "redeploy previous app"


def test_alembic_reversibility(tmp_path):
    repo = Repo(tmp_path)
    repo.commit({"migrations/versions/a0_base.py": 'revision = "a0"\ndef upgrade():\n    pass\n'}, "base")
    repo.git("tag", "v1")
    repo.commit(
        {
            "migrations/versions/a1_up.py": 'revision = "a1"\ndown_revision = "a0"\ndef upgrade():\n'
            '    op.add_column("t", c)\ndef downgrade():\n    op.drop_column("t", "c")\n',
            "migrations/versions/a2_up.py": 'revision = "a2"\ndown_revision = "a1"\n'
            'def upgrade():\n    pass\ndef downgrade():\n    """no."""\n    pass\n',
        },
        "two",
    )
    got = release_migrations(tmp_path, "alembic", "migrations", "v1")
    assert {m.name: m.reading.reversible for m in got.migrations} == {"a1": True, "a2": False}
