"""C4: every secret production needs exists, and the service behind it answers.

A secret is named, never shown: each required name is looked up where the release says it lives
(a dotenv file, a command that lists the environment's variables, AWS SSM Parameter Store, AWS
Secrets Manager, or an environment mapping), registered with the redactor the moment it is read,
and then used once for a connectivity probe of its kind (Postgres `select 1`, Redis PING, S3
head-bucket, OIDC discovery). Evidence names the variable, its source and what the probe saw,
never the value or any part of it.

The `env` source without a mapping reads relnb's own process environment: that is the machine
running the release, not production, so what it finds is reported and the verdict is at best
inconclusive ("only relnb's own environment was checked, not production's").
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...envfile import parse_dotenv
from ...errors import ConfigError
from ...redact import Secret, connect_error, scrub
from ...results import Outcome
from ...tls import http_client

KINDS = ("postgres", "redis", "s3", "oidc", "plain", "public")
SOURCES = ("env", "dotenv", "command", "ssm", "secretsmanager")
OWN_ENVIRONMENT = "relnb's own process environment"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SecretSpec:
    """One required secret.

    `key` is where to look it up in the source (default: `name`): the dotenv or listed variable,
    the SSM parameter name, or the Secrets Manager secret id; `json_key` picks a field of a JSON
    secret. `command` (source `command`) prints the target environment's variables.
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
    command: str | None = None  # source = command

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SecretSpec:
        known = {"name", "kind", "source", "key", "path", "json_key", "options", "command"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"secret spec {d.get('name')!r}: unknown keys {sorted(unknown)}")
        spec = cls(**{k: v for k, v in d.items() if k in known})
        if spec.kind not in KINDS:
            raise ValueError(f"secret {spec.name}: kind {spec.kind!r} not one of {KINDS}")
        if spec.source not in SOURCES:
            raise ValueError(f"secret {spec.name}: source {spec.source!r} not one of {SOURCES}")
        return spec


def parse_listing(text: str) -> dict[str, str | None]:
    """What a listing command printed: `NAME=value` lines (`env`, `printenv`, `docker exec … env`,
    `export NAME="value"`), values verbatim but for one pair of surrounding quotes; or, when no
    line has a `=`, one name per line (a listing of names only: present, value not known).

    Names alone are accepted only in a names-only listing, so the continuation lines of a
    multi-line value are never mistaken for variables."""
    lines = [raw.strip() for raw in text.splitlines()]
    lines = [line.removeprefix("export ").strip() for line in lines if line and not line.startswith("#")]
    out: dict[str, str | None] = {}
    if not any("=" in line for line in lines):
        return {line: None for line in lines if _NAME.match(line)}
    for line in lines:
        key, eq, value = line.partition("=")
        if not eq or not _NAME.match(key.strip()):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def read_listing(
    command: str, *, cwd: str | os.PathLike[str] | None = None, timeout_s: float = 60.0
) -> tuple[dict[str, str | None], str | None]:
    """(variables, problem) from a command that lists the target environment's variables.

    stdout is parsed and never kept or shown; a failure is described by its exit code and the
    last line of stderr (scrubbed). An empty listing is a problem, not "every secret missing":
    a command that printed nothing has not shown what the environment holds."""
    import subprocess

    from ...actions.command import kill_group
    from ...results import last_line

    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        return {}, f"listing command could not start: {scrub(str(exc))[:200]}"
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.communicate()
        return {}, f"listing command timed out after {timeout_s:g} s"
    if proc.returncode != 0:
        why = scrub(last_line(err or ""))[:200]
        return {}, f"listing command exited {proc.returncode}" + (f": {why}" if why else "")
    listing = parse_listing(out)
    if not listing:
        return {}, "listing command printed no variables"
    return listing, None


@dataclass(frozen=True)
class _Found:
    """One lookup: present (None when the source could not be read), the value when the source
    shows it (a names-only listing does not), and why the source could not be read."""

    present: bool | None
    value: str | None = None
    problem: str | None = None


