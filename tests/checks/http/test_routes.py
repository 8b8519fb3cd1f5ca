"""A2 against the routes the app's code serves at the release SHA (issue 19 item 8).

A real git repository: a Starlette app and its openapi.yaml, tagged v1.0.0, then a commit that
adds a route. The served routes come from `[project.routes]` (the app's route table, or a
command printing `METHOD /path`), run on the code at each commit; never from the spec.
"""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

import relnb
from relnb import Status
from relnb.checks.http.openapi import check_endpoints_documented
from relnb.checks.http.routes import (
    RouteSource,
    RouteSourceError,
    asgi_routes,
    parse_route_lines,
    served_routes_at,
)

from ...core.helpers import Repo, make_project

PY = shlex.quote(sys.executable)

APP_V1 = """\
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def ok(request):
    return JSONResponse({})


ROUTES = [
    Route("/health", ok),
    Route("/reports", ok, methods=["POST"]),
    Route("/reports/{report_id}", ok),
    Route("/metrics", ok),
]
app = Starlette(routes=ROUTES)
"""
# the 1.1.0 change: reports can be deleted, and the spec was not updated
APP_V2 = APP_V1.replace(
    "ROUTES = [\n", 'ROUTES = [\n    Route("/reports/{report_id}", ok, methods=["DELETE"]),\n'
)

# the same table, printed by a script a team might keep for any stack
PRINT_ROUTES = textwrap.dedent("""\
    import app

    for route in app.ROUTES:
        print(", ".join(sorted(route.methods)), route.path)
    """)


def op() -> dict:
    return {"responses": {"200": {"description": "ok"}}}


SPEC_V1 = {
    "openapi": "3.0.3",
    "info": {"title": "reports", "version": "1.0.0"},
    "paths": {"/health": {"get": op()}, "/reports": {"post": op()}, "/reports/{id}": {"get": op()}},
}
SPEC_V2 = {**SPEC_V1, "paths": {**SPEC_V1["paths"], "/reports/{id}": {"get": op(), "delete": op()}}}


def spec(s: dict) -> str:
    return yaml.safe_dump(s, sort_keys=False)


def project(tmp_path: Path, routes_toml: str, *, documented: bool = False) -> Path:
    """v1.0.0 (app + spec), then 1.1.0 adding DELETE /reports/{report_id}, documented or not."""
    root = make_project(tmp_path / "app", "[project]\n" + routes_toml)
    repo = Repo(root)
    repo.commit(
        {"app.py": APP_V1, "scripts/print_routes.py": PRINT_ROUTES, "openapi.yaml": spec(SPEC_V1)},
        "1.0.0",
        tag="v1.0.0",
    )
    files = {"app.py": APP_V2}
    if documented:
        files["openapi.yaml"] = spec(SPEC_V2)
    repo.commit(files, "reports can be deleted")
    return root


def a2(root: Path) -> relnb.GateResult:
    r = relnb.Release.create("1.1.0", root=root)
    try:
        return r.check("A2")
    finally:
        r.close()


APP_SOURCE = '[project.routes]\napp = "app:app"\n'
COMMAND_SOURCE = f'[project.routes]\ncommand = "PYTHONPATH=. {PY} scripts/print_routes.py"\n'


@pytest.mark.parametrize("source", [APP_SOURCE, COMMAND_SOURCE], ids=["app", "command"])
def test_new_route_missing_from_the_spec_fails_naming_it(tmp_path, source):
    """issue 19 item 8: the release adds DELETE /reports/{id} to the app but not to openapi.yaml;
    A2 compared the spec with itself and passed."""
    root = project(tmp_path, source)
    res = a2(root)
    assert res.status is Status.FAILED, res
    assert res.evidence["undocumented"] == ["DELETE /reports/{report_id}"]
    assert (
        "DELETE /reports/{report_id} (new)" in res.summary
        and "missing from openapi.yaml" in res.summary
    )
    assert res.evidence["new_since_previous"] == ["DELETE /reports/{report_id}"]
    assert res.evidence["ignored"] == ["GET /metrics"]  # the default ignore list, shown not hidden
    assert "GET /reports/{report_id}" in res.evidence["served"]
    assert "DELETE /reports/{id}" not in res.evidence["documented"]


@pytest.mark.parametrize("source", [APP_SOURCE, COMMAND_SOURCE], ids=["app", "command"])
def test_new_route_documented_passes(tmp_path, source):
    """issue 19 item 8: documented in the same release, A2 passes and says which route is new."""
    root = project(tmp_path, source, documented=True)
    res = a2(root)
    assert res.status is Status.PASSED, res
    assert res.evidence["undocumented"] == []
    assert res.evidence["new_since_previous"] == ["DELETE /reports/{report_id}"]
    assert res.evidence["added"] == ["DELETE /reports/{id}"]
    assert "1 new route(s) served" in res.summary
    # the checkout was at the release SHA: read in place, and the import wrote no bytecode there
    assert res.evidence["route_source"]["code"].startswith("the checkout")
    assert not list(root.rglob("__pycache__"))
    json.dumps(res.evidence)


