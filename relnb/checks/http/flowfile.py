"""Declarative smoke flows: steps an app's team writes in TOML or YAML instead of Python.

Why a small language rather than a shell script: every step keeps its own timing, status,
redacted body and captured values as evidence, and a mistake in the file is reported with the
file and the step's field before a single request is sent. The grammar (docs/flows.md):

    [flows.create_site]
    description = "a site can be created and read back"
    [[flows.create_site.steps]]
    name = "create a site"
    method = "POST"
    path = "/api/dcim/sites/"
    json = { name = "{unique}", slug = "{unique}" }
    expect = 201
    capture = { site_id = "$.id" }
    [[flows.create_site.steps]]
    poll = "/api/dcim/sites/{site_id}/"
    until = { "$.status.value" = "active" }
    timeout = "30s"

Placeholders: `{name}` (a value captured by an earlier step; a string that is only a placeholder
keeps the captured value's type), `{unique}` (one `relnb-smoke-…` token per flow run), `{uuid}`,
and `{env:NAME}` (an environment variable, registered as a secret so it is scrubbed from all
evidence). `{{` and `}}` are literal braces. JSON paths are `$`, `.key`, `['key']`, `[index]`.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config import parse_duration
from ...errors import ConfigError
from ...redact import Secret, scrub
from .smoke import FlowInconclusive, FlowSession, scrub_json

IDENTITIES = {"owner": "owner", "member": "member", "anonymous": None}
OPERATORS = ("equals", "not_equals", "in", "contains", "matches", "exists", "type", "not_empty")
JSON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}
STEP_KEYS = {
    "name": "what the step proves, shown in evidence and in the failure summary",
    "method": "HTTP method (default GET; poll steps are always GET)",
    "path": "request path, relative to the environment's base_url",
    "poll": "path to GET repeatedly until `until` holds (instead of `path`)",
    "as": "whose token authorizes the request: owner (default), member or anonymous",
    "headers": "extra headers; values may use {env:NAME} for API keys (never recorded)",
    "json": "JSON body (placeholders allowed in strings)",
    "form": "form body (application/x-www-form-urlencoded)",
    "params": "query parameters",
    "expect": "expected status code or list of codes (default 200)",
    "capture": "table name = JSON path: values later steps use as {name}",
    "require": "conditions the JSON answer must meet",
    "until": "conditions that end a poll step",
    "fail_if": "conditions that stop a poll step early as failed",
    "timeout": "how long a poll step may wait (default: the smoke poll timeout)",
    "interval": "time between polls (default: the smoke poll interval)",
    "retries": "times to retry on transport errors and 5xx (default 0)",
}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(env:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*)\}")
_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(-?\d+)\]|\[(?:'([^']*)'|\"([^\"]*)\")\]")
_BUILTINS = ("unique", "uuid")


def _error(file: str, where: str, message: str, fix: str | None = None) -> ConfigError:
    return ConfigError(f"{file}: {where}: {message}", path=file, key=where, fix=fix)


def parse_path(text: Any, file: str, where: str) -> tuple[str | int, ...]:
    """'$.a[0]["b c"]' → ('a', 0, 'b c'); anything else is an error naming the field."""
    fix = "write a JSON path like $.id, $.items[0].name or $['odd key']"
    if not isinstance(text, str) or not text.startswith("$"):
        raise _error(file, where, f"{text!r} is not a JSON path", fix)
    parts: list[str | int] = []
    pos = 1
    while pos < len(text):
        m = _PATH_TOKEN.match(text, pos)
        if not m:
            raise _error(file, where, f"cannot read {text!r} from {text[pos:]!r} on", fix)
        key, index, quoted1, quoted2 = m.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(key if key is not None else (quoted1 if quoted1 is not None else quoted2))
        pos = m.end()
    return tuple(parts)


def lookup(body: Any, path: tuple[str | int, ...]) -> tuple[bool, Any]:
    """(found, value) of `path` in a JSON answer."""
    value = body
    for part in path:
        if (isinstance(part, int) and isinstance(value, list) and -len(value) <= part < len(value)) or (isinstance(part, str) and isinstance(value, dict) and part in value):
            value = value[part]
        else:
            return False, None
    return True, value


def _same(a: Any, b: Any) -> bool:
    """Equality as a flow author means it: 7 matches "7" (IDs travel as both), True never matches 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float | str) and isinstance(b, int | float | str) and type(a) is not type(b):
        return str(a) == str(b)
    return bool(a == b)


