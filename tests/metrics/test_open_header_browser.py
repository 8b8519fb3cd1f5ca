"""Opening a release notebook in `marimo edit` shows the journal's header before any cell runs.

marimo edit runs nothing on open (auto_instantiate is off, and must stay off: running every cell
would run gates and windows); it shows its session cache, which relnb writes from the journal
when `relnb new`, a headless `relnb run` or a seal changes what the header says. Here a project
in tmp_path gets `relnb new`, a skip recorded through the public API and a headless `relnb run`
that passes A1 (CI) and records A2's sign-off; then Debian chromium opens `marimo edit
--headless` (tests/metrics/test_live_browser.py's helpers: config and home inside tmp_path, so
marimo's defaults apply) and the header must read what the journal says, with no cell run: the
journal gains no event, and no kernel holds the release's lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import relnb

from ..core.helpers import make_project
from ..core.test_cli import CONFIG
from .test_live_browser import driver, save_shot, start_marimo, stop_marimo  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LEAD = "Lead <lead@example.org>"

# The header as the page shows it: its bold line, and the status rows of its table.
HEADER_JS = r"""
const line = [...document.querySelectorAll('strong')].map(e => e.textContent.trim())
  .find(t => t.startsWith('Release 1.0.0:')) || null;
const rows = {};
for (const tr of document.querySelectorAll('.relnb-status tr[data-gate]'))
  rows[tr.dataset.gate] = tr.dataset.status;
const editors = document.querySelectorAll('[data-testid=cell-editor]').length;
return {line, rows, editors};
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELNB_USER": LEAD}
    env.pop("RELNB_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "relnb.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def journal_events(project: Path) -> int:
    return len((project / "releases" / "1.0.0" / "journal.jsonl").read_text().splitlines())


def test_marimo_edit_shows_the_journals_header_on_open_without_running_a_cell(
    driver: Any,  # noqa: F811 (the browser fixture imported above)
    free_port: int,
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "proj")
    (project / "relnb.toml").write_text(CONFIG.format(log=project / "actions.log"))
    new = cli("new", "1.0.0", cwd=project)
    assert new.returncode == 0, new.stdout + new.stderr
    nb = project / "notebooks" / "release-1.0.0.py"

    release = relnb.Release.open("1.0.0", root=project)  # through the public API, like a team's script
    try:
        release.skip("B3", reason="no images to build", by=LEAD)
    finally:
        release.close()
    run = cli("run", str(nb), "--sign-off", f"A2={LEAD}:OpenAPI updated", cwd=project)
    assert run.returncode == 2, run.stdout + run.stderr  # pending: most of the release is still ahead

    state = relnb.read_state("1.0.0", root=project)
    rows = {r.gate_id: str(r.status) for r in state.table().rows}
    assert (rows["A1"], rows["A2"], rows["B3"]) == ("passed", "passed", "skipped"), rows
    release = relnb.Release.open("1.0.0", root=project)
    try:
        expected = str(relnb.ui.summary(release))  # the header's line, outside marimo: from relnb.ui
    finally:
        release.close()
    assert expected.startswith("Release 1.0.0: pending — 2 passed, 1 skipped, 30 pending"), expected
    before = journal_events(project)

    proc = start_marimo("edit", nb, free_port, tmp_path)
    try:
        t0 = time.monotonic()
        driver.get(f"http://127.0.0.1:{free_port}/")
        seen: dict[str, Any] = {}
        while time.monotonic() - t0 < 40:
            seen = driver.execute_script(HEADER_JS)
            if seen["line"] and seen["editors"]:
                break
            time.sleep(0.3)
        time.sleep(1.5)  # long enough for an auto-run (if anything were to run) to show in the journal
        seen = driver.execute_script(HEADER_JS)
        save_shot(driver, tmp_path, "edit-open-header.png")
        assert seen["editors"] >= 5, f"the notebook's cells never appeared: {seen}"
        assert seen["line"] == expected, f"header on open: {seen['line']!r}, journal says {expected!r}"
        assert seen["rows"] == rows, f"status table on open: {seen['rows']}, journal: {rows}"
        # nothing ran: the notebook's Release.open would hold the journal's lock, its gates append
        assert journal_events(project) == before, "opening the notebook appended to the journal"
        relnb.Release.open("1.0.0", root=project).close()  # raises JournalLocked if a kernel ran it
    finally:
        stop_marimo(proc)