def test_no_route_source_is_inconclusive(tmp_path):
    """issue 19 item 8: without a route source A2 used the spec as the served routes and passed."""
    root = make_project(tmp_path / "app")
    repo = Repo(root)
    repo.commit({"app.py": APP_V1, "openapi.yaml": spec(SPEC_V1)}, "1.0.0", tag="v1.0.0")
    repo.commit({"app.py": APP_V2}, "reports can be deleted")
    res = a2(root)
    assert res.status is Status.INCONCLUSIVE, res
    assert "project.routes.command or project.routes.app" in res.summary and "\n" not in res.summary


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (
            "echo 'no module named reports' >&2; exit 3",
            "route command exited 3: no module named reports",
        ),
        ("echo 'Endpoint Rule'; echo 'reports /reports'", "found no routes"),
        ("sleep 5", "timed out after 1 s"),
        ("echo 'GET /a /b'", "has 2 paths"),
    ],
    ids=["fails", "no-routes", "timeout", "unreadable"],
)
def test_route_command_that_cannot_say_is_inconclusive(tmp_path, command, reason):
    """issue 19 item 8: a failing or empty route source never lets A2 pass."""
    root = project(
        tmp_path, f'[project.routes]\ncommand = "{command}"\ntimeout = "1s"\n', documented=True
    )
    res = a2(root)
    assert res.status is Status.INCONCLUSIVE, res
    assert reason in res.summary, res.summary


def test_broken_app_reference_is_inconclusive(tmp_path):
    """issue 19 item 8: an app that does not import names the reason in one line."""
    root = project(tmp_path, '[project.routes]\napp = "app:missing"\n', documented=True)
    res = a2(root)
    assert res.status is Status.INCONCLUSIVE
    assert "AttributeError" in res.summary and "missing" in res.summary and "\n" not in res.summary


def test_routes_come_from_the_release_sha_not_the_working_tree(tmp_path):
    """issue 19 item 8: the checkout moved on after the release was cut (a later commit serves
    another undocumented route, and the tree has an uncommitted one): A2 reads the code at the
    release SHA, in a copy, and the previous tag's routes from its own copy."""
    root = project(tmp_path, COMMAND_SOURCE, documented=True)
    r = relnb.Release.create("1.1.0", root=root)
    try:
        Repo(root).commit(
            {"app.py": APP_V2.replace("ROUTES = [\n", 'ROUTES = [\n    Route("/later", ok),\n')},
            "later",
        )
        (root / "app.py").write_text(
            APP_V2.replace("ROUTES = [\n", 'ROUTES = [\n    Route("/dirty", ok),\n')
        )
        res = r.check("A2")
    finally:
        r.close()
    assert res.status is Status.PASSED, res
    assert res.evidence["route_source"]["code"].startswith("a copy of")
    assert not any("/later" in x or "/dirty" in x for x in res.evidence["served"])
    assert res.evidence["new_since_previous"] == ["DELETE /reports/{report_id}"]


def test_previous_tag_without_the_source_only_notes_it(tmp_path):
    """The route script is new in this release: the verdict is about the release, and the
    evidence says why the new routes are unknown."""
    root = make_project(tmp_path / "app", "[project]\n" + COMMAND_SOURCE)
    repo = Repo(root)
    repo.commit({"app.py": APP_V1, "openapi.yaml": spec(SPEC_V1)}, "1.0.0", tag="v1.0.0")
    repo.commit(
        {"app.py": APP_V2, "scripts/print_routes.py": PRINT_ROUTES, "openapi.yaml": spec(SPEC_V2)},
        "1.1.0",
    )
    res = a2(root)
    assert res.status is Status.PASSED, res
    assert res.evidence["new_since_previous"] is None
    assert res.evidence["new_routes_unknown"].startswith("routes at v1.0.0: route command exited")


def test_route_command_gets_the_commit_and_version(tmp_path):
    """A stack whose routes depend on the version (the demo) reads RELNB_VERSION: the release's,
    then the previous tag's without tag_prefix."""
    script = "import os\nv = os.environ['RELNB_VERSION']\nprint('GET /health')\nif v >= '1.1':\n    print('DELETE /reports/{id}')\n"
    root = make_project(tmp_path / "app", f'[project.routes]\ncommand = "{PY} routes.py"\n')
    repo = Repo(root)
    repo.commit({"routes.py": script, "openapi.yaml": spec(SPEC_V1)}, "1.0.0", tag="v1.0.0")
    repo.commit({}, "1.1.0")
    res = a2(root)
    assert res.status is Status.FAILED and res.evidence["undocumented"] == [
        "DELETE /reports/{id}"
    ], res
    assert res.evidence["new_since_previous"] == ["DELETE /reports/{id}"]


