"""C4 against real Postgres, Redis, moto S3/SSM/Secrets Manager and a local OIDC discovery."""

from __future__ import annotations

import json
import secrets as pysecrets
import shlex

import boto3
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import relnb
from relnb import Release
from relnb.checks.ops.gates import secrets_exist
from relnb.checks.ops.secrets import SecretSpec, check_secrets, parse_dotenv, parse_listing
from relnb.gatecontext import GateContext
from relnb.results import Status

from ...core.helpers import make_project


def _oidc_app(issuer_holder: dict) -> Starlette:
    async def disco(request):
        iss = issuer_holder["issuer"]
        return JSONResponse(
            {
                "issuer": iss,
                "jwks_uri": iss + "/protocol/openid-connect/certs",
                "token_endpoint": iss + "/protocol/openid-connect/token",
            }
        )

    return Starlette(routes=[Route("/realms/demo/.well-known/openid-configuration", disco)])


def _leaks(outcome, values) -> list[str]:
    text = json.dumps(outcome.evidence) + outcome.summary
    return [v for v in values if v in text]


def test_all_present_and_answering(pg_url, redis_url, aws, s3, serve, tmp_path) -> None:
    s3.create_bucket(Bucket="prod-uploads")
    holder: dict = {}
    base = serve(_oidc_app(holder))
    issuer = f"{base}/realms/demo"
    holder["issuer"] = issuer
    dotenv = tmp_path / "prod.env"
    dotenv.write_text(f'# prod\nexport REDIS_URL="{redis_url}"\nOIDC_ISSUER={issuer}  # kc\n')
    ssm = boto3.client("ssm", endpoint_url=aws, region_name="us-east-1")
    ssm.put_parameter(
        Name="/prod/S3_SECRET_ACCESS_KEY", Value="testing-secret-key", Type="SecureString"
    )
    sm = boto3.client("secretsmanager", endpoint_url=aws, region_name="us-east-1")
    sm.create_secret(Name="prod/db", SecretString=json.dumps({"url": pg_url}))
    env = {"S3_ACCESS_KEY_ID": "testing-access-key", "SENTRY_DSN": "https://k@sentry.test/1"}
    specs = [
        {
            "name": "DATABASE_URL",
            "kind": "postgres",
            "source": "secretsmanager",
            "key": "prod/db",
            "json_key": "url",
        },
        {"name": "REDIS_URL", "kind": "redis", "source": "dotenv", "path": str(dotenv)},
        {"name": "OIDC_ISSUER", "kind": "oidc", "source": "dotenv", "path": str(dotenv)},
        {"name": "S3_ACCESS_KEY_ID"},
        {
            "name": "S3_SECRET_ACCESS_KEY",
            "kind": "s3",
            "source": "ssm",
            "key": "/prod/S3_SECRET_ACCESS_KEY",
            "options": {
                "bucket": "prod-uploads",
                "endpoint_url": aws,
                "access_key_id_from": "S3_ACCESS_KEY_ID",
            },
        },
        {"name": "SENTRY_DSN"},
    ]
    out = check_secrets(specs, env=env, aws={"endpoint_url": aws, "region_name": "us-east-1"})
    assert out.status is Status.PASSED, out.summary
    by = {f["name"]: f for f in out.evidence["secrets"]}
    assert by["DATABASE_URL"]["probe"].startswith("connected, select 1 ok")
    assert by["REDIS_URL"]["probe"].startswith("PING ok")
    assert by["S3_SECRET_ACCESS_KEY"]["probe"] == "head-bucket prod-uploads ok"
    assert "OIDC discovery ok" in by["OIDC_ISSUER"]["probe"]
    assert (
        _leaks(out, [pg_url, redis_url, "testing-secret-key", "testing-access-key", "k@sentry"])
        == []
    )


