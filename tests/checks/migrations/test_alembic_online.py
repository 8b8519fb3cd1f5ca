"""C3 on Alembic revisions that cannot render offline (they inspect the live schema through
op.get_bind()): the SQL the online `alembic upgrade` really sends, captured through relnb's
wire-protocol proxy on a scratch copy of production's schema, judged on a fresh shadow."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relnb.checks.migrations.changeset import release_migrations
from relnb.checks.migrations.release_safety import check_release_safety
from relnb.results import Outcome, Status

from ...core.helpers import commit
from .c3_apps import ALEMBIC_CMD, alembic_production, alembic_repo, alembic_revision

pytest.importorskip("alembic", reason="runs the real `alembic upgrade`: pip install alembic")
pytestmark = pytest.mark.integration

# online mode reads the URL relnb gives (never alembic.ini's, which is production's here)
ONLINE_ENV = '''
import os
from alembic import context
from sqlalchemy import create_engine

config = context.config
if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = os.environ["SCRATCH_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    with create_engine(url).connect() as conn:
        context.configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
'''

ONLINE_CMD = f"{sys.executable} -m alembic upgrade {{revision}}"

INSPECTS = '''
bind = op.get_bind()
cols = {c["name"] for c in sa.inspect(bind).get_columns("documents")}
if "title" in cols:
'''


def inspecting(body: str) -> str:
    return INSPECTS + "    " + body.strip().replace("\n", "\n    ")


@pytest.fixture(scope="module")
def prod(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from alembic_production(pg_admin_url, tmp_path_factory.mktemp("alembic-online-prod"))


def c3(tmp_path: Path, admin: str, prod: str, body: str, *, command: str = ONLINE_CMD, **kw) -> Outcome:
    root = alembic_repo(tmp_path / "app", prod)
    commit(root, {"alembic/env.py": ONLINE_ENV}, "online env")
    commit(root, {"alembic/versions/a2_change.py": alembic_revision("a2", "a1", body)}, "the release")
    rs = release_migrations(root, "alembic", "alembic", "v1.0.0", "HEAD")
    return check_release_safety(
        rs, admin, repo=root, migrations_dir="alembic", production_url=prod, command=ALEMBIC_CMD,
        online_command=command, online_url_env="SCRATCH_URL", **kw,
    )


def errors(out: Outcome) -> set[str]:
    return {f["rule"] for m in out.evidence["migrations"] for f in m["findings"] if f["severity"] == "error" and not f["waived"]}


def test_offline_rendering_fails_without_online_capture(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path, pg_admin_url, prod, inspecting('op.create_index("documents_title_idx", "documents", ["title"])'),
             command="")
    assert out.status is Status.INCONCLUSIVE
    assert "cannot render the alembic SQL" in out.summary


@pytest.mark.parametrize(("body", "rule"), [
    ('op.create_index("documents_title_idx", "documents", ["title"])', "index-build-under-lock"),
    ('op.add_column("documents", sa.Column("r", sa.Float, server_default=sa.text("random()")))', "rewrite"),
])
def test_unsafe_revision_captured_online_fails(body: str, rule: str, tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path, pg_admin_url, prod, inspecting(body))
    assert out.status is Status.FAILED, out.summary
    assert rule in errors(out), out.evidence["migrations"]
    assert out.summary.startswith("a2: ")
    ren = out.evidence["rendering"]
    assert "captured online" in ren["how"] and "scratch copy" in ren["how"]
    assert "upgrade a2" in ren["rendered_by"]
    assert ren["not_seen"] == []
    assert "--sql" in out.evidence["offline_rendering"] or "exited" in out.evidence["offline_rendering"]
    (mig,) = out.evidence["migrations"]
    assert "pg_catalog" not in mig["sql"].lower()  # introspection dropped
    assert "alembic_version" in mig["sql"].lower()  # the version write, the revision's end
    assert out.evidence["production"]["sizes"]["documents"]["rows"] == 52_000


@pytest.mark.parametrize("body", [
    'op.add_column("documents", sa.Column("n", sa.Integer, server_default="0"))',
    'op.add_column("documents", sa.Column("note", sa.Text))',
])
def test_safe_revision_captured_online_passes(body: str, tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path, pg_admin_url, prod, inspecting(body))
    assert out.status is Status.PASSED, out.summary
    assert "captured online" in out.evidence["rendering"]["how"]
    model = out.evidence["transaction_model"]  # what the wire showed, not an offline rendering
    assert "as the online upgrade sent them" in model and "offline" not in model, model
    sql = out.evidence["migrations"][0]["sql"].upper()
    assert "BEGIN" in sql and "COMMIT" in sql and "SAVEPOINT" not in sql


def test_failing_online_command_is_inconclusive(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path, pg_admin_url, prod, inspecting('op.execute("SELECT no_such_function()")'))
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "cannot capture the alembic SQL online" in out.summary and "exited" in out.summary
    assert "\n" not in out.summary


def test_server_side_bound_parameters_are_inconclusive(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    body = 'bind.execute(sa.text("UPDATE documents SET title = :t WHERE id = -1"), {"t": "x"})'
    out = c3(tmp_path, pg_admin_url, prod, inspecting(body))
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert out.summary.startswith("a2: ") and "server-side bound parameters" in out.summary
    assert "UPDATE documents" in out.evidence["unreadable"][0]["statement"]


def test_url_password_never_in_evidence(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    """The scratch URL the command gets carries the admin's password: it shows nowhere."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    user, secret = "relnb_online_pw", "s3cr3t-Pa55word"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"drop role if exists {user}")
        conn.execute(f"create role {user} login superuser password '{secret}'")
    try:
        params = conninfo_to_dict(pg_admin_url)
        params.update(user=user, password=secret, host="127.0.0.1")
        admin = make_conninfo(**params)
        failing = c3(tmp_path / "f", admin, prod,
                     inspecting('op.execute("SELECT no_such_function()")'),
                     command=f"{sys.executable} -c \"import os,sys; sys.exit(os.environ['SCRATCH_URL'])\"")
        assert failing.status is Status.INCONCLUSIVE
        ok = c3(tmp_path / "o", admin, prod, inspecting('op.create_index("documents_title_idx", "documents", ["title"])'))
        assert ok.status is Status.FAILED, ok.summary
        for out in (failing, ok):
            assert secret not in repr(out.summary) + repr(out.evidence)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f"drop role if exists {user}")


