"""Fixtures every group of checks shares: real servers on 127.0.0.1 (uvicorn, moto), a
docflow-shaped API, and real git repositories written through git itself."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import unused_port
from ..core.helpers import Repo

HERE = Path(__file__).parent


def load_local(name: str) -> Any:
    """Import a helper module next to this file by path (tests run with --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(f"relnb_checks_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


docflow_fake = load_local("docflow_fake")


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """A real uvicorn server for an ASGI app, on a free port, stopped on exit."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


def _servers() -> Iterator[Callable[[Any], str]]:
    stack: list[Any] = []

    def start(app: Any) -> str:
        cm = uvicorn_server(app)
        url = cm.__enter__()
        stack.append(cm)
        return url

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """`serve(asgi_app)` → base URL of a real uvicorn server, stopped after the test."""
    yield from _servers()


@pytest.fixture(scope="module")
def serve_module() -> Iterator[Callable[[Any], str]]:
    """Like `serve`, for servers shared by a module's tests (e.g. a registry's token server)."""
    yield from _servers()


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{unused_port()}"


@dataclass
class Docflow:
    url: str
    owner: Any  # relnb Secret
    member: Any
    knobs: Any
    state: Any


@pytest.fixture
def docflow() -> Iterator[Docflow]:
    from relnb.redact import Secret

    owner_raw, member_raw = docflow_fake.make_tokens()
    app, state = docflow_fake.make_app(owner_raw, member_raw)
    with uvicorn_server(app) as url:
        yield Docflow(
            url,
            Secret("OWNER_TOKEN", owner_raw),
            Secret("MEMBER_TOKEN", member_raw),
            state.knobs,
            state,
        )


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = tmp_path / "app"
    path.mkdir()
    return Repo(path)