def _names(value: Any) -> set[str]:
    """Placeholders a template uses (without env ones, which are checked when the flow runs)."""
    if isinstance(value, str):
        return {
            m.group(1)
            for m in _PLACEHOLDER.finditer(value)
            if m.group(1) and not m.group(1).startswith("env:")
        }
    if isinstance(value, dict):
        return set().union(*(_names(v) for v in value.values()), *(_names(k) for k in value))
    if isinstance(value, list):
        return set().union(*(_names(v) for v in value))
    return set()


def render(value: Any, variables: Mapping[str, Any], where: str = "") -> Any:
    """A template with its placeholders filled; env values become registered secrets."""
    if isinstance(value, dict):
        return {render(k, variables, where): render(v, variables, where) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, variables, where) for v in value]
    if not isinstance(value, str):
        return value

    def fill(name: str) -> Any:
        if name.startswith("env:"):
            var = name[4:]
            raw = os.environ.get(var)
            if not raw:
                raise FlowInconclusive(f"environment variable {var} is not set ({where})")
            Secret(var, raw)  # registered: scrubbed from every record from now on
            return raw
        return variables[name]

    whole = _PLACEHOLDER.fullmatch(value)
    if whole and whole.group(1):
        return fill(whole.group(1))

    def sub(m: re.Match[str]) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        return str(fill(m.group(1)))

    return _PLACEHOLDER.sub(sub, value)


@dataclass(frozen=True)
class Condition:
    """One test on a JSON answer: `path op value`."""

    text: str
    path: tuple[str | int, ...]
    op: str
    value: Any

    def check(self, body: Any, variables: Mapping[str, Any]) -> str | None:
        """None when it holds, else what was seen instead (scrubbed)."""
        found, got = lookup(body, self.path)
        want = render(self.value, variables)
        if self.op == "exists":
            ok = found is bool(want)
        elif self.op == "not_empty":
            ok = found and got not in (None, "", [], {}) and bool(want)
        elif not found:
            return f"{self.text} is missing"
        elif self.op == "equals":
            ok = _same(got, want)
        elif self.op == "not_equals":
            ok = not _same(got, want)
        elif self.op == "in":
            ok = any(_same(got, w) for w in want)
        elif self.op == "contains":
            ok = any(_same(x, want) for x in got) if isinstance(got, list) else str(want) in str(got)
        elif self.op == "matches":
            ok = re.search(str(want), str(got)) is not None
        else:  # type
            types = JSON_TYPES[want]
            ok = isinstance(got, types) and not (isinstance(got, bool) and bool not in types)
        if ok:
            return None
        return f"{self.text} {self.op} {scrub_json(want, 80)} is false (got {scrub_json(got, 120)})"


def _conditions(raw: Any, file: str, where: str) -> tuple[Condition, ...]:
    """`{ "$.a" = 1 }` (shorthand for equals) or `[{ path = "$.a", type = "integer" }, ...]`."""
    if isinstance(raw, dict):
        raw = [{"path": p, "equals": v} for p, v in raw.items()]
    if not isinstance(raw, list) or not raw:
        raise _error(
            file, where, "expected a table of path = value or a list of conditions",
            'write e.g. { "$.status" = "ok" } or [{ path = "$.items", type = "array" }]',
        )
    out = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or "path" not in item:
            raise _error(file, at, "a condition needs `path` and one operator", f"operators: {', '.join(OPERATORS)}")
        ops = [k for k in item if k != "path"]
        unknown = [k for k in ops if k not in OPERATORS]
        if unknown or len(ops) != 1:
            raise _error(
                file, at, f"expected exactly one operator, got {', '.join(ops) or 'none'}",
                f"operators: {', '.join(OPERATORS)}",
            )
        op = ops[0]
        value = item[op]
        if op == "type" and value not in JSON_TYPES:
            raise _error(file, f"{at}.type", f"{value!r} is not a JSON type", f"one of {', '.join(JSON_TYPES)}")
        if op == "in" and not isinstance(value, list):
            raise _error(file, f"{at}.in", "expected a list of values")
        if op in ("exists", "not_empty") and not isinstance(value, bool):
            raise _error(file, f"{at}.{op}", "expected true or false")
        out.append(Condition(str(item["path"]), parse_path(item["path"], file, f"{at}.path"), op, value))
    return tuple(out)


