"""Signing enabled but not required: stripped signatures do not verify as if signed (issue 22).

With `[signing] enabled = true` an unsigned approval is allowed (marked UNSIGNED), so an
archive whose approvals were stripped and whose chain and manifest were re-hashed looks like an
honest unsigned one. The rule `relnb verify` applies: where the project (or the archive's own
policy) enables signing, a sealed archive needs a signed seal. `relnb archive` signs the seal
over the journal head whenever signing is on, so a valid seal signature vouches for every event
before it, unsigned approvals included; without one, verify fails and names the signatures the
policy expected.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relnb.archive import files as F

from ..signing.conftest import ALICE, Keys, Repo, _no_ambient_keys, keys, repo  # noqa: F401
from ..signing.test_marks import _abandon_as_alice, _project, _record, _waive_as_bob, cli
from .test_forgery import INTEGRITY_ONLY, forge, strip_approvals

ENABLED = (
    f'[project]\nname = "marks"\nrelease_lead = "Alice <{ALICE}>"\n[signing]\nenabled = true\n'
)
OFF = f'[project]\nname = "marks"\nrelease_lead = "Alice <{ALICE}>"\n'


@pytest.fixture
def enabled_archive(repo: Repo, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A sealed archive of a project that enables (not requires) signing, every approval and
    the seal signed with real keys."""
    root = _project(repo, "[signing]\nenabled = true\n")
    _record(root, monkeypatch, keys.priv("alice"))
    _waive_as_bob(root, monkeypatch, keys.priv("bob"))
    _abandon_as_alice(root, monkeypatch)
    sealed = cli("archive", "1.0.0", cwd=root, env={"RELNB_SIGNING_KEY": str(keys.priv("alice"))})
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    assert (root / "relnb.toml").read_text() == ENABLED
    return root


def test_honest_signed_archive_verifies_where_signing_is_enabled(enabled_archive: Path):
    out = cli("verify", "1.0.0", cwd=enabled_archive)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sealed archive OK" in out.stdout and "6 validly signed, 0 unsigned — OK" in out.stdout
    assert INTEGRITY_ONLY in out.stdout  # enabled is not required: still said


def test_stripped_signatures_fail_where_signing_is_enabled(enabled_archive: Path):
    """Approvals and the seal's signature removed, the archived policy left as it was (enabled),
    everything re-hashed: the hashes hold, the missing signatures are named."""
    d = enabled_archive / "releases" / "1.0.0"
    forge(d, strip_approvals)
    out = cli("verify", "1.0.0", cwd=enabled_archive)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "sealed archive OK" in out.stdout  # a true forgery: every hash was put back
    sealed_seq = len((d / F.JOURNAL).read_text().splitlines()) - 1
    assert f"signing is enabled but seq {sealed_seq} seal is unsigned" in out.stdout, out.stdout
    assert "signatures may have been stripped" in out.stdout
    assert "sign-off A5" in out.stdout and "waiver B7" in out.stdout
    assert "0 validly signed, 6 unsigned — FAILED" in out.stdout


def test_stripped_archive_fails_by_its_own_policy_in_a_project_without_signing(
    enabled_archive: Path,
):
    """Verified where the project does not sign (a reviewer's checkout), the archive's own
    policy says signing was on when it was sealed: it needs its seal signature all the same."""
    d = enabled_archive / "releases" / "1.0.0"
    forge(d, strip_approvals)
    (enabled_archive / "relnb.toml").write_text(OFF)
    out = cli("verify", "1.0.0", cwd=enabled_archive)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "signing is enabled but seq" in out.stdout and "seal is unsigned" in out.stdout


def test_unsigned_approvals_under_a_signed_seal_still_verify(
    repo: Repo,  # noqa: F811
    keys: Keys,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    """Enabled mode allows approvals made without a key: the seal signature vouches for them."""
    root = _project(repo, "[signing]\nenabled = true\n")
    _record(root, monkeypatch, None)  # alice had no key at hand
    monkeypatch.delenv("RELNB_SIGNING_KEY", raising=False)
    _waive_as_bob(root, monkeypatch, None)
    _abandon_as_alice(root, monkeypatch)
    sealed = cli("archive", "1.0.0", cwd=root, env={"RELNB_SIGNING_KEY": str(keys.priv("alice"))})
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    out = cli("verify", "1.0.0", cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 validly signed, 5 unsigned" in out.stdout and "— OK" in out.stdout
    assert "seal is unsigned" not in out.stdout


def test_archiving_without_a_key_where_signing_is_enabled_is_refused_before_writing(
    repo: Repo, keys: Keys, monkeypatch: pytest.MonkeyPatch  # noqa: F811
):
    """An unsigned seal would fail `relnb verify` (it cannot be told from a stripped one): the
    archive says so first, in one line with the fix, and writes nothing."""
    root = _project(repo, "[signing]\nenabled = true\n")
    _record(root, monkeypatch, keys.priv("alice"))
    _waive_as_bob(root, monkeypatch, keys.priv("bob"))
    _abandon_as_alice(root, monkeypatch)
    monkeypatch.delenv("RELNB_SIGNING_KEY", raising=False)
    refused = cli("archive", "1.0.0", cwd=root, env={"RELNB_SIGNING_KEY": ""})
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "the seal must be signed" in refused.stderr and "RELNB_SIGNING_KEY" in refused.stderr
    assert not (root / "releases" / "1.0.0" / F.MANIFEST).exists()
    sealed = cli("archive", "1.0.0", cwd=root, env={"RELNB_SIGNING_KEY": str(keys.priv("alice"))})
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
