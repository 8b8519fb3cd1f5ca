"""Fixtures for the HTTP/git checks: real servers on 127.0.0.1 and real git repositories."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def _uvicorn(app) -> Iterator[str]:
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


@pytest.fixture
def serve() -> Iterator[Callable[[object], str]]:
    """`serve(asgi_app)` → base URL of a real uvicorn server, stopped after the test."""
    stack = []

    def start(app) -> str:
        cm = _uvicorn(app)
        url = cm.__enter__()
        stack.append(cm)
        return url

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    out = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


class Repo:
    """A real git repository in tmp_path, written through git itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        git(path, "init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return git(self.path, *args)

    def commit(
        self,
        files: dict[str, str | None],
        message: str,
        *,
        tag: str | None = None,
        executable: tuple[str, ...] = (),
    ) -> str:
        for name, text in files.items():
            p = self.path / name
            if text is None:
                self.git("rm", "-q", name)
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            if name in executable:
                p.chmod(0o755)
            self.git("add", name)
        self.git("commit", "-q", "-m", message)
        if tag:
            self.git("tag", "-a", tag, "-m", tag)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = tmp_path / "app"
    path.mkdir()
    return Repo(path)


@pytest.fixture(scope="module")
def serve_module() -> Iterator[Callable[[object], str]]:
    """Like `serve`, for servers shared by a module's tests (e.g. a registry's token server)."""
    stack = []

    def start(app) -> str:
        cm = _uvicorn(app)
        url = cm.__enter__()
        stack.append(cm)
        return url

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)