@dataclass(frozen=True)
class Step:
    """One request (or poll) of a declared flow, checked when the file is read."""

    name: str
    method: str
    path: str
    poll: bool
    as_: str | None
    headers: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    form: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    expect: tuple[int, ...] = (200,)
    capture: dict[str, tuple[str | int, ...]] = field(default_factory=dict)
    require: tuple[Condition, ...] = ()
    until: tuple[Condition, ...] = ()
    fail_if: tuple[Condition, ...] = ()
    timeout_s: float | None = None
    interval_s: float | None = None
    retries: int = 0


def _step(raw: Any, file: str, where: str, known: set[str]) -> Step:
    if not isinstance(raw, dict):
        raise _error(file, where, "a step must be a table", "write [[flows.<name>.steps]] with method and path")
    for k in raw:
        if k not in STEP_KEYS:
            raise _error(file, f"{where}.{k}", "unknown step key", f"known keys: {', '.join(STEP_KEYS)}")
    is_poll = "poll" in raw
    if is_poll == ("path" in raw):
        raise _error(file, where, "a step needs exactly one of `path` and `poll`", "path = '/…' sends one request; poll = '/…' GETs until `until` holds")
    target = raw["poll"] if is_poll else raw["path"]
    if not isinstance(target, str) or not target.startswith("/"):
        raise _error(file, f"{where}.{'poll' if is_poll else 'path'}", f"{target!r} is not a path", "start it with /")
    method = str(raw.get("method", "GET")).upper()
    if is_poll:
        for k in ("method", "json", "form", "expect", "retries"):
            if k in raw:
                raise _error(file, f"{where}.{k}", "not allowed in a poll step (polls GET and need 200 with JSON)")
        if "until" not in raw:
            raise _error(file, where, "a poll step needs `until`", 'e.g. until = { "$.status" = "done" }')
    else:
        for k in ("until", "fail_if", "timeout", "interval"):
            if k in raw:
                raise _error(file, f"{where}.{k}", "only a poll step takes this", "use `poll = '/path'` instead of `path`")
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        raise _error(file, f"{where}.method", f"{method!r} is not an HTTP method")
    if "json" in raw and "form" in raw:
        raise _error(file, where, "`json` and `form` both given", "send one body")
    who = raw.get("as", "owner")
    if who not in IDENTITIES:
        raise _error(file, f"{where}.as", f"{who!r} is not an identity", "owner, member or anonymous")
    expect = raw.get("expect", 200)
    codes = expect if isinstance(expect, list) else [expect]
    if not codes or not all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes):
        raise _error(file, f"{where}.expect", f"{expect!r} is not a status code or list of them", "e.g. expect = 201 or [200, 204]")
    for k in ("headers", "form", "params", "capture"):
        if k in raw and not isinstance(raw[k], dict):
            raise _error(file, f"{where}.{k}", "expected a table")
    retries = raw.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise _error(file, f"{where}.retries", f"{retries!r} is not a count from 0 to 10")
    timeout = interval = None
    for k in ("timeout", "interval"):
        if k in raw:
            value = parse_duration(raw[k], where=f"{file}: {where}.{k}")
            timeout, interval = (value, interval) if k == "timeout" else (timeout, value)
    capture = {}
    for name, p in (raw.get("capture") or {}).items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in _BUILTINS:
            raise _error(file, f"{where}.capture.{name}", "not a usable name", f"use an identifier other than {', '.join(_BUILTINS)}")
        capture[name] = parse_path(p, file, f"{where}.capture.{name}")
    step = Step(
        name=str(raw.get("name") or (f"poll GET {target}" if is_poll else f"{method} {target}")),
        method="GET" if is_poll else method,
        path=target,
        poll=is_poll,
        as_=IDENTITIES[who],
        headers=dict(raw.get("headers") or {}),
        json=raw.get("json"),
        form=raw.get("form"),
        params=raw.get("params"),
        expect=tuple(codes),
        capture=capture,
        require=_conditions(raw["require"], file, f"{where}.require") if "require" in raw else (),
        until=_conditions(raw["until"], file, f"{where}.until") if "until" in raw else (),
        fail_if=_conditions(raw["fail_if"], file, f"{where}.fail_if") if "fail_if" in raw else (),
        timeout_s=timeout,
        interval_s=interval,
        retries=retries,
    )
    used = _names([raw.get(k) for k in ("path", "poll", "headers", "json", "form", "params", "require", "until", "fail_if")])
    missing = sorted(used - known - set(_BUILTINS))
    if missing:
        have = ", ".join(sorted(known)) or "nothing yet"
        raise _error(
            file, where, f"uses {', '.join('{' + m + '}' for m in missing)}, which no earlier step captures",
            f"captured so far: {have}; capture it with capture = {{ {missing[0]} = \"$.…\" }}",
        )
    return step


