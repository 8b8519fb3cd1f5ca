"""`[project] env_file`: a project's variables between shells (issue 21, `relnb demo --keep`)."""

from __future__ import annotations

import os

import pytest

import relnb
from relnb import ConfigError

from .helpers import make_project

CANARY = "postgresql://app:Canary-pw-8f3e1d@127.0.0.1:9/app"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("ENVFILE_TEST_DB", raising=False)
    monkeypatch.delenv("ENVFILE_TEST_KEPT", raising=False)
    root = make_project(
        tmp_path / "p",
        '[project]\nenv_file = ".env"\nmigrations_kind = "none"\n[environments.production]\n'
        'base_url = "http://127.0.0.1:9"\ndatabase_url_env = "ENVFILE_TEST_DB"\n',
    )
    env = root / ".env"
    env.write_text(f"# kept by the demo\nENVFILE_TEST_DB='{CANARY}'\nENVFILE_TEST_KEPT=from-file\n")
    env.chmod(0o600)
    yield root
    for var in ("ENVFILE_TEST_DB", "ENVFILE_TEST_KEPT"):
        os.environ.pop(var, None)


def test_the_env_file_sets_what_the_shell_did_not(project, monkeypatch):
    monkeypatch.setenv("ENVFILE_TEST_KEPT", "from-shell")
    relnb.load_config(project / "relnb.toml")
    assert os.environ["ENVFILE_TEST_DB"] == CANARY
    assert os.environ["ENVFILE_TEST_KEPT"] == "from-shell"  # the shell wins


def test_its_secrets_are_scrubbed_once_the_release_opens(project, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    r = relnb.Release.create("1.0.0", root=project)
    try:
        assert CANARY not in relnb.scrub(f"cannot connect to {CANARY}")
        assert "Canary-pw-8f3e1d" not in relnb.scrub("password Canary-pw-8f3e1d rejected")
    finally:
        r.close()


def test_a_file_others_can_read_is_refused_with_the_fix(project):
    (project / ".env").chmod(0o644)
    with pytest.raises(ConfigError, match=r"project\.env_file.*readable by other users") as exc:
        relnb.load_config(project / "relnb.toml")
    assert "chmod 600" in str(exc.value.fix)
    assert "ENVFILE_TEST_DB" not in os.environ


def test_a_missing_file_is_a_config_error_naming_the_key(project):
    (project / ".env").unlink()
    with pytest.raises(ConfigError, match=r"relnb\.toml: project\.env_file: cannot read"):
        relnb.load_config(project / "relnb.toml")