def test_missing_secret_names_variable_never_value(redis_url) -> None:
    env = {"REDIS_URL": redis_url, "KEYCLOAK_CLIENT_SECRET": "s3cr3t-value-xyz"}
    out = check_secrets(
        [
            {"name": "REDIS_URL", "kind": "redis"},
            {"name": "DATABASE_URL", "kind": "postgres"},
            {"name": "KEYCLOAK_CLIENT_SECRET"},
        ],
        env=env,
    )
    assert out.status is Status.FAILED
    assert "missing: DATABASE_URL" in out.summary
    assert out.evidence["missing"] == ["DATABASE_URL"]
    assert _leaks(out, [redis_url, "s3cr3t-value-xyz"]) == []


def test_present_but_service_down_fails_without_value(dead_url) -> None:
    pw = "pw-" + pysecrets.token_hex(6)
    port = dead_url.rsplit(":", 1)[1]
    env = {
        "DATABASE_URL": f"postgresql://app:{pw}@127.0.0.1:{port}/app",
        "REDIS_URL": f"redis://:{pw}@127.0.0.1:{port}/0",
        "OIDC_ISSUER": dead_url + "/realms/x",
    }
    out = check_secrets(
        [
            {"name": "DATABASE_URL", "kind": "postgres"},
            {"name": "REDIS_URL", "kind": "redis"},
            {"name": "OIDC_ISSUER", "kind": "oidc"},
        ],
        env=env,
        timeout_s=2,
    )
    assert out.status is Status.FAILED
    assert "service not answering" in out.summary and "DATABASE_URL" in out.summary
    assert all(f["probe_ok"] is False for f in out.evidence["secrets"])
    assert _leaks(out, [pw, env["DATABASE_URL"], env["REDIS_URL"]]) == []


def test_s3_wrong_bucket_and_wrong_issuer(aws, s3, serve) -> None:
    holder = {"issuer": "http://elsewhere.test/realms/demo"}
    base = serve(_oidc_app(holder))
    env = {"S3_SECRET": "testing-secret-key", "OIDC_ISSUER": f"{base}/realms/demo"}
    out = check_secrets(
        [
            {
                "name": "S3_SECRET",
                "kind": "s3",
                "options": {
                    "bucket": "no-such-bucket",
                    "endpoint_url": aws,
                    "access_key_id": "testing-access-key",
                },
            },
            {"name": "OIDC_ISSUER", "kind": "oidc"},
        ],
        env=env,
    )
    assert out.status is Status.FAILED
    by = {f["name"]: f for f in out.evidence["secrets"]}
    assert "404" in by["S3_SECRET"]["probe"] or "Not Found" in by["S3_SECRET"]["probe"]
    assert "differs from the configured issuer" in by["OIDC_ISSUER"]["probe"]


def test_missing_in_ssm_and_unreadable_source(aws, dead_url, tmp_path) -> None:
    out = check_secrets(
        [{"name": "X", "source": "ssm", "key": "/prod/nope"}],
        aws={"endpoint_url": aws, "region_name": "us-east-1"},
    )
    assert out.status is Status.FAILED and "missing: X" in out.summary
    out = check_secrets([{"name": "X", "source": "dotenv", "path": str(tmp_path / "none.env")}])
    assert out.status is Status.INCONCLUSIVE and "not found" in out.summary
    out = check_secrets(
        [{"name": "X", "source": "ssm"}], aws={"endpoint_url": dead_url, "region_name": "us-east-1"}
    )
    assert out.status is Status.INCONCLUSIVE and "unreachable" in out.summary


def test_spec_validation_and_dotenv_parsing() -> None:
    with pytest.raises(ValueError, match="kind"):
        SecretSpec.from_dict({"name": "A", "kind": "mysql"})
    with pytest.raises(ValueError, match="unknown keys"):
        SecretSpec.from_dict({"name": "A", "value": "x"})
    env = parse_dotenv('A=1\n# c\nexport B=\'two words\'\nC="q\\"x"\nD=plain # comment\nbad line\n')
    assert env == {"A": "1", "B": "two words", "C": 'q"x', "D": "plain"}
    assert check_secrets([]).status is Status.INCONCLUSIVE


# -- whose environment: relnb's own process is not production (issue 19 item 13) -------------


