"""The demo app's git repository: history, tag, files the checklist names, and its migrations."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from relnb_demo import repo as rf
from relnb_demo.app import served_routes
from relnb_demo.repo import PREVIOUS_TAG, create_repo, migrations_at, routes_at


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("repos")
    return create_repo(base / "safe"), create_repo(base / "unsafe", unsafe_migration=True)


def test_history_tag_and_conventional_commits(repos) -> None:
    safe, _ = repos
    subjects = git(safe.path, "log", "--format=%s").splitlines()
    assert all(s.split(":")[0].split("(")[0] in {"feat", "fix", "chore", "docs"} for s in subjects)
    assert {s.split(":")[0].split("(")[0] for s in subjects} == {"feat", "fix", "chore", "docs"}
    assert git(safe.path, "rev-parse", f"{PREVIOUS_TAG}^{{commit}}") == safe.previous_sha
    assert git(safe.path, "rev-parse", "HEAD") == safe.head_sha != safe.previous_sha
    since = git(safe.path, "log", "--format=%s", f"{PREVIOUS_TAG}..HEAD").splitlines()
    assert any("analytics" in s for s in since) and len(since) == 4
    changed = git(safe.path, "diff", "--name-only", f"{PREVIOUS_TAG}..HEAD").splitlines()
    assert f"prisma/migrations/{rf.MIGRATION_NEW}/migration.sql" in changed
    assert "openapi.yaml" in changed and "prisma/schema.prisma" in changed
    assert git(safe.path, "status", "--porcelain") == ""


def test_same_inputs_same_shas(tmp_path: Path, repos) -> None:
    again = create_repo(tmp_path / "again")
    assert (again.previous_sha, again.head_sha) == (repos[0].previous_sha, repos[0].head_sha)
    assert repos[1].head_sha != repos[0].head_sha  # the unsafe variant is a different release


def test_checklist_files_exist_at_head(repos) -> None:
    safe, _ = repos
    files = set(git(safe.path, "ls-tree", "-r", "--name-only", "HEAD").splitlines())
    for path in (
        "openapi.yaml",
        "prisma/schema.prisma",
        "prisma/migrations/migration_lock.toml",
        "ApplicationDevDocuments/DeploymentRunbook.MD",
        "ApplicationDevDocuments/RollbackRunbook.MD",
        "ApplicationDevDocuments/BeginnerDeployCoolify.MD",
        "infra/docker/docker-compose.deploy.example.yml",
        "infra/docker/env.vps.example",
        "infra/docker/docker-compose.infra.example.yml",
        "infra/docker/env.infra.example",
        "infra/docker/docker-compose.coolify.example.yml",
        "infra/docker/env.coolify.example",
        "scripts/release/build-images.sh",
        "scripts/release/deploy-vps.sh",
        "scripts/smoke/api-smoke.sh",
        "CHANGELOG.md",
        "tests/test_app.py",
        ".github/workflows/publish-images.yml",
    ):
        assert path in files, path
    for script in (
        "scripts/release/deploy-vps.sh",
        "scripts/smoke/api-smoke.sh",
        "scripts/release/build-images.sh",
    ):
        assert (safe.path / script).stat().st_mode & 0o111
        assert subprocess.run(["bash", "-n", str(safe.path / script)], check=False).returncode == 0
    # Reversible vs non-reversible history.
    migs = safe.path / "prisma" / "migrations"
    assert (migs / rf.MIGRATION_INVITES / "down.sql").is_file()
    assert not (migs / rf.MIGRATION_DROP_LEGACY / "down.sql").exists()
    assert (migs / rf.MIGRATION_NEW / "down.sql").is_file()
    changelog = (safe.path / "CHANGELOG.md").read_text()
    assert "## [1.0.0] - " in changelog and "## [Unreleased]" in changelog


def test_openapi_documents_served_routes_per_version(repos) -> None:
    safe, _ = repos

    def ops(rev: str) -> set[str]:
        spec = yaml.safe_load(git(safe.path, "show", f"{rev}:openapi.yaml"))
        return {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}

    assert ops(PREVIOUS_TAG) == set(served_routes(routes_at(safe.path, PREVIOUS_TAG)))
    assert ops("HEAD") == set(served_routes(routes_at(safe.path, "HEAD")))
    assert "GET /analytics/summary" in ops("HEAD") - ops(PREVIOUS_TAG)


def spec_ops(repo: Path, rev: str) -> set[str]:
    spec = yaml.safe_load(git(repo, "show", f"{rev}:openapi.yaml"))
    return {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}


def test_undocumented_route_variant_serves_a_route_its_spec_lacks(tmp_path: Path, repos) -> None:
    """Issue 19 (every gate seen failing, A2): the release commit adds PATCH /documents/{id} to
    docflow's routing table and leaves openapi.yaml as it was."""
    repo = create_repo(tmp_path / "undocumented", variants=["undocumented-route"])
    served = set(served_routes(routes_at(repo.path, "HEAD")))
    assert served - spec_ops(repo.path, "HEAD") == {"PATCH /documents/{id}"}
    assert spec_ops(repo.path, "HEAD") == spec_ops(repos[0].path, "HEAD")  # the spec is untouched
    # the route table is what A2's route source reads: the app object and the script agree
    listing = subprocess.run(
        [sys.executable, "-m", "docflow.routes"], cwd=repo.path, env={"PYTHONPATH": "src", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split("\n")
    assert set(filter(None, listing)) == served
    walked = subprocess.run(
        [sys.executable, "-B", "-c", "from docflow.routes import app\n"
         "for r in app.routes:\n    print(*(f'{m} {r.path}' for m in sorted(r.methods)), sep='\\n')"],
        cwd=repo.path / "src", capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()
    assert {f"{m} {p}" for m, p in zip(walked[::2], walked[1::2], strict=True) if m != "HEAD"} == served
    assert git(repo.path, "status", "--porcelain") == ""


def test_destructive_migration_variant_drops_a_column_the_previous_release_writes(tmp_path: Path) -> None:
    """Issue 19 (E2/E3): the release also drops invites.accepted_by, irreversibly (no down.sql),
    while 1.0.0 still writes it; the schema says the same, so A3 sees a consistent change."""
    from relnb_demo.app import writes_accepted_by

    repo = create_repo(tmp_path / "destructive", variants=["destructive-migration"])
    mig = repo.path / "prisma" / "migrations" / rf.MIGRATION_DESTRUCTIVE
    assert 'DROP COLUMN "accepted_by"' in (mig / "migration.sql").read_text()
    assert not (mig / "down.sql").exists()
    assert "accepted_by" not in (repo.path / "prisma" / "schema.prisma").read_text()
    assert writes_accepted_by("1.0.0") and not writes_accepted_by("1.1.0")
    with pytest.raises(ValueError, match="no commit has variant"):
        create_repo(tmp_path / "nope", variants=["meteor"])


def test_repo_test_suite_passes(repos) -> None:
    safe, _ = repos
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=safe.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 passed" in out.stdout
    assert git(safe.path, "status", "--porcelain") == ""  # no caches left in the tree


def test_squawk_passes_safe_and_flags_unsafe_migration(repos) -> None:
    squawk = shutil.which("squawk") or str(Path(sys.executable).with_name("squawk"))
    assert Path(squawk).exists() or shutil.which(squawk), (
        "squawk-cli (a relnb dependency) is missing"
    )
    safe, unsafe = repos

    def lint(repo) -> list[dict]:
        path = repo.path / "prisma" / "migrations" / rf.MIGRATION_NEW / "migration.sql"
        out = subprocess.run(
            [squawk, "--reporter", "json", str(path)], capture_output=True, text=True, timeout=60
        )
        return json.loads(out.stdout or "[]")

    assert lint(safe) == []
    rules = {f["rule_name"] for f in lint(unsafe)}
    assert "changing-column-type" in rules


def test_migrations_at_tag_exclude_the_new_one(tmp_path: Path, repos) -> None:
    safe, _ = repos
    old = migrations_at(safe.path, PREVIOUS_TAG, tmp_path / "old")
    names = sorted(p.name for p in old.iterdir() if p.is_dir())
    assert names == [rf.MIGRATION_INIT, rf.MIGRATION_INVITES, rf.MIGRATION_DROP_LEGACY]


def test_refuses_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("hi")
    with pytest.raises(FileExistsError):
        create_repo(tmp_path / "x")


def test_an_imports_bytecode_is_no_commit_file(tmp_path) -> None:
    """Issue 19 item 0: a __pycache__ left beside a commit's smoke/flows.py was read as UTF-8."""
    from relnb_demo.repo import _files

    (tmp_path / "smoke" / "__pycache__").mkdir(parents=True)
    (tmp_path / "smoke" / "flows.py").write_text("x = 1\n")
    (tmp_path / "smoke" / "__pycache__" / "flows.cpython-311.pyc").write_bytes(b"\xa7\x0d\r\n\x00")
    assert _files(tmp_path) == {"smoke/flows.py": "x = 1\n"}
