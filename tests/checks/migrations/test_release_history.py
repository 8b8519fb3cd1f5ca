"""A3 (git: schema changed / new migrations) and E2/E3 (reversibility, rollback plan)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relnb.checks.migrations.included import (
    check_migration_included,
    new_migrations_since,
    schema_changed_since,
)
from relnb.checks.migrations.reversibility import classify_reversibility, rollback_plan
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
    mdir = repo.path / "prisma" / "migrations"
    repo.commit(
        {
            "prisma/migrations/20261101000000_title/migration.sql": "ALTER TABLE d ADD title text;\n",
            "prisma/migrations/20261101000000_title/down.sql": "ALTER TABLE d DROP title;\n",
            "prisma/migrations/20261102000000_drop/migration.sql": "ALTER TABLE d DROP title;\n",
            "prisma/migrations/20261102000000_drop/down.sql": "ALTER TABLE d ADD title text;\n",
            "prisma/migrations/20261103000000_idx/migration.sql": "CREATE INDEX i ON d (id);\n",
            "prisma/migrations/20261103000000_idx/down.sql": "-- nothing\n",
        },
        "three",
    )
    rev = {r["name"]: r for r in classify_reversibility(mdir)}
    assert rev["20261101000000_title"]["reversible"] is True
    assert rev["20261102000000_drop"]["reversible"] is False
    assert "destroys data" in rev["20261102000000_drop"]["reason"]
    assert rev["20261103000000_idx"]["reversible"] is False
    assert rev["20261001000000_init"]["reason"] == "no down migration"

    out = rollback_plan(mdir, ["20261101000000_title"])
    assert out.evidence["plan"] == "run down migration(s) or restore the D2 snapshot"
    assert out.evidence["gate"] == "E3"
    out = rollback_plan(mdir, ["20261101000000_title", "20261102000000_drop"])
    assert out.evidence["plan"] == "redeploy previous app + hotfix forward"
    assert out.evidence["gate"] == "E2"
    assert rollback_plan(mdir, []).evidence["plan"] == "redeploy previous app"
    assert rollback_plan(mdir, ["nope"]).status is Status.FAILED


def test_alembic_reversibility(tmp_path):
    v = tmp_path / "versions"
    v.mkdir()
    (v / "a1_up.py").write_text(
        'revision = "a1"\ndef upgrade():\n    op.add_column("t", c)\n'
        'def downgrade():\n    op.drop_column("t", "c")\n'
    )
    (v / "a2_up.py").write_text(
        'revision = "a2"\ndef upgrade():\n    pass\ndef downgrade():\n    """no."""\n    pass\n'
    )
    got = {r["name"]: r["reversible"] for r in classify_reversibility(tmp_path, "alembic")}
    assert got == {"a1_up": True, "a2_up": False}
