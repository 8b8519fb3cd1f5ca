"""relnb.toml (or `[tool.relnb]` in pyproject.toml): what a release talks to.

The schema below is the documentation's source too (docs/config.md is checked against it). Secrets
never live in the file: a key ending in `_env` names the environment variable that holds the value,
resolved only when used. Unknown keys and wrong types are errors naming the file, the dotted key and
what was expected, because a typo in a release config silently disables a check otherwise.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, SecretMissing
from .redact import Secret

CONFIG_NAMES = ("relnb.toml", "pyproject.toml")
ENVIRONMENTS = ("staging", "production")


@dataclass(frozen=True)
class Key:
    """One config key: its type(s), default and a one-line description for the reference."""

    types: tuple[type, ...]
    doc: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    items: type | None = None  # element type for lists


@dataclass(frozen=True)
class Table:
    keys: Mapping[str, Key | Table | ListOf | MapOf]
    doc: str = ""


@dataclass(frozen=True)
class ListOf:
    """A list of tables (`[[...]]` in TOML)."""

    table: Table
    doc: str = ""


@dataclass(frozen=True)
class MapOf:
    """A table whose keys are names (environments, queries) and whose values share a schema."""

    value: Table | Key
    doc: str = ""
    names: tuple[str, ...] = ()


def _s(doc: str, default: Any = None, *, required: bool = False, choices: tuple[str, ...] = ()) -> Key:
    return Key((str,), doc, default, required, choices)


def _l(doc: str, default: Any = None) -> Key:
    return Key((list,), doc, default if default is not None else [], items=str)


def _n(doc: str, default: Any = None) -> Key:
    return Key((int, float), doc, default)


def _b(doc: str, default: bool = False) -> Key:
    return Key((bool,), doc, default)


ENV_TABLE = Table(
    {
        "base_url": _s("API base URL of this environment", required=True),
        "version_path": _s("path that reports the deployed version", "/version"),
        "version_field": _s("JSON field of version_path holding the git SHA", "sha"),
        "version_timeout": _s("how long B1/D4 wait for version_path to show the expected SHA", "2m"),
        "auth": Table(
            {
                "token_env": _s("env var with a bearer token of an owner user (smoke flows)"),
                "member_token_env": _s("env var with a second user's token (invite + accept)"),
            },
            "credentials the smoke flows use",
        ),
        "database_url_env": _s("env var with the database URL (read-only checks, migrations)"),
        "redis_url_env": _s("env var with the Redis URL of the queues"),
        "queue": Table(
            {
                "kind": _s("queue library", "bullmq", choices=("bullmq", "rq", "celery", "redis-streams")),
                "names": _l("queue names", ["extraction"]),
                "prefix": _s("key prefix (BullMQ)", "bull"),
                "max_job_age": _s("oldest acceptable waiting/active job", "5m"),
                "check_interval": _s("how long B6/B7 observe the queues", "10s"),
            }
        ),
        "backups": Table(
            {
                "kind": _s("where backups live", "s3", choices=("s3", "rds")),
                "bucket": _s("S3 bucket"),
                "prefix": _s("S3 key prefix of the backups", ""),
                "max_age": _s("newest backup must be younger than this", "26h"),
                "endpoint_url": _s("S3-compatible endpoint (MinIO, moto)"),
                "region": _s("AWS region", "us-east-1"),
                "access_key_env": _s("env var with the access key id"),
                "secret_key_env": _s("env var with the secret access key"),
                "instance": _s("RDS instance identifier (kind = rds)"),
                "restore_test": _b("restore the newest backup into a scratch database", False),
            }
        ),
        "metrics": Table(
            {
                "kind": _s("metrics source", "scrape", choices=("scrape", "prometheus")),
                "urls": _l("/metrics URLs to scrape (kind = scrape)"),
                "url": _s("Prometheus base URL (kind = prometheus)"),
                "token_env": _s("env var with a bearer token for the metrics source"),
                "queries": MapOf(_s("PromQL"), "PromQL per metric (error_rate, latency_p95, ...)"),
            }
        ),
        "registry": Table(
            {
                "url": _s("OCI registry base URL"),
                "repositories": MapOf(_s("repository name"), "image repositories by role (api, worker)"),
                "username_env": _s("env var with the registry user"),
                "password_env": _s("env var with the registry password/token"),
            }
        ),
        "oidc": Table(
            {
                "issuer": _s("OIDC issuer URL (Keycloak realm URL)"),
                "client_id": _s("client id of the web frontend"),
                "frontends": ListOf(
                    Table(
                        {
                            "origin": _s("frontend origin", required=True),
                            "redirect_uri": _s("OIDC redirect URI of that frontend", required=True),
                        }
                    ),
                    "frontends whose CORS and redirect URIs B9 checks",
                ),
            }
        ),
        "commands": Table(
            {
                "migrate": _s("migration command (e.g. `npx prisma migrate deploy`)"),
                "deploy": _s("deploy command; RELNB_VERSION/RELNB_SHA are set"),
                "build": _s("image build command (B3)"),
                "snapshot": _s("command that takes a fresh DB snapshot (D2), when backups are not S3/RDS"),
                "smoke": _s("scripted smoke command (B5/D6), e.g. ./scripts/smoke/api-smoke.sh"),
                "safe_mode_on": _s("command that puts the system in safe mode (D1)"),
                "safe_mode_off": _s("command that leaves safe mode"),
                "rollback": _s("command that redeploys the previous version"),
                "migrate_down": _s("command that runs the down migration"),
                "timeout": _s("time limit for each command", "15m"),
            }
        ),
        "secrets": Table(
            {
                "required": _l("names of secrets that must exist in this environment (C4)"),
                "dotenv": _s("dotenv file holding this environment's secrets (C4, B4)"),
                "source": _s(
                    "where the required secrets live", "env", choices=("env", "dotenv", "ssm", "secretsmanager")
                ),
                "probes": ListOf(
                    Table(
                        {
                            "name": _s("secret name (must also be in required)", required=True),
                            "kind": _s("service to probe", "plain", choices=("postgres", "redis", "s3", "oidc", "plain")),
                            "bucket": _s("S3 bucket for kind = s3"),
                            "endpoint_url": _s("S3 endpoint for kind = s3"),
                            "region": _s("S3 region for kind = s3"),
                            "access_key_id_from": _s("name of the secret holding the access key id (kind = s3)"),
                        }
                    ),
                    "how C4 proves a secret works: connect, PING, head-bucket, OIDC discovery",
                ),
            }
        ),
        "observability": Table(
            {
                "prometheus_url": _s("Prometheus base URL (C5)"),
                "alertmanager_url": _s("Alertmanager base URL (C5)"),
                "expected_jobs": _l("scrape jobs that must be up (default: all configured)"),
                "expected_alerts": _l("alert rules that must be loaded"),
                "error_tracking_dsn_env": _s("env var with the error-tracking DSN (Sentry-style)"),
                "settle": _s("how long to wait for targets/rules to be evaluated", "30s"),
            }
        ),
        "coolify": Table(
            {
                "api_url": _s("Coolify base URL; when set, D4 deploys through Coolify instead of commands.deploy"),
                "token_env": _s("env var with the Coolify API token"),
                "uuid": _s("resource uuid to deploy"),
                "tag": _s("Coolify tag to deploy (instead of uuid)"),
            }
        ),
    },
    "one deployment target",
)

SCHEMA = Table(
    {
        "project": Table(
            {
                "name": _s("application name", "app"),
                "repo": _s("path of the application's git repository", "."),
                "main_branch": _s("branch releases are cut from", "main"),
                "tag_prefix": _s("prefix of release tags", "v"),
                "previous_tag": _s("previous release tag (default: newest tag with tag_prefix)"),
                "runbooks": _l("runbook files that must exist at the release SHA (A6)"),
                "openapi": _s("OpenAPI spec path in the repository (A2)", "openapi.yaml"),
                "migrations_dir": _s("migrations directory in the repository", "prisma/migrations"),
                "migrations_kind": _s(
                    "migration ledger B2/D3 verify after migrating (none: the command's exit code alone decides)",
                    "prisma",
                    choices=("prisma", "alembic", "django", "flyway", "golang-migrate", "none"),
                ),
                "schema_paths": _l("files whose change needs a migration (A3)", ["prisma/schema.prisma"]),
                "deploy_artifacts": _l("compose templates and scripts that must exist (B4)"),
                "env_templates": _l("env templates whose keys must be provided (B4)"),
                "changelog": _s("changelog file (F3)", "CHANGELOG.md"),
                "releases_dir": _s("where journals and archives live", "releases"),
                "notebooks_dir": _s("where `relnb new` writes notebooks", "notebooks"),
                "release_lead": _s("the release lead's identity, `Name <email>`"),
                "shadow_database_url_env": _s(
                    "env var with a Postgres URL where relnb may create scratch databases (C3 lock trace)"
                ),
                "large_table_rows": _n("a table this big must not be locked or rewritten (C3)", 10000),
            }
        ),
        "ci": Table(
            {
                "provider": _s("where CI results come from", "command", choices=("command", "github")),
                "command": _s("test command run locally (provider = command)"),
                "timeout": _s("time limit for the command", "20m"),
                "github_repo": _s("owner/name (provider = github)"),
                "token_env": _s("env var with a GitHub token"),
                "api_url": _s("GitHub API URL (default: $GITHUB_API_URL or api.github.com)"),
                "required_checks": _l("check names that must be present and green"),
            }
        ),
        "monitor": Table(
            {
                "window": _s("monitoring window after deploy (D7)", "45m"),
                "interval": _s("sampling interval", "15s"),
                "soak": _s("staging soak period (C1)", "2h"),
                "baseline": _s("baseline period before deploy", "30m"),
                "error_rate_max": _n("absolute error-rate limit (fraction)", 0.01),
                "latency_p95_max": _n("absolute p95 latency limit (seconds)", 0.5),
                "dlq_growth_max": _n("allowed DLQ growth during the window", 0),
                "failure_limit": _n("consecutive breaches that end the window", 3),
                "min_samples": _n("samples needed for a verdict", 8),
            }
        ),
        "signing": Table(
            {
                "enabled": _b("sign sign-offs, waivers, skips, forced re-runs and the seal with SSH keys", False),
                "allowed_signers": _s(
                    "allowed_signers file in the app repository, read as of the release SHA",
                    ".relnb/allowed_signers",
                ),
                "key": _s("SSH signing key path (a .pub means: held in ssh-agent); per person: $RELNB_SIGNING_KEY"),
                "principal": _s("principal to sign as when the key is listed for several"),
                "required": _b("refuse unsigned approvals; verify fails on them (implies enabled)", False),
                "four_eyes": _b("waivers and production promotion need someone other than the release lead", True),
                "min_production_approvers": _n("distinct promote approvals before section D (0 = off)", 0),
                "release_lead": _s("release lead principal (default: project.release_lead's email, else the author)"),
                "gates": MapOf(_l("roles, any of which may approve"), "roles per gate ID (D = production promotion)"),
            }
        ),
        "gates": Table(
            {
                "manual": _l("gate IDs this team confirms by hand (a sign-off instead of the automatic check)"),
            }
        ),
        "environments": MapOf(ENV_TABLE, "deployment targets", names=ENVIRONMENTS),
    }
)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str | float | int, *, where: str = "duration") -> float:
    """'45m' → 2700.0; bare numbers are seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise ConfigError(
            f"{where}: {text!r} is not a duration", key=where, fix="write e.g. 30s, 45m, 2h"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def _typename(value: Any) -> str:
    return {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


class _Validator:
    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, key: str, message: str, fix: str | None = None) -> ConfigError:
        return ConfigError(f"{self.file}: {key}: {message}", path=self.file, key=key, fix=fix)

    def table(self, schema: Table, data: Any, where: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(where or "(top)", f"expected a table, got {_typename(data)}")
        out: dict[str, Any] = {}
        for k in data:
            if k not in schema.keys:
                close = difflib.get_close_matches(k, list(schema.keys), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(schema.keys)}"
                raise self.error(_join(where, k), "unknown key", hint)
        for name, spec in schema.keys.items():
            key = _join(where, name)
            present = name in data
            value = data.get(name)
            if isinstance(spec, Table):
                out[name] = self.table(spec, value if present else {}, key)
            elif isinstance(spec, ListOf):
                if not present:
                    out[name] = []
                    continue
                if not isinstance(value, list):
                    raise self.error(key, f"expected an array of tables, got {_typename(value)}")
                out[name] = [self.table(spec.table, v, f"{key}[{i}]") for i, v in enumerate(value)]
            elif isinstance(spec, MapOf):
                if not present:
                    out[name] = {}
                    continue
                if not isinstance(value, dict):
                    raise self.error(key, f"expected a table, got {_typename(value)}")
                sub = {}
                for n, v in value.items():
                    if spec.names and n not in spec.names:
                        raise self.error(
                            _join(key, n), "unknown name", f"use one of {', '.join(spec.names)}"
                        )
                    sub[n] = (
                        self.table(spec.value, v, _join(key, n))
                        if isinstance(spec.value, Table)
                        else self.key(spec.value, v, _join(key, n))
                    )
                out[name] = sub
            else:
                if not present:
                    if spec.required:
                        raise self.error(key, "is required", spec.doc)
                    out[name] = list(spec.default) if isinstance(spec.default, list) else spec.default
                    continue
                out[name] = self.key(spec, value, key)
        return out

    def key(self, spec: Key, value: Any, key: str) -> Any:
        if isinstance(value, bool) and bool not in spec.types:
            ok = False
        else:
            ok = isinstance(value, spec.types)
        if not ok:
            want = " or ".join(_typename(t()) for t in spec.types)
            raise self.error(key, f"expected {want}, got {_typename(value)} {value!r}", spec.doc)
        if spec.choices and value not in spec.choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(spec.choices)}")
        if spec.items is not None:
            for i, item in enumerate(value):
                if not isinstance(item, spec.items):
                    raise self.error(f"{key}[{i}]", f"expected {_typename(spec.items())}, got {_typename(item)}")
        if key.endswith(("window", "interval", "soak", "baseline", "max_age", "timeout", "max_job_age", "check_interval", "settle")):
            parse_duration(value, where=f"{self.file}: {key}")
        return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


@dataclass
class Config:
    """Validated configuration plus where it came from (paths resolve against `root`)."""

    data: dict[str, Any]
    path: Path | None
    root: Path
    _secrets: dict[str, Secret] = field(default_factory=dict, repr=False)

    @property
    def project(self) -> dict[str, Any]:
        return self.data["project"]

    def env(self, name: str) -> dict[str, Any]:
        envs = self.data["environments"]
        if name not in envs:
            raise ConfigError(
                f"{self.file}: environments.{name} is not configured",
                key=f"environments.{name}",
                fix=f"add [environments.{name}] with at least base_url",
            )
        return envs[name]

    @property
    def file(self) -> str:
        return str(self.path) if self.path else "(defaults)"

    def repo_path(self) -> Path:
        return (self.root / self.project["repo"]).resolve()

    def releases_dir(self) -> Path:
        return self.root / self.project["releases_dir"]

    def notebooks_dir(self) -> Path:
        return self.root / self.project["notebooks_dir"]

    def secret(self, env_var: str | None, *, key: str) -> Secret:
        """Resolve a secret by env-var name now; the value is registered for scrubbing."""
        if not env_var:
            raise ConfigError(
                f"{self.file}: {key} is not set", key=key, fix=f"set {key} to the name of an environment variable"
            )
        if env_var in self._secrets:
            return self._secrets[env_var]
        value = os.environ.get(env_var)
        if value is None or value == "":
            raise SecretMissing(
                f"environment variable {env_var} (from {key} in {self.file}) is not set",
                key=key,
                path=self.file,
                fix=f"export {env_var}=… before running relnb",
            )
        secret = Secret(env_var, value)
        self._secrets[env_var] = secret
        return secret

    def secret_refs(self) -> list[tuple[str, str]]:
        """Every (dotted key, env var) the config references, for registration and `relnb check-config`."""
        refs: list[tuple[str, str]] = []

        def walk(node: Any, where: str) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    key = _join(where, k)
                    if k.endswith("_env") and isinstance(v, str) and v:
                        refs.append((key, v))
                    else:
                        walk(v, key)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, f"{where}[{i}]")

        walk(self.data, "")
        return refs

    def register_available_secrets(self) -> list[str]:
        """Register every referenced secret that is set, so output scrubbing knows them early."""
        found = []
        for key, var in self.secret_refs():
            if os.environ.get(var):
                self.secret(var, key=key)
                found.append(var)
        return found


