"""Tiny real apps for C3's per-tool tests: an Alembic project and a Django project, each a git
repository whose v1.0.0 tag holds the schema production runs, and a "production" database at that
schema holding a large table (documents: 52,000 rows, analyzed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...core.helpers import commit, make_project

ROWS = 52_000


def db_url(admin_url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    return make_conninfo(**params)


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"relnb_c3_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield db_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def fill(url: str, documents: str = "documents", workspaces: str = "workspaces") -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"insert into {workspaces} (id, name) select g, 'w' || g from generate_series(1, 50) g")
        conn.execute(
            f"insert into {documents} (id, workspace_id, title) select g, 1 + g % 50, 'title ' || g"
            f" from generate_series(1, {ROWS}) g"
        )
        conn.execute("analyze")


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    got = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    assert got.returncode == 0, got.stderr[-2000:]
    return got.stdout


# --------------------------------------------------------------------------- alembic


def sqlalchemy_url(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(url)
    host = p.get("host", "127.0.0.1")
    q = f"?host={host}" if str(host).startswith("/") else ""
    netloc = "" if q else f"{host}:{p.get('port', 5432)}"
    return f"postgresql+psycopg://{p.get('user', 'postgres')}@{netloc}/{p['dbname']}{q}"


ALEMBIC_ENV = '''
from alembic import context
from sqlalchemy import create_engine

config = context.config
PER_MIGRATION = config.get_main_option("transaction_per_migration") == "true"

if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
                      dialect_opts={"paramstyle": "named"}, transaction_per_migration=PER_MIGRATION)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        context.configure(connection=conn, transaction_per_migration=PER_MIGRATION)
        with context.begin_transaction():
            context.run_migrations()
'''

ALEMBIC_BASE = '''
import sqlalchemy as sa
from alembic import op

revision = "a1"
down_revision = None


def upgrade():
    op.create_table("workspaces", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("body", sa.Text),
    )


def downgrade():
    op.drop_table("documents")
    op.drop_table("workspaces")
'''


def alembic_revision(rev: str, down: str, body: str) -> str:
    return (
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {rev!r}\ndown_revision = {down!r}\n\n\ndef upgrade():\n"
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + "\n\n\ndef downgrade():\n    pass\n"
    )


def alembic_files(url: str, per_migration: bool = False) -> dict[str, str]:
    ini = (
        "[alembic]\nscript_location = alembic\n"
        f"sqlalchemy.url = {sqlalchemy_url(url)}\n"
        f"transaction_per_migration = {'true' if per_migration else 'false'}\n"
    )
    return {
        "alembic.ini": ini,
        "alembic/env.py": ALEMBIC_ENV,
        "alembic/script.py.mako": "",
        "alembic/versions/a1_base.py": ALEMBIC_BASE,
    }


ALEMBIC_CMD = f"{sys.executable} -m alembic upgrade {{range}} --sql"


def alembic_repo(root: Path, prod_url: str, per_migration: bool = False) -> Path:
    make_project(root)
    commit(root, alembic_files(prod_url, per_migration), "v1", tag="v1.0.0")
    return root


def alembic_production(admin_url: str, workdir: Path) -> Iterator[str]:
    with database(admin_url) as url:
        app = workdir / "alembic-prod"
        app.mkdir(parents=True)
        for name, text in alembic_files(url).items():
            (app / name).parent.mkdir(parents=True, exist_ok=True)
            (app / name).write_text(text)
        run([sys.executable, "-m", "alembic", "upgrade", "a1"], app)
        fill(url)
        yield url


# --------------------------------------------------------------------------- django

DJANGO_SETTINGS = '''
import os

SECRET_KEY = "c3-test"
INSTALLED_APPS = ["docs"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": os.environ["C3_DB_NAME"],
    "HOST": os.environ["C3_DB_HOST"],
    "PORT": os.environ["C3_DB_PORT"],
    "USER": os.environ["C3_DB_USER"],
}}
'''

DJANGO_MANAGE = '''
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
'''

DJANGO_BASE = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(name="Workspace", fields=[
            ("id", models.IntegerField(primary_key=True)),
            ("name", models.TextField()),
        ]),
        migrations.CreateModel(name="Document", fields=[
            ("id", models.IntegerField(primary_key=True)),
            ("workspace_id", models.IntegerField()),
            ("title", models.TextField()),
            ("body", models.TextField(null=True)),
        ]),
    ]
'''

DJANGO_FILES = {
    "manage.py": DJANGO_MANAGE,
    "proj/__init__.py": "",
    "proj/settings.py": DJANGO_SETTINGS,
    "docs/__init__.py": "",
    "docs/models.py": "",
    "docs/migrations/__init__.py": "",
    "docs/migrations/0001_initial.py": DJANGO_BASE,
}

DJANGO_CMD = f"{sys.executable} manage.py sqlmigrate {{app}} {{migration}}"


def django_migration(deps: str, ops: str, *, atomic: bool = True, imports: str = "") -> str:
    return (
        "from django.db import migrations, models\n" + imports + "\n\n"
        "class Migration(migrations.Migration):\n"
        + ("    atomic = False\n" if not atomic else "")
        + f"    dependencies = [(\"docs\", {deps!r})]\n"
        + "    operations = [\n" + textwrap.indent(textwrap.dedent(ops).strip(), "        ") + "\n    ]\n"
    )


def django_env(url: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(url)
    return {
        "C3_DB_NAME": str(p["dbname"]),
        "C3_DB_HOST": str(p.get("host", "127.0.0.1")),
        "C3_DB_PORT": str(p.get("port", "5432")),
        "C3_DB_USER": str(p.get("user", "postgres")),
    }


def django_repo(root: Path) -> Path:
    make_project(root)
    commit(root, dict(DJANGO_FILES), "v1", tag="v1.0.0")
    return root


def django_production(admin_url: str, workdir: Path) -> Iterator[str]:
    import os

    with database(admin_url) as url:
        app = workdir / "django-prod"
        for name, text in DJANGO_FILES.items():
            (app / name).parent.mkdir(parents=True, exist_ok=True)
            (app / name).write_text(text)
        run([sys.executable, "manage.py", "migrate", "docs", "0001"], app, env={**os.environ, **django_env(url)})
        fill(url, "docs_document", "docs_workspace")
        yield url
