"""B1, D4 and the rollback read the running version in the app's shape (issue 20): a JSON key
path, a plain-text body, a response header or a command's output; and never pass on a value they
could not read or on a SHA that only appears inside something longer.

A real uvicorn server answers every shape; commands run for real through the shell.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from relnb import Release, git
from relnb.checks.http.version import VersionSource, check_version, read_version, version_source
from relnb.errors import ConfigError
from relnb.results import Status

from ...core.helpers import make_project

MAIN = "9fceb02d0ae598e95dc970b74767f19372d61af8"
OLD = "e83c5163316f89bfbde7d9ab23ca2e25604af290"
FAST = {"timeout_s": 0.6, "poll_interval_s": 0.2}


class App:
    """Every shape of version endpoint, serving `sha`; `answers` overrides a path's answer."""

    def __init__(self) -> None:
        self.sha = MAIN
        self.answers: dict[str, Callable[[], Response]] = {}

    def routes(self) -> list[Route]:
        shapes: dict[str, Callable[[], Response]] = {
            "/json": lambda: JSONResponse({"build": {"git": {"sha": self.sha}, "number": 12}, "sha": "not-this"}),
            "/flat": lambda: JSONResponse({"sha": self.sha}),
            "/text": lambda: PlainTextResponse(self.sha + "\n"),
            "/text-described": lambda: PlainTextResponse(f"api 1.4.0 built from {self.sha} on ci-42\n"),
            "/header": lambda: PlainTextResponse("ok", headers={"X-Version": self.sha}),
            "/header-tagged": lambda: PlainTextResponse("ok", headers={"X-Build": f"sha={self.sha}"}),
        }

        def endpoint(path: str) -> Callable[..., object]:
            async def answer(request: object) -> Response:
                return self.answers.get(path, shapes.get(path, lambda: PlainTextResponse("", 404)))()

            return answer

        paths = {*shapes, "/empty", "/html", "/down"}
        return [Route(p, endpoint(p)) for p in sorted(paths)]


@pytest.fixture
def app(serve) -> App:
    a = App()
    a.url = serve(Starlette(routes=a.routes()))  # type: ignore[attr-defined]
    return a


def _check(app: App, src: VersionSource, expected: str = MAIN, **kw: object) -> object:
    return check_version(app.url, expected, source=src, **{**FAST, **kw})  # type: ignore[attr-defined,arg-type]


# -- each shape passes on the expected SHA and fails on another -------------------------------------


@pytest.mark.parametrize(
    "src",
    [
        VersionSource("json", "/json", ("build.git.sha",)),
        VersionSource("json", "/flat", ("sha",)),
        VersionSource("text", "/text"),
        VersionSource("text", "/text-described", pattern=r"built from (\S+)"),
        VersionSource("header", "/header", header="X-Version"),
        VersionSource("header", "/header", header="x-version"),  # header names are case-insensitive
        VersionSource("header", "/header-tagged", header="X-Build", pattern=r"sha=([0-9a-f]+)"),
    ],
    ids=lambda s: f"{s.kind}:{s.path}",
)
def test_each_http_shape_passes_on_main_and_fails_on_an_older_sha(app, src):
    out = _check(app, src)
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["deployed"] == MAIN and out.evidence["source"] == src.kind
    json.dumps(out.evidence)
    app.sha = OLD
    out = _check(app, src)
    assert out.status is Status.FAILED, out.summary
    assert out.evidence["deployed"] == OLD and OLD[:12] in out.summary


def test_an_html_page_is_read_where_version_pattern_points(app):
    """An app that shows its version only inside its own pages (Superset's login page)."""
    page = '<html><head><meta name="version" content="{}"></head><body>Sign in</body></html>'
    app.answers["/html"] = lambda: HTMLResponse(page.format(app.sha))
    src = VersionSource("text", "/html", pattern=r'<meta name="version" content="([^"]+)"')
    assert _check(app, src).status is Status.PASSED
    app.sha = OLD
    assert _check(app, src).status is Status.FAILED
    unpatterned = _check(app, VersionSource("text", "/html"))
    assert unpatterned.status is Status.INCONCLUSIVE and "set version_pattern" in unpatterned.summary


def test_a_short_sha_in_a_text_body_matches_by_the_existing_abbreviation_rule(app):
    app.answers["/text"] = lambda: PlainTextResponse(MAIN[:9])
    out = _check(app, VersionSource("text", "/text"))
    assert out.status is Status.PASSED, out.summary


