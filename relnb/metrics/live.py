"""Showing a running window: marimo, Jupyter, or a plain progress line.

Each display is a callable taking a `WindowState`, passed to `run_window(on_tick=...)`.
- marimo: `mo.output.replace(...)` inside the running cell redraws live in `marimo edit` and
  `marimo run` (in `python nb.py` it is a no-op, so script runs also get the text line).
- Jupyter: one `display(..., display_id=True)` handle each for the status and the chart, then
  `handle.update(...)`; saved notebooks keep only the final state.
- headless: a stderr line at most every `every_s`, and a heartbeat at least every `heartbeat_s`
  (the window calls back while it waits, so long intervals still show life).
"""

from __future__ import annotations

import html
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from .charts import LiveCharts
from .rules import Rule

if TYPE_CHECKING:
    from .window import WindowState


class TextProgress:
    """One line per tick at most every `every_s` (window time), always on breaches and the end."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        every_s: float = 15.0,
        heartbeat_s: float = 60.0,
        prefix: str = "monitoring",
    ) -> None:
        self.stream = stream
        self.every_s = min(every_s, heartbeat_s)
        self.prefix = prefix
        self._last: float | None = None
        self.lines = 0

    def __call__(self, state: WindowState) -> None:
        due = self._last is None or state.now - self._last >= self.every_s
        if not (due or state.done or state.new_hard):
            return
        line = state.status_line()
        if state.new_hard:
            line += " — HARD BREACH: " + "; ".join(b.describe() for b in state.new_hard)
        if state.done and state.outcome is not None:
            line = f"{line}\n{self.prefix}: {str(state.outcome.status).upper()} — {state.outcome.summary}"
        stream = self.stream or sys.stderr
        print(f"{self.prefix} {line}", file=stream, flush=True)
        self._last = state.now
        self.lines += 1


def status_html(state: WindowState, note: str = "") -> str:
    colour = (
        "#cf222e"
        if state.verdict.hard_breach
        else ("#9a6700" if state.verdict.breaching_now else "#1a7f37")
    )
    return (
        f'<div class="relnb-window-status" style="font-family:system-ui,sans-serif;font-size:13px;'
        f'border-left:4px solid {colour};padding:4px 8px">{html.escape(state.status_line())}'
        + (
            f'<br><span style="color:#57606a;font-size:11px">{html.escape(note)}</span>'
            if note
            else ""
        )
        + "</div>"
    )


class _ChartDisplay:
    def __init__(self, rules: Sequence[Rule], redraw_every_s: float = 0.0) -> None:
        self.live = LiveCharts(rules)
        self.redraw_every_s = redraw_every_s
        self._chart: Any = None
        self._drawn_at: float | None = None

    def _current_chart(self, state: WindowState) -> Any:
        if not state.heartbeat:
            self.live.update(state)
        stale = self._drawn_at is None or state.now - self._drawn_at >= self.redraw_every_s
        if self._chart is None or ((stale or state.done) and not state.heartbeat):
            self._chart = self.live.chart(state)
            self._drawn_at = state.now
        return self._chart


class MarimoDisplay(_ChartDisplay):
    """Replaces the running cell's output with the status line and the live charts."""

    def __call__(self, state: WindowState) -> None:
        import marimo as mo

        chart = self._current_chart(state)
        mo.output.replace(mo.vstack([mo.Html(status_html(state, self.live.note())), chart]))


class JupyterDisplay(_ChartDisplay):
    """Two display handles (status, chart) updated in place."""

    def __init__(self, rules: Sequence[Rule], redraw_every_s: float = 0.0) -> None:
        super().__init__(rules, redraw_every_s)
        self._status: Any = None
        self._chart_handle: Any = None

    def __call__(self, state: WindowState) -> None:
        from IPython.display import HTML, display

        chart = self._current_chart(state)
        status = HTML(status_html(state, self.live.note()))
        if self._status is None:
            self._status = display(status, display_id=True)
            self._chart_handle = display(chart, display_id=True)
        else:
            self._status.update(status)
            self._chart_handle.update(chart)


class Tee:
    """Several displays at once (e.g. marimo charts plus the stderr line for logs)."""

    def __init__(self, *displays: Callable[[WindowState], object]) -> None:
        self.displays = displays

    def __call__(self, state: WindowState) -> None:
        for d in self.displays:
            d(state)


_plain = threading.local()


@contextmanager
def text_only() -> Iterator[None]:
    """Windows opened in this thread show the text line only: it runs beside the cells."""
    _plain.on = True
    try:
        yield
    finally:
        _plain.on = False


def in_marimo() -> bool:
    mo = sys.modules.get("marimo")
    if mo is None:
        return False
    try:
        return bool(mo.running_in_notebook())
    except Exception:
        return False


def in_jupyter() -> bool:
    if "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def auto_display(
    rules: Sequence[Rule],
    *,
    stream: IO[str] | None = None,
    every_s: float = 15.0,
    heartbeat_s: float = 60.0,
    prefix: str = "monitoring",
) -> Callable[[WindowState], object]:
    """The right display for where the code runs; the text line is always included."""
    text = TextProgress(stream, every_s=every_s, heartbeat_s=heartbeat_s, prefix=prefix)
    if getattr(_plain, "on", False):
        return text  # a check run side by side (sidebyside.py): a display would land in another cell
    if in_marimo():
        return Tee(MarimoDisplay(rules), text)
    if in_jupyter():
        return Tee(JupyterDisplay(rules), text)
    return text