def test_own_process_environment_is_never_passed_as_production(redis_url, monkeypatch) -> None:
    """issue 19 item 13: with no environment given, C4 read relnb's own process environment and
    called it production's: all present there → passed. Now it says what it saw, inconclusive."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("APP_SIGNING_KEY", "own-env-value-123")
    monkeypatch.delenv("KEYCLOAK_ISSUER_URL", raising=False)
    specs = [{"name": "REDIS_URL", "kind": "redis"}, {"name": "APP_SIGNING_KEY"}]
    out = check_secrets(specs)
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert out.summary.startswith(
        "only relnb's own environment was checked, not the target environment's (2 of 2 present "
        "there, 1 services answered)"
    )
    assert out.evidence["own_environment_only"] == ["REDIS_URL", "APP_SIGNING_KEY"]
    assert {f["where"] for f in out.evidence["secrets"]} == {"relnb's own process environment"}
    # missing from relnb's own environment says nothing about production either
    out = check_secrets([*specs, {"name": "KEYCLOAK_ISSUER_URL"}], environment="production")
    assert out.status is Status.INCONCLUSIVE and "(2 of 3 present there" in out.summary
    assert _leaks(out, [redis_url, "own-env-value-123"]) == []


def _listing(env: dict[str, str]) -> str:
    """A command printing another process's environment: what `ssh prod env` would show."""
    return "env -i " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " env"


def test_listing_command_is_the_target_environment(redis_url, dead_url, tmp_path) -> None:
    """issue 19 item 13: a command listing production's variables is a source that is
    production's; its values are probed, never shown, and a listing that failed is not "missing"."""
    prod = {"REDIS_URL": redis_url, "APP_SIGNING_KEY": "listed-value-456"}
    specs = [
        {"name": "REDIS_URL", "kind": "redis", "source": "command", "command": _listing(prod)},
        {"name": "APP_SIGNING_KEY", "source": "command", "command": _listing(prod)},
    ]
    out = check_secrets(specs, cwd=tmp_path, environment="production")
    assert out.status is Status.PASSED, out.summary
    assert out.summary == "all 2 secrets present; 1 services answered"
    assert out.evidence["secrets"][0]["probe"].startswith("PING ok")
    assert _leaks(out, [redis_url, "listed-value-456"]) == []
    del prod["APP_SIGNING_KEY"]
    out = check_secrets(
        [{**s, "command": _listing(prod)} for s in specs], cwd=tmp_path, environment="production"
    )
    assert out.status is Status.FAILED and out.summary == "C4 secrets: missing: APP_SIGNING_KEY"
    port = dead_url.rsplit(":", 1)[1]
    prod = {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "APP_SIGNING_KEY": "dead-test-value"}
    out = check_secrets(
        [{**s, "command": _listing(prod)} for s in specs], cwd=tmp_path, timeout_s=2
    )
    assert out.status is Status.FAILED and "service not answering: REDIS_URL" in out.summary
    # a listing that fails, times out or prints nothing is unreadable, not "everything missing"
    for command, why in (
        ("echo 'ssh: connect to host prod port 22: Connection refused' >&2; exit 255",
         "listing command exited 255: ssh: connect to host prod port 22: Connection refused"),
        ("sleep 5", "listing command timed out after 0.5 s"),
        ("true", "listing command printed no variables"),
    ):  # fmt: skip
        out = check_secrets(
            [{"name": "APP_SIGNING_KEY", "source": "command", "command": command}],
            command_timeout_s=0.5,
        )
        assert out.status is Status.INCONCLUSIVE, (command, out.summary)
        assert why in out.summary


def test_names_only_listing_proves_presence_not_service(redis_url) -> None:
    """issue 19 item 13: a listing of names (no values) shows presence; a probe it cannot feed
    leaves C4 inconclusive rather than passed."""
    command = "printf 'REDIS_URL\\nAPP_SIGNING_KEY\\n'"
    plain = [{"name": "APP_SIGNING_KEY", "source": "command", "command": command}]
    assert check_secrets(plain).status is Status.PASSED
    out = check_secrets([*plain, {"name": "REDIS_URL", "kind": "redis", "source": "command", "command": command}])
    assert out.status is Status.INCONCLUSIVE
    assert "not probed (the source lists names only): REDIS_URL" in out.summary
    out = check_secrets([{"name": "OTHER", "source": "command", "command": command}])
    assert out.status is Status.FAILED and "missing: OTHER" in out.summary