def test_a_command_that_prints_the_version_passes_and_names_the_command(tmp_path):
    script = tmp_path / "deployed.sh"
    script.write_text(f"echo 'Fetching deployment...' >&2\necho {MAIN}\n")
    src = VersionSource("command", command=f"sh {shlex.quote(str(script))}", cwd=str(tmp_path))
    out = check_version("http://unused.invalid", MAIN, source=src, **FAST)
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["command"].startswith("sh ") and "url" not in out.evidence
    assert "deployed.sh" in out.summary
    out = check_version("http://unused.invalid", OLD, source=src, **FAST)
    assert out.status is Status.FAILED, out.summary


def test_a_command_reading_an_image_reference_with_a_pattern(tmp_path):
    src = VersionSource(
        "command", command=f"echo registry.example.org/api:{MAIN}", pattern=r":([0-9a-f]{7,40})$"
    )
    out = check_version("http://unused.invalid", MAIN, source=src, **FAST)
    assert out.status is Status.PASSED, out.summary


# -- attempts at a false pass: each gives no usable version, or a mismatch -------------------------


@pytest.mark.parametrize(
    ("answer", "src", "problem"),
    [
        (lambda: PlainTextResponse(""), VersionSource("text", "/empty"), "body: empty"),
        (lambda: PlainTextResponse("  \n"), VersionSource("text", "/empty"), "body: empty"),
        # an error page that echoes the SHA it was asked about, served with 200
        (lambda: HTMLResponse(f"<html><body>Bad gateway for {MAIN}</body></html>"), VersionSource("text", "/html"), "HTML page"),
        (lambda: PlainTextResponse(f"<!doctype html><p>{MAIN}</p>"), VersionSource("text", "/html"), "HTML page"),
        (lambda: HTMLResponse(f"<p>{MAIN}</p>"), VersionSource("json", "/html", ("sha",)), "malformed JSON"),
        # with a pattern, an HTML page is read where the pattern says, and an error page is not that
        (lambda: HTMLResponse(f"<html><body>Bad gateway for {MAIN}</body></html>"),
         VersionSource("text", "/html", pattern=r'<meta name="version" content="([^"]+)"'), "does not match"),
        (lambda: PlainTextResponse("ok"), VersionSource("header", "/down", header="X-Version"), "no X-Version header"),
        (lambda: PlainTextResponse(MAIN, 502), VersionSource("text", "/down"), "HTTP 502"),
        # a sentence that mentions the expected SHA is not a version
        (lambda: PlainTextResponse(f"expected {MAIN} but running {OLD}"), VersionSource("text", "/text"), "not a single version"),
        (lambda: PlainTextResponse(f"{MAIN}\n{OLD}\n"), VersionSource("text", "/text"), "not a single version"),
        (lambda: PlainTextResponse(OLD), VersionSource("text", "/text", pattern=r"sha=(\w+)"), "does not match"),
        (lambda: JSONResponse({"build": {"git": {}}}), VersionSource("json", "/json", ("build.git.sha",)), "no string field"),
        (lambda: JSONResponse({"build": {"git": {"sha": ""}}}), VersionSource("json", "/json", ("build.git.sha",)), "no string field"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_an_unreadable_version_is_inconclusive_never_passed(app, answer, src, problem):
    app.answers[src.path] = answer
    out = _check(app, src)
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert problem in out.evidence["problem"] and problem in out.summary
    assert "\n" not in out.summary
    json.dumps(out.evidence)


@pytest.mark.parametrize(
    "body",
    [
        "deadbeef" + MAIN,  # the expected SHA inside a longer hex string
        MAIN + "cafe",
        f"v1.4.0-{MAIN}",
        f"sha={MAIN}",
        MAIN[:6],  # shorter than the 7-character abbreviation rule
    ],
)
def test_a_sha_inside_a_longer_string_never_matches(app, body):
    app.answers["/text"] = lambda: PlainTextResponse(body)
    out = _check(app, VersionSource("text", "/text"))
    assert out.status is Status.FAILED, out.summary
    assert out.evidence["deployed"] == body


def test_a_header_holding_more_than_the_sha_fails_rather_than_matches_a_substring(app):
    app.answers["/header"] = lambda: PlainTextResponse("ok", headers={"X-Version": f"build-{MAIN}-dirty"})
    out = _check(app, VersionSource("header", "/header", header="X-Version"))
    assert out.status is Status.FAILED, out.summary


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        (f"echo {MAIN}; exit 1", "command exited 1"),  # prints the SHA, then fails: not a pass
        ("true", "output: empty"),
        (f"echo 'rollout of {MAIN} pending'", "not a single version"),
        ("relnb-no-such-command-20", "command exited 127"),
        (f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(\"{MAIN}\")'", "command exited 1"),
    ],
)
def test_a_command_that_fails_or_says_something_else_is_inconclusive(command, problem):
    src = VersionSource("command", command=command)
    out = check_version("http://unused.invalid", MAIN, source=src, **FAST)
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert problem in out.evidence["problem"], out.evidence


def test_a_command_that_cannot_start_is_inconclusive(tmp_path):
    src = VersionSource("command", command="echo x", cwd=str(tmp_path / "missing"))
    out = check_version("http://unused.invalid", MAIN, source=src, **FAST)
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "could not start" in out.evidence["problem"]


def test_read_version_takes_a_whole_word_or_the_patterns_group():
    assert read_version(f" {MAIN}\n") == MAIN
    assert read_version(f"noise\n{MAIN}\n", last_line=True) == MAIN
    assert read_version(f"commit: {MAIN}", r"commit: (\w+)") == MAIN
    assert read_version(f"commit {MAIN}", r"[0-9a-f]{40}") == MAIN
    assert read_version(f"noise\n{MAIN}\n") == {"problem": "not a single version string (set version_pattern to pick it out)"}


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "key", "fix"),
    [
        ({"version_source": "header"}, "environments.staging.version_header", "X-Version"),
        ({"version_source": "command"}, "environments.staging.version_command", "command"),
        ({"version_source": "json", "version_field": ""}, "environments.staging.version_field", "build.git.sha"),
        ({"version_source": "text", "version_path": ""}, "environments.staging.version_path", "/version"),
        ({"version_source": "text", "version_pattern": "(unclosed"}, "environments.staging.version_pattern", "re"),
        ({"version_source": "json", "version_pattern": "x"}, "environments.staging.version_pattern", "remove"),
    ],
)
def test_an_incomplete_version_source_is_a_config_error_naming_key_and_fix(env, key, fix):
    base = {"version_path": "/version", "version_field": "sha"}
    with pytest.raises(ConfigError) as err:
        version_source({**base, **env}, where="environments.staging", file="relnb.toml")
    assert err.value.key == key and fix in (err.value.fix or "")
    assert str(err.value).startswith(f"relnb.toml: {key} ")


