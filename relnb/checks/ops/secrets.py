"""C4: every secret production needs exists, and the service behind it answers.

A secret is named, never shown: each required name is looked up where the release says it lives
(environment, a dotenv file, AWS SSM Parameter Store, AWS Secrets Manager), registered with the
redactor the moment it is read, and then used once for a connectivity probe of its kind
(Postgres `select 1`, Redis PING, S3 head-bucket, OIDC discovery). Evidence names the variable,
its source and what the probe saw, never the value or any part of it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...redact import Secret, scrub
from ...results import Outcome

KINDS = ("postgres", "redis", "s3", "oidc", "plain")
SOURCES = ("env", "dotenv", "ssm", "secretsmanager")


@dataclass(frozen=True)
class SecretSpec:
    """One required secret.

    `key` is where to look it up in the source (default: `name`): the dotenv variable, the SSM
    parameter name, or the Secrets Manager secret id; `json_key` picks a field of a JSON secret.
    `options` carries what a probe needs besides the value, by kind:
    s3 → bucket, access_key_id (or access_key_id_from: another spec's name), endpoint_url, region;
    oidc → nothing (the value is the issuer URL); postgres/redis → nothing (the value is a URL).
    """

    name: str
    kind: str = "plain"
    source: str = "env"
    key: str | None = None
    path: str | None = None  # dotenv file
    json_key: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SecretSpec:
        known = {"name", "kind", "source", "key", "path", "json_key", "options"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"secret spec {d.get('name')!r}: unknown keys {sorted(unknown)}")
        spec = cls(**{k: v for k, v in d.items() if k in known})
        if spec.kind not in KINDS:
            raise ValueError(f"secret {spec.name}: kind {spec.kind!r} not one of {KINDS}")
        if spec.source not in SOURCES:
            raise ValueError(f"secret {spec.name}: source {spec.source!r} not one of {SOURCES}")
        return spec


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines; `export`, comments, single/double quotes. No interpolation (on purpose)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if raw.strip().split("=", 1)[1].strip().startswith('"'):
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        out[key] = value
    return out


class _Lookup:
    """Reads values from the configured sources, caching dotenv files and AWS clients."""

    def __init__(self, env: Mapping[str, str] | None, aws: Mapping[str, Any]) -> None:
        self.env = os.environ if env is None else env
        self.aws = dict(aws)
        self._dotenv: dict[str, dict[str, str]] = {}
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service, **self.aws)
        return self._clients[service]

    def get(self, spec: SecretSpec) -> tuple[str | None, str | None]:
        """(value, problem). `problem` is a scrubbed reason the value could not be read."""
        key = spec.key or spec.name
        if spec.source == "env":
            return self.env.get(key) or None, None
        if spec.source == "dotenv":
            if not spec.path:
                return None, "no dotenv path given"
            if spec.path not in self._dotenv:
                p = Path(spec.path)
                if not p.is_file():
                    return None, f"dotenv file {spec.path} not found"
                self._dotenv[spec.path] = parse_dotenv(p.read_text(errors="replace"))
            return self._dotenv[spec.path].get(key) or None, None
        try:
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:  # pragma: no cover - boto3 is a dependency
            return None, "boto3 is not installed"
        try:
            if spec.source == "ssm":
                resp = self._client("ssm").get_parameter(Name=key, WithDecryption=True)
                value = resp["Parameter"]["Value"]
            else:
                resp = self._client("secretsmanager").get_secret_value(SecretId=key)
                value = resp.get("SecretString")
                if value is None:
                    return None, "secret has no SecretString (binary secrets are not supported)"
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            if code in ("ParameterNotFound", "ResourceNotFoundException"):
                return None, None
            return None, f"{spec.source} {code}: {scrub(str(exc))[:200]}"
        except BotoCoreError as exc:
            return None, f"{spec.source} unreachable: {scrub(str(exc))[:200]}"
        if spec.json_key:
            try:
                value = json.loads(value)[spec.json_key]
            except (ValueError, KeyError, TypeError):
                # the secret exists but the field does not: report as missing (value not shown)
                return None, f"JSON field {spec.json_key!r} missing in the secret"
        return (str(value) if value is not None else None) or None, None


def _hide(text: str, value: str) -> str:
    """Scrub, and also remove the raw value even when it is too short for the redactor."""
    text = scrub(text)
    if value:
        text = text.replace(value, "[redacted]")
    return text[:240]


def probe_postgres(url: str, timeout_s: float) -> str:
    import psycopg

    with psycopg.connect(url, connect_timeout=max(1, int(timeout_s))) as conn:
        row = conn.execute("select 1").fetchone()
        version = conn.info.server_version
    if not row or row[0] != 1:
        raise RuntimeError("select 1 did not return 1")
    return f"connected, select 1 ok (server {version // 10000}.{version % 10000})"


def probe_redis(url: str, timeout_s: float) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        if not client.ping():
            raise RuntimeError("PING did not answer PONG")
        version = client.info("server").get("redis_version", "?")
    finally:
        client.close()
    return f"PING ok (redis {version})"


def probe_s3(
    secret_key: str, options: Mapping[str, Any], resolved: Mapping[str, str], timeout_s: float
) -> str:
    import boto3
    from botocore.config import Config

    bucket = options.get("bucket")
    if not bucket:
        raise RuntimeError("no bucket configured for the S3 probe (options.bucket)")
    access = options.get("access_key_id")
    if options.get("access_key_id_from"):
        access = resolved.get(options["access_key_id_from"])
        if not access:
            raise RuntimeError(f"access key id {options['access_key_id_from']} is missing")
    kwargs: dict[str, Any] = {
        "endpoint_url": options.get("endpoint_url"),
        "region_name": options.get("region", "us-east-1"),
        "config": Config(
            connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}
        ),
    }
    if access:
        kwargs.update(aws_access_key_id=access, aws_secret_access_key=secret_key)
    client = boto3.client("s3", **kwargs)
    client.head_bucket(Bucket=bucket)
    return f"head-bucket {bucket} ok"


def probe_oidc(issuer: str, timeout_s: float) -> str:
    import httpx

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    resp = httpx.get(url, timeout=timeout_s, follow_redirects=True)
    if resp.status_code != 200:
        raise RuntimeError(f"discovery answered HTTP {resp.status_code}")
    doc = resp.json()
    missing = [k for k in ("issuer", "jwks_uri", "token_endpoint") if not doc.get(k)]
    if missing:
        raise RuntimeError(f"discovery document lacks {missing}")
    if doc["issuer"].rstrip("/") != issuer.rstrip("/"):
        raise RuntimeError("discovery 'issuer' differs from the configured issuer URL")
    return "OIDC discovery ok (issuer matches, jwks_uri and token_endpoint present)"


def check_secrets(
    specs: Sequence[SecretSpec | Mapping[str, Any]],
    *,
    probe: bool = True,
    timeout_s: float = 5.0,
    env: Mapping[str, str] | None = None,
    aws: Mapping[str, Any] | None = None,
    probes: Mapping[str, Callable[..., str]] | None = None,
) -> Outcome:
    """C4 core step: passed when every spec is present and (with `probe`) its service answers.

    `aws` is passed to boto3.client for SSM / Secrets Manager lookups (endpoint_url,
    region_name). Missing ⇒ failed naming the variables; a probe error ⇒ failed naming the
    secret and the service's complaint; a source that cannot be read ⇒ inconclusive.
    """
    parsed = [s if isinstance(s, SecretSpec) else SecretSpec.from_dict(s) for s in specs]
    if not parsed:
        return Outcome.inconclusive("no required secrets configured: list them for C4")
    lookup = _Lookup(env, aws or {})
    resolved: dict[str, str] = {}
    findings: list[dict[str, Any]] = []
    for spec in parsed:
        value, problem = lookup.get(spec)
        f: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "source": spec.source}
        if spec.source != "env" or spec.key:
            f["where"] = spec.path if spec.source == "dotenv" else (spec.key or spec.name)
        if problem:
            f.update(present=None, problem=problem)
        elif value is None:
            f.update(present=False)
        else:
            if spec.kind != "oidc":
                # registered before anything else can print it; an issuer URL is public by
                # design (anyone may read its discovery document), so it is not scrubbed
                Secret(spec.name, value)
            resolved[spec.name] = value
            f.update(present=True)
        findings.append(f)
    run_probes = {
        "postgres": lambda v, s: probe_postgres(v, timeout_s),
        "redis": lambda v, s: probe_redis(v, timeout_s),
        "s3": lambda v, s: probe_s3(v, s.options, resolved, timeout_s),
        "oidc": lambda v, s: probe_oidc(v, timeout_s),
    }
    run_probes.update(probes or {})  # extra/overriding probes: (value, spec) -> one-line result
    if probe:
        for spec, f in zip(parsed, findings, strict=True):
            if not f.get("present") or spec.kind not in run_probes:
                continue
            value = resolved[spec.name]
            t0 = time.perf_counter()
            try:
                f["probe"] = _hide(run_probes[spec.kind](value, spec), value)
                f["probe_ok"] = True
            except Exception as exc:
                f["probe"] = _hide(f"{type(exc).__name__}: {exc}", value)
                f["probe_ok"] = False
            f["probe_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    missing = [f["name"] for f in findings if f["present"] is False]
    unreadable = [f for f in findings if f["present"] is None]
    broken = [f for f in findings if f.get("probe_ok") is False]
    ev = {"secrets": findings, "probed": probe, "missing": missing}
    if missing or broken:
        parts = []
        if missing:
            parts.append(f"missing: {', '.join(missing)}")
        if broken:
            parts.append(
                "service not answering: "
                + "; ".join(f"{f['name']} ({f['probe']})" for f in broken[:3])
            )
        return Outcome.failed(f"C4 secrets: {' — '.join(parts)}", **ev)
    if unreadable:
        return Outcome.inconclusive(
            "could not read " + "; ".join(f"{f['name']}: {f['problem']}" for f in unreadable[:3]),
            **ev,
        )
    probed = sum(1 for f in findings if f.get("probe_ok"))
    return Outcome.passed(
        f"all {len(findings)} secrets present" + (f"; {probed} services answered" if probe else ""),
        **ev,
    )
