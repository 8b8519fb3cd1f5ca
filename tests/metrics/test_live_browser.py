"""The monitoring window's status line and charts update live in a real browser, in marimo run and edit.

`test_charts_live.py` checks what `auto_display` hands to marimo; only a browser shows whether
marimo actually repaints a cell's output while that cell is still running (the whole point of a
30–60 minute window). Here a notebook written into tmp_path runs `run_window` against a real
/metrics endpoint (tests/metrics/_app.py on a free 127.0.0.1 port, scraped by `ScrapeSource`)
with `on_tick=auto_display(rules)`, exactly as relnb's gates do; `marimo run` / `marimo edit
--headless --no-token` serve it and headless Debian chromium (driven by selenium through
/usr/bin/chromedriver: no browser download) is sampled every 0.4 s.

What counts as "live": while the cell has not finished (its final marker is not on the page yet),
the status line's sample count and elapsed time rise, the Vega-Lite data the page holds grows,
and the chart's canvas is repainted with more green points. Run mode is watched to the end
(passed); in edit mode the test presses "run" (edit mode does not auto-run by default), watches
the ticks, then presses the stop button: the window must end `interrupted`, never passed.
Screenshots go to the test's tmp dir and, when writable, to `.ci-artifacts/` at the repo root.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._app import FaultyApp

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POLL_S = 0.4
PAINT_LAG_POLLS = 3  # a repaint may trail the data by a frame or two on a loaded machine

NOTEBOOK = """\
import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo

    from relnb.metrics import Rule, ScrapeSource, run_window
    from relnb.metrics.live import auto_display

    rules = [
        Rule("error_rate", max=0.5, min_samples=2),
        Rule("latency_p95", max=5.0, min_samples=2),
    ]
    outcome = run_window(
        ScrapeSource([{url!r}]),
        rules,
        duration_s={duration},
        interval_s=1,
        on_tick=auto_display(rules, every_s=1),
    )
    mo.output.append(mo.Html(f'<p class="relnb-test-outcome">{{outcome.status}}</p>'))
    return


if __name__ == "__main__":
    app.run()
