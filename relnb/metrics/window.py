"""The monitoring window loop: poll, record, judge, show; until time is up or a hard breach.

The loop owns no storage: `record(sample_dict)` is called for every sample before it is judged,
so the journal holds everything the verdict saw. After a kernel restart (or a `marimo run` page
reload) the caller passes the recorded samples back as `resume_samples`; the window's clock starts
at the first recorded sample, so a restart neither extends nor shortens the window, and the time
the kernel was away shows up as a gap (too long a gap ⇒ inconclusive, never a pass). A window
that must start at a known instant (C1's soak: when staging began serving the release) passes
`start_ts`; samples from before it are dropped, never counted, and a source's history since then
goes in as `resume_samples`, so the loop only watches what is left.

Stopping the cell raises KeyboardInterrupt inside `sleep` or `poll`; the window then returns an
`interrupted` outcome (with the evidence so far) instead of propagating, so the notebook can
journal it. Ticks are aligned to `start + k * interval`, so a slow poll does not drift the window.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..redact import scrub, scrub_obj
from ..results import Outcome
from .rules import Rule
from .samples import MetricSource, Sample, as_sample, fmt_value
from .verdict import Baseline, Breach, WindowVerdict, format_duration


@dataclass
class WindowState:
    """What a display needs after each tick (and on heartbeats while waiting)."""

    verdict: WindowVerdict
    now: float
    duration_s: float
    interval_s: float
    sample: Sample | None = None
    heartbeat: bool = False
    resumed: int = 0
    done: bool = False
    outcome: Outcome | None = None
    new_hard: list[Breach] = field(default_factory=list)

    @property
    def elapsed_s(self) -> float:
        return self.verdict.elapsed(self.now)

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.duration_s - self.elapsed_s)

    @property
    def rules(self) -> list[Rule]:
        return self.verdict.rules

    @property
    def breaches(self) -> list[Breach]:
        return self.verdict.breaches

    def status_line(self) -> str:
        latest = self.verdict.latest()
        values = ", ".join(f"{m} {fmt_value(m, v)}" for m, v in latest.items())
        hard = sum(1 for b in self.breaches if b.hard)
        breaches = f"{len(self.breaches)} breach(es)" + (f", {hard} hard" if hard else "")
        head = "heartbeat" if self.heartbeat else f"{self.verdict.samples} samples"
        if self.outcome is not None:
            head = f"{self.outcome.status}"
        gaps = f", {self.verdict.gap_samples} gaps" if self.verdict.gap_samples else ""
        return (
            f"[window {format_duration(self.elapsed_s)}/{format_duration(self.duration_s)}, {format_duration(self.remaining_s)} left] "
            f"{head}{gaps}; {values}; {breaches}"
        )


def _safe_poll(source: MetricSource, now: float) -> Sample:
    try:
        return source.poll(now)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a source must not crash the window: a failing poll is a gap
        return Sample.gap(
            now, scrub(f"{type(exc).__name__}: {exc}")[:300], source=getattr(source, "name", "")
        )


def run_window(
    source: MetricSource,
    rules: Sequence[Rule],
    duration_s: float,
    interval_s: float,
    *,
    record: Callable[[dict[str, Any]], object] | None = None,
    on_tick: Callable[[WindowState], object] | None = None,
    resume_samples: Iterable[Sample | Mapping[str, Any]] = (),
    baseline: Baseline | None = None,
    start_ts: float | None = None,
    configured_s: float | None = None,
    not_watched: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], object] = time.sleep,
    heartbeat_s: float = 30.0,
) -> Outcome:
    """Watch `source` for `duration_s`, one sample every `interval_s`; return the verdict.

    Failed as soon as a rule breaches more than its `failure_limit` consecutive times (the caller
    records the incident); passed only when the whole window elapsed with enough samples and no
    breach; inconclusive otherwise; interrupted when the cell was stopped. `start_ts` fixes when
    the window began (default: the first resumed sample, else now); `configured_s` is the length
    the project configured: a shorter `duration_s` is at most inconclusive (see verdict.py).
    `not_watched` names metrics left out on purpose, with why (rules.dlq_watch): the summary and
    the evidence say so.
    """
    from ..errors import UsageError

    if duration_s <= 0 or interval_s <= 0:
        raise UsageError("monitoring window needs duration_s > 0 and interval_s > 0")
    resumed = sorted((as_sample(s) for s in resume_samples), key=lambda s: s.ts)
    excluded = 0
    if start_ts is not None:
        if start_ts > clock():
            raise UsageError(f"monitoring window start {start_ts} is in the future")
        kept = [s for s in resumed if s.ts >= start_ts]
        excluded, resumed = len(resumed) - len(kept), kept
    start = start_ts if start_ts is not None else resumed[0].ts if resumed else clock()
    verdict = WindowVerdict(
        rules, start_ts=start, duration_s=duration_s, baseline=baseline, configured_s=configured_s,
        not_watched=not_watched,
    )
    display_errors: list[str] = []

    def extra() -> dict[str, Any]:
        describe = getattr(source, "describe", None)
        info = {
            "interval_s": interval_s,
            "resumed_samples": len(resumed),
            "source": scrub_obj(describe()) if callable(describe) else getattr(source, "name", "?"),
        }
        if excluded:
            info["excluded_samples"] = excluded  # from before the window's start: never counted
        if display_errors:
            info["display_errors"] = display_errors[:5]
        return info

    def show(state: WindowState) -> None:
        if on_tick is None:
            return
        try:
            on_tick(state)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a broken display must not decide the release
            if len(display_errors) < 5:
                display_errors.append(scrub(f"{type(exc).__name__}: {exc}")[:200])
                print(f"relnb: monitoring display failed: {display_errors[-1]}", file=sys.stderr)

    def finish(outcome: Outcome, now: float) -> Outcome:
        state = WindowState(
            verdict, now, duration_s, interval_s, done=True, outcome=outcome, resumed=len(resumed)
        )
        show(state)
        return outcome

    end = start + duration_s
    try:
        for s in resumed:
            verdict.add(s)
            if verdict.hard_breach is not None:
                return finish(verdict.outcome(end_ts=s.ts, extra=extra()), s.ts)
        while True:
            now = clock()
            if now >= end:
                break
            sample = _safe_poll(source, now)
            if record is not None:
                record(sample.to_dict())
            new_hard = verdict.add(sample)
            show(
                WindowState(
                    verdict,
                    now,
                    duration_s,
                    interval_s,
                    sample,
                    resumed=len(resumed),
                    new_hard=new_hard,
                )
            )
            if verdict.hard_breach is not None:
                return finish(verdict.outcome(end_ts=sample.ts, extra=extra()), clock())
            k = math.floor((clock() - start) / interval_s) + 1
            target = min(start + k * interval_s, end)
            while True:
                left = target - clock()
                if left <= 0:
                    break
                sleep(min(left, heartbeat_s))
                if target - clock() > 0:
                    show(
                        WindowState(
                            verdict,
                            clock(),
                            duration_s,
                            interval_s,
                            heartbeat=True,
                            resumed=len(resumed),
                        )
                    )
    except KeyboardInterrupt:
        now = clock()
        return finish(verdict.outcome(end_ts=now, interrupted=True, extra=extra()), now)
    now = clock()
    return finish(verdict.outcome(end_ts=now, extra=extra()), now)