@dataclass(frozen=True)
class DeclaredFlow:
    """A flow read from a file; calling it runs its steps in order on a FlowSession."""

    name: str
    source: str
    steps: tuple[Step, ...]
    description: str = ""

    async def __call__(self, s: FlowSession) -> dict[str, Any]:
        variables: dict[str, Any] = {
            "unique": f"relnb-smoke-{uuid.uuid4().hex[:8]}",
            "uuid": str(uuid.uuid4()),
        }
        captured: dict[str, Any] = {}
        for i, step in enumerate(self.steps):
            where = f"{self.source}: flows.{self.name}.steps[{i}]"
            path = str(render(step.path, variables, where))
            headers = {str(k): str(v) for k, v in render(step.headers, variables, where).items()}
            if step.poll:
                body = await s.poll(
                    path,
                    until=lambda b, st=step: all(c.check(b, variables) is None for c in st.until),
                    fail_if=lambda b, st=step: next(
                        (f"{c.text} {c.op} {scrub_json(c.value, 80)}" for c in st.fail_if if c.check(b, variables) is None),
                        None,
                    ),
                    as_=step.as_,
                    headers=headers,
                    deadline_s=step.timeout_s,
                    interval_s=step.interval_s,
                    name=step.name,
                )
            else:
                resp = await s.call(
                    step.method,
                    path,
                    as_=step.as_,
                    headers=headers,
                    expect=step.expect,
                    json=render(step.json, variables, where),
                    data=render(step.form, variables, where),
                    params=render(step.params, variables, where),
                    retries=step.retries,
                    name=step.name,
                )
                body = None
                if step.require or step.capture:
                    try:
                        body = resp.json()
                    except ValueError:
                        s.require(False, "the answer is not JSON, so it cannot be checked or captured")
            for cond in step.require:
                problem = cond.check(body, variables)
                s.require(problem is None, problem or "")
            for name, jpath in step.capture.items():
                found, value = lookup(body, jpath)
                s.require(found, f"cannot capture {name}: {_show(jpath)} is not in the answer")
                variables[name] = captured[name] = value
        return {k: v for k, v in captured.items() if isinstance(v, str | int | float | bool)}


def _show(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def parse_flows(raw: Any, file: str, where: str = "flows") -> dict[str, DeclaredFlow]:
    """The `[flows.<name>]` tables of a file (or of relnb.toml's `[smoke.flows]`), validated."""
    if not isinstance(raw, dict):
        raise _error(file, where, "expected a table of flows", "write [flows.<name>] with steps")
    out = {}
    for name, table in raw.items():
        at = f"{where}.{name}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            raise _error(file, at, "a flow name is letters, digits, _ and -")
        if not isinstance(table, dict):
            raise _error(file, at, "expected a table with `steps`")
        extra = set(table) - {"description", "steps"}
        if extra:
            raise _error(file, f"{at}.{sorted(extra)[0]}", "unknown flow key", "a flow has `description` and `steps`")
        steps_raw = table.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            raise _error(file, f"{at}.steps", "a flow needs at least one step", f"add [[{at}.steps]] with method and path")
        known: set[str] = set()
        steps = []
        for i, raw_step in enumerate(steps_raw):
            step = _step(raw_step, file, f"{at}.steps[{i}]", known)
            known |= set(step.capture)
            steps.append(step)
        out[name] = DeclaredFlow(name, file, tuple(steps), str(table.get("description", "")))
    return out


def read_flow_file(path: Any, shown: str) -> dict[str, DeclaredFlow]:
    """A `relnb-flows.toml` / `.yaml` file: its top-level `flows` table."""
    import tomllib
    from pathlib import Path

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise _error(shown, "(file)", f"cannot read it: {exc.strerror or exc}", "check smoke.files") from None
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:
        raise _error(shown, "(file)", f"not valid {p.suffix.lstrip('.') or 'TOML'}: {scrub(str(exc))[:200]}") from None
    if not isinstance(data, dict) or set(data) != {"flows"}:
        keys = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
        raise _error(shown, "(top)", f"expected only a `flows` table, found {keys or 'nothing'}", "put each flow under [flows.<name>]")
    return parse_flows(data["flows"], shown)
