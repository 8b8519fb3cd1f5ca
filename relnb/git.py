"""The one way relnb asks git: a subprocess in the project's repository that never raises.

Gates turn a git that cannot answer (not a repository, unknown revision, git missing or hung)
into failed or inconclusive with git's own words, so callers get a result to judge rather
than an exception to remember to catch.
"""

from __future__ import annotations

import os
import subprocess


def run(
    repo: str | os.PathLike[str], *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in `repo` (with `env` added to the environment); when git cannot run or does not
    answer in time: exit 124, the reason as stderr."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=str(repo),
            env={**os.environ, **env} if env else None,
            capture_output=True,
            encoding="utf-8",
            errors="replace",  # a file git shows may not be UTF-8; the answer must still come back
            timeout=timeout,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        return subprocess.CompletedProcess(["git", *args], 124, "", str(exc))


def output(repo: str | os.PathLike[str], *args: str, timeout: float = 30) -> str | None:
    """git's stripped stdout when it succeeded and said something, else None."""
    got = run(repo, *args, timeout=timeout)
    text = got.stdout.strip()
    return text if got.returncode == 0 and text else None


def newest_tag(
    repo: str | os.PathLike[str], sha: str, prefix: str = "", *, exclude: str | None = None
) -> str | None:
    """The newest tag named `prefix*` reachable from `sha`, other than `exclude` (the release's
    own tag): where the previous release is, for the diff, the changelog and the rollback."""
    listed = output(repo, "tag", "--merged", sha, "--sort=-creatordate", "--list", f"{prefix}*")
    tags = [t for t in (listed or "").split() if t != exclude]
    return tags[0] if tags else None
