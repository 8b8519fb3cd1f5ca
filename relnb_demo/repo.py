"""Create the demo app's git repository: a conventional-commit history with a `v1.0.0` tag.

The release checks read real git (tags, diffs, files at a SHA), so the demo gives them a real
repository. Dates and author are fixed, so the same faults give the same SHAs on every run.
The history up to the `v1.0.0` tag is dated 2024 whatever `now` says; with `now`, the commits
since the tag (the release being made) are dated in the four days before it, in their order, so
the review's lead time for changes (commit → running in production) is the few days a release
lead would expect rather than the two years since the fixed dates. The demo passes the run's
clock: its SHAs from the signing-keys commit on already differ per run.
Since the tag, `main` adds the `/analytics/summary` endpoint (documented in openapi.yaml), one new
migration and a fix. A variant (a fault of the release itself, see app_repo/history.toml) commits
other files in the release's commit: `unsafe-migration` rewrites the big `documents` table,
`destructive-migration` also drops a column 1.0.0 still writes, `undocumented-route` adds a route
openapi.yaml does not document. The routes an image of a commit serves are that commit's
`src/docflow/routes.py` (`routes_at`); the API builds its routing table from it.
With `allowed_signers` (the text of an OpenSSH allowed_signers file) it also commits
`.relnb/allowed_signers` before the release SHA, so approvals can be verified against the keys as
of that commit; the keys are made per run, so the SHAs then differ from run to run.
"""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

# docflow's repository as real files, commit by commit (app_repo/history.toml says in what order)
APP_REPO = Path(__file__).resolve().parent / "app_repo"
HISTORY = APP_REPO / "history"
SMOKE_FLOWS = HISTORY / "06-docs-changelog-and-smoke-script-for-1-0" / "smoke" / "flows.py"
MIGRATIONS = "prisma/migrations"
MIGRATION_INIT = "20240110090000_init"
MIGRATION_INVITES = "20240301120000_add_invites"
MIGRATION_DROP_LEGACY = "20240520083000_drop_documents_legacy_path"
MIGRATION_NEW = "20241118093000_add_document_language"
MIGRATION_DESTRUCTIVE = "20241118094000_drop_invites_accepted_by"  # the destructive-migration variant
ROUTES_FILE = "src/docflow/routes.py"


def env_keys() -> tuple[str, ...]:
    """The app's secrets, as its deploy env template lists them (TAG/IMAGE_PREFIX are settings)."""
    template = HISTORY / "04-chore-deploy-vps-split-infra-and-coolify" / "infra/docker/env.vps.example"
    keys = [line.split("=", 1)[0] for line in template.read_text().splitlines() if "=" in line and not line.startswith("#")]
    return tuple(k for k in keys if k not in ("TAG", "IMAGE_PREFIX"))


