"""A2's served routes: what the app's code at a commit serves, never what its spec says.

The spec is what A2 judges, so it cannot also be the witness of what is served (reading the
routes from a served OpenAPI document is the spec again). `[project.routes]` names a source:

- `command`: run through relnb's one command runner (scrubbed output, a time limit) in the code
  at the commit; it prints `METHOD /path` lines, in any stack (`flask routes`, a script walking
  Django's URL conf, `node scripts/routes.js`).
- `app`: `module:attr` of a Starlette or FastAPI app. A child Python imports it with bytecode
  writing off (nothing lands in the team's tree), so their modules never enter relnb's process
  and a hanging import meets the time limit; its route table is walked.

"The code at the commit" is the repository's own checkout when its HEAD is that commit and no
tracked file is changed (the team's virtualenv and generated files are there), else a copy of
the commit's tree (`git archive`) in a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import git
from ...redact import scrub
from ...results import last_line

ANY = "*"
WEBSOCKET = "WEBSOCKET"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
_METHOD_WORDS = {*HTTP_METHODS, ANY, "ANY", WEBSOCKET}
_SPLIT = re.compile(r"[\s,|]+")
MAX_LINES = 100_000
_MAX_WRAPPERS = 16  # middleware layers followed (`.app`) to reach a route table


class RouteSourceError(Exception):
    """The route source could not say what is served: the one-line reason and what it saw."""

    def __init__(self, reason: str, evidence: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.evidence = dict(evidence or {})


@dataclass(frozen=True)
class RouteSource:
    """`[project.routes]`: a command, an app reference, or both (their routes are joined)."""

    command: str | None = None
    app: str | None = None
    python_path: tuple[str, ...] = (".",)
    timeout_s: float = 120.0

    @property
    def configured(self) -> bool:
        return bool(self.command or self.app)


@dataclass
class Listing:
    """What a route source found at one commit."""

    routes: list[str]  # sorted `METHOD /path`; `*` as method = any method
    websockets: list[str] = field(default_factory=list)
    framework: list[str] = field(default_factory=list)  # the framework's own docs routes (FastAPI)
    evidence: dict[str, Any] = field(default_factory=dict)


# -- reading `METHOD /path` lines -----------------------------------------------------------------


@dataclass
class Parsed:
    routes: list[str]
    websockets: list[str]
    without_method: list[str]  # lines that name no HTTP method (headers, logs): not routes


def parse_route_lines(lines: Iterable[str]) -> Parsed:
    """Routes from a command's output: a line with HTTP method words (`GET`, `GET, POST`, `*`)
    and exactly one `/path` word is a route; a line without a method word is not (table
    headers, separators, log lines) and is counted; a line with methods but no single path is
    an error, because guessing there could drop a served route."""
    routes: set[str] = set()
    sockets: set[str] = set()
    skipped: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = [w for w in _SPLIT.split(line) if w]
        methods = [m for w in words if (m := w.strip("[]()'\"")) in _METHOD_WORDS]
        paths = [w for w in words if w.startswith("/")]
        if not methods:
            skipped.append(line)
            continue
        if len(paths) != 1:
            raise RouteSourceError(
                f"route line {number} {line[:120]!r} has {len(paths)} paths: print one `METHOD /path` per line"
            )
        for method in methods:
            if method == WEBSOCKET:
                sockets.add(paths[0])
            else:
                routes.add(f"{ANY if method == 'ANY' else method} {paths[0]}")
    return Parsed(sorted(routes), sorted(sockets), skipped)


# -- the code at a commit ----------------------------------------------------------------------


@contextmanager
def code_at(repo: Path, sha: str, timeout_s: float) -> Iterator[tuple[Path, str]]:
    """A directory holding the code of `sha`, and how it was obtained (for the evidence)."""
    head = git.output(repo, "rev-parse", "HEAD")
    changed = git.run(repo, "status", "--porcelain", "--untracked-files=no")
    if head == sha and changed.returncode == 0 and not changed.stdout.strip():
        yield repo, f"the checkout {repo} (HEAD is {sha[:12]}, no tracked file changed)"
        return
    why = (
        f"its HEAD is {(head or 'unknown')[:12]}" if head != sha else "it has changed tracked files"
    )
    with tempfile.TemporaryDirectory(prefix="relnb-routes-") as tmp:
        tar, tree = Path(tmp) / "tree.tar", Path(tmp) / "tree"
        got = git.run(repo, "archive", "--format=tar", f"--output={tar}", sha, timeout=timeout_s)
        if got.returncode != 0:
            raise RouteSourceError(
                f"cannot copy {sha[:12]} out of {repo}: {last_line(got.stderr)[:200]}"
            )
        tree.mkdir()
        with tarfile.open(tar) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(tree, filter="data")
            else:  # Python < 3.11.4; git's own archive holds no absolute or `..` paths
                archive.extractall(tree)
        tar.unlink()
        yield tree, f"a copy of {sha[:12]}'s tree (git archive), since the checkout {why}"


# -- running a source ----------------------------------------------------------------------------


def served_routes_at(
    repo: str | os.PathLike[str],
    sha: str,
    source: RouteSource,
    *,
    env: Mapping[str, str] | None = None,
) -> Listing:
    """The routes the code at `sha` serves, from every configured source; RouteSourceError when
    a source fails or none of them finds a route."""
    repo = Path(repo)
    run_env = {
        "RELNB_REPO": str(repo),
        "RELNB_SHA": sha,
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    routes: set[str] = set()
    listing = Listing([])
    with code_at(repo, sha, source.timeout_s) as (where, how):
        listing.evidence["code"] = how
        try:
            if source.command:
                got = _from_command(source.command, where, run_env, source.timeout_s)
                listing.evidence["command"] = got.evidence
                routes.update(got.routes)
                listing.websockets += got.websockets
            if source.app:
                got = _from_app(source, where, run_env)
                listing.evidence["app"] = got.evidence
                routes.update(got.routes)
                listing.websockets += got.websockets
                listing.framework += got.framework
        except RouteSourceError as exc:
            exc.evidence = {"code": how, **exc.evidence}
            raise
    if not routes:
        raise RouteSourceError(
            f"the route source found no routes at {sha[:12]}" + _hint(listing.evidence),
            listing.evidence,
        )
    listing.routes = sorted(routes)
    listing.websockets = sorted(set(listing.websockets))
    return listing


def _hint(evidence: Mapping[str, Any]) -> str:
    first = (evidence.get("command") or {}).get("lines_without_method") or []
    return f" (lines without an HTTP method, e.g. {first[0][:80]!r})" if first else ""


def _run(
    command: str | list[str], where: Path, env: Mapping[str, str], timeout_s: float, what: str
) -> tuple[list[str], dict[str, Any]]:
    """Run through relnb's command runner, every line kept (its own tail is bounded)."""
    from ...actions.command import run_process

    lines: list[str] = []

    def keep(line: str) -> None:
        if len(lines) <= MAX_LINES:
            lines.append(line)

    ran = run_process(command, cwd=where, env=env, timeout_s=timeout_s, on_line=keep)
    evidence: dict[str, Any] = {
        what: scrub(command if isinstance(command, str) else " ".join(command)),
        "exit_code": ran.exit_code,
        "duration_s": ran.duration_s,
        "output_tail": lines[-20:],
    }
    if ran.start_error is not None:
        raise RouteSourceError(f"route {what} could not start: {ran.start_error}", evidence)
    if ran.timed_out:
        raise RouteSourceError(f"route {what} timed out after {timeout_s:g} s (killed)", evidence)
    if ran.exit_code != 0:
        last = last_line("\n".join(lines))
        raise RouteSourceError(
            f"route {what} exited {ran.exit_code}" + (f": {last[:160]}" if last else ""), evidence
        )
    if len(lines) > MAX_LINES:
        raise RouteSourceError(f"route {what} printed more than {MAX_LINES} lines", evidence)
    return lines, evidence


