"""A3, A4 and E2/E3 on every migrations kind relnb reads: a real git repository per kind, a
previous tag, a release commit, and the gates' providers on a real `Release`.

Issue 19 items 14 and 15: Django and Alembic migrations read as "no new migration", and a release
that dropped a column got "rollback = redeploy the previous image" — passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import relnb
from relnb import Outcome, Release, Status
from relnb.actions.gates import rollback_steps
from relnb.checks.migrations.gates import backwards_compatibility, migration_included, rollback_plan
from relnb.gatecontext import GateContext

from ...core.helpers import all_green, commit, make_project

DJANGO_V1 = {
    "shop/__init__.py": "",
    "shop/models.py": "class Customer: ...\n",
    "shop/migrations/__init__.py": "",
    "shop/migrations/0001_initial.py": '''
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Customer",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("email", models.CharField(max_length=200)),
                ("score", models.IntegerField(null=True)),
            ],
        ),
    ]
''',
}

DJANGO_REMOVE_FIELD = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [
        migrations.RemoveField(model_name="customer", name="email"),
    ]
'''

DJANGO_ADD_NULLABLE = '''
from django.db import migrations, models


def fill(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [
        migrations.AddField(model_name="customer", name="nickname", field=models.CharField(max_length=50, null=True)),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
'''

ALEMBIC_V1 = {
    "alembic/env.py": "# alembic env\n",
    "alembic/script.py.mako": "",
    "alembic/versions/a1_create_users.py": '''
"""create users"""
import sqlalchemy as sa
from alembic import op

revision = "a1"
down_revision = None


def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("legacy_name", sa.String()))


def downgrade():
    op.drop_table("users")
''',
}

ALEMBIC_DROP_COLUMN = '''
"""drop the legacy name"""
import sqlalchemy as sa
from alembic import op

revision = "b2"
down_revision = "a1"


def upgrade():
    op.drop_column("users", "legacy_name")


def downgrade():
    op.add_column("users", sa.Column("legacy_name", sa.String(), nullable=True))
'''

ALEMBIC_ADD_COLUMN = '''
import sqlalchemy as sa
from alembic import op

revision = "b3"
down_revision = "a1"


def upgrade():
    op.add_column("users", sa.Column("nickname", sa.String(), nullable=True))


def downgrade():
    op.drop_column("users", "nickname")
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Release]]:
    """`project(toml, v1_files, release_files)` → a Release of 1.1.0 over a v1.0.0 tag."""
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    made: list[Release] = []

    def make(toml: str, before: dict[str, str], release: dict[str, str]) -> Release:
        root = make_project(tmp_path / f"app{len(made)}", toml)
        commit(root, dict(before), "v1", tag="v1.0.0")
        commit(root, dict(release), "the release")
        r = Release.create("1.1.0", root=root)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def gates(r: Release) -> dict[str, Outcome]:
    return {
        "A3": migration_included(GateContext(r, "A3")),
        "A4": backwards_compatibility(GateContext(r, "A4")),
        "E2": rollback_plan(GateContext(r, "E2")),
        "E3": rollback_plan(GateContext(r, "E3")),
    }


DJANGO = '[project]\nmigrations_kind = "django"\nmigrations_dir = "."\nschema_paths = ["shop/models.py"]\n'
ALEMBIC = '[project]\nmigrations_kind = "alembic"\nmigrations_dir = "alembic"\nschema_paths = ["app/models.py"]\n'


def test_django_remove_field_is_listed_named_and_not_rolled_back_by_a_redeploy(project) -> None:
    """Issue 19 items 14 and 15: a Django RemoveField is a new migration (A3), a destructive
    change the sign-off must address (A4), and a rollback that redeploys 1.0.0 over it breaks (E2)."""
    r = project(DJANGO, DJANGO_V1, {"shop/migrations/0002_remove_customer_email.py": DJANGO_REMOVE_FIELD})
    out = gates(r)
    a3 = out["A3"]
    assert a3.status is Status.PASSED, a3.summary
    assert a3.evidence["new_migrations"] == ["shop.0002_remove_customer_email"]
    (mig,) = a3.evidence["migrations"]
    assert mig["path"] == "shop/migrations/0002_remove_customer_email.py"
    assert mig["operations"] == ["RemoveField customer.email"]

    a4 = out["A4"]
    assert [(c["op"], c["target"], c["effect"]) for c in a4.evidence["schema_changes"]] == [
        ("RemoveField", "customer.email", "drop")
    ]
    assert "RemoveField customer.email" in a4.evidence["sign_off_requires"]

    e2 = out["E2"]
    assert e2.status is Status.FAILED, e2.summary
    assert e2.summary.startswith("non-reversible: shop.0002_remove_customer_email: RemoveField customer.email")
    assert "redeploying v1.0.0 over it breaks; prepare a hotfix-forward or a restore" in e2.summary
    assert e2.evidence["redeploy_safe"] is False
    e3 = out["E3"]
    assert e3.status is Status.INCONCLUSIVE and "no D2 snapshot" in e3.summary, e3.summary
    assert not e3.evidence["plan"].startswith(("run down", "redeploy"))


def test_alembic_drop_column_is_listed_named_and_not_rolled_back_by_a_redeploy(project) -> None:
    """Issue 19 items 14 and 15: an Alembic op.drop_column, even with a downgrade() that re-adds
    the column (empty), loses data: E2 does not pass, A4 names the operation."""
    r = project(ALEMBIC, ALEMBIC_V1, {"alembic/versions/b2_drop_legacy.py": ALEMBIC_DROP_COLUMN})
    out = gates(r)
    assert out["A3"].status is Status.PASSED, out["A3"].summary
    assert out["A3"].evidence["new_migrations"] == ["b2"]
    (mig,) = out["A3"].evidence["migrations"]
    assert mig["path"] == "alembic/versions/b2_drop_legacy.py" and mig["down_revision"] == "a1"
    assert mig["reversible"] is False and "legacy_name" in mig["reason"]
    assert [c["target"] for c in out["A4"].evidence["schema_changes"]] == ["users.legacy_name"]
    assert "op.drop_column users.legacy_name" in out["A4"].evidence["sign_off_requires"]
    assert out["E2"].status is Status.FAILED
    assert "b2: op.drop_column users.legacy_name" in out["E2"].summary
    assert out["E3"].status is not Status.PASSED


def test_safe_django_and_alembic_releases_are_listed_and_reversible(project) -> None:
    """Issue 19 items 14/15: the safe counterparts (a nullable AddField with a reversible
    RunPython; a nullable add_column with a real downgrade) are listed, need no A4 note, and
    E3's plan is the down migration the lead's rollback runs."""
    dj = gates(project(DJANGO, DJANGO_V1, {"shop/migrations/0002_customer_nickname.py": DJANGO_ADD_NULLABLE}))
    al = gates(project(ALEMBIC, ALEMBIC_V1, {"alembic/versions/b3_nickname.py": ALEMBIC_ADD_COLUMN}))
    for out, name in ((dj, "shop.0002_customer_nickname"), (al, "b3")):
        assert out["A3"].evidence["new_migrations"] == [name]
        assert out["A4"].status is Status.PASSED and "sign_off_requires" not in out["A4"].evidence
        assert out["A4"].evidence["schema_changes"] == []
        e3 = out["E3"]
        assert e3.status is Status.PASSED and e3.evidence["applies"] is True, e3.summary
        assert e3.evidence["plan"].startswith("run down") and e3.evidence["redeploy_safe"] is True
        assert [m["reversible"] for m in e3.evidence["migrations"]] == [True]
        assert out["E2"].status is Status.PASSED and out["E2"].evidence["applies"] is False
    assert dj["A3"].evidence["migrations"][0]["operations"][0] == "AddField customer.nickname (CharField(max_length=50))"


def test_irreversible_but_not_breaking_is_redeploy_and_hotfix_forward(project) -> None:
    """Issue 19 item 14: Alembic `downgrade(): pass` and Django RunPython/RunSQL without a
    reverse are non-reversible; nothing the old version reads is dropped, so E2's plan holds."""
    alembic_pass = ALEMBIC_ADD_COLUMN.replace('def downgrade():\n    op.drop_column("users", "nickname")', 'def downgrade():\n    pass')
    django_one_way = DJANGO_ADD_NULLABLE.replace("migrations.RunPython(fill, migrations.RunPython.noop)", "migrations.RunPython(fill)")
    django_sql = DJANGO_ADD_NULLABLE.replace(
        "migrations.RunPython(fill, migrations.RunPython.noop)", 'migrations.RunSQL("UPDATE shop_customer SET score = 0")'
    )
    cases = [
        (ALEMBIC, ALEMBIC_V1, {"alembic/versions/b3_nickname.py": alembic_pass}, "downgrade() is empty (pass)"),
        (DJANGO, DJANGO_V1, {"shop/migrations/0002_nick.py": django_one_way}, "RunPython without reverse_code"),
        (DJANGO, DJANGO_V1, {"shop/migrations/0002_nick.py": django_sql}, "RunSQL without reverse_sql"),
    ]
    for toml, before, release, reason in cases:
        out = gates(project(toml, before, release))
        e2 = out["E2"]
        assert e2.status is Status.PASSED and e2.evidence["applies"] is True, e2.summary
        assert e2.evidence["plan"] == "redeploy previous app + hotfix forward" and e2.evidence["redeploy_safe"] is True
        assert reason in e2.evidence["migrations"][0]["reason"]
        assert out["E3"].evidence["applies"] is False


