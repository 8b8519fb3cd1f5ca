"""A password never leaks through a driver's error, nor on its own once decoded out of its URL
(issue 22 item 2)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from relnb import Outcome, Release
from relnb.errors import ConfigError
from relnb.redact import REDACTOR

from .helpers import make_project

# a space (libpq refuses the URL and quotes the password), quotes, `@`, `:`, `%`, `?`, `&`, `=`
PASSWORD = "c4n4ry pa$$ w0rd:@'\"%zz&q=?;"
FRAGMENT = "c4n4ry"
# no piece of the password may show either (a URL parser that splits at `#`, `?` or `@` shows one)
PIECES = {"piece-1": FRAGMENT, "piece-2": "w0rd", "piece-3": "%zz&q"}


def forms(password: str) -> dict[str, str]:
    return {
        "raw": password,
        **PIECES,
        "encoded": quote(password, safe=""),
        "encoded+": quote_plus(password),
        "b64": base64.b64encode(password.encode()).decode().rstrip("="),
        "b64-basic": base64.b64encode(f"app:{password}".encode()).decode().rstrip("="),
    }


def leaks(text: str) -> list[str]:
    return [name for name, form in forms(PASSWORD).items() if form in text]


def _config(moto_url: str) -> str:
    return f"""
[project]
migrations_kind = "prisma"
migrations_dir = "prisma/migrations"
shadow_database_url_env = "CANARY_SHADOW_URL"
[environments.staging]
base_url = "http://127.0.0.1:9"
database_url_env = "CANARY_DATABASE_URL"
redis_url_env = "CANARY_REDIS_URL"
[environments.staging.queue]
kind = "bullmq"
names = ["extraction"]
check_interval = "1s"
[environments.staging.commands]
migrate = "true"
[environments.production]
base_url = "http://127.0.0.1:9"
database_url_env = "PROD_DATABASE_URL"
[environments.production.backups]
kind = "s3"
bucket = "canary-backups"
prefix = "db/"
endpoint_url = "{moto_url}"
restore_test = true
restore_test_database_url_env = "CANARY_RESTORE_URL"
[environments.production.secrets]
source = "env"
required = ["CANARY_APP_DATABASE_URL", "CANARY_REDIS_URL"]
probes = [{{name = "CANARY_APP_DATABASE_URL", kind = "postgres"}}, {{name = "CANARY_REDIS_URL", kind = "redis"}}]
"""


# the URL as a person pastes it (unparseable: libpq quotes the password), and correctly encoded
# (parseable: the server or the driver answers, and the password must not come back decoded)
SPELLINGS = {"pasted": PASSWORD, "encoded": quote(PASSWORD, safe="")}


@pytest.fixture(params=sorted(SPELLINGS))
def project(request, tmp_path, monkeypatch, s3, aws, pg_url):
    pw = SPELLINGS[request.param]
    root = make_project(tmp_path / "proj", _config(aws))
    mig = root / "prisma" / "migrations" / "20260101000000_init"
    mig.mkdir(parents=True)
    (mig / "migration.sql").write_text("create table t (id int);\n")
    s3.create_bucket(Bucket="canary-backups")
    s3.put_object(Bucket="canary-backups", Key="db/2026-12-01.dump", Body=b"PGDMP" + b"\0" * 64)
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    for var, url in {
        "CANARY_DATABASE_URL": f"postgresql://app:{pw}@127.0.0.1:5432/test",
        "CANARY_APP_DATABASE_URL": f"postgresql://app:{pw}@127.0.0.1:5432/app",
        "PROD_DATABASE_URL": pg_url,  # C3 reads production's ledger before it opens the shadow
        "CANARY_SHADOW_URL": f"postgresql://canary_admin:{pw}@127.0.0.1:5432/postgres",
        "CANARY_RESTORE_URL": f"postgresql://app:{pw}@127.0.0.1:5432/scratch",
        "CANARY_REDIS_URL": f"redis://:{pw}@127.0.0.1:6379/15",
    }.items():
        monkeypatch.setenv(var, url)
    yield root
    REDACTOR.forget_all()


def test_connection_errors_never_carry_the_password(project):
    """issue 22 item 2: every gate that opens a connection with a secret-bearing URL (B2's
    ledger read, C2's restore test, C3's shadow and ledger, C4's probes, B6/B7's Redis) says in
    relnb's words what failed and names the variable; no form of the password is recorded."""
    r = Release.create("1.0.0", root=project)
    try:
        r.run("B1", lambda: Outcome.passed("staging runs the release SHA"))  # B2 waits for it
        r.request_sign_off("A3", evidence=lambda: Outcome.passed("one migration"))  # C3 waits for it
        r.sign_off("A3", by="Reviewer <reviewer@example.org>", note="reviewed the migration")
        results = {
            "B2": r.act("B2", confirmed=True),
            "B6": r.check("B6"),
            "B7": r.check("B7"),
            "C2": r.check("C2"),
            "C3": r.check("C3"),
            "C4": r.check("C4"),
        }
        shown = {g: repr(res) + res._repr_html_() for g, res in results.items()}
    finally:
        r.close()
    recorded = {g: json.dumps({"summary": res.summary, "evidence": res.evidence}) for g, res in results.items()}
    journal = (project / "releases" / "1.0.0" / "journal.jsonl").read_text()
    found = {name: leaks(text) for name, text in {**recorded, **shown, "journal": journal}.items() if leaks(text)}
    assert found == {}
    # each gate really tried to connect, and said so naming the variable, not the driver's text
    for gate, var in {
        "B2": "CANARY_DATABASE_URL", "C2": "CANARY_RESTORE_URL", "C3": "CANARY_SHADOW_URL",
        "C4": "CANARY_APP_DATABASE_URL",
    }.items():
        assert f"cannot connect to ${var}" in recorded[gate], (gate, results[gate].summary, recorded[gate])
    for gate in ("B6", "B7"):
        assert not results[gate].status.ok_for_promotion, results[gate]


