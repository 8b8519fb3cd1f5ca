"""A6 runbooks and B4 deploy artifacts, read from git objects at the release SHA."""

from __future__ import annotations

import json
from typing import Any

import pytest

import relnb
from relnb import Release
from relnb.checks.ops.gates import deploy_artifacts
from relnb.checks.ops.repo_files import (
    check_deploy_artifacts,
    check_runbooks,
    dotenv_keys,
    env_template_keys,
)
from relnb.gatecontext import GateContext
from relnb.results import Status

from ...core.helpers import commit, make_project

RUNBOOKS = [
    "ApplicationDevDocuments/DeploymentRunbook.MD",
    "ApplicationDevDocuments/RollbackRunbook.MD",
]
ARTIFACTS = ["infra/docker/docker-compose.deploy.example.yml", "scripts/release/deploy-vps.sh"]
ENV_TEMPLATES = ["infra/docker/env.vps.example"]
ENV_TEXT = """# Deploy env for the VPS
DATABASE_URL=postgres://user:pass@db/app
export REDIS_URL=redis://redis:6379
KEYCLOAK_URL=
 S3_ACCESS_KEY = changeme
# OLD_KEY=unused
not a key line
"""


def test_runbooks_present_at_sha_with_links(repo):
    sha = repo.commit({p: "# steps\n" for p in RUNBOOKS}, "runbooks")
    repo.git("remote", "add", "origin", "git@github.com:acme/docflow.git")
    out = check_runbooks(repo.path, sha, RUNBOOKS)
    assert out.status is Status.PASSED, out
    urls = [f["url"] for f in out.evidence["files"]]
    assert urls[0] == f"https://github.com/acme/docflow/blob/{sha}/{RUNBOOKS[0]}"
    out = check_runbooks(
        repo.path, sha, RUNBOOKS, link_base="https://git.example.com/{path}?at={sha}"
    )
    assert out.evidence["files"][1]["url"] == f"https://git.example.com/{RUNBOOKS[1]}?at={sha}"


def test_runbook_missing_at_release_sha_fails_even_if_in_worktree(repo):
    sha = repo.commit({RUNBOOKS[0]: "# deploy\n"}, "only deploy runbook")
    # present on disk but not committed: must not count
    (repo.path / RUNBOOKS[1]).write_text("# rollback (uncommitted)\n")
    out = check_runbooks(repo.path, sha, RUNBOOKS)
    assert out.status is Status.FAILED and out.evidence["missing"] == [RUNBOOKS[1]]
    # added later: the old SHA still fails, the new one passes
    new = repo.commit({RUNBOOKS[1]: "# rollback\n"}, "rollback runbook")
    assert check_runbooks(repo.path, sha, RUNBOOKS).status is Status.FAILED
    assert check_runbooks(repo.path, new, RUNBOOKS).status is Status.PASSED


def test_empty_runbook_or_directory_fails(repo):
    sha = repo.commit({RUNBOOKS[0]: "", "ApplicationDevDocuments/x/README": "x"}, "empty")
    out = check_runbooks(repo.path, sha, [RUNBOOKS[0], "ApplicationDevDocuments/x"])
    assert out.status is Status.FAILED
    assert out.evidence["empty"] == [RUNBOOKS[0]] and out.evidence["not_files"] == [
        "ApplicationDevDocuments/x"
    ]


def test_runbooks_not_configured_or_bad_sha(repo):
    sha = repo.commit({"a": "b"}, "x")
    assert check_runbooks(repo.path, sha, []).status is Status.INCONCLUSIVE
    assert check_runbooks(repo.path, "0" * 40, RUNBOOKS).status is Status.INCONCLUSIVE


def test_env_template_keys():
    assert env_template_keys(ENV_TEXT) == [
        "DATABASE_URL",
        "REDIS_URL",
        "KEYCLOAK_URL",
        "S3_ACCESS_KEY",
    ]


def test_deploy_artifacts_all_present_and_provided(repo, tmp_path):
    files = {p: "x\n" for p in ARTIFACTS} | {ENV_TEMPLATES[0]: ENV_TEXT}
    sha = repo.commit(files, "artifacts", executable=("scripts/release/deploy-vps.sh",))
    dotenv = tmp_path / "prod.env"
    dotenv.write_text(
        "DATABASE_URL=postgres://secret-value@db\nREDIS_URL=r\nKEYCLOAK_URL=k\nS3_ACCESS_KEY=AKIAVALUE\n"
    )
    out = check_deploy_artifacts(
        repo.path, sha, ARTIFACTS, ENV_TEMPLATES, dotenv_keys(dotenv), environment="production"
    )
    assert out.status is Status.PASSED, out
    assert out.evidence["notes"] == []
    text = json.dumps(out.evidence)
    assert "secret-value" not in text and "AKIAVALUE" not in text and "pass@db" not in text


def test_missing_env_key_fails_with_names_only(repo):
    sha = repo.commit({p: "x\n" for p in ARTIFACTS} | {ENV_TEMPLATES[0]: ENV_TEXT}, "artifacts")
    provided = {"DATABASE_URL": "postgres://very-secret@db", "REDIS_URL": "redis://x"}
    out = check_deploy_artifacts(
        repo.path, sha, ARTIFACTS, ENV_TEMPLATES, provided, environment="staging"
    )
    assert out.status is Status.FAILED
    assert out.evidence["missing_keys"] == {ENV_TEMPLATES[0]: ["KEYCLOAK_URL", "S3_ACCESS_KEY"]}
    assert "KEYCLOAK_URL" in out.summary and "staging" in out.summary
    assert "very-secret" not in json.dumps(out.evidence)
    # a non-executable script is noted (not failed)
    assert any("deploy-vps.sh" in n for n in out.evidence["notes"])
    # declared optional keys do not fail
    out = check_deploy_artifacts(
        repo.path,
        sha,
        ARTIFACTS,
        ENV_TEMPLATES,
        provided,
        optional_keys=["KEYCLOAK_URL", "S3_ACCESS_KEY"],
    )
    assert out.status is Status.PASSED