def test_parse_listing() -> None:
    text = 'A=1\nexport B="two words"\nC=x # not a comment\nPEM=-----BEGIN\nMIIEvQ\n-----END\nD=\n'
    assert parse_listing(text) == {
        "A": "1", "B": "two words", "C": "x # not a comment", "PEM": "-----BEGIN", "D": "",
    }  # fmt: skip
    assert parse_listing("A\nB_2\n# c\nnot a name\n") == {"A": None, "B_2": None}


@pytest.fixture
def release(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    root = make_project(tmp_path / "app")
    r = Release.create("1.1.0", root=root)
    yield r
    r.close()


def _configure(r, secrets_toml: str) -> None:
    (r.config.root / "relnb.toml").write_text(
        '[environments.production]\nbase_url = "http://127.0.0.1:9"\n'
        "[environments.production.secrets]\n" + secrets_toml
    )
    r.config = relnb.load_config(r.config.root / "relnb.toml")


def test_c4_gate_reads_production_sources_not_relnb_own(release, redis_url, monkeypatch) -> None:
    """issue 19 item 13: C4's provider passed `os.environ` as production's environment."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    _configure(release, 'required = ["REDIS_URL"]\n[[environments.production.secrets.probes]]\nname = "REDIS_URL"\nkind = "redis"\n')
    out = secrets_exist(GateContext(release, "C4"))
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "only relnb's own environment was checked, not production's" in out.summary
    listing = _listing({"REDIS_URL": redis_url})
    _configure(release, f'required = ["REDIS_URL"]\nsource = "command"\ncommand = {json.dumps(listing)}\n'
               '[[environments.production.secrets.probes]]\nname = "REDIS_URL"\nkind = "redis"\n')
    out = secrets_exist(GateContext(release, "C4"))
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["secrets"][0]["source"] == "command"
    _configure(release, 'required = ["REDIS_URL"]\nsource = "command"\n')
    out = secrets_exist(GateContext(release, "C4"))
    assert out.status is Status.INCONCLUSIVE and "environments.production.secrets.command" in out.summary


def test_short_production_value_is_noted_not_a_crash() -> None:
    """A production secret too short for relnb to scrub is still present (C4's question); the
    refusal to register it is noted, never raised out of the gate, and the value never shown."""
    out = check_secrets([{"name": "SHORT_ONE"}], env={"SHORT_ONE": "abc"})
    assert out.status is Status.PASSED, out.summary
    note = out.evidence["secrets"][0]["note"]
    assert "SHORT_ONE is 3 characters" in note and "abc" not in note


def test_public_settings_are_checked_present_but_never_redacted(release) -> None:
    """Seen on Superset: C4 registered every required value, so the Celery queue's name came out
    as [redacted:SUPERSET_CELERY_QUEUE] in D4's summary. `public` names are settings: present or
    missing like the others, never scrubbed; a real secret beside them still is."""
    from relnb.redact import scrub

    queue = f"superset-prod-{pysecrets.token_hex(4)}"
    key = f"canary-{pysecrets.token_hex(8)}"
    (release.config.root / "prod.env").write_text(f"APP_QUEUE={queue}\nAPP_SECRET_KEY={key}\n")
    _configure(release, 'required = ["APP_QUEUE", "APP_SECRET_KEY", "APP_ORIGINS"]\npublic = ["APP_QUEUE", "APP_ORIGINS"]\n'
               'source = "dotenv"\ndotenv = "prod.env"\n')
    out = secrets_exist(GateContext(release, "C4"))
    assert out.status is Status.FAILED and "missing: APP_ORIGINS" in out.summary  # public is still required
    assert scrub(f"worker consumes {queue}") == f"worker consumes {queue}"
    assert key not in scrub(f"key {key}")
    _configure(release, 'required = ["APP_QUEUE"]\npublic = ["APP_QUEU"]\nsource = "dotenv"\ndotenv = "prod.env"\n')
    out = secrets_exist(GateContext(release, "C4"))
    assert out.status is not Status.PASSED and "APP_QUEU is not" in out.summary
