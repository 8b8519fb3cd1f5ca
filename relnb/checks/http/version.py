"""B1 (staging runs main's HEAD), and the proof step of D4 and of a rollback redeploy.

Deploys are asynchronous, so the check polls the environment's version endpoint until it reports
the expected SHA (or, for a deploy by image tag, the tag) or a deadline passes. A wrong version
at the deadline fails; an endpoint that never gave a usable answer is inconclusive. Both name
what was seen. One poller serves all three, so the configured `version_path`/`version_field`
mean the same thing for staging, the production deploy and the rollback.

A pass also says since when the environment serves that version (`serving_since`): C1's soak
starts there, not N hours before C1 happens to run. It is the first poll that saw the version,
unless the endpoint reports its own start (`started_at`/`start_time`: ISO 8601 with a timezone or
epoch seconds; `uptime_s`/`uptime_seconds`/`uptime`: seconds; `uptime_ms`) and that start is
consistent with what the polls saw (not after the first match, not before a poll that saw another
version). `basis` says which one it is.

Where the version is read (`version_source`) follows the app, not relnb: a JSON field (a dotted
key path), a plain-text body, a response header, or a command's output (for a platform that
knows what runs: `kubectl`, `aws ecs`). Whatever the shape, a value relnb cannot read (an empty
body, an HTML error page, a missing header, a command that fails) is a poll without an answer,
never a match; and a match is exact on the value, never a SHA found inside a longer string.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError
from ...redact import scrub
from ...results import Outcome
from ...tls import http_client

_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_MIN_SHORT_SHA = 7
# fields in which a version endpoint may report when its process started (absolute) or for how
# long it has been up (seconds; `_ms` fields in milliseconds)
_START_FIELDS = ("started_at", "startedAt", "start_time", "startTime", "process_start_time", "boot_time")
_UPTIME_FIELDS = {
    "uptime_s": 1.0, "uptime_seconds": 1.0, "uptimeSeconds": 1.0, "uptime": 1.0,
    "uptime_ms": 0.001, "uptimeMs": 0.001,
}


SOURCES = ("json", "text", "header", "command")
_MIN_COMMAND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class VersionSource:
    """Where the running version is read: `kind` is one of SOURCES.

    json: `fields` (dotted key paths) of the answer at `path`; text: the whole body at `path`;
    header: the `header` of the answer at `path`; command: the output of `command` (run in `cwd`,
    through the shell), its last non-empty line. `pattern` (a regular expression; its first
    group, else the whole match) picks the version out of a text, header or output that holds
    more than the version. `where` prefixes the config keys named in errors.
    """

    kind: str = "json"
    path: str = "/version"
    fields: tuple[str, ...] = ("sha",)
    header: str = ""
    command: str = ""
    pattern: str = ""
    cwd: str | None = None
    where: str = "environments.<env>"
    file: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SOURCES:
            raise self._error("version_source", f"{self.kind!r} is not a version source", f"use one of {', '.join(SOURCES)}")
        needs = {
            "header": ("version_header", self.header, 'name the header, e.g. version_header = "X-Version"'),
            "command": ("version_command", self.command, "give the command that prints the running version"),
            "json": ("version_field", "".join(self.fields), 'name the JSON key path, e.g. version_field = "build.git.sha"'),
        }
        if self.kind in needs:
            key, value, fix = needs[self.kind]
            if not value.strip():
                raise self._error(key, f'is empty, and version_source = "{self.kind}" needs it', fix)
        if self.kind != "command" and not self.path:
            raise self._error(
                "version_path", f'is empty, and version_source = "{self.kind}" reads it',
                'set the path that reports the version, e.g. version_path = "/version"',
            )
        if self.pattern:
            if self.kind == "json":
                raise self._error(
                    "version_pattern", "applies to version_source text, header or command, not json",
                    "remove version_pattern, or change version_source",
                )
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise self._error(
                    "version_pattern", f"is not a regular expression ({exc})", "fix it (Python `re` syntax)"
                ) from None

    def _error(self, key: str, problem: str, fix: str) -> ConfigError:
        name = f"{self.where}.{key}"
        head = f"{self.file}: " if self.file else ""
        return ConfigError(f"{head}{name} {problem}", path=self.file or None, key=name, fix=fix)

    def describe(self, url: str) -> str:
        """How a summary names where the version came from."""
        if self.kind == "command":
            return f"`{scrub(self.command)[:80]}`"
        if self.kind == "header":
            return f"{url} header {self.header}"
        return url


def version_source(env: Mapping[str, Any], *, where: str, cwd: Any = None, file: str = "") -> VersionSource:
    """The environment's configured version source (config keys version_*); `where` is
    `environments.<name>` and `file` the config file, for the errors."""
    return VersionSource(
        kind=env.get("version_source") or "json",
        path=env.get("version_path") or "",
        fields=(env.get("version_field") or "",),
        header=env.get("version_header") or "",
        command=env.get("version_command") or "",
        pattern=env.get("version_pattern") or "",
        cwd=str(cwd) if cwd is not None else None,
        where=where,
        file=file,
    )


def _field(data: Any, field: str) -> Any:
    """`build.sha` walks nested objects."""
    for part in field.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _instant(value: Any) -> float | None:
    """Epoch seconds (or milliseconds), or ISO 8601 with a timezone; a zoneless time is ambiguous."""
    number = _number(value)
    if number is not None:
        return number / 1000 if number > 1e11 else number
    if not isinstance(value, str):
        return None
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def reported_start(data: Any, received: float) -> dict[str, Any] | None:
    """When the answering process says it started: {field, value, ts} or {field, value, problem}."""
    if not isinstance(data, dict):
        return None
    for name in _START_FIELDS:
        if name in data:
            value = scrub(str(data[name]))[:40]
            ts = _instant(data[name])
            if ts is None:
                return {"field": name, "value": value, "problem": "not epoch seconds nor ISO 8601 with a timezone"}
            return {"field": name, "value": value, "ts": ts}
    for name, unit in _UPTIME_FIELDS.items():
        if name in data:
            value = scrub(str(data[name]))[:40]
            up = _number(data[name])
            if up is None or up < 0:
                return {"field": name, "value": value, "problem": "not a number of seconds ≥ 0"}
            return {"field": name, "value": value, "ts": received - up * unit}
    return None


def serving_since(first_ts: float, started: dict[str, Any] | None, other_ts: float | None) -> dict[str, Any]:
    """Since when the environment serves the expected version, and on what basis.

    `first_ts`: when the first matching answer arrived (staging served it by then at the latest);
    `other_ts`: the last answer that showed another version (it cannot have started before).
    """
    out: dict[str, Any] = {"first_observed_ts": first_ts, "first_observed_at": _iso(first_ts)}
    ts, source = first_ts, "first-observed"
    basis = "first observed by this check (the version endpoint reports no start time or uptime)"
    if started:
        out["reported"] = {**started, **({"at": _iso(started["ts"])} if "ts" in started else {})}
        name, reported = started["field"], started.get("ts")
        if reported is None:
            basis = f"first observed by this check (the endpoint's {name} is unusable: {started['problem']})"
        elif reported > first_ts:
            basis = f"first observed by this check (the endpoint's {name} is later than that: its clock is ahead)"
        elif other_ts is not None and reported < other_ts:
            basis = f"first observed by this check (the endpoint's {name} is before a poll that saw another version)"
        else:
            ts, source, basis = reported, "reported", f"reported by the endpoint ({name})"
    out.update(ts=ts, at=_iso(ts), source=source, basis=basis)
    return out


def sha_matches(deployed: str, expected: str) -> bool:
    """Full match, or a short SHA (≥7 hex) that is a prefix of the expected one."""
    d, e = deployed.strip().lower(), expected.strip().lower()
    if not _SHA.match(d):
        return False
    return (
        d == e
        or (len(d) >= _MIN_SHORT_SHA and e.startswith(d))
        or (len(e) >= _MIN_SHORT_SHA and d.startswith(e))
    )


def version_matches(deployed: str, expected: str, *, tags: bool = False) -> bool:
    """A SHA match (full or short), or with `tags` an exact, case-insensitive tag match."""
    if sha_matches(deployed, expected):
        return True
    return tags and deployed.strip().lower() == expected.strip().lower() != ""


def _observe(
    client: Any, url: str, src: VersionSource, expected: str, tags: bool, timeout_s: float
) -> dict[str, Any]:
    """One poll: what the source said, as a JSON-able observation with a `problem` when unusable."""
    if src.kind == "command":
        return _observe_command(src, timeout_s)
    import httpx

    try:
        resp = client.get(url)
    except httpx.TimeoutException:
        return {"problem": "timeout"}
    except httpx.HTTPError as exc:
        return {"problem": "unreachable", "detail": scrub(str(exc))[:200]}
    received = time.time()
    if resp.status_code != 200:
        return {"problem": f"HTTP {resp.status_code}", "body": scrub(resp.text[:200])}
    if src.kind == "header":
        raw = resp.headers.get(src.header)
        if raw is None:
            return {"problem": f"no {src.header} header in the answer", "headers": sorted(resp.headers)[:20]}
        return _from_text(raw, src, f"header {src.header}", received)
    if src.kind == "text":
        kind = resp.headers.get("content-type", "")
        # an HTML page (an error page may echo the SHA it was asked about) is read only where
        # version_pattern says where in the page the version stands, as in an app that shows it
        # in its own pages only
        if not src.pattern and ("html" in kind.lower() or resp.text.lstrip().startswith("<")):
            return {"problem": "an HTML page, not a version (set version_pattern to read one from the page)",
                    "body": scrub(resp.text[:200])}
        return _from_text(resp.text, src, "body", received)
    return _observe_json(resp, src.fields, expected, tags, received)


def _observe_json(
    resp: Any, fields: Sequence[str], expected: str, tags: bool, received: float
) -> dict[str, Any]:
    """With several fields (sha, image_tag, version) the one that matches is reported, else the
    first one present, so the evidence shows the value that decided."""
    try:
        data = resp.json()
    except ValueError:
        return {"problem": "malformed JSON", "body": scrub(resp.text[:200])}
    values = [
        v.strip() for f in fields if isinstance(v := _field(data, f), str) and v.strip()
    ]
    if not values:
        names = " or ".join(repr(f) for f in fields)
        return {
            "problem": f"no string field {names}",
            "fields": sorted(data)[:20] if isinstance(data, dict) else type(data).__name__,
        }
    value = next((v for v in values if version_matches(v, expected, tags=tags)), values[0])
    info = (
        {k: scrub(str(v))[:100] for k, v in data.items() if isinstance(v, str | int | float)}
        if isinstance(data, dict)
        else {}
    )
    out = {"deployed": scrub(value)[:80], "info": info, "received": received}
    started = reported_start(data, received)
    if started is not None:
        out["started"] = started
    return out


def read_version(text: str, pattern: str = "", *, last_line: bool = False) -> str | dict[str, Any]:
    """The version a text states, or {"problem": ...}.

    With `pattern`: its first group (else the whole match) at the first match. Without: the
    whole text (or with `last_line` its last non-empty line), which must be one word: a SHA
    inside a sentence or a longer string is not read as the version (`pattern` says where it is).
    """
    if not text.strip():
        return {"problem": "empty"}
    if pattern:
        m = re.search(pattern, text)
        if m is None:
            return {"problem": f"version_pattern {pattern!r} does not match"}
        value = (m.group(1) if m.re.groups else m.group(0)) or ""
        if not value.strip():
            return {"problem": f"version_pattern {pattern!r} matched an empty string"}
        return value.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if last_line:
        lines = lines[-1:]
    value = " ".join(lines)
    if len(lines) != 1 or len(value.split()) != 1:
        return {"problem": "not a single version string (set version_pattern to pick it out)"}
    return value


def _from_text(text: str, src: VersionSource, what: str, received: float) -> dict[str, Any]:
    value = read_version(text, src.pattern, last_line=src.kind == "command")
    shown = {what: scrub(text.strip()[-200:])}
    if isinstance(value, dict):
        return {"problem": f"{what}: {value['problem']}", **shown}
    return {"deployed": scrub(value)[:80], "info": shown, "received": received}


def _observe_command(src: VersionSource, timeout_s: float) -> dict[str, Any]:
    """Run the version command (read-only): exit 0 and a readable version, or a problem.

    It runs outside any action's process ledger: a probe repeated while D4 polls is not one of
    the action's side effects, and must not be adopted or replayed as one.
    """
    import contextvars

    from ...actions.command import run_process

    limit = max(timeout_s, _MIN_COMMAND_TIMEOUT_S)
    ran = contextvars.Context().run(run_process, src.command, cwd=src.cwd, timeout_s=limit)
    received = time.time()
    tail = scrub("\n".join(ran.lines[-5:]))[-300:]
    if ran.start_error is not None:
        return {"problem": f"command could not start: {scrub(ran.start_error)[:120]}"}
    if ran.timed_out:
        return {"problem": f"command timed out after {limit:g} s", "output": tail}
    if ran.exit_code != 0:
        return {"problem": f"command exited {ran.exit_code}", "output": tail}
    return _from_text("\n".join(ran.lines), src, "output", received)


def expected_version(env: Mapping[str, Any], sha: str, version: str) -> tuple[str, bool]:
    """What an environment's version endpoint shows when it runs a release, and whether that is a
    tag-like string rather than a SHA.

    An app the team builds can report the commit it was built from; an off-the-shelf app (NetBox's
    /api/status/) knows only its own version, and then the release version is the proof
    (`version_reports = "version"`).
    """
    if env["version_reports"] == "version":
        return version, True
    return sha, False


def check_version(
    base_url: str,
    expected_sha: str,
    *,
    path: str = "/version",
    field: str | Sequence[str] = "sha",
    timeout_s: float = 300.0,
    poll_interval_s: float = 5.0,
    request_timeout_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    tags: bool = False,
    gate: str = "B1",
    fix: str = "deploy main to staging",
    source: VersionSource | None = None,
) -> Outcome:
    """Poll `base_url + path` until its JSON `field` shows `expected_sha` or `timeout_s` passes.

    `source` reads the version elsewhere (plain text, a header, a command: see VersionSource);
    without it, `path` and `field` make a JSON source. `tags` also accepts an exact tag (a deploy
    by image tag); `gate` and `fix` word the progress lines and the failure for the step that asks.
    """
    fields = [field] if isinstance(field, str) else list(field)
    src = source if source is not None else VersionSource("json", path, tuple(fields), where="check_version")
    if src.kind == "json":
        fields = list(src.fields)
    if not expected_sha or (not tags and not _SHA.match(expected_sha.strip().lower())):
        return Outcome.inconclusive(f"expected SHA {expected_sha!r} is not a git SHA")
    url = base_url.rstrip("/") + "/" + src.path.lstrip("/")
    where = src.describe(url)
    started = time.monotonic()
    deadline = started + max(0.0, timeout_s)
    attempts = 0
    history: list[dict[str, Any]] = []  # distinct observations, in order
    last: dict[str, Any] = {}
    other_ts: float | None = None  # the last answer that showed another version
    with http_client(
        timeout=request_timeout_s, headers=dict(headers or {}), follow_redirects=True
    ) as client:
        while True:
            attempts += 1
            last = _observe(client, url, src, expected_sha, tags, request_timeout_s)
            key = {k: last.get(k) for k in ("deployed", "problem")}
            if not history or {k: history[-1].get(k) for k in ("deployed", "problem")} != key:
                history.append(
                    {**key, "attempt": attempts, "t_s": round(time.monotonic() - started, 2)}
                )
                history = history[-20:]
            elapsed = round(time.monotonic() - started, 2)
            ev: dict[str, Any] = {
                **({"url": url} if src.kind != "command" else {}),
                "source": src.kind,
                **_source_evidence(src, fields),
                "expected": expected_sha,
                "deployed": last.get("deployed"),
                "attempts": attempts,
                "elapsed_s": elapsed,
                "history": history,
                "reported": last.get("info", {}),
            }
            if "deployed" in last and version_matches(last["deployed"], expected_sha, tags=tags):
                ev["serving_since"] = serving_since(last["received"], last.get("started"), other_ts)
                return Outcome.passed(
                    f"{where} reports {last['deployed'][:12]} = expected {expected_sha[:12]} "
                    f"(after {attempts} poll(s), {elapsed:.0f} s)",
                    **ev,
                )
            if "deployed" in last:
                other_ts = last["received"]
            now = time.monotonic()
            if now + poll_interval_s > deadline:
                break
            if progress:
                seen = last.get("deployed") or last.get("problem")
                progress(
                    f"{gate}: {where} says {seen}; waiting for {expected_sha[:12]} ({elapsed:.0f}/{timeout_s:.0f} s)"
                )
            time.sleep(poll_interval_s)
    if "deployed" in last:
        return Outcome.failed(
            f"{where} reports {last['deployed'][:12]}, expected {expected_sha[:12]} "
            f"(waited {ev['elapsed_s']:.0f} s): {fix}",
            **ev,
        )
    problem = last.get("problem", "no answer")
    ev["problem"] = problem
    for key in ("body", "fields", "headers", "output", "detail", "header " + src.header):
        if key in last:
            ev[key] = last[key]
    return Outcome.inconclusive(
        f"{where} gave no usable version ({problem}) within {timeout_s:g} s; expected {expected_sha[:12]}",
        **ev,
    )


def _source_evidence(src: VersionSource, fields: Sequence[str]) -> dict[str, Any]:
    """The settings that say where the version was read, for the evidence."""
    if src.kind == "json":
        return {"field": fields[0] if len(fields) == 1 else list(fields)}
    out: dict[str, Any] = {"header": src.header} if src.kind == "header" else {}
    if src.kind == "command":
        out["command"] = scrub(src.command)[:200]
    if src.pattern:
        out["pattern"] = src.pattern
    return out