def _cancel_through_the_proxy(conn: Any, admin_url: str) -> None:
    """A CancelRequest (its own connection to the proxy) stops the running query. Sent only once
    the server shows the query running: a cancel sent while the session is idle may land on the
    next statement instead, under load (seen in CI)."""
    import psycopg

    failed: list[BaseException] = []

    def sleep() -> None:
        try:
            conn.execute("select pg_sleep(30)")
        except BaseException as exc:
            failed.append(exc)

    t = threading.Thread(target=sleep)
    t.start()
    pid = conn.info.backend_pid
    with psycopg.connect(admin_url, autocommit=True) as watch:
        deadline = time.monotonic() + 20
        while watch.execute(
            "select count(*) from pg_stat_activity where pid = %s and state = 'active' and query like %s",
            (pid, "%pg_sleep%"),
        ).fetchone() != (1,):
            assert time.monotonic() < deadline, "the query never started"
            time.sleep(0.05)
    conn.cancel_safe(timeout=5)
    t.join(timeout=20)
    assert not t.is_alive() and len(failed) == 1 and isinstance(failed[0], psycopg.errors.QueryCanceled), failed


def test_proxy_answers_ssl_and_gssenc_requests_and_records_statements(pg_admin_url: str) -> None:
    """sslmode=prefer / gssencmode=prefer clients get 'N' and carry on in plaintext; Query and
    Parse texts are recorded in order, a Bind with parameters marks its statement."""
    import psycopg

    from relnb.checks.migrations.wirecapture import WireProxy, proxy_url, upstream_of

    proxy = WireProxy(*upstream_of(pg_admin_url))
    try:
        url = proxy_url(pg_admin_url, proxy.port).replace("sslmode=disable", "sslmode=prefer&gssencmode=prefer")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("select 1 as plain")
            conn.execute("select %s::int as bound", (2,))
            _cancel_through_the_proxy(conn, pg_admin_url)
            assert conn.execute("select 3").fetchone() == (3,)
    finally:
        proxy.close()
    caps = [(c.sql, c.bound) for c in proxy.capture.statements]
    assert ("select 1 as plain", False) in caps
    assert ("select $1::int as bound", True) in caps
    assert [s for s, _ in caps].index("select 1 as plain") < [s for s, _ in caps].index("select $1::int as bound")