def test_an_unparseable_url_is_named_not_quoted():
    """issue 22 item 2: libpq's `unexpected spaces found in "<password>"` becomes relnb's own
    line naming the variable."""
    import psycopg

    from relnb.redact import connect_error, register

    url = f"postgresql://app:{PASSWORD}@127.0.0.1:5432/test"
    try:
        register(url, "DOCFLOW_DATABASE_URL")
        with pytest.raises(psycopg.Error) as err:
            psycopg.connect(url, connect_timeout=2)
        # what the driver says: a piece of the password (libpq ends it at the first `@`), which
        # no scrubbing of the registered forms could catch
        assert FRAGMENT in str(err.value)
        line = connect_error(err.value, url)
        assert line == (
            "cannot connect to $DOCFLOW_DATABASE_URL: the URL cannot be parsed (check quoting of its password)"
        )
        # a raw `@` or `?` in the password: whatever the driver says, the URL is the problem
        assert connect_error(ConnectionRefusedError("[Errno 111] refused"), url) == line
        encoded = f"postgresql://app:{quote(PASSWORD, safe='')}@127.0.0.1:5432/test"
        register(encoded, "QUOTED_DATABASE_URL")
        refused = connect_error(ConnectionRefusedError(f"[Errno 111] refused {PASSWORD}"), encoded)
        assert refused == "cannot connect to $QUOTED_DATABASE_URL: connection refused at 127.0.0.1:5432"
    finally:
        REDACTOR.forget_all()


def test_a_password_is_scrubbed_on_its_own_in_every_form():
    """issue 22 item 2: registering a URL registers its password (as written, decoded and
    re-encoded) and the tokens of its query string: a log that prints the password alone, or
    a driver that quotes it, is scrubbed too."""
    from relnb.redact import scrub

    token = "tok-3f9a1c77e2"
    url = f"postgresql://app:{quote(PASSWORD, safe='')}@db:5432/app?sslmode=require&access_token={token}"
    try:
        REDACTOR.register(url, "DB_URL")
        text = " | ".join([*forms(PASSWORD).values(), token, quote(token)])
        out = scrub(text)
        assert leaks(out) == sorted(PIECES)  # a piece is the driver's to withhold, not scrub's
        assert token not in out and out.count("[redacted:DB_URL]") >= 6
        # names that merely contain a word of the URL are left alone
        assert scrub("sslmode=require on db:5432") == "sslmode=require on db:5432"
    finally:
        REDACTOR.forget_all()


@pytest.mark.parametrize(
    "url",
    ["postgresql://app:short@db/app", "redis://:pw@cache:6379/0", "https://api.test/x?token=abc123"],
)
def test_a_url_whose_password_is_too_short_to_scrub_is_refused(url):
    """issue 22 item 2: a password part under 8 characters cannot be scrubbed without rewriting
    other text, so the secret is refused like a short secret, naming the variable (never the
    value)."""
    try:
        with pytest.raises(ConfigError) as err:
            REDACTOR.register(url, "SHORT_PW_URL")
        assert "SHORT_PW_URL" in str(err.value) and ">= 8 characters" in str(err.value)
        assert url not in str(err.value) and "short" not in str(err.value).replace("too short", "")
        assert REDACTOR.names == []
    finally:
        REDACTOR.forget_all()