# -- B1 as a gate, configured in relnb.toml ----------------------------------------------------


@pytest.fixture
def release(tmp_path, monkeypatch) -> Iterator[Callable[[str], Release]]:
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    for var in ("RELNB_CONFIRM", "RELNB_SIGNOFFS", "RELNB_RERUN", "RELNB_SKIPS", "RELNB_HEADLESS", "RELNB_WINDOW"):
        monkeypatch.delenv(var, raising=False)
    made: list[Release] = []

    def make(staging: str) -> Release:
        root = make_project(tmp_path / f"p{len(made)}", f'[environments.staging]\nversion_timeout = "1s"\n{staging}')
        made.append(Release.create("1.4.0", root=root))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _main(r: Release) -> str:
    return git.output(r.config.repo_path(), "rev-parse", "main") or ""


def test_b1_reads_a_header_configured_in_relnb_toml(app, release):
    r = release(f'base_url = "{app.url}"\nversion_source = "header"\nversion_path = "/header"\nversion_header = "X-Version"\n')
    app.sha = _main(r)
    out = r.check("B1")
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["source"] == "header" and out.evidence["header"] == "X-Version"
    assert out.evidence["serving_since"]["source"] == "first-observed"


def test_b1_reads_a_json_key_path(app, release):
    r = release(f'base_url = "{app.url}"\nversion_path = "/json"\nversion_field = "build.git.sha"\n')
    app.sha = _main(r)
    assert r.check("B1").status is Status.PASSED


def test_b1_runs_a_command_in_the_project_repository(release):
    r = release('base_url = "http://127.0.0.1:9"\nversion_source = "command"\nversion_command = "git rev-parse HEAD"\n')
    out = r.check("B1")
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["deployed"] == _main(r)


def test_b1_with_a_header_source_but_no_header_name_fails_naming_the_key(release):
    r = release('base_url = "http://127.0.0.1:9"\nversion_source = "header"\n')
    out = r.check("B1")
    assert out.status is Status.FAILED, out.summary
    assert "environments.staging.version_header" in out.summary and "X-Version" in out.summary
    assert str(Path(r.config.file).name) in out.summary


def test_an_unknown_version_source_is_rejected_when_the_config_loads(release):
    with pytest.raises(ConfigError) as err:
        release('base_url = "http://127.0.0.1:9"\nversion_source = "grpc"\n')
    assert "version_source" in str(err.value)