def _files(directory: Path) -> dict[str, str]:
    """A commit directory's files by their path in the repository ("dot-x" is ".x")."""
    out = {}
    for f in sorted(directory.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:  # an import's leftovers are no commit's
            parts = f.relative_to(directory).parts
            rel = "/".join("." + p[4:] if p.startswith("dot-") else p for p in parts)
            out[rel] = f.read_text(encoding="utf-8")
    return out


PREVIOUS_VERSION = "1.0.0"
NEW_VERSION = "1.1.0"
PREVIOUS_TAG = f"v{PREVIOUS_VERSION}"
ALLOWED_SIGNERS = ".relnb/allowed_signers"

_AUTHOR = ("Dana Release", "dana@docflow.test")


@dataclass(frozen=True)
class DemoRepo:
    path: Path
    previous_tag: str
    previous_sha: str
    head_sha: str
    new_migration: str
    unsafe_migration: bool
    variants: tuple[str, ...] = field(default=())
    parent_sha: str = ""  # main's commit before HEAD (a staging that missed the last deploy runs it)


def _git_bytes(repo: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    """git's stdout as bytes, isolated from the user's and the system's git config."""
    base = {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    out = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**base, **(env or {})},
        capture_output=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.decode(errors='replace').strip()}")
    return out.stdout


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return _git_bytes(repo, *args, env=env).decode().strip()


def _write(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if rel.endswith(".sh"):
            p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _fixed_date(day: int) -> str:
    return f"2024-{1 + day // 28:02d}-{1 + day % 28:02d}T10:00:00+00:00"


def _release_date(day: int, last_day: int, now: datetime) -> str:
    """A commit of the release, dated before `now` by 1.2 h per history day it is before the
    last one, plus 2 h: in order, the newest two hours old, the oldest four days."""
    return (now - timedelta(hours=2 + 1.2 * (last_day - day))).replace(microsecond=0).isoformat()


def _commit(repo: Path, message: str, when: str, files: dict[str, str]) -> str:
    _write(repo, files)
    _git(repo, "add", "-A")
    name, email = _AUTHOR
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
    }
    _git(repo, "commit", "-q", "--no-gpg-sign", "-m", message, env=env)
    return _git(repo, "rev-parse", "HEAD")


def variant_names() -> set[str]:
    """Every variant some commit of the history has (app_repo/<name>/ holds its files)."""
    history = tomllib.loads((APP_REPO / "history.toml").read_text())["commit"]
    return {v for c in history for v in c.get("variants", ())}


def create_repo(
    path: str | os.PathLike[str],
    *,
    unsafe_migration: bool = False,
    variants: Iterable[str] = (),
    allowed_signers: str | None = None,
    now: datetime | None = None,
) -> DemoRepo:
    """Write the repository into `path` (created; must be empty or absent) and return its facts.

    `variants` name the faults committed in the release (`unsafe_migration=True` is the
    unsafe-migration variant); a commit listing one of them commits its files too. With `now`,
    the release's commits (those after the v1.0.0 tag) are dated in the days before it.
    """
    chosen = set(variants) | ({"unsafe-migration"} if unsafe_migration else set())
    unknown = chosen - variant_names()
    if unknown:
        raise ValueError(f"no commit has variant(s) {', '.join(sorted(unknown))}")
    repo = Path(path)
    repo.mkdir(parents=True, exist_ok=True)
    if any(repo.iterdir()):
        raise FileExistsError(f"{repo} is not empty")
    _git(repo, "init", "-q", "-b", "main")
    history = tomllib.loads((APP_REPO / "history.toml").read_text())["commit"]
    previous_sha = head_sha = ""
    last_day = max(c["day"] for c in history)
    for c in history:
        if c.get("allowed_signers"):
            if allowed_signers is None:
                continue
            files = {ALLOWED_SIGNERS: allowed_signers}
        else:
            files = _files(HISTORY / c["dir"])
            for variant in c.get("variants", ()):
                if variant in chosen:
                    files.update(_files(APP_REPO / variant))
        when = _fixed_date(c["day"])
        if now is not None and previous_sha:  # after the tag: the release being made
            when = _release_date(c["day"], last_day, now)
        head_sha = _commit(repo, c["message"], when, files)
        if c.get("release") == PREVIOUS_VERSION:
            previous_sha = head_sha
            _git(
                repo,
                "tag",
                "-a",
                PREVIOUS_TAG,
                "-m",
                f"docflow {PREVIOUS_VERSION}",
                env={
                    "GIT_COMMITTER_NAME": _AUTHOR[0],
                    "GIT_COMMITTER_EMAIL": _AUTHOR[1],
                    "GIT_COMMITTER_DATE": "2024-06-03T12:00:00+00:00",
                },
            )
    return DemoRepo(
        repo, PREVIOUS_TAG, previous_sha, head_sha, MIGRATION_NEW, "unsafe-migration" in chosen,
        tuple(sorted(chosen)), _git(repo, "rev-parse", "HEAD~1"),
    )


def routes_at(repo: str | os.PathLike[str], rev: str) -> list[tuple[str, str, str]]:
    """(method, path, handler) of every route the build of `rev` serves: its `ROUTES_FILE`.

    Read as data (`ROUTES = [...]`, a literal), never imported: the stack builds an image of a
    commit without running that commit's code in its own process.
    """
    text = _git(Path(repo), "show", f"{rev}:{ROUTES_FILE}")
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ROUTES" for t in node.targets
        ):
            routes = ast.literal_eval(node.value)
            return [(str(m), str(p), str(h)) for m, p, h in routes]
    raise ValueError(f"{ROUTES_FILE} at {rev} has no ROUTES = [...] table")


def migrations_at(repo: str | os.PathLike[str], rev: str, dest: str | os.PathLike[str]) -> Path:
    """Write `prisma/migrations` as of `rev` into `dest` (what that release would deploy).

    Blob by blob from git rather than through `git archive` + tarfile: extracting a tar safely
    needs `extractall(filter=...)`, which Python 3.11 only has from 3.11.4 on (Debian 12 ships
    3.11.2), and the paths here come from git's own tree listing, never from an archive.
    """
    src = Path(repo)
    dest_path = Path(dest)
    listing = _git(src, "ls-tree", "-r", "-z", "--name-only", rev, "--", "prisma/migrations")
    for name in filter(None, listing.split("\0")):
        target = dest_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_git_bytes(src, "cat-file", "blob", f"{rev}:{name}"))
    out = dest_path / "prisma" / "migrations"
    out.mkdir(parents=True, exist_ok=True)
    return out
