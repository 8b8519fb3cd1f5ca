"""relnb.toml (or `[tool.relnb]` in pyproject.toml): what a release talks to.

The schema (relnb.configschema) is the documentation's source too (docs/config.md is checked against it). Secrets
never live in the file: a key ending in `_env` names the environment variable that holds the value,
resolved only when used. Unknown keys and wrong types are errors naming the file, the dotted key and
what was expected, because a typo in a release config silently disables a check otherwise.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .configschema import SCHEMA, Key, ListOf, MapOf, Table, join_key, typename
from .errors import ConfigError, SecretMissing
from .redact import MIN_SECRET_LENGTH, Secret, UnscrubbableSecret, too_short_message, would_rewrite

CONFIG_NAMES = ("relnb.toml", "pyproject.toml")


# Keys whose value names rather than hides (a registry user, an access key id): one too short to
# scrub is left unscrubbed instead of refused, since showing it gives nothing away.
_NAMING_KEYS = ("username_env", "access_key_env")

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


class _Validator:
    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, key: str, message: str, fix: str | None = None) -> ConfigError:
        return ConfigError(f"{self.file}: {key}: {message}", path=self.file, key=key, fix=fix)

    def table(self, schema: Table, data: Any, where: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(where or "(top)", f"expected a table, got {typename(data)}")
        out: dict[str, Any] = {}
        for k in data:
            if k not in schema.keys:
                close = difflib.get_close_matches(k, list(schema.keys), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(schema.keys)}"
                raise self.error(join_key(where, k), "unknown key", hint)
        for name, spec in schema.keys.items():
            key = join_key(where, name)
            present = name in data
            value = data.get(name)
            if isinstance(spec, Table):
                out[name] = self.table(spec, value if present else {}, key)
            elif isinstance(spec, ListOf):
                if not present:
                    out[name] = []
                    continue
                if not isinstance(value, list):
                    raise self.error(key, f"expected an array of tables, got {typename(value)}")
                out[name] = [self.table(spec.table, v, f"{key}[{i}]") for i, v in enumerate(value)]
            elif isinstance(spec, MapOf):
                if not present:
                    out[name] = {}
                    continue
                if not isinstance(value, dict):
                    raise self.error(key, f"expected a table, got {typename(value)}")
                sub = {}
                for n, v in value.items():
                    if spec.names and n not in spec.names:
                        raise self.error(
                            join_key(key, n), "unknown name", f"use one of {', '.join(spec.names)}"
                        )
                    sub[n] = (
                        self.table(spec.value, v, join_key(key, n))
                        if isinstance(spec.value, Table)
                        else self.key(spec.value, v, join_key(key, n), named=True)
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

    def key(self, spec: Key, value: Any, key: str, *, named: bool = False) -> Any:
        """One value checked against its spec; `named` marks an entry of a name-keyed table (a
        PromQL query, an image repository), whose key is the user's name, not a URL key."""
        if isinstance(value, bool) and bool not in spec.types:
            ok = False
        else:
            ok = isinstance(value, spec.types)
        if not ok:
            want = " or ".join(typename(t()) for t in spec.types)
            raise self.error(key, f"expected {want}, got {typename(value)} {value!r}", spec.doc)
        if spec.choices and value not in spec.choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(spec.choices)}")
        if spec.items is not None:
            for i, item in enumerate(value):
                if not isinstance(item, spec.items):
                    raise self.error(f"{key}[{i}]", f"expected {typename(spec.items())}, got {typename(item)}")
        if key.endswith(("window", "interval", "soak", "baseline", "max_age", "timeout", "max_job_age", "check_interval", "settle")):
            seconds = parse_duration(value, where=f"{self.file}: {key}")
            if seconds < 0 or (seconds == 0 and key.endswith(_POSITIVE_DURATIONS)):
                raise self.error(key, f"{value!r} is not a positive duration", "write e.g. 30s, 45m, 2h")
        name = key.rsplit(".", 1)[-1]
        if not named and (name in _URL_KEYS or name.endswith("_url")) and spec.types in ((str,), (list,)):
            for i, url in enumerate(value if isinstance(value, list) else [value]):
                where = f"{key}[{i}]" if isinstance(value, list) else key
                full = str(url)
                if key.endswith("registry.url") and "://" not in full:
                    full = f"https://{full}"  # a registry is also named by host[:port], as image names do
                problem = url_problem(full)
                if problem:
                    raise self.error(where, f"{url!r} is not a URL: {problem}", "write it as http(s)://host[:port][/path]")
        return value


# Durations that a zero makes meaningless (a window that watches nothing, a sampling loop that
# spins, a time limit that is already over); soak, baseline and settle may be zero on purpose.
_POSITIVE_DURATIONS = ("window", "interval", "timeout", "check_interval")

# Keys holding an http(s) URL relnb sends requests to (besides every `*_url`): a typo there
# ("htp:/host") would otherwise turn a check into one that never reaches its target.
_URL_KEYS = frozenset({"url", "urls", "issuer", "origin"})