@pytest.mark.parametrize(
    ("toml", "before", "release", "words"),
    [
        (DJANGO, DJANGO_V1, {"shop/migrations/0002_broken.py": "class Migration(:\n"}, "SyntaxError"),
        (DJANGO, DJANGO_V1, {"shop/migrations/0002_ops.py": "from x import OPS\nclass Migration:\n    operations = OPS\n"}, "computed"),
        (ALEMBIC, ALEMBIC_V1, {"alembic/versions/b9.py": "def upgrade():\n    pass\n"}, "no literal `revision"),
        (
            '[project]\nmigrations_kind = "prisma"\n',
            {"prisma/migrations/1_init/migration.sql": "CREATE TABLE t (id int);\n"},
            {"prisma/migrations/2_x/migration.sql": "ALTER TABLE t ADD COLUMN x int DEFAULT;\n"},
            "not SQL PostgreSQL parses",
        ),
        (
            '[project]\nmigrations_kind = "flyway"\nmigrations_dir = "db"\n',
            {"db/V1__init.sql": "CREATE TABLE t (id int);\n"},
            {"db/v2_add_x.sql": "ALTER TABLE t ADD x int;\n"},
            "not a Flyway migration name",
        ),
    ],
    ids=["django-syntax", "django-computed-operations", "alembic-no-revision", "prisma-bad-sql", "flyway-bad-name"],
)
def test_a_migration_relnb_cannot_read_is_inconclusive_never_no_migration(project, toml, before, release, words) -> None:
    """Issue 19 items 14/15: files under the migrations directory that relnb cannot read make
    A3, A4, E2 and E3 inconclusive with the file and the reason."""
    (path,) = release
    out = gates(project(toml, before, release))
    for gate, res in out.items():
        assert res.status is Status.INCONCLUSIVE, (gate, res.summary)
        assert path in res.summary and words in res.summary, (gate, res.summary)


