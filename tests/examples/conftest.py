"""The real-app examples' slow preparation, started as soon as the session knows its tests.

Superset's two virtualenvs and its migrated template database take ~10 minutes on a cold cache
(CI's HOME is new on every run). When the collected tests include the Superset example, a
background thread starts building them, niced, right after collection, so the work overlaps
the ~30 minutes of tests that run before it; the test's fixture then waits for it. A session
that does not run the Superset test starts nothing.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ..conftest import MACHINE_PG, _machine_pg_ok

_PREP: concurrent.futures.Future[dict[str, Any]] | None = None


def _wanted(session: pytest.Session) -> bool:
    return any(item.nodeid.endswith("test_superset_release_goes_through_every_section") for item in session.items)


def pytest_collection_finish(session: pytest.Session) -> None:
    global _PREP
    if session.config.option.collectonly or not _wanted(session) or _PREP is not None:
        return
    from . import superset_host as host

    admin = MACHINE_PG if _machine_pg_ok() else None  # an embedded server starts later, in a fixture
    future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

    def prepare() -> None:
        try:
            future.set_result(host.prepare(admin, background=True))
        except BaseException as exc:  # the test's fixture raises it
            future.set_exception(exc)

    # a daemon: a session that ends before the Superset test (-x, a crash) does not wait for it;
    # a half-built virtualenv has no completion mark and is rebuilt next time
    threading.Thread(target=prepare, name="superset-prep", daemon=True).start()
    _PREP = future


@pytest.fixture
def superset_prepared(pg_admin_url: str) -> Callable[[], dict[str, Any]]:
    """Waits for the background preparation (or does it now, when none was started) and returns
    the virtualenvs, the template dump and its smoke user's password."""
    from . import superset_host as host

    def wait() -> dict[str, Any]:
        if not _machine_pg_ok() or pg_admin_url != MACHINE_PG:
            pytest.skip("the Superset hosts connect over TCP: this machine has no PostgreSQL on 127.0.0.1:5432")
        if host.python311() is None:
            pytest.skip("Superset 6 is installed here on Python 3.11: none on PATH or under ~/.pyenv")
        got = _PREP.result() if _PREP is not None else None
        if got is None or "dump" not in got:
            got = host.prepare(pg_admin_url)
        return got

    return wait