def url_problem(url: str) -> str | None:
    """Why `url` is not an absolute http(s) URL relnb can request, or None when it is."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return f"the scheme must be http or https, not {parts.scheme!r}" if parts.scheme else "it has no http(s):// scheme"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "it contains whitespace or control characters"
    if not parts.hostname or not url.startswith(f"{parts.scheme}://"):
        return "it names no host"
    return None


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

    def require_environment(self, name: str | None = None) -> None:
        """The least a release can run against: a config file with the target environment (or,
        before the target is known, any environment). Without one, every gate that talks to the
        app has nothing to reach, and a run would record a whole release about nothing."""
        if self.path is None:
            raise ConfigError(
                f"no relnb.toml found in {self.root} or above",
                key="environments",
                fix=f"create {self.root / 'relnb.toml'} with [environments.{name or 'production'}] and its base_url",
            )
        if name is not None:
            self.env(name)
        elif not self.data["environments"]:
            raise ConfigError(
                f"{self.file}: environments: no environment is configured",
                path=self.file,
                key="environments",
                fix='add [environments.production] with base_url = "https://…" (and [environments.staging])',
            )

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
        secret = self._registered(env_var, value, key)
        self._secrets[env_var] = secret
        return secret

    def _registered(self, var: str, value: str, key: str) -> Secret:
        """The secret, registered for scrubbing, or a ConfigError naming the key and the variable
        when scrubbing it would fail: a value too short to hide without rewriting other text, or
        one that would rewrite a name relnb records and reads back (a bucket, a gate title)."""
        where = f'{self.file}: {key} = "{var}": the value of {var}'
        if len(value) < MIN_SECRET_LENGTH:
            if key.endswith(_NAMING_KEYS):
                return Secret(var, value, register=False)
            raise UnscrubbableSecret(
                f"{where} is {too_short_message(len(value))}",
                key=key, path=self.file, fix="use a longer secret",
            )
        for name, text in self._names():
            if would_rewrite(value, text):
                raise UnscrubbableSecret(
                    f"{where} is also a word of {name}; scrubbing the secret would rewrite that "
                    "name wherever relnb records it (a bucket the restore reads back, a title)",
                    key=key, path=self.file, fix="use a different secret",
                )
        return Secret(var, value)

    def _names(self) -> list[tuple[str, str]]:
        """Every name relnb writes into its records as it is: the config's values that are names
        (no whitespace: buckets, prefixes, URLs, paths; free text such as commands is output and
        is scrubbed) and the gates' titles."""
        from .gates import GATES

        found: list[tuple[str, str]] = [(f"gate {g.id}'s title", g.title) for g in GATES]

        def walk(node: Any, where: str) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    if not k.endswith("_env"):
                        walk(v, join_key(where, k))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, f"{where}[{i}]")
            elif isinstance(node, str) and node and not any(c.isspace() for c in node):
                found.append((where, node))

        walk(self.data, "")
        return found

    def secret_refs(self) -> list[tuple[str, str]]:
        """Every (dotted key, env var) the config references, for registration and `relnb check-config`."""
        refs: list[tuple[str, str]] = []

        def walk(node: Any, where: str) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    key = join_key(where, k)
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
    _check_manual_gates(data["gates"]["manual"], str(path))
    _check_titles(data["gates"]["titles"], str(path))
    if data["project"]["env_file"]:
        from .envfile import load_env_file

        load_env_file(path.parent / data["project"]["env_file"], config_file=str(path))
    return Config(data, path, path.parent.resolve())


def _check_titles(titles: dict[str, Any] | None, file: str) -> None:
    from .gates import GATE_IDS

    for gid, title in (titles or {}).items():
        if gid.upper() not in GATE_IDS:
            raise ConfigError(f"{file}: gates.titles: unknown gate ID {gid!r}", path=file, key=f"gates.titles.{gid}",
                              fix=f"use gate IDs such as {', '.join(GATE_IDS[:3])} …")
        if not str(title).strip() or len(str(title)) > 120 or any(ord(c) < 32 for c in str(title)):
            raise ConfigError(f"{file}: gates.titles.{gid}: a title is one line of 1–120 characters",
                              path=file, key=f"gates.titles.{gid}", fix="shorten it or remove it")


def _check_manual_gates(manual: list[Any], file: str) -> None:
    """`[gates] manual` turns checks into sign-offs; an action cannot be one (it must run, or be
    skipped or waived), and a typo would silently leave a gate automatic."""
    from .gates import GATE_IDS, Kind, get_gate

    for entry in manual:
        gid = str(entry).upper()
        if gid not in GATE_IDS:
            raise ConfigError(f"{file}: gates.manual: unknown gate ID {entry!r}", path=file, key="gates.manual",
                              fix=f"use gate IDs such as {', '.join(GATE_IDS[:3])} …")
        if get_gate(gid).kind is Kind.ACTION:
            raise ConfigError(
                f"{file}: gates.manual: {gid} is an action; a sign-off cannot stand in for it",
                path=file, key="gates.manual", fix=f"remove {gid}: it runs once when confirmed, or is skipped or waived",
            )