def test_a_migrations_dir_without_migrations_of_the_kind_is_not_no_migration(project) -> None:
    """Issue 19 item 14, the incident's root: a Django project left on the default
    migrations_dir (prisma/migrations) read as "no migrations: redeploy the previous image"."""
    out = gates(project('[project]\nmigrations_kind = "django"\n', DJANGO_V1, {"shop/migrations/0002_rm.py": DJANGO_REMOVE_FIELD}))
    for gate in ("A3", "A4", "E2", "E3"):
        assert out[gate].status is Status.INCONCLUSIVE, (gate, out[gate].summary)
        assert "no django migrations under prisma/migrations" in out[gate].summary


def test_flyway_and_golang_migrate_releases(project) -> None:
    """Issue 19 items 14/15 on the SQL kinds: a DROP COLUMN fails E2 and is named in A4; an
    ADD COLUMN with its down/undo script is reversible (E3)."""
    fw = '[project]\nmigrations_kind = "flyway"\nmigrations_dir = "db/migration"\n'
    go = '[project]\nmigrations_kind = "golang-migrate"\nmigrations_dir = "migrations"\n'
    fw_v1 = {"db/migration/V1__init.sql": "CREATE TABLE t (id int, old text);\n"}
    go_v1 = {"migrations/000001_init.up.sql": "CREATE TABLE t (id int, old text);\n", "migrations/000001_init.down.sql": "DROP TABLE t;\n"}
    drop = "ALTER TABLE t DROP COLUMN old;\n"
    add, undo = "ALTER TABLE t ADD COLUMN x int;\n", "ALTER TABLE t DROP COLUMN x;\n"
    for toml, v1, release, name in (
        (fw, fw_v1, {"db/migration/V2__drop_old.sql": drop}, "V2__drop_old"),
        (go, go_v1, {"migrations/000002_drop_old.up.sql": drop, "migrations/000002_drop_old.down.sql": "ALTER TABLE t ADD old text;\n"}, "000002_drop_old"),
    ):
        out = gates(project(toml, v1, release))
        assert out["A3"].evidence["new_migrations"] == [name]
        assert "drops column t.old" in out["A4"].evidence["sign_off_requires"]
        assert out["E2"].status is Status.FAILED and f"non-reversible: {name}: drops column t.old" in out["E2"].summary
    for toml, v1, release, name in (
        (fw, fw_v1, {"db/migration/V2__add_x.sql": add, "db/migration/U2__add_x.sql": undo}, "V2__add_x"),
        (go, go_v1, {"migrations/000002_add_x.up.sql": add, "migrations/000002_add_x.down.sql": undo}, "000002_add_x"),
    ):
        out = gates(project(toml, v1, release))
        assert out["A3"].evidence["new_migrations"] == [name]
        assert out["E3"].status is Status.PASSED and out["E3"].evidence["plan"].startswith("run down")
        assert out["E3"].evidence["migrations"][0]["reversible"] is True


