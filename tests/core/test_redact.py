"""Redaction hides every secret and rewrites nothing else (issue 19 item 16).

A secret too short to scrub safely is refused with a config error naming the key and the
variable; a secret that is part of a longer name (D2's bucket, a table, a gate title) leaves that
name alone, so what relnb reads back from its journal is what it wrote; and wherever the secret
itself appears, in any disguise, it is gone.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import psycopg
import pytest

import relnb
from relnb import Outcome, Release, Status
from relnb.actions.backupstores import with_store
from relnb.errors import ConfigError
from relnb.gatecontext import GateContext
from relnb.redact import (
    REDACTOR,
    ScrubbingFilter,
    Secret,
    format_exception,
    register,
    scrub,
    scrub_obj,
)

from .helpers import all_green, make_project

WORDY = "docflow2024"  # a secret a person typed: letters and digits, matched as a whole token
BUCKET = f"{WORDY}eu-backups"  # a name that merely contains it
TABLE = f"{WORDY}_events"


@pytest.fixture(autouse=True)
def clean_redactor() -> Iterator[None]:
    REDACTOR.forget_all()
    yield
    REDACTOR.forget_all()


def _project(tmp_path: Path, toml: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    return make_project(tmp_path / "app", toml)


PROD = '[environments.production]\nbase_url = "http://127.0.0.1:9"\n'
TOKEN_REF = '[environments.production.auth]\ntoken_env = "PROD_TOKEN"\n'


# --- a secret too short to scrub is a config error naming the key and the variable ------------


def test_a_short_secret_is_a_config_error_naming_the_variable_before_anything_is_recorded(
    tmp_path, monkeypatch
):
    """issue 19 item 16: a 3-character production token was registered (or silently not), and
    scrubbing either rewrote other text or let it through; now nothing runs."""
    root = _project(tmp_path, PROD + TOKEN_REF, monkeypatch)
    Release.create("1.0.0", root=root).close()
    journal = root / "releases" / "1.0.0" / "journal.jsonl"
    before = journal.read_bytes()
    monkeypatch.setenv("PROD_TOKEN", "q7Z")

    with pytest.raises(ConfigError) as err:
        Release.open("1.0.0", root=root)
    text = str(err.value)
    assert 'environments.production.auth.token_env = "PROD_TOKEN": the value of PROD_TOKEN is 3 characters' in text
    assert "relnb can only keep secrets of >= 8 characters out of its output" in text
    assert text.endswith("— use a longer secret") and str(root / "relnb.toml") in text
    assert err.value.key == "environments.production.auth.token_env"
    assert "q7Z" not in text
    assert journal.read_bytes() == before  # nothing recorded
    assert REDACTOR.names == []

    # the headless run refuses before it starts, exit 3, naming the variable
    env = {**os.environ, "PROD_TOKEN": "q7Z"}
    run = subprocess.run(
        [sys.executable, "-m", "relnb.cli", "run", "notebooks/release-1.0.0.py"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 3, run.stdout + run.stderr
    assert 'token_env = "PROD_TOKEN": the value of PROD_TOKEN is 3 characters' in run.stderr


def test_registering_a_short_value_directly_is_refused_by_name(tmp_path, monkeypatch):
    """issue 19 item 16: `register` used to log a warning and leave a short secret unscrubbed."""
    with pytest.raises(ConfigError) as err:
        register("hunter2", "TEST_DB_PASSWORD")
    assert "secret TEST_DB_PASSWORD is 7 characters" in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(ConfigError):
        Secret("ADMIN_PIN", "1234")
    register("", "UNSET")  # an unset value hides nothing and is no error
    assert REDACTOR.names == []
    Secret("LONG_ENOUGH", "x" * 8)
    assert REDACTOR.names == ["LONG_ENOUGH"]

    # a value that names rather than hides (a registry user) may be short: kept, not scrubbed
    root = _project(
        tmp_path,
        PROD + '[environments.production.registry]\nurl = "http://127.0.0.1:9"\n'
        'username_env = "REG_USER"\npassword_env = "REG_PASSWORD"\n',
        monkeypatch,
    )
    monkeypatch.setenv("REG_USER", "ci")
    monkeypatch.setenv("REG_PASSWORD", "pw")
    config = relnb.load_config(root / "relnb.toml")
    user = config.secret("REG_USER", key="environments.production.registry.username_env")
    assert user.reveal() == "ci" and scrub("user ci") == "user ci"
    with pytest.raises(ConfigError, match='password_env = "REG_PASSWORD": the value of REG_PASSWORD is 2'):
        config.register_available_secrets()


# --- a name that contains a secret is not rewritten -------------------------------------------


def test_d2_evidence_keeps_a_bucket_that_contains_a_secret_and_the_restore_reads_it_back(
    tmp_path, monkeypatch, pg_url, aws, s3
):
    """issue 19 item 16: the production token `docflow2024` turned D2's recorded bucket
    `docflow2024eu-backups` into `[redacted:PROD_TOKEN]eu-backups`, and the rollback's restore,
    which reads the bucket back from the journal, could not find the dump."""
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"create table {TABLE} (id serial primary key, what text)")
        c.execute(f"insert into {TABLE} (what) select 'e' || g from generate_series(1, 40) g")
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("PROD_DB_URL", pg_url)
    monkeypatch.setenv("PROD_TOKEN", WORDY)
    root = _project(
        tmp_path,
        PROD + 'database_url_env = "PROD_DB_URL"\n' + TOKEN_REF
        + f'[environments.production.backups]\nbucket = "{BUCKET}"\nprefix = "prod"\nendpoint_url = "{aws}"\n',
        monkeypatch,
    )
    Release.create("1.1.0", root=root).close()
    r = Release.open("1.1.0", root=root)
    assert "PROD_TOKEN" in REDACTOR.names
    all_green(r)
    d2 = r.act("D2", confirmed=True)
    assert d2.status is Status.PASSED, d2.summary
    r.note(f"token {WORDY} must not show")
    r.close()

    again = Release.open("1.1.0", root=root)  # read back from the journal on disk
    evidence = again.action_result("D2")["evidence"]
    assert evidence["bucket"] == BUCKET
    assert evidence["key"].startswith("prod/relnb-snapshots/")
    assert evidence["row_counts"] == {f"public.{TABLE}": 40}
    journal = (root / "releases" / "1.1.0" / "journal.jsonl").read_text()
    assert f'"bucket": "{BUCKET}"' in journal or f'"bucket":"{BUCKET}"' in journal
    assert "token [redacted:PROD_TOKEN] must not show" in journal

    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"delete from {TABLE}")
    restored = with_store(GateContext(again, "E3"), lambda store: store.restore(evidence))
    again.close()
    assert restored.status is Status.PASSED, restored.summary
    with psycopg.connect(pg_url) as c:
        assert c.execute(f"select count(*) from {TABLE}").fetchone()[0] == 40


def test_a_gate_title_that_contains_a_secret_is_not_rewritten(tmp_path, monkeypatch):
    """issue 19 item 16: a secret that is part of a word of a gate title rewrote the title."""
    root = _project(tmp_path, PROD + TOKEN_REF, monkeypatch)
    monkeypatch.setenv("PROD_TOKEN", "incident")  # F2: "Record any incidents + add tests ..."
    Release.create("1.0.0", root=root).close()
    r = Release.open("1.0.0", root=root)
    titles = {g.id: g.title for g in relnb.GATES}
    r.note("titles", evidence={"titles": titles, "token": "incident"})
    r.close()
    again = Release.open("1.0.0", root=root)
    note = [e for e in again.journal.events if e.type == "note"][-1].payload
    again.close()
    assert note["evidence"]["titles"] == titles
    assert note["evidence"]["token"] == "[redacted:PROD_TOKEN]"


@pytest.mark.parametrize(
    ("toml", "value", "named"),
    [
        (f'[environments.production.backups]\nbucket = "{WORDY}-backups"\n', WORDY, "environments.production.backups.bucket"),
        ("", "snapshot", "gate C2's title"),  # "Confirm DB backup is available (automatic snapshot)"
    ],
)
def test_a_secret_that_would_rewrite_a_name_relnb_records_is_refused(tmp_path, monkeypatch, toml, value, named):
    """issue 19 item 16: a secret that is a whole word of a configured name (or a gate title)
    cannot be scrubbed without rewriting that name; say so instead of corrupting the record."""
    root = _project(tmp_path, PROD + TOKEN_REF + toml, monkeypatch)
    monkeypatch.setenv("PROD_TOKEN", value)
    config = relnb.load_config(root / "relnb.toml")
    with pytest.raises(ConfigError) as err:
        config.secret("PROD_TOKEN", key="environments.production.auth.token_env")
    text = str(err.value)
    assert f'token_env = "PROD_TOKEN": the value of PROD_TOKEN is also a word of {named}' in text
    assert value not in text
    assert REDACTOR.names == []


# --- ...and the secret itself never shows -----------------------------------------------------


def _disguises(secret: str) -> dict[str, str]:
    """The secret where relnb's output could carry it: alone, at either end, in URLs, headers,
    JSON, escaped by repr/JSON, after an ANSI colour code, glued to a short option, encoded."""
    b64 = base64.b64encode(secret.encode()).decode()
    return {
        "alone": secret,
        "start": f"{secret} was rejected",
        "end": f"rejected token {secret}",
        "url-userinfo": f"postgresql://app:{secret}@db.internal:5432/app",
        "url-query": f"https://api.test/x?token={secret}&page=2",
        "url-path": f"https://hooks.test/services/{secret}/send",
        "url-encoded-in-redirect": f"https://idp.test/login?next=%2Fcb%3Ftoken%3D{quote(secret, safe='')}",
        "quoted-plus": f"form body: a=1&t={quote_plus(secret)}",
        "header": f"Authorization: Bearer {secret}",
        "json": json.dumps({"token": secret, "n": 1}),
        "json-escaped-newline": json.dumps(f"line one\n{secret}"),
        "repr-escaped": repr(f"out:\t{secret}\x00"),
        "repr-bytes": repr(f"\x01{secret}".encode()),
        "unicode-escape": json.dumps(f"é{secret}", ensure_ascii=True),
        "ansi": f"\x1b[1;31m{secret}\x1b[0m",
        "ansi-escaped": repr(f"\x1b[32m{secret}"),
        "short-option": f"+ mysql -u root -p{secret} app",
        "env-line": f"PROD_TOKEN={secret}\n",
        "base64": f"value: {b64}",
        "base64-unpadded": b64.rstrip("="),
        "basic-auth": "Authorization: Basic " + base64.b64encode(f"user:{secret}".encode()).decode(),
        "urlsafe-b64": base64.urlsafe_b64encode(f"xy:{secret}".encode()).decode(),
    }


def _leaked(secret: str, text: str) -> list[str]:
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode().rstrip("="),
        base64.b64encode(f"user:{secret}".encode()).decode().rstrip("="),
    }
    return sorted(f for f in forms if f in text)


@pytest.mark.parametrize("secret", [WORDY, "Hunter2Hunter2", "cAnArY-7f3e9b21-s3cr3t/+=value"])
def test_no_disguise_of_a_secret_survives_scrubbing(secret):
    """issue 19 item 16: matching a short secret as a whole token must not open a leak."""
    register(secret, "CANARY")
    for where, text in _disguises(secret).items():
        out = scrub(text)
        assert not _leaked(secret, out), (where, out)
        assert REDACTOR.contains_secret(text) == ["CANARY"], where
    out = json.dumps(scrub_obj({secret: [secret, {"k": f"x {secret}"}]}))
    assert not _leaked(secret, out)
    try:
        raise RuntimeError(f"login failed for {secret!r}: {secret.encode()!r}")
    except RuntimeError as exc:
        assert not _leaked(secret, format_exception(exc))
    record = logging.LogRecord("relnb", logging.ERROR, __file__, 1, "token %s", (secret,), None)
    ScrubbingFilter().filter(record)
    assert not _leaked(secret, record.getMessage())


def test_names_that_merely_contain_a_typed_secret_stay_and_do_not_block_sealing():
    """issue 19 item 16: the bucket, a table, a dump's key, a pg_dump path keep their names, and
    the archive's scan (contains_secret) does not call them leaks."""
    register(WORDY, "PROD_TOKEN")
    register("postgres12", "PROD_DB_PASSWORD")
    names = [
        BUCKET,
        f"s3://{BUCKET}/prod/relnb-snapshots/release-1.1.0-20260101T000000Z.dump",
        f"public.{TABLE}",
        f"my{WORDY}",
        f"{WORDY}0",
        "/usr/lib/postgresql/16/bin/pg_dump",
        "postgres123",
        "PROD_TOKEN",
    ]
    for name in names:
        assert scrub(name) == name
        assert REDACTOR.contains_secret(name) == []
    assert scrub(f"{BUCKET} {WORDY}") == f"{BUCKET} [redacted:PROD_TOKEN]"


