"""Independent gates of a section run side by side in headless runs (issue 23).

A notebook runs its cells one after another, so section B took the sum of its gates (the queue
watch, the log window, the smoke flows, the CORS probe), not its slowest. When a headless run
reaches a check or action cell, relnb starts, in background threads, the other automatic checks of that
section that can run now: their inputs (`depends_on`) are settled, they have not run, no
decision of this run touches them (a skip, a forced re-run), and the notebook asks for them with
the template's one-liner (`release.check("B6")`), so what runs early is exactly what the cell
would have run. When their cells come, they wait for that result.

Only checks: actions run once on a person's go, sign-offs wait for a person, and section D is a
sequence. Only headless: a release lead stepping through cells in marimo sees each gate run in
its own cell (and a monitoring window's live chart there). The journal stays one ordered writer:
appends are serialised by its lock, and the headless parent prints each gate as it settles.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from .gates import GATES, Kind, get_gate
from .pyast import import_parsers_early
from .results import GateResult

if TYPE_CHECKING:
    from .release import Release

# Sections whose checks may run side by side: D is a sequence, F records what happened.
SECTIONS = frozenset("ABCE")

_inside = threading.local()


def _one_liner(gate_id: str) -> re.Pattern[str]:
    """`release.check("B6")`, or with the sign-off form the template gives every check cell
    (`submitted=b6_form.value`, read only when a person settles the gate): nothing of its own."""
    return re.compile(rf"""\.check\(\s*["']{gate_id}["']\s*(?:,\s*submitted\s*=\s*[A-Za-z_][\w.]*\s*)?\)""")


class SideBySide:
    """The background checks of one release: started once, each taken by its own cell."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self._futures: dict[str, Future[GateResult]] = {}
        self._lock = threading.Lock()
        self._source: str | None = None

    @staticmethod
    def inside() -> bool:
        """In a background check: it must not start others (nor wait on itself)."""
        return bool(getattr(_inside, "on", False))

    def _notebook_source(self) -> str:
        if self._source is None:
            rel = self.release.info.get("notebook")
            path = Path(self.release.config.root) / rel if rel else None
            try:
                self._source = path.read_text(encoding="utf-8") if path else ""
            except OSError:
                self._source = ""
        return self._source

    def ready(self, section: str) -> list[str]:
        """The section's checks that can start now, in checklist order."""
        from .checklist import takes_sign_off

        if section not in SECTIONS:
            return []
        release = self.release
        ctx = release.context
        manual = release.config.data["gates"]["manual"]
        source = self._notebook_source()
        state = release.state
        out = []
        for g in GATES:
            if g.section != section or g.kind is not Kind.CHECK or g.id in self._futures:
                continue
            if g.id in ctx.rerun or g.id in ctx.skips or takes_sign_off(g.id, manual):
                continue
            gs = state.gates[g.id]
            if gs.result is not None or gs.running_since is not None or gs.skip is not None:
                continue
            if not all(state.result(dep).status.ok_for_promotion for dep in g.depends_on):
                continue
            if not _one_liner(g.id).search(source):
                continue
            out.append(g.id)
        return out

    def start_ready(self, section: str, *, besides: str) -> None:
        import_parsers_early()
        with self._lock:
            for gid in self.ready(section):
                if gid == besides:
                    continue
                future: Future[GateResult] = Future()
                self._futures[gid] = future
                # not a daemon: the process waits for it, so no gate is cut off by the notebook's end
                threading.Thread(target=self._run, args=(gid, future), name=f"relnb-{gid}").start()

    def _run(self, gate_id: str, future: Future[GateResult]) -> None:
        from .metrics.live import text_only

        _inside.on = True
        try:
            with text_only():
                future.set_result(self.release.check(gate_id))
        except BaseException as exc:  # the gate's own cell raises it, as if it had run there
            future.set_exception(exc)

    def take(self, gate_id: str) -> GateResult | None:
        """The result of a gate started in the background, once it settles; None if it was not."""
        with self._lock:
            future = self._futures.get(get_gate(gate_id).id)
        return future.result() if future is not None else None


def start_beside(release: Release, gate_id: str) -> SideBySide | None:
    """Headless, at a cell of `gate_id` (a check or an action): start what can run beside it."""
    if not release.context.headless or SideBySide.inside():
        return None
    side: SideBySide = release.__dict__.setdefault("_side_by_side", SideBySide(release))
    side.start_ready(get_gate(gate_id).section, besides=get_gate(gate_id).id)
    return side


__all__ = ["SECTIONS", "SideBySide", "start_beside"]