def test_with_a_d2_snapshot_the_plan_restores_before_redeploying(project) -> None:
    """Issue 19 item 14: when D2 recorded a snapshot, a non-reversible drop's plan is to restore
    it before redeploying the previous version (E3); E2's redeploy is not the plan."""
    r = project(DJANGO, DJANGO_V1, {"shop/migrations/0002_remove_customer_email.py": DJANGO_REMOVE_FIELD})
    all_green(r)
    d2 = r.action("D2", lambda: Outcome.passed("snapshot taken", key="s3://backups/release-1.1.0.dump"), confirmed=True)
    assert d2.status is Status.PASSED, d2.summary
    out = gates(r)
    e3, e2 = out["E3"], out["E2"]
    assert e3.status is Status.PASSED and e3.evidence["applies"] is True, e3.summary
    assert e3.evidence["plan"] == "restore the D2 snapshot before redeploying v1.0.0"
    assert e3.evidence["undo"] == "restore" and e3.evidence["redeploy_safe"] is False
    assert "s3://backups/release-1.1.0.dump" in e3.summary
    assert e2.status is Status.PASSED and e2.evidence["applies"] is False and "redeploying v1.0.0 over it breaks" in e2.summary
    # the rollback follows it: the schema is restored before the previous version comes back
    r.action("D3", lambda: Outcome.passed("migrated"), confirmed=True)
    _with_production(r)
    assert [name for name, _ in rollback_steps(GateContext(r, "E3"))] == ["rollback-restore-snapshot", "rollback-redeploy"]