def test_missing_artifact_fails(repo):
    sha = repo.commit({ARTIFACTS[0]: "x\n", ENV_TEMPLATES[0]: "A=1\n"}, "partial")
    out = check_deploy_artifacts(repo.path, sha, ARTIFACTS, ENV_TEMPLATES, {"A"})
    assert out.status is Status.FAILED and out.evidence["missing_files"] == [ARTIFACTS[1]]
    out = check_deploy_artifacts(
        repo.path, sha, ARTIFACTS[:1], [*ENV_TEMPLATES, "infra/docker/env.infra.example"], {"A"}
    )
    assert out.status is Status.FAILED and "env.infra.example" in out.summary


def test_no_key_source_is_inconclusive(repo):
    sha = repo.commit({ENV_TEMPLATES[0]: "A=1\n"}, "t")
    assert (
        check_deploy_artifacts(repo.path, sha, [], ENV_TEMPLATES, None).status
        is Status.INCONCLUSIVE
    )
    assert check_deploy_artifacts(repo.path, sha, [], [], set()).status is Status.INCONCLUSIVE


# -- B4's provider: production's keys, never relnb's own environment (issue 19 item 13) ------

PROJECT = (
    "[project]\n"
    f"deploy_artifacts = {json.dumps(ARTIFACTS)}\n"
    f"env_templates = {json.dumps(ENV_TEMPLATES)}\n"
    "[environments.production]\n"
    'base_url = "http://127.0.0.1:9"\n'
    "[environments.production.secrets]\n"
)
ALL_KEYS = {"DATABASE_URL": "postgres://x-secret@db", "REDIS_URL": "r", "KEYCLOAK_URL": "k", "S3_ACCESS_KEY": "a"}


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A release of a repository holding the deploy artifacts at its SHA."""
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    root = make_project(tmp_path / "app")
    files = {p: "x\n" for p in ARTIFACTS} | {ENV_TEMPLATES[0]: ENV_TEXT}
    commit(root, files, "deploy artifacts", executable=("scripts/release/deploy-vps.sh",))
    r = Release.create("1.1.0", root=root)
    yield r
    r.close()


def _b4(r: Release, secrets_toml: str) -> Any:
    (r.config.root / "relnb.toml").write_text(PROJECT + secrets_toml)
    r.config = relnb.load_config(r.config.root / "relnb.toml")
    return deploy_artifacts(GateContext(r, "B4"))


def test_b4_never_compares_the_templates_with_relnb_own_environment(release, monkeypatch):
    """issue 19 item 13: B4 took relnb's own process environment for production's keys: every
    template key set on the release machine → passed. Now: artifacts checked, keys uncompared."""
    for k, v in ALL_KEYS.items():
        monkeypatch.setenv(k, v)
    out = _b4(release, "")
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "deploy artifact(s) present at" in out.summary
    assert "env template keys not compared for production: only relnb's own environment could be seen" in out.summary
    assert out.evidence["missing_files"] == [] and out.evidence["provided_key_count"] is None
    # a missing artifact still fails: what can be checked at the SHA is checked
    sha = commit(release.config.root, {ARTIFACTS[0]: None}, "drop the compose template")
    later = Release.create("1.1.1", root=release.config.root)
    try:
        out = _b4(later, "")
    finally:
        later.close()
    assert out.status is Status.FAILED and out.evidence["sha"] == sha
    assert out.summary == f"deploy artifact(s) missing at {sha[:12]}: {ARTIFACTS[0]}"


def test_b4_reads_production_keys_from_its_listing_command(release):
    """issue 19 item 13: a command listing production's variables is production's key source."""
    listing = "env -i " + " ".join(f"{k}={v}" for k, v in ALL_KEYS.items()) + " env"
    out = _b4(release, f'source = "command"\ncommand = {json.dumps(listing)}\n')
    assert out.status is Status.PASSED, out.summary
    assert out.summary.endswith("4 env key(s) provided for production (command `" + listing + "`)")
    listing = listing.replace("KEYCLOAK_URL=k ", "")
    out = _b4(release, f'source = "command"\ncommand = {json.dumps(listing)}\n')
    assert out.status is Status.FAILED and "1 env key(s) not provided for production: KEYCLOAK_URL" in out.summary
    out = _b4(release, 'source = "command"\ncommand = "exit 3"\n')
    assert out.status is Status.INCONCLUSIVE and "listing command exited 3" in out.summary
    assert "x-secret" not in json.dumps(out.evidence)


def test_b4_env_templates_must_list_every_required_secret(release, tmp_path):
    """issue 19 item 13: the templates at the release SHA must name every secret production
    requires (C4's list); a required secret no template lists failed nowhere."""
    dotenv = tmp_path / "prod.env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in {**ALL_KEYS, "SENTRY_DSN": "https://k@s/1"}.items()))
    toml = f'source = "dotenv"\ndotenv = {json.dumps(str(dotenv))}\n'
    out = _b4(release, toml + 'required = ["DATABASE_URL", "REDIS_URL"]\n')
    assert out.status is Status.PASSED, out.summary
    out = _b4(release, toml + 'required = ["DATABASE_URL", "SENTRY_DSN"]\n')
    assert out.status is Status.FAILED, out.summary
    assert "required secret(s) for production not listed in any env template at" in out.summary
    assert out.summary.endswith(": SENTRY_DSN") and out.evidence["required_keys_not_in_templates"] == ["SENTRY_DSN"]
