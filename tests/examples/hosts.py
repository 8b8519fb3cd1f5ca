"""What the real-app hosts share: a cache directory per app, an interpreter of the versions the
app accepts, a lock around building something once per cache, and a command that must succeed.

Nothing here is relnb: it is what a team's servers and CI would have done before the release.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..conftest import USER_CACHE


def cache_dir(app: str) -> Path:
    d = USER_CACHE / "relnb-tests" / app
    d.mkdir(parents=True, exist_ok=True)
    return d


def find_python(names: tuple[str, ...], pyenv_glob: str, accepts: str) -> str | None:
    """An interpreter on PATH (`names`), else one of pyenv's (`pyenv_glob`), for which the
    expression `accepts` (on `sys.version_info`) holds. Each is run once, since a pyenv shim on
    PATH can exist for a version that is not selected."""
    found = [shutil.which(n) for n in names]
    for root in (Path.home() / ".pyenv" / "versions", Path("/root/.pyenv/versions")):
        found += [str(p) for p in sorted(root.glob(f"{pyenv_glob}/bin/python3"))]
    for cand in filter(None, found):
        ok = subprocess.run([cand, "-c", f"import sys, venv; assert {accepts}"], capture_output=True, timeout=60)
        if ok.returncode == 0:
            return cand
    return None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "w") as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def run(cmd: list[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 900) -> str:
    out = subprocess.run(cmd, env=dict(env) if env else None, cwd=cwd, capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return out.stdout