# -- the route table of a Starlette app ------------------------------------------------------------


class Items(HTTPEndpoint):
    async def get(self, request): ...

    async def put(self, request): ...


async def ok(request): ...


async def socket(ws): ...


class DocsApp(Starlette):
    """FastAPI's shape: the app knows the URLs of its own docs."""

    openapi_url = "/openapi.json"
    docs_url = "/docs"


def test_starlette_route_table(tmp_path):
    inner = Starlette(
        routes=[
            Route("/health", ok),
            Route("/items/{item_id:int}", Items),
            Mount(
                "/v2",
                routes=[
                    Route("/orders", ok, methods=["POST"]),
                    Mount("/deep", routes=[Route("/x", ok)]),
                ],
            ),
            Mount("/static", app=StaticFiles(directory=tmp_path)),
            WebSocketRoute("/live", socket),
            Route("/openapi.json", ok),
        ],
        middleware=[Middleware(GZipMiddleware)],
    )

    class Wrapper:  # a team's own ASGI middleware around the app
        def __init__(self, app):
            self.app = app

    table = asgi_routes(Wrapper(inner))
    assert table["routes"] == [
        "* /static/{path:path}",
        "GET /health",
        "GET /items/{item_id:int}",
        "GET /openapi.json",
        "GET /v2/deep/x",
        "HEAD /health",
        "HEAD /openapi.json",
        "HEAD /v2/deep/x",
        "POST /v2/orders",
        "PUT /items/{item_id:int}",
    ]
    assert table["websockets"] == ["/live"]
    docs = asgi_routes(
        DocsApp(routes=[Route("/openapi.json", ok), Route("/docs", ok), Route("/a", ok)])
    )
    assert docs["framework"] == [
        "GET /docs",
        "GET /openapi.json",
        "HEAD /docs",
        "HEAD /openapi.json",
    ]
    assert docs["routes"] == ["GET /a", "HEAD /a"]
    with pytest.raises(ValueError, match="no route table"):
        asgi_routes(object())


def test_starlette_app_in_a_src_layout_with_a_mounted_static_dir(tmp_path):
    """A mounted app serves anything under its prefix: undocumented unless ignored, and listed."""
    repo = Repo(tmp_path / "svc")
    code = (
        "from pathlib import Path\n"
        "from starlette.applications import Starlette\n"
        "from starlette.routing import Mount, Route\n"
        "from starlette.staticfiles import StaticFiles\n"
        "async def ok(r): ...\n"
        "app = Starlette(routes=[Route('/health', ok), Mount('/static', app=StaticFiles(directory=Path(__file__).parent))])\n"
    )
    repo.commit(
        {"src/svc/__init__.py": "", "src/svc/main.py": code, "openapi.yaml": spec(SPEC_V1)}, "1.0.0"
    )
    source = RouteSource(app="svc.main:app", python_path=("src",))
    listing = served_routes_at(repo.path, repo.git("rev-parse", "HEAD"), source)
    assert listing.routes == ["* /static/{path:path}", "GET /health", "HEAD /health"]
    out = check_endpoints_documented(str(repo.path), "HEAD", None, "openapi.yaml", source=source)
    assert out.status is Status.FAILED and out.evidence["undocumented"] == ["* /static/{path:path}"]
    out = check_endpoints_documented(
        str(repo.path), "HEAD", None, "openapi.yaml", source=source, ignore=["/static/*"]
    )
    assert out.status is Status.PASSED and out.evidence["ignored"] == ["* /static/{path:path}"], out
    assert out.evidence["documented_not_served"] == ["GET /reports/{id}", "POST /reports"]
    assert not list(repo.path.rglob("__pycache__"))


def test_every_route_ignored_is_inconclusive(tmp_path):
    repo = Repo(tmp_path / "svc")
    repo.commit({"openapi.yaml": spec(SPEC_V1)}, "1.0.0")
    out = check_endpoints_documented(
        str(repo.path),
        "HEAD",
        None,
        "openapi.yaml",
        source=RouteSource(command="echo GET /metrics"),
        ignore=["/metrics"],
    )
    assert out.status is Status.INCONCLUSIVE and "every served route is ignored" in out.summary


def test_route_lines():
    parsed = parse_route_lines(
        [
            "Endpoint  Methods    Rule",
            "--------  ---------  ---------------",
            "index     GET        /",
            "user      GET, POST  /users/<int:id>",
            "/usr/lib/python3/x.py:3: DeprecationWarning: a log line, not a route",
            "# a comment",
            "ANY /proxy",
            "WEBSOCKET /live",
        ]
    )
    assert parsed.routes == ["* /proxy", "GET /", "GET /users/<int:id>", "POST /users/<int:id>"]
    assert parsed.websockets == ["/live"]
    assert len(parsed.without_method) == 3
    with pytest.raises(RouteSourceError, match="has 0 paths"):
        parse_route_lines(["GET users"])