def _from_command(command: str, where: Path, env: Mapping[str, str], timeout_s: float) -> Listing:
    lines, evidence = _run(command, where, env, timeout_s, "command")
    try:
        parsed = parse_route_lines(lines)
    except RouteSourceError as exc:
        raise RouteSourceError(f"route command: {exc.reason}", evidence) from None
    evidence.update(routes=len(parsed.routes), lines_without_method=parsed.without_method[:10])
    evidence["lines_without_method_count"] = len(parsed.without_method)
    return Listing(parsed.routes, parsed.websockets, evidence=evidence)


def _from_app(source: RouteSource, where: Path, env: Mapping[str, str]) -> Listing:
    """Import `source.app` in a child Python and read its route table from a file it writes
    (the app's own prints and warnings stay in its output, never taken for routes)."""
    relnb_home = str(Path(__file__).resolve().parents[3])
    with tempfile.TemporaryDirectory(prefix="relnb-routes-") as tmp:
        out = Path(tmp) / "routes.json"
        argv = [
            sys.executable,
            "-B",
            "-P",
            "-c",
            f"import sys; sys.path.append({relnb_home!r}); from relnb.checks.http.routes import child; sys.exit(child())",
            "--out",
            str(out),
        ]
        for entry in source.python_path:
            argv += ["--path", str((where / entry).resolve())]
        argv.append(source.app or "")
        _lines, evidence = _run(argv, where, env, source.timeout_s, "app")
        evidence["app"] = source.app
        try:
            table = json.loads(out.read_text())
        except (OSError, ValueError) as exc:
            raise RouteSourceError(
                f"route app {source.app}: no route table written ({exc})", evidence
            ) from None
    evidence["routes"] = len(table["routes"])
    return Listing(table["routes"], table["websockets"], table["framework"], evidence)


