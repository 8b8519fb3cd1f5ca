"""Every archive committed under releases/ stays intact, replayable and re-executable.

This is the CI step of issue 8: the project's own test command proves, on every run, that the
archives it keeps (the demo's release among them, as a fixture) still verify against their
manifest and hash chain, still replay to identical gate outcomes offline, and still pass nbval —
so a change to relnb that would break an old record fails here, not in a reviewer's hands.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELEASES = ROOT / "releases"
ARCHIVES = sorted(p.parent for p in RELEASES.glob("*/manifest.json"))


def _relnb(*args: str, cwd: Path = ROOT, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELNB_")}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "relnb.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=900, env=env, stdin=subprocess.DEVNULL,
    )


def test_the_demo_archive_is_committed_as_a_fixture():
    assert ARCHIVES, f"no sealed archive under {RELEASES}: commit the demo's (see releases/README.md)"
    projects = {d.name: tomllib.loads((d / "config" / "relnb.toml").read_text())["project"]["name"] for d in ARCHIVES}
    assert "docflow" in projects.values(), projects  # the demo app's release
    for d in ARCHIVES:
        summary = json.loads((d / "summary.json").read_text())
        assert summary["verdict"] and summary["gates"], d.name


def test_verify_all_passes_on_committed_archives():
    proc = _relnb("verify", "--all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(ARCHIVES)} releases checked" in proc.stdout, proc.stdout
    # signed archives are checked against the allowed_signers they carry, away from their repo
    signed = [d for d in ARCHIVES if (d / "signing" / "allowed_signers").is_file()]
    assert signed, "the demo's archive is signed"
    assert proc.stdout.count("validly signed, 0 unsigned — OK") == len(signed), proc.stdout


def test_verify_all_names_a_tampered_committed_archive(tmp_path):
    """The same command fails, naming the file, when one byte of a committed archive changes."""
    copy = tmp_path / "releases"
    shutil.copytree(RELEASES, copy)
    victim = copy / ARCHIVES[0].name / "release.html"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    (tmp_path / "relnb.toml").write_text('[project]\nname = "fixture-copy"\n')
    proc = _relnb("verify", "--all", cwd=tmp_path)
    assert proc.returncode != 0
    assert "release.html" in proc.stdout + proc.stderr


@pytest.mark.parametrize("archive", ARCHIVES, ids=lambda p: p.name)
def test_committed_archive_replays_identically(archive):
    # offline for real: a network namespace with no interfaces, and none of the services (or the
    # app repository) the release once talked to
    usable = shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    if not usable:
        pytest.fail("unshare -rn is needed to replay in a network namespace without interfaces")
    proc = _relnb("replay", str(archive), prefix=("unshare", "-rn"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "replay identical" in proc.stdout, proc.stdout


@pytest.mark.parametrize("archive", ARCHIVES, ids=lambda p: p.name)
def test_committed_archive_passes_nbval(archive, tmp_path):
    # nbval runs in a copy: executing a notebook must never write next to the sealed files
    work = tmp_path / archive.name
    shutil.copytree(archive, work)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "-q", "-p", "no:cacheprovider", "release.ipynb"],
        cwd=work, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert _relnb("verify", str(archive)).returncode == 0
