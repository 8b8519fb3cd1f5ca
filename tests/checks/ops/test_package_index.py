"""E1 for an app installed from a package index (Superset from PyPI, not an image): the previous
release's `==` pins, read at its tag, must each have a file of exactly that version on the index,
not yanked. A local Simple API (PEP 691 JSON and PEP 503 HTML, as pip reads them) stands in for
PyPI; the client is the real one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import relnb
from relnb import Release
from relnb.checks.ops.gates import previous_images
from relnb.checks.ops.package_index import check_previous_packages, read_pins
from relnb.gatecontext import GateContext
from relnb.results import Status

from ...core.helpers import commit, make_project

# name → [(filename, yanked)]
INDEX: dict[str, list[tuple[str, bool | str]]] = {
    "apache-superset": [
        ("apache_superset-6.0.0-py3-none-any.whl", False),
        ("apache_superset-6.0.0.tar.gz", False),
        ("apache_superset-6.1.0-py3-none-any.whl", False),
    ],
    "psycopg2-binary": [("psycopg2_binary-2.9.13-cp311-cp311-manylinux_2_17_x86_64.whl", False)],
    "flask-caching": [
        ("Flask_Caching-2.4.1-py3-none-any.whl", "broke the metastore cache"),
        ("flask_caching-2.4.1.tar.gz", "broke the metastore cache"),
        ("flask_caching-2.5.0-py3-none-any.whl", False),
    ],
}

LOST = {"psycopg2_binary-2.9.13-cp311-cp311-manylinux_2_17_x86_64.whl"}  # listed, storage lost it
INDEX["psycopg2-binary"].insert(0, ("psycopg2_binary-2.9.12-cp311-cp311-manylinux_2_17_x86_64.whl", False))
INDEX["psycopg2-binary"].append(("psycopg2_binary-2.9.11-py3-none-any.whl", False))


class _Simple(BaseHTTPRequestHandler):
    html_only = False

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/files/"):
            name = self.path.split("/")[-1].split("#")[0]
            served = name not in LOST
            self.send_response(206 if served else 404)
            self.send_header("Content-Length", "1" if served else "0")
            self.end_headers()
            if served:
                self.wfile.write(b"P")
            return
        name = self.path.strip("/").split("/")[-1]
        files = INDEX.get(name)
        if files is None:
            self.send_response(404)
            self.end_headers()
            return
        if "json" in (self.headers.get("Accept") or "") and not self.html_only:
            body = json.dumps(
                {"meta": {"api-version": "1.1"}, "name": name,
                 "files": [{"filename": f, "url": f"/files/{f}", "hashes": {}, "yanked": y} for f, y in files]}
            ).encode()  # fmt: skip
            kind = "application/vnd.pypi.simple.v1+json"
        else:
            anchors = "".join(
                f'<a href="/files/{f}#sha256=00"{f" data-yanked={json.dumps(y)}" if y else ""}>{f}</a><br/>'
                for f, y in files
            )
            body = f"<!DOCTYPE html><html><body><h1>Links for {name}</h1>{anchors}</body></html>".encode()
            kind = "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(params=["json", "html"])
def index(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_Simple,), {"html_only": request.param == "html"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


def test_pins_are_exact_versions_only() -> None:
    pins = read_pins(
        "# deploy\nApache_Superset==6.0.0\npsycopg2-binary == 2.9.13  # db\nrich>=15\ncelery[redis]==5.5.3\n"
        "-r base.txt\nflask-caching~=2.4\ngit+https://example.org/x.git\nx==1.*\n"
    )
    assert pins == {
        "apache-superset": "6.0.0", "psycopg2-binary": "2.9.13", "rich": None, "celery": "5.5.3",
        "flask-caching": None, "x": None,
    }  # fmt: skip


def test_previous_pins_on_the_index_pass(index: str) -> None:
    out = check_previous_packages(index, {"apache-superset": "6.0.0", "psycopg2-binary": "2.9.11"}, previous="v6.0.0", source="requirements.txt")
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["packages"]["apache-superset"]["detail"] == (
        "apache-superset==6.0.0: 2 file(s) (sdist, wheel), apache_superset-6.0.0-py3-none-any.whl served"
    )


def test_a_listed_file_the_index_does_not_serve_fails(index: str) -> None:
    out = check_previous_packages(index, {"psycopg2-binary": "2.9.13"}, previous="v6.0.0", source="requirements.txt")
    assert out.status is Status.FAILED, out.summary
    assert "is listed but the index serves HTTP 404 for it" in out.summary


def test_a_version_the_index_never_had_fails(index: str) -> None:
    out = check_previous_packages(index, {"apache-superset": "5.9.0"}, previous="v5.9.0", source="requirements.txt")
    assert out.status is Status.FAILED
    assert out.summary == (
        "previous release v5.9.0 cannot be reinstalled: apache-superset==5.9.0: no file of that version"
        " on the index (3 files of other versions)"
    )


def test_a_yanked_version_fails_with_the_reason(index: str) -> None:
    out = check_previous_packages(index, {"apache-superset": "6.0.0", "flask-caching": "2.4.1"}, previous="v6.0.0", source="requirements.txt")
    assert out.status is Status.FAILED
    assert "flask-caching==2.4.1: every file is yanked (broke the metastore cache)" in out.summary


def test_a_package_the_index_does_not_know_fails(index: str) -> None:
    out = check_previous_packages(index, {"superset-internal": "1.0"}, previous="v1", source="requirements.txt")
    assert out.status is Status.FAILED and "superset-internal: not on the index (404)" in out.summary


def test_a_loose_pin_or_an_empty_file_is_never_passed(index: str) -> None:
    loose = check_previous_packages(index, {"apache-superset": None}, previous="v6.0.0", source="requirements.txt")
    assert loose.status is Status.INCONCLUSIVE
    assert "does not pin apache-superset with ==" in loose.summary
    empty = check_previous_packages(index, {}, previous="v6.0.0", source="requirements.txt")
    assert empty.status is Status.INCONCLUSIVE


def test_an_unreachable_index_is_inconclusive_and_keeps_its_password_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from relnb.redact import Secret

    out = check_previous_packages(
        "http://user:s3cr3t-canary-pw@127.0.0.1:9/simple", {"apache-superset": "6.0.0"}, previous="v6.0.0",
        source="requirements.txt", username="user", password=Secret("s3cr3t-canary-pw", "INDEX_PASSWORD"),
        timeout_s=2,
    )  # fmt: skip
    assert out.status is Status.INCONCLUSIVE and "index unreachable" in out.summary
    assert "s3cr3t-canary-pw" not in json.dumps(out.evidence) + out.summary


def _project(tmp_path: Any, index_url: str, monkeypatch: pytest.MonkeyPatch, pins: str, extra: dict[str, str] | None = None) -> Release:
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    root = make_project(
        tmp_path / "app",
        "[project]\ntag_prefix = \"v\"\n"
        "[environments.production]\nbase_url = \"http://127.0.0.1:9\"\n"
        f"[environments.production.package_index]\nrequirements = \"requirements.txt\"\nurl = \"{index_url}\"\n",
    )
    commit(root, {"requirements.txt": pins, **(extra or {})}, "pin the previous version", tag="v6.0.0")
    commit(root, {"requirements.txt": "apache-superset==6.1.0\n"}, "bump")
    return Release.create("6.1.0", root=root)


def _e1(r: Release) -> Any:
    try:
        return previous_images(GateContext(r, "E1"))
    finally:
        r.close()


def test_e1_reads_the_pins_at_the_previous_tag(tmp_path: Any, index: str, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _project(tmp_path, index, monkeypatch, "apache-superset==6.0.0\npsycopg2-binary==2.9.11\n")
    out = _e1(r)
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["previous_release"] == "v6.0.0" and set(out.evidence["packages"]) == {"apache-superset", "psycopg2-binary"}


def test_e1_follows_included_requirement_files(tmp_path: Any, index: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pin in `-r base.txt` is the previous release's too: skipping it would pass on half the file."""
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    r = _project(tmp_path, index, monkeypatch, "-r deploy/base.txt\napache-superset==6.0.0\n",
                 extra={"deploy/base.txt": "flask-caching==2.4.1\n"})
    out = _e1(r)
    assert out.status is Status.FAILED and "flask-caching==2.4.1: every file is yanked" in out.summary


def test_e1_fails_when_the_previous_tags_pin_is_yanked(tmp_path: Any, index: str, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _project(tmp_path, index, monkeypatch, "apache-superset==6.0.0\nflask-caching==2.4.1\n")
    out = _e1(r)
    assert out.status is Status.FAILED and "flask-caching==2.4.1: every file is yanked" in out.summary


def test_e1_without_registry_or_index_names_both(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    root = make_project(tmp_path / "app", "[environments.production]\nbase_url = \"http://127.0.0.1:9\"\n")
    r = Release.create("1.0.0", root=root)
    out = _e1(r)
    assert out.status is not Status.PASSED and "package_index.requirements" in out.summary
    assert relnb.load_config(root / "relnb.toml").env("production")["package_index"]["url"] == "https://pypi.org/simple"