class _Lookup:
    """Reads values from the configured sources, caching dotenv files, listings and AWS clients."""

    def __init__(
        self,
        env: Mapping[str, str] | None,
        aws: Mapping[str, Any],
        *,
        cwd: str | os.PathLike[str] | None = None,
        command_timeout_s: float = 60.0,
    ) -> None:
        self.env = os.environ if env is None else env
        self.aws = dict(aws)
        self.cwd = cwd
        self.command_timeout_s = command_timeout_s
        self._dotenv: dict[str, dict[str, str]] = {}
        self._listings: dict[str, tuple[dict[str, str | None], str | None]] = {}
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service, **self.aws)
        return self._clients[service]

    def get(self, spec: SecretSpec) -> _Found:
        """Where `spec` stands in its source; problems are scrubbed reasons."""
        key = spec.key or spec.name
        if spec.source == "env":
            return _value(self.env.get(key))
        if spec.source == "dotenv":
            if not spec.path:
                return _Found(None, problem="no dotenv path given")
            if spec.path not in self._dotenv:
                p = Path(spec.path)
                if not p.is_file():
                    return _Found(None, problem=f"dotenv file {spec.path} not found")
                self._dotenv[spec.path] = parse_dotenv(p.read_text(errors="replace"))
            return _value(self._dotenv[spec.path].get(key))
        if spec.source == "command":
            if not spec.command:
                return _Found(None, problem="no listing command given")
            if spec.command not in self._listings:
                self._listings[spec.command] = read_listing(
                    spec.command, cwd=self.cwd, timeout_s=self.command_timeout_s
                )
            listing, problem = self._listings[spec.command]
            if problem:
                return _Found(None, problem=problem)
            if key in listing and listing[key] is None:
                return _Found(True)  # a names-only listing: present, value not shown
            return _value(listing.get(key))
        return self._aws_get(spec, key)

    def _aws_get(self, spec: SecretSpec, key: str) -> _Found:
        try:
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:  # pragma: no cover - boto3 is a dependency
            return _Found(None, problem="boto3 is not installed")
        try:
            if spec.source == "ssm":
                resp = self._client("ssm").get_parameter(Name=key, WithDecryption=True)
                value = resp["Parameter"]["Value"]
            else:
                resp = self._client("secretsmanager").get_secret_value(SecretId=key)
                value = resp.get("SecretString")
                if value is None:
                    return _Found(
                        None, problem="secret has no SecretString (binary secrets are not supported)"
                    )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            if code in ("ParameterNotFound", "ResourceNotFoundException"):
                return _Found(False)
            return _Found(None, problem=f"{spec.source} {code}: {scrub(str(exc))[:200]}")
        except BotoCoreError as exc:
            return _Found(None, problem=f"{spec.source} unreachable: {scrub(str(exc))[:200]}")
        if spec.json_key:
            try:
                value = json.loads(value)[spec.json_key]
            except (ValueError, KeyError, TypeError):
                # the secret exists but the field does not: report as missing (value not shown)
                return _Found(None, problem=f"JSON field {spec.json_key!r} missing in the secret")
        return _value(str(value) if value is not None else None)


def _value(value: str | None) -> _Found:
    """An empty value is as good as missing: the app would start without the secret."""
    return _Found(True, value) if value else _Found(False)


def _hide(text: str, value: str) -> str:
    """Scrub, and also remove the raw value even when it is too short for the redactor."""
    text = scrub(text)
    if value:
        text = text.replace(value, "[redacted]")
    return text[:240]


def _probe_error(exc: BaseException, spec: SecretSpec, value: str) -> str:
    """A failed probe in one line. About a URL (postgres, redis) the driver's text is not used:
    it quotes what it cannot parse, a password included (issue 22 item 2)."""
    if spec.kind in ("postgres", "redis"):
        return connect_error(exc, value, f"${spec.name}")
    return f"{type(exc).__name__}: {exc}"


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
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with http_client(timeout=timeout_s, follow_redirects=True) as http:
        resp = http.get(url)
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
    cwd: str | os.PathLike[str] | None = None,
    command_timeout_s: float = 60.0,
    environment: str = "the target environment",
) -> Outcome:
    """C4 core step: passed when every spec is present and (with `probe`) its service answers.

    `env` is the target environment's variables for `env` specs; without it they are read from
    relnb's own process environment, which can never pass (see the module docstring). `aws` is
    passed to boto3.client for SSM / Secrets Manager lookups (endpoint_url, region_name);
    `cwd` and `command_timeout_s` apply to listing commands. Missing ⇒ failed naming the
    variables; a probe error ⇒ failed naming the secret and the service's complaint; a source
    that cannot be read, or a probe that could not run, ⇒ inconclusive.
    """
    parsed = [s if isinstance(s, SecretSpec) else SecretSpec.from_dict(s) for s in specs]
    if not parsed:
        return Outcome.inconclusive("no required secrets configured: list them for C4")
    own = env is None or env is os.environ
    lookup = _Lookup(env, aws or {}, cwd=cwd, command_timeout_s=command_timeout_s)
    resolved: dict[str, str] = {}
    findings: list[dict[str, Any]] = []
    for spec in parsed:
        found = lookup.get(spec)
        f = _finding(spec, found, own)
        if found.present and found.value is not None:
            if spec.kind not in ("oidc", "public"):
                # registered before anything else can print it; an issuer URL is public by
                # design (anyone may read its discovery document), and a `public` value is a
                # setting the project says is not secret (a queue name): neither is scrubbed
                try:
                    Secret(spec.name, found.value)
                except ConfigError as exc:  # too short to scrub: the probe's text still hides it
                    f["note"] = str(exc)
            resolved[spec.name] = found.value
        findings.append(f)
    for spec, f in zip(parsed, findings, strict=True):
        if spec.source == "command":  # scrubbed once every value it listed is registered
            f["where"] = scrub(spec.command or "")[:200]
    if probe:
        _run_probes(parsed, findings, resolved, timeout_s, probes or {})
    return _verdict(findings, probe, environment)


