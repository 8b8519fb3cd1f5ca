"""C4 against real Postgres, Redis, moto S3/SSM/Secrets Manager and a local OIDC discovery."""

from __future__ import annotations

import json
import secrets as pysecrets

import boto3
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from relnb.checks.ops.secrets import SecretSpec, check_secrets, parse_dotenv
from relnb.results import Status


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
    import pytest

    with pytest.raises(ValueError, match="kind"):
        SecretSpec.from_dict({"name": "A", "kind": "mysql"})
    with pytest.raises(ValueError, match="unknown keys"):
        SecretSpec.from_dict({"name": "A", "value": "x"})
    env = parse_dotenv('A=1\n# c\nexport B=\'two words\'\nC="q\\"x"\nD=plain # comment\nbad line\n')
    assert env == {"A": "1", "B": "two words", "C": 'q"x', "D": "plain"}
    assert check_secrets([]).status is Status.INCONCLUSIVE