def find_config(start: str | os.PathLike[str] | None = None) -> Path | None:
    """Nearest relnb.toml, or pyproject.toml with [tool.relnb], from `start` upwards."""
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "relnb.toml").is_file():
            return d / "relnb.toml"
        pp = d / "pyproject.toml"
        if pp.is_file():
            try:
                if "relnb" in tomllib.loads(pp.read_text()).get("tool", {}):
                    return pp
            except (tomllib.TOMLDecodeError, OSError):
                continue
    return None


def load_config(path: str | os.PathLike[str] | None = None, *, start: Any = None) -> Config:
    """Load and validate; with no file anywhere, defaults rooted at the working directory."""
    if path is None:
        found = find_config(start)
        if found is None:
            root = Path(os.environ.get("RELNB_ROOT") or start or os.getcwd()).resolve()
            return Config(_Validator("(defaults)").table(SCHEMA, {}, ""), None, root)
        path = found
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist", path=str(path), fix="check the path or run `relnb init`")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", path=str(path), fix="fix the TOML syntax at that line") from None
    if path.name == "pyproject.toml":
        raw = raw.get("tool", {}).get("relnb", {})
    data = _Validator(str(path)).table(SCHEMA, raw, "")
    return Config(data, path, path.parent.resolve())


def reference_markdown() -> str:
    """docs/config.md, generated from SCHEMA so the reference cannot drift from the validator."""
    lines = [
        "# Configuration reference",
        "",
        "relnb reads `relnb.toml` (or `[tool.relnb]` in `pyproject.toml`) from the project root.",
        "Unknown keys and wrong types are errors naming the file and the key. Keys ending in `_env`",
        "name an environment variable holding a secret; the value itself never goes in the file.",
        "Durations are written like `30s`, `45m`, `2h`. This page is generated from the schema",
        "(`relnb.config.reference_markdown()`); a test keeps it current.",
        "",
    ]

    def walk(node: Table, where: str) -> None:
        rows = []
        for name, spec in node.keys.items():
            key = _join(where, name)
            if isinstance(spec, Key):
                default = "" if spec.default in (None, []) else f"`{spec.default!r}`"
                kinds = " or ".join(_typename(t()) for t in spec.types)
                extra = f" One of: {', '.join(spec.choices)}." if spec.choices else ""
                req = " **Required.**" if spec.required else ""
                rows.append(f"| `{key}` | {kinds} | {default} | {spec.doc}.{extra}{req} |")
            elif isinstance(spec, MapOf) and isinstance(spec.value, Key):
                rows.append(f"| `{key}.<name>` | {_typename(spec.value.types[0]())} | | {spec.doc} |")
        if rows:
            lines.extend([f"## `[{where}]`" if where else "## top level", "", "| key | type | default | meaning |", "|---|---|---|---|", *rows, ""])
        for name, spec in node.keys.items():
            key = _join(where, name)
            if isinstance(spec, Table):
                walk(spec, key)
            elif isinstance(spec, ListOf):
                walk(spec.table, f"[{key}]")
            elif isinstance(spec, MapOf) and isinstance(spec.value, Table):
                names = "|".join(spec.names) if spec.names else "name"
                walk(spec.value, f"{key}.<{names}>")

    walk(SCHEMA, "")
    return "\n".join(lines).rstrip() + "\n"