# -- inside the child: a Starlette / FastAPI route table ----------------------------------------


def asgi_routes(app: Any) -> dict[str, list[str]]:
    """`METHOD /path` of every HTTP route of a Starlette or FastAPI app (mounts walked, middleware
    unwrapped); a mounted app without a route table serves anything under its prefix (`* /p/{path}`).
    FastAPI's own docs routes (openapi_url, docs_url, ...) are listed apart."""
    table = _route_table(app)
    if table is None:
        raise ValueError(
            f"{type(app).__name__} has no route table (`routes`): not a Starlette or FastAPI app"
        )
    routes: set[str] = set()
    sockets: set[str] = set()
    _walk(table, "", routes, sockets, 0)
    own = {
        getattr(app, a, None)
        for a in ("openapi_url", "docs_url", "redoc_url", "swagger_ui_oauth2_redirect_url")
    }
    framework = sorted(r for r in routes if r.split(" ", 1)[1] in own)
    return {
        "routes": sorted(routes - set(framework)),
        "websockets": sorted(sockets),
        "framework": framework,
    }


def _route_table(obj: Any) -> list[Any] | None:
    for _ in range(_MAX_WRAPPERS):
        if obj is None:
            return None
        table = getattr(obj, "routes", None)
        if isinstance(table, list | tuple):
            return list(table)
        obj = getattr(obj, "app", None)
    return None


def _walk(table: list[Any], prefix: str, routes: set[str], sockets: set[str], depth: int) -> None:
    from starlette.routing import Host, Mount, WebSocketRoute

    if depth > _MAX_WRAPPERS:
        raise ValueError(f"mounts nested deeper than {_MAX_WRAPPERS} under {prefix or '/'}")
    for route in table:
        path = prefix + str(getattr(route, "path", ""))
        if isinstance(route, WebSocketRoute):
            sockets.add(path)
        elif isinstance(route, Mount | Host):
            inner = _route_table(route.app)
            if inner is None:  # a mounted app (static files, a WSGI app): anything under it
                routes.add(f"{ANY} {path}/{{path:path}}")
            else:
                _walk(
                    inner, path if isinstance(route, Mount) else prefix, routes, sockets, depth + 1
                )
        elif hasattr(route, "path"):
            for method in _methods(route):
                routes.add(f"{method} {path}")
        else:
            raise ValueError(f"route {route!r} has no path")


def _methods(route: Any) -> list[str]:
    methods = getattr(route, "methods", None)
    if methods:
        return sorted(str(m).upper() for m in methods)
    endpoint = getattr(route, "endpoint", None)
    try:
        from starlette.endpoints import HTTPEndpoint

        if isinstance(endpoint, type) and issubclass(endpoint, HTTPEndpoint):
            return [m for m in HTTP_METHODS if callable(getattr(endpoint, m.lower(), None))]
    except ImportError:
        pass
    return [ANY]  # an ASGI endpoint answers whatever method it is sent


def child(argv: list[str] | None = None) -> int:
    """`... --out FILE [--path DIR]... module:attr`: import the app, write its route table."""
    import importlib

    args = list(sys.argv[1:] if argv is None else argv)
    out, paths = None, []
    while len(args) > 1:
        flag, value = args.pop(0), args.pop(0)
        if flag == "--out":
            out = value
        elif flag == "--path":
            paths.append(value)
        else:
            print(f"unknown option {flag}", file=sys.stderr)
            return 2
    spec = args[0] if args else ""
    module_name, _, attr = spec.partition(":")
    if not out or not module_name or not attr:
        print(f"app {spec!r} is not `module:attr`", file=sys.stderr)
        return 2
    sys.path[:0] = paths
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        table = asgi_routes(obj)
    except Exception as exc:  # the team's module: one line that says why, not a traceback
        first = (str(exc).splitlines() or [""])[0]
        print(f"app {spec}: {type(exc).__name__}: {first}", file=sys.stderr)
        return 3
    Path(out).write_text(json.dumps(table))
    return 0