def _finding(spec: SecretSpec, found: _Found, own: bool) -> dict[str, Any]:
    f: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "source": spec.source}
    if spec.source == "env" and own:
        f["where"] = OWN_ENVIRONMENT
    elif spec.source == "dotenv":
        f["where"] = spec.path
    elif spec.source != "env" or spec.key:
        f["where"] = spec.key or spec.name
    if found.problem:
        f.update(present=None, problem=found.problem)
    else:
        f.update(present=bool(found.present))
    return f


def _run_probes(
    parsed: Sequence[SecretSpec],
    findings: list[dict[str, Any]],
    resolved: Mapping[str, str],
    timeout_s: float,
    extra: Mapping[str, Callable[..., str]],
) -> None:
    run_probes = {
        "postgres": lambda v, s: probe_postgres(v, timeout_s),
        "redis": lambda v, s: probe_redis(v, timeout_s),
        "s3": lambda v, s: probe_s3(v, s.options, resolved, timeout_s),
        "oidc": lambda v, s: probe_oidc(v, timeout_s),
    }
    run_probes.update(extra)  # extra/overriding probes: (value, spec) -> one-line result
    for spec, f in zip(parsed, findings, strict=True):
        if not f.get("present") or spec.kind not in run_probes:
            continue
        if spec.name not in resolved:
            f["probe"] = "not probed: the source lists the name, not the value"
            f["probe_ok"] = None
            continue
        value = resolved[spec.name]
        t0 = time.perf_counter()
        try:
            f["probe"] = _hide(run_probes[spec.kind](value, spec), value)
            f["probe_ok"] = True
        except Exception as exc:
            f["probe"] = _hide(_probe_error(exc, spec, value), value)
            f["probe_ok"] = False
        f["probe_ms"] = round((time.perf_counter() - t0) * 1000, 1)


def _verdict(findings: list[dict[str, Any]], probe: bool, environment: str) -> Outcome:
    """Failures seen in the target's own sources fail; what relnb's own environment shows, an
    unreadable source or a probe that could not run leave it inconclusive; else passed."""
    own = [f for f in findings if f.get("where") == OWN_ENVIRONMENT]
    target = [f for f in findings if f.get("where") != OWN_ENVIRONMENT]
    missing = [f["name"] for f in target if f["present"] is False]
    unreadable = [f for f in target if f["present"] is None]
    broken = [f for f in target if f.get("probe_ok") is False]
    unprobed = [f["name"] for f in target if "probe_ok" in f and f["probe_ok"] is None]
    ev: dict[str, Any] = {
        "secrets": findings,
        "probed": probe,
        "missing": missing,
        "environment": environment,
        "own_environment_only": [f["name"] for f in own],
    }
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
    if own:
        present = sum(1 for f in own if f["present"])
        answered = sum(1 for f in own if f.get("probe_ok"))
        seen = f"{present} of {len(own)} present there" + (
            f", {answered} services answered" if probe and answered else ""
        )
        return Outcome.inconclusive(
            f"only relnb's own environment was checked, not {environment}'s ({seen}): read the "
            "secrets from a source that is the target's (dotenv, command, ssm, secretsmanager)",
            **ev,
        )
    if unprobed:
        return Outcome.inconclusive(
            f"present, but not probed (the source lists names only): {', '.join(unprobed[:5])}",
            **ev,
        )
    probed = sum(1 for f in findings if f.get("probe_ok"))
    return Outcome.passed(
        f"all {len(findings)} secrets present" + (f"; {probed} services answered" if probe else ""),
        **ev,
    )


def present_names(
    names: Iterable[str],
    source: str,
    *,
    path: str | None = None,
    command: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    command_timeout_s: float = 60.0,
    aws: Mapping[str, Any] | None = None,
) -> tuple[set[str] | None, str | None]:
    """(which of `names` the target's `source` defines, why it could not be read), values dropped.

    For B4: the same sources as C4, but never relnb's own environment (`env` is refused: the
    caller says it could not look)."""
    if source not in SOURCES or source == "env":
        raise ValueError(f"present_names reads a target's source, not {source!r}")
    lookup = _Lookup({}, aws or {}, cwd=cwd, command_timeout_s=command_timeout_s)
    present: set[str] = set()
    for name in dict.fromkeys(names):
        found = lookup.get(SecretSpec(name, source=source, path=path, command=command))
        if found.problem:
            return None, found.problem
        if found.present:
            present.add(name)
    return present, None
