"""Create the demo app's git repository: a conventional-commit history with a `v1.0.0` tag.

The release checks read real git (tags, diffs, files at a SHA), so the demo gives them a real
repository. Dates and author are fixed, so the same faults give the same SHAs on every run.
Since the tag, `main` adds the `/analytics/summary` endpoint (documented in openapi.yaml), one new
migration (safe by default; `unsafe=True` makes it rewrite the big `documents` table) and a fix.
With `allowed_signers` (the text of an OpenSSH allowed_signers file) it also commits
`.relnb/allowed_signers` before the release SHA, so approvals can be verified against the keys as
of that commit; the keys are made per run, so the SHAs then differ from run to run.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import repo_files as f

# docflow's files kept as real files (what its team would have in their repository)
APP_REPO = Path(__file__).resolve().parent / "app_repo"


def _real(path: str) -> str:
    return (APP_REPO / path).read_text(encoding="utf-8")

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


def _commit(repo: Path, message: str, day: int, files: dict[str, str]) -> str:
    _write(repo, files)
    _git(repo, "add", "-A")
    when = f"2024-{1 + day // 28:02d}-{1 + day % 28:02d}T10:00:00+00:00"
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


def create_repo(
    path: str | os.PathLike[str],
    *,
    unsafe_migration: bool = False,
    allowed_signers: str | None = None,
) -> DemoRepo:
    """Write the repository into `path` (created; must be empty or absent) and return its facts."""
    repo = Path(path)
    repo.mkdir(parents=True, exist_ok=True)
    if any(repo.iterdir()):
        raise FileExistsError(f"{repo} is not empty")
    _git(repo, "init", "-q", "-b", "main")
    mig = "prisma/migrations"
    docs = "ApplicationDevDocuments"
    infra = "infra/docker"

    _commit(
        repo,
        "chore: initial docflow skeleton with Prisma schema",
        0,
        {
            "README.md": f.README,
            ".gitignore": f.GITIGNORE,
            "pyproject.toml": f.PYPROJECT,
            "src/docflow/__init__.py": "",
            "src/docflow/pages.py": f.PAGES_PY,
            "tests/test_app.py": f.TEST_APP_PY,
            "prisma/schema.prisma": f.schema_prisma(False),
            f"{mig}/migration_lock.toml": f.MIGRATION_LOCK,
            f"{mig}/{f.MIGRATION_INIT}/migration.sql": f.INIT_SQL,
            "openapi.yaml": f.openapi_yaml("0.9.0", False),
        },
    )
    _commit(
        repo,
        "feat(workspaces): owner invites and accept flow",
        20,
        {
            f"{mig}/{f.MIGRATION_INVITES}/migration.sql": f.INVITES_SQL,
            f"{mig}/{f.MIGRATION_INVITES}/down.sql": f.INVITES_DOWN_SQL,
        },
    )
    _commit(
        repo,
        "docs: deployment and rollback runbooks",
        40,
        {
            f"{docs}/DeploymentRunbook.MD": f.DEPLOYMENT_RUNBOOK,
            f"{docs}/RollbackRunbook.MD": f.ROLLBACK_RUNBOOK,
        },
    )
    _commit(
        repo,
        "chore(deploy): VPS, split-infra and Coolify artifacts",
        60,
        {
            f"{infra}/docker-compose.deploy.example.yml": f.compose(("api", "worker")),
            f"{infra}/env.vps.example": f.env_template(("TAG", "IMAGE_PREFIX")),
            f"{infra}/docker-compose.infra.example.yml": f.compose(("postgres", "redis")),
            f"{infra}/env.infra.example": "# Infra VPS\nPOSTGRES_PASSWORD=\nREDIS_PASSWORD=\n",
            f"{infra}/docker-compose.coolify.example.yml": f.compose(
                ("api", "worker", "postgres", "redis")
            ),
            f"{infra}/env.coolify.example": f.env_template(
                ("TAG", "IMAGE_PREFIX", "POSTGRES_PASSWORD")
            ),
            f"{docs}/BeginnerDeployCoolify.MD": f.COOLIFY_GUIDE,
            "scripts/release/build-images.sh": f.BUILD_IMAGES_SH,
            "scripts/release/deploy-vps.sh": f.DEPLOY_VPS_SH,
            ".github/workflows/publish-images.yml": f.CI_WORKFLOW,
        },
    )
    _commit(
        repo,
        "fix(documents): drop the unused legacy storage path column",
        80,
        {f"{mig}/{f.MIGRATION_DROP_LEGACY}/migration.sql": f.DROP_LEGACY_SQL},
    )
    previous_sha = _commit(
        repo,
        "docs: changelog and smoke script for 1.0.0",
        100,
        {
            "CHANGELOG.md": f.CHANGELOG_100,
            "scripts/smoke/api-smoke.sh": f.API_SMOKE_SH,
            "smoke/flows.py": _real("smoke/flows.py"),
            "openapi.yaml": f.openapi_yaml(PREVIOUS_VERSION, False),
        },
    )
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
    _commit(
        repo,
        "feat(analytics): workspace analytics summary endpoint",
        140,
        {
            "src/docflow/analytics.py": f.ANALYTICS_PY,
            "tests/test_analytics.py": f.TEST_ANALYTICS_PY,
            "openapi.yaml": f.openapi_yaml(NEW_VERSION, True),
        },
    )
    if allowed_signers is not None:
        _commit(
            repo,
            "chore(release): signing keys for relnb approvals",
            160,
            {ALLOWED_SIGNERS: allowed_signers},
        )
    new_sql = f.NEW_SQL_UNSAFE if unsafe_migration else f.NEW_SQL_SAFE
    new_down = f.NEW_DOWN_UNSAFE if unsafe_migration else f.NEW_DOWN_SAFE
    _commit(
        repo,
        "feat(documents): record the document language",
        180,
        {
            "prisma/schema.prisma": f.schema_prisma(True),
            f"{mig}/{f.MIGRATION_NEW}/migration.sql": new_sql,
            f"{mig}/{f.MIGRATION_NEW}/down.sql": new_down,
        },
    )
    _commit(
        repo,
        "fix(worker): a trailing form feed is not a page",
        200,
        {
            "src/docflow/pages.py": f.PAGES_PY_FIX,
            "tests/test_app.py": f.TEST_APP_PY + f.TEST_TRAILING_FF,
        },
    )
    head_sha = _commit(
        repo,
        "docs: changelog entries for the next release",
        220,
        {"CHANGELOG.md": f.CHANGELOG_HEAD},
    )
    return DemoRepo(repo, PREVIOUS_TAG, previous_sha, head_sha, f.MIGRATION_NEW, unsafe_migration)


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
