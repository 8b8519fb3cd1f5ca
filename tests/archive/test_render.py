"""The archived ipynb passes strict nbval inside the archive; the HTML page needs no network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from relnb import Outcome, Release
from relnb.archive import archive_release

from .builders import project_with_history


@pytest.fixture
def archive_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    root = project_with_history(tmp_path / "proj")
    r = Release.create("1.1.0", root=root)
    r.check("A1")
    r.run("B5", lambda: Outcome.passed("5 smoke flows passed", flows=5))
    r.run("B7", lambda: Outcome.failed("DLQ grew by 3", dlq=[0, 1, 3]))
    r.incident("DLQ growth", severity="minor", started_at="2026-01-05T10:00:00+00:00")
    for i in range(12):
        r.journal.append(
            "sample",
            {
                "gate": "D7",
                "ts": 1000.0 + 5 * i,
                "values": {"error_rate": 0.001 * (i % 4), "latency_p95": 0.2 + 0.01 * i},
            },
        )
    # a failed gate stays failed in the archive: the release is sealed as abandoned, the only
    # way an unfinished release is sealed (issue 19 item 5)
    r.abandon(reason="DLQ growth: the fix ships in 1.1.1")
    r.close()
    archive_release("1.1.0", root=root)
    return root / "releases" / "1.1.0"


def _nbval(nb_dir, *flags):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *flags,
            "release.ipynb",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(nb_dir),
            "-o",
            "addopts=",
            "-o",
            "testpaths=",
        ],
        cwd=nb_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ipynb_passes_strict_nbval_and_fails_when_an_output_is_edited(archive_dir, tmp_path):
    nb = json.loads((archive_dir / "release.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    assert all("text/plain" in o["data"] for c in code for o in c["outputs"])
    copy = tmp_path / "copy"
    shutil.copytree(archive_dir, copy)
    strict = _nbval(copy, "--nbval")
    assert strict.returncode == 0, strict.stdout[-3000:]
    # the check can fail: an edited stored output no longer matches what the record produces
    for c in nb["cells"]:
        if c["source"].startswith("# notebook") and '"B7"' in c["source"]:
            c["outputs"][0]["data"]["text/plain"] = "[PASS] B7 everything fine"
    (copy / "release.ipynb").write_text(json.dumps(nb))
    edited = _nbval(copy, "--nbval")
    assert edited.returncode != 0 and "B7" in edited.stdout


ASSET = re.compile(
    r"""(?:src|href|data|action|poster)\s*=\s*["']?\s*(?:https?:)?//|@import|url\(\s*["']?\s*(?:https?:)?//""",
    re.I,
)


def test_html_is_self_contained(archive_dir):
    page = (archive_dir / "release.html").read_text()
    assert not ASSET.findall(page)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert page.count("<svg") >= 2  # the monitoring charts, inline
    assert 'data-gate="B7" data-status="failed"' in page
    assert "DLQ growth" in page and "Notebook source (notebook.py)" in page


def test_html_renders_in_chromium_with_networking_disabled(archive_dir, tmp_path, chromium):
    browser = chromium.browser  # installed by the fixture when missing, never skipped
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("unshare -rn (a network namespace without interfaces) is not permitted here")
    shot = tmp_path / "page.png"
    flags = [
        "--headless",
        "--no-sandbox",  # `unshare -r` maps us to root in the namespace: the sandbox would refuse
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    page = (archive_dir / "release.html").as_uri()
    dom = subprocess.run(
        ["unshare", "-rn", browser, *flags, "--dump-dom", page],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 'data-gate="B7"' in dom.stdout, dom.stderr[-2000:]
    subprocess.run(
        [
            "unshare",
            "-rn",
            browser,
            *flags,
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file() and shot.stat().st_size > 20_000
    try:
        from PIL import Image
    except ImportError:
        return
    img = Image.open(shot).convert("RGB").resize((60, 120))
    colours = {px for px in img.getdata()}
    assert len(colours) > 20  # not a blank page