def _with_production(r: Release) -> None:
    cfg = r.config.root / "relnb.toml"
    cfg.write_text(cfg.read_text() + '[environments.production]\nbase_url = "http://127.0.0.1:9"\n')
    r.config = relnb.load_config(cfg)


def test_without_a_snapshot_a_breaking_release_is_not_rolled_back_by_a_redeploy(project) -> None:
    """Issue 19 item 14, the incident: the old version refused the newer schema and production
    stayed down. With no way to undo the drop, the rollback stops at its plan and says why."""
    r = project(DJANGO, DJANGO_V1, {"shop/migrations/0002_remove_customer_email.py": DJANGO_REMOVE_FIELD})
    all_green(r)
    r.journal.append("action-started", {"gate": "D3", "action": "D3", "attempt": 1})
    r.journal.append("action-finished", {"gate": "D3", "action": "D3", "attempt": 1, "status": "passed", "summary": "migrated"})
    _with_production(r)
    steps = rollback_steps(GateContext(r, "E3"))
    assert [name for name, _ in steps] == ["rollback-plan"]
    out = steps[0][1]()
    assert out.status is Status.FAILED and "no safe rollback" in out.summary and "RemoveField customer.email" in out.summary


def test_rollback_steps_still_run_the_down_migration_of_a_reversible_release(project) -> None:
    """The evidence contract relnb/actions/gates.py `rollback_steps` reads (`applies`, a `plan`
    starting "run down") holds for a reversible Django release."""
    r = project(
        DJANGO + '[environments.production]\nbase_url = "http://127.0.0.1:9"\n'
        '[environments.production.commands]\nmigrate_down = "true"\n',
        DJANGO_V1, {"shop/migrations/0002_customer_nickname.py": DJANGO_ADD_NULLABLE},
    )
    r.config = relnb.load_config(r.config.root / "relnb.toml")
    # before D3 ran, the schema is the previous release's: a redeploy is the whole rollback
    assert [name for name, _ in rollback_steps(GateContext(r, "E3"))] == ["rollback-redeploy"]
    r.journal.append("action-started", {"gate": "D3", "action": "D3", "attempt": 1})
    r.journal.append("action-finished", {"gate": "D3", "action": "D3", "attempt": 1, "status": "passed", "summary": "migrated"})
    assert [name for name, _ in rollback_steps(GateContext(r, "E3"))] == ["rollback-redeploy", "rollback-down-migration"]


def _ledger(url: str, *applied: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "create table if not exists django_migrations"
            " (id serial primary key, app varchar(255), name varchar(255), applied timestamptz default now())"
        )
        for name in applied:
            app, _, migration = name.partition(".")
            conn.execute("insert into django_migrations (app, name) values (%s, %s)", (app, migration))