"""

# One consistent look at the page: status line(s), the end marker, and per chart the rows the
# page was handed (the Vega-Lite datasets in marimo's mime renderer) and what the canvas shows.
SNAPSHOT_JS = r"""
const status = [...document.querySelectorAll('.relnb-window-status')].map(e => e.textContent);
const marker = document.querySelector('.relnb-test-outcome');
const charts = [];
for (const el of document.querySelectorAll('marimo-mime-renderer')) {
  let mime = '';
  try { mime = JSON.parse(el.dataset.mime); } catch (e) { mime = el.dataset.mime || ''; }
  if (!mime.startsWith('application/vnd.vegalite')) continue;
  const rows = {};
  try {
    const spec = JSON.parse(JSON.parse(el.dataset.data));
    for (const [k, v] of Object.entries(spec.datasets || {}))
      if (k.startsWith('points:')) rows[k] = v.length;
  } catch (e) {}
  const root = el.shadowRoot || el;
  const canvas = root.querySelector('.vega-embed canvas');
  const svg = root.querySelector('.vega-embed svg');
  let hash = null, green = 0;
  if (canvas && canvas.width > 0 && canvas.height > 0) {
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 0;
    for (let i = 0; i < px.length; i += 4) {
      const r = px[i], g = px[i + 1], b = px[i + 2], a = px[i + 3];
      h = (Math.imul(h, 31) + r + (g << 8) + (b << 16) + (a << 24)) | 0;
      // the points' fill (#1a7f37, "not breaching"); lines are grey, thresholds red
      if (a > 200 && Math.abs(r - 26) < 40 && Math.abs(g - 127) < 40 && Math.abs(b - 55) < 40)
        green++;
    }
    hash = h;
  }
  charts.push({rows, hash, green, canvas: !!canvas, svg: !!svg});
}
return {status, outcome: marker ? marker.textContent.trim() : null, charts};
"""

_DUR = r"(?:\d+h)?(?:\d+m)?(?:\d+s)?"  # relnb's format_duration: 7s, 1m00s, 1h05m
STATUS_RE = re.compile(rf"\[window ({_DUR})/({_DUR}), ({_DUR}) left\] (\w+)")


def seconds(dur: str) -> int:
    """`1m05s` → 65 (the status line's durations, rounded to whole seconds)."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", dur))


@dataclass
class Snapshot:
    t: float
    status: list[str]
    outcome: str | None
    charts: list[dict[str, Any]] = field(default_factory=list)

    def _parsed(self) -> re.Match[str] | None:
        return STATUS_RE.search(self.status[0]) if len(self.status) == 1 else None

    @property
    def elapsed(self) -> int | None:
        m = self._parsed()
        return seconds(m.group(1)) if m else None

    @property
    def head(self) -> str | None:
        """`N samples` → the count as a string; at the end, the outcome (`passed`, …)."""
        m = self._parsed()
        return m.group(4) if m else None

    @property
    def samples(self) -> int | None:
        m = self._parsed()
        if not m or not m.group(4).isdigit():
            return None
        rest = self.status[0][m.end() :]
        return int(m.group(4)) if rest.startswith(" samples") else None

    @property
    def running(self) -> bool:
        """The cell is still inside run_window: a tick's line, and no end marker yet."""
        return self.outcome is None and self.samples is not None


def snapshot(driver: Any, t0: float) -> Snapshot:
    raw = driver.execute_script(SNAPSHOT_JS)
    return Snapshot(time.monotonic() - t0, raw["status"], raw["outcome"], raw["charts"])


def save_shot(driver: Any, tmp_path: Path, name: str) -> Path:
    """Into the test's tmp dir, and a copy into .ci-artifacts/ when the repo lets us write it."""
    shot = tmp_path / name
    driver.save_screenshot(str(shot))
    assert shot.is_file() and shot.stat().st_size > 10_000, f"screenshot {shot} is empty"
    try:
        artifacts = REPO / ".ci-artifacts"
        artifacts.mkdir(exist_ok=True)
        shutil.copy2(shot, artifacts / f"live-browser-{name}")
    except OSError as exc:  # a read-only checkout still keeps the tmp copy
        print(f"not copied to .ci-artifacts: {exc}", file=sys.stderr)
    return shot


@pytest.fixture(scope="module")
def app() -> Iterator[FaultyApp]:
    a = FaultyApp(rps=200)
    yield a
    a.close()


@pytest.fixture(scope="module")
def driver(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    work = tmp_path_factory.mktemp("chromium")
    opts = Options()
    opts.binary_location = chromium.browser
    for flag in (
        *chromium.flags,
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--window-size=1200,1300",
        f"--user-data-dir={work / 'profile'}",
    ):
        opts.add_argument(flag)
    # An explicit driver path: selenium does not run Selenium Manager (which would download).
    service = Service(chromium.driver, log_output=str(work / "chromedriver.log"))
    drv = webdriver.Chrome(service=service, options=opts)
    drv.set_script_timeout(20)
    try:
        yield drv
    finally:
        drv.quit()


def write_notebook(tmp_path: Path, url: str, duration: int) -> Path:
    nb = tmp_path / "live_window.py"
    nb.write_text(NOTEBOOK.format(url=url, duration=duration))
    return nb


def start_marimo(mode: str, nb: Path, port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """`marimo run|edit` on 127.0.0.1:port with its config/home inside tmp_path; waits for HTTP."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".state"),
        "MARIMO_SKIP_UPDATE_CHECK": "1",
    }
    cmd = [sys.executable, "-m", "marimo", mode, str(nb), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--headless"]
    if mode == "edit":
        cmd.append("--no-token")
    log = open(tmp_path / f"marimo-{mode}.log", "wb")  # noqa: SIM115 (closed by stop_marimo)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_marimo(proc)
    pytest.fail(
        f"marimo {mode} did not serve on port {port} (exit {proc.returncode}):\n"
        + (tmp_path / f"marimo-{mode}.log").read_text(errors="replace")[-3000:]
    )


def stop_marimo(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    proc.log.close()  # type: ignore[attr-defined]


def watch(driver: Any, t0: float, until: Any, timeout: float, what: str) -> list[Snapshot]:
    """Sample the page every POLL_S until `until(snapshots)` holds; fail naming `what` if not."""
    snaps: list[Snapshot] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snaps.append(snapshot(driver, t0))
        if until(snaps):
            return snaps
        time.sleep(POLL_S)
    last = snaps[-1] if snaps else None
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last page state: {last}")


def assert_live(snaps: list[Snapshot], mode: str) -> None:
    """The page changed while the cell was running: counts, elapsed, datasets and pixels."""
    running = [s for s in snaps if s.running]
    assert running, f"{mode}: never saw the window running"
    counts = [s.samples or 0 for s in running]
    assert min(counts) <= 3 and max(counts) >= 6, f"{mode}: sample counts seen {counts}"
    assert counts == sorted(counts), f"{mode}: sample count went backwards: {counts}"
    elapsed = [s.elapsed or 0 for s in running]
    assert elapsed[-1] > elapsed[0], f"{mode}: elapsed did not grow: {elapsed}"
    assert len({s.status[0] for s in running}) >= 4, f"{mode}: status line barely changed"

    drawn = [s for s in running if s.charts and s.charts[0]["canvas"]]
    assert drawn, f"{mode}: no rendered vega chart while running: {running[-1]}"
    for s in drawn:
        assert len(s.charts) == 1 and set(s.charts[0]["rows"]) == {
            "points:error_rate",
            "points:latency_p95",
        }, f"{mode}: unexpected chart output {s.charts}"
    rows = [s.charts[0]["rows"]["points:error_rate"] for s in drawn]
    assert min(rows) <= 2 and max(rows) >= 5, f"{mode}: chart data rows seen {rows}"
    # the scrape's first poll has no rate yet: one row per later sample
    for s in drawn:
        n = s.samples or 0
        assert s.charts[0]["rows"]["points:latency_p95"] in (n - 1, n), s
    hashes = [s.charts[0]["hash"] for s in drawn]
    assert len(set(hashes)) >= 3, f"{mode}: chart canvas repainted only {len(set(hashes))}×"
    # every new row shows up as newly painted point pixels (≈18 px per point at this size). vega
    # updates its dataset before it repaints the canvas (the paint is scheduled on the next frame,
    # later still on a loaded machine), so the new pixels must appear within the next few polls,
    # not in the very snapshot that first sees the new row
    for i, (before, after) in enumerate(itertools.pairwise(drawn)):
        grew = (
            after.charts[0]["rows"]["points:error_rate"]
            > before.charts[0]["rows"]["points:error_rate"]
        )
        soon = drawn[i + 1 : i + 1 + PAINT_LAG_POLLS]
        if grew and len(soon) == PAINT_LAG_POLLS:  # the last rows may end with the window
            assert any(s.charts[0]["green"] > before.charts[0]["green"] for s in soon), (
                f"{mode}: rows grew but no new points were painted within {PAINT_LAG_POLLS} polls: "
                f"{before} → {soon}"
            )
    assert drawn[-1].charts[0]["green"] > 0, f"{mode}: no points painted: {drawn[-1]}"


def test_marimo_run_updates_status_and_chart_live(
    app: FaultyApp, driver: Any, free_port: int, tmp_path: Path
) -> None:
    nb = write_notebook(tmp_path, app.url, duration=12)
    proc = start_marimo("run", nb, free_port, tmp_path)
    try:
        t0 = time.monotonic()
        driver.get(f"http://127.0.0.1:{free_port}/")  # run mode executes every cell on load
        mid: list[Path] = []

        def done(snaps: list[Snapshot]) -> bool:
            s = snaps[-1]
            if not mid and s.running and (s.samples or 0) >= 5 and s.charts:
                mid.append(save_shot(driver, tmp_path, "run-mid.png"))
            return s.outcome is not None

        snaps = watch(driver, t0, done, timeout=45, what="the run-mode window to finish")
        assert_live(snaps, "marimo run")
        assert mid, "no screenshot while the window was running"
        end = snaps[-1]
        assert end.outcome == "passed", end
        assert end.head == "passed" and end.elapsed == 12, end
        # the final chart holds every sample but the first (no rate yet)
        assert end.charts[0]["rows"]["points:error_rate"] >= 10, end
        save_shot(driver, tmp_path, "run-final.png")
    finally:
        stop_marimo(proc)


def test_marimo_edit_updates_live_and_interrupt_records_interrupted(
    app: FaultyApp, driver: Any, free_port: int, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    nb = write_notebook(tmp_path, app.url, duration=60)
    proc = start_marimo("edit", nb, free_port, tmp_path)
    try:
        driver.get(f"http://127.0.0.1:{free_port}/")
        # edit mode does not auto-run (auto_instantiate is off): press "run all stale cells" in
        # the bottom-right controls, as the release lead does (the cell's own run button sits
        # under the sticky header strip when the cell is at the top of the page)
        run_all = "[data-testid=chrome-controls-bottom-right] [data-testid=run-button]"

        def run_button() -> Any:
            for b in driver.find_elements(By.CSS_SELECTOR, run_all):
                if b.is_displayed() and b.is_enabled():
                    return b
            return None

        deadline = time.monotonic() + 30
        while (
            not driver.find_elements(By.CSS_SELECTOR, "[data-testid=cell-editor]")
            or run_button() is None
        ):
            if time.monotonic() > deadline:
                pytest.fail("marimo edit: the cell and the run button never appeared")
            time.sleep(0.2)
        t0 = time.monotonic()
        run_button().click()
        snaps = watch(
            driver,
            t0,
            lambda ss: ss[-1].running and (ss[-1].samples or 0) >= 7,
            timeout=30,
            what="edit-mode ticks after pressing run",
        )
        save_shot(driver, tmp_path, "edit-mid.png")
        assert_live(snaps, "marimo edit")

        # the stop button raises KeyboardInterrupt in the cell: the window says interrupted
        driver.find_element(
            By.CSS_SELECTOR,
            "[data-testid=chrome-controls-bottom-right] [data-testid=interrupt-button]",
        ).click()
        after = watch(
            driver,
            t0,
            lambda ss: ss[-1].outcome is not None,
            timeout=20,
            what="the interrupted window's final output",
        )
        end = after[-1]
        assert end.outcome == "interrupted", end
        assert end.head == "interrupted", end
        assert end.elapsed is not None and end.elapsed < 30, end  # cut short, not run out
        assert end.charts and end.charts[0]["rows"]["points:error_rate"] >= 6, end
        save_shot(driver, tmp_path, "edit-interrupted.png")
    finally:
        stop_marimo(proc)