def test_long_or_punctuated_secrets_match_anywhere_even_glued_to_other_text():
    """A generated token never sits inside another name by chance, so glued to other text it is a
    leak: it matches anywhere, unlike a short typed secret."""
    bot = "123456789:AAHfGhjkLmnOpqrStuVwxYz0123456789ab"
    hexkey = "9f86d081884c7d659a2feaa0c55ad015"
    register(bot, "BOT_TOKEN")
    register(hexkey, "API_KEY")
    assert bot not in scrub(f"https://api.telegram.org/bot{bot}/sendMessage")
    assert hexkey not in scrub(f"GET /v1/items?apikey{hexkey}x")
    assert scrub(f"key{hexkey}") == "key[redacted:API_KEY]"


def test_outcome_evidence_through_the_journal_keeps_names_and_hides_the_secret(tmp_path, monkeypatch):
    """issue 19 item 16, end to end in process: a check's evidence with the secret in a name and
    on its own, journaled and read back."""
    root = _project(tmp_path, PROD + TOKEN_REF, monkeypatch)
    monkeypatch.setenv("PROD_TOKEN", WORDY)
    Release.create("1.0.0", root=root).close()
    r = Release.open("1.0.0", root=root)
    ev = {"bucket": BUCKET, "table": TABLE, "url": f"https://u:{WORDY}@h/x", "said": f"{WORDY}\n"}
    r.run("C2", lambda: Outcome.failed(f"cannot read s3://{BUCKET} with token {WORDY}", **ev))
    r.close()
    again = Release.open("1.0.0", root=root)
    got = again.result("C2")
    again.close()
    assert got.evidence["bucket"] == BUCKET and got.evidence["table"] == TABLE
    assert got.evidence["url"] == "https://u:[redacted:PROD_TOKEN]@h/x"
    assert got.summary == f"cannot read s3://{BUCKET} with token [redacted:PROD_TOKEN]"
    assert WORDY not in json.dumps(got.evidence).replace(BUCKET, "").replace(TABLE, "")