def test_migrations_of_an_installed_package_are_read_from_disk(project, pg_url, monkeypatch) -> None:
    """Issue 19 items 14/15, NetBox's case: the migrations ship inside a package in the release's
    site-packages (not in git). A3 lists the ones staging has not applied and reads them; A4 names
    the RemoveField; E2 fails — also after D3 applied them, from A3's recorded list."""
    site = ".venv/lib/python3.12/site-packages"
    r = project(
        f'[project]\nmigrations_kind = "django"\nmigrations_dir = "{site}"\nmigration_apps = ["fakeapp"]\n'
        '[environments.staging]\nbase_url = "http://127.0.0.1:9"\ndatabase_url_env = "FAKE_STAGING_DB"\n'
        '[environments.production]\nbase_url = "http://127.0.0.1:9"\ndatabase_url_env = "FAKE_PROD_DB"\n',
        {"requirements.txt": "fakeapp==1.0\n"},
        {"requirements.txt": "fakeapp==1.1\n"},
    )
    pkg = r.config.root / site / "fakeapp" / "migrations"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "0001_initial.py").write_text(DJANGO_V1["shop/migrations/0001_initial.py"])
    (pkg / "0002_remove_customer_email.py").write_text(DJANGO_REMOVE_FIELD.replace('"shop"', '"fakeapp"'))
    _ledger(pg_url, "fakeapp.0001_initial")
    monkeypatch.setenv("FAKE_STAGING_DB", pg_url)
    monkeypatch.setenv("FAKE_PROD_DB", pg_url)

    a3 = r.check("A3")
    assert a3.evidence["new_migrations"] == ["fakeapp.0002_remove_customer_email"], a3.summary
    assert a3.evidence["migrations"][0]["operations"] == ["RemoveField customer.email"]
    a4 = backwards_compatibility(GateContext(r, "A4"))
    assert a4.evidence["schema_changes"][0]["op"] == "RemoveField"
    assert "fakeapp.0002_remove_customer_email: RemoveField customer.email" in a4.evidence["sign_off_requires"]
    e2 = rollback_plan(GateContext(r, "E2"))
    assert e2.status is Status.FAILED and "redeploying v1.0.0 over it breaks" in e2.summary, e2.summary

    _ledger(pg_url, "fakeapp.0002_remove_customer_email")  # D3 applied it: nothing pending any more
    e2 = rollback_plan(GateContext(r, "E2"))
    assert e2.status is Status.FAILED and "fakeapp.0002_remove_customer_email" in e2.summary, e2.summary


def test_a4_names_renames_and_type_changes_of_both_python_kinds(project) -> None:
    """Issue 19 item 15: A4 names RenameField and an AlterField whose type differs from the
    field's definition in an earlier migration; Alembic alter_column(type_=/new_column_name=),
    rename_table and SQL in op.execute, also inside batch_alter_table and helper functions."""
    django = '''
from django.db import migrations, models

SQL = "ALTER TABLE shop_customer " + "DROP COLUMN legacy"


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [
        migrations.AlterField(model_name="customer", name="score", field=models.BigIntegerField(null=True)),
        migrations.AlterField(model_name="customer", name="email", field=models.CharField(max_length=200)),
        migrations.RenameField(model_name="customer", old_name="email", new_name="mail"),
        migrations.RunSQL(SQL, reverse_sql=migrations.RunSQL.noop),
    ]
'''
    alembic = '''
import sqlalchemy as sa
from alembic import op

revision = "b4"
down_revision = "a1"


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("legacy_name", new_column_name="name", type_=sa.Text())
    _rename()
    op.execute(sa.text("DROP TABLE audit"))


def _rename():
    op.rename_table("users", "accounts")


def downgrade():
    op.rename_table("accounts", "users")
'''
    dj = backwards_compatibility(GateContext(project(DJANGO, DJANGO_V1, {"shop/migrations/0002_mail.py": django}), "A4"))
    assert [c["message"] for c in dj.evidence["schema_changes"]] == [
        "AlterField customer.score: type IntegerField → BigIntegerField",
        "RenameField customer.email → mail: code that reads email fails",
        "RunSQL: drops column shop_customer.legacy",
    ]
    al = backwards_compatibility(GateContext(project(ALEMBIC, ALEMBIC_V1, {"alembic/versions/b4.py": alembic}), "A4"))
    assert [(c["op"], c["effect"]) for c in al.evidence["schema_changes"]] == [
        ("batch_op.alter_column", "rename"),
        ("batch_op.alter_column", "type-change"),
        ("drop-table", "drop"),
        ("op.rename_table", "rename"),
    ]
    assert "b4: batch_op.alter_column legacy_name: renames the column" in al.evidence["sign_off_requires"]
    assert any(c["message"] == "op.rename_table users → accounts: renames the table" for c in al.evidence["schema_changes"])
