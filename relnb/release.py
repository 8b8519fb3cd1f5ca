"""A release: its identity, its gates and actions, and the rules between them.

`Release` is the facade the notebook and the CLI use; each concept behind it has a module of its
own, so each rule can be read where it is made:

- `relnb.runcontext`: what the operator allowed for this run (headless confirmations, sign-offs,
  skips, re-runs, approvals signed in advance, `relnb replay`'s recorded outcomes);
- `relnb.steps`: the one step runner that journals, times and scrubs every gate check, action and
  rollback step;
- `relnb.promotion`: the promotion guard (the guarded section refuses to run until the sections
  before it are passed, skipped or waived, naming the blockers) and signed approvals;
- `relnb.decisions`: sign-offs, waivers, skips, incidents and notes;
- `relnb.effects`: actions that run at most once (a finished action returns its recorded result;
  `force=True` needs a reason; an action cut off mid-way needs `resume=True`) and the rollback.

Settled gates (passed, skipped, waived) are read back from the journal, so re-executing a cell,
reloading a page or re-running a notebook headlessly repeats nothing; unsettled ones run again;
`rerun=True` forces a settled gate to run again and is journaled (it voids waivers downstream).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from . import git
from .config import Config, load_config
from .effects import Effects
from .errors import ReleaseNotFound, RelnbError, UsageError
from .gates import GATE_IDS, GATES, PRODUCTION_WINDOW_GATE, SECTIONS, Kind, get_gate
from .identity import Identity, whoami
from .journal import JOURNAL_NAME, JournalWriter, read_events
from .results import GateResult, Status, StatusTable
from .runcontext import (
    ENV_APPROVALS,
    ENV_CONFIRM,
    ENV_HEADLESS,
    ENV_RERUN,
    ENV_ROOT,
    ENV_SIGNOFFS,
    ENV_SKIPS,
    ROLLBACK_ON_FAILURE,
    RecordedOutcomes,
    RunContext,
    confirmation,
)
from .state import ReleaseState, fold
from .steps import Check


def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The project root: $RELNB_ROOT, else the directory of the nearest config, else `start`/cwd."""
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).resolve()
    from .config import find_config

    found = find_config(start)
    return found.parent.resolve() if found else Path(start or os.getcwd()).resolve()


def release_dir(root: Path, release_id: str, config: Config | None = None) -> Path:
    base = config.releases_dir() if config else root / "releases"
    return base / release_id


class Release(Effects):
    """One release's journal and the operations the checklist needs.

    The concepts live in their own modules and meet here through inheritance: `PromotionGuard`
    (promotion), `StepRunner` (steps), `Decisions` (decisions) and `Effects` (actions and the
    rollback); this class opens and reads the release and runs its checks.
    """

    def __init__(self, release_id: str, writer: JournalWriter, config: Config, context: RunContext | None = None):
        self.id = release_id
        self.journal = writer
        self.config = config
        self.context = context or RunContext.from_env()
        self._state: ReleaseState | None = None
        writer.subscribe(lambda _ev: setattr(self, "_state", None))

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        version: str,
        *,
        root: str | os.PathLike[str] | None = None,
        release_id: str | None = None,
        environment: str = "production",
        notebook: str | None = None,
        template_sha256: str | None = None,
        author: Identity | str | None = None,
        config: Config | None = None,
    ) -> Release:
        config = config or load_config(start=find_root(root))
        rid = release_id or version
        _check_id(rid)
        directory = release_dir(config.root, rid, config)
        if (directory / JOURNAL_NAME).exists():
            raise UsageError(
                f"release {rid} already exists at {directory}",
                fix="open it instead, or pick another --id",
            )
        config.register_available_secrets()  # the first event is scrubbed like every other
        from .metrics.svgchart import CHART_STYLE
        writer = JournalWriter.open(directory, create=True)
        repo = config.repo_path()
        who = Identity.parse(author) if author else whoami()
        own = {k.upper(): v for k, v in (config.data["gates"]["titles"] or {}).items()}
        writer.append(
            "release-created",
            {
                "release_id": rid,
                "version": str(version),
                "environment": environment,
                "git_sha": git.output(repo, "rev-parse", "HEAD"),
                "git_branch": git.output(repo, "rev-parse", "--abbrev-ref", "HEAD"),
                "author": who.to_dict(),
                "notebook": notebook,
                "template_sha256": template_sha256,
                "config_sha256": hashlib.sha256(config.path.read_bytes()).hexdigest() if config.path else None,
                "relnb_version": _relnb_version(),
                # every gate's title as this release shows it (the team's own words where
                # [gates] titles names them), fixed like its SHA: a later relnb that renames a
                # gate does not change what an archived record says
                "titles": {g.id: own.get(g.id, g.title) for g in GATES},
                # how its charts are drawn, fixed the same way (relnb.metrics.svgchart.chart_style)
                "chart_style": CHART_STYLE,
            },
        )
        return cls(rid, writer, config)

    @classmethod
    def open(
        cls,
        release_id: str,
        *,
        root: str | os.PathLike[str] | None = None,
        config: Config | None = None,
    ) -> Release:
        config = config or load_config(start=find_root(root))
        directory = release_dir(config.root, release_id, config)
        if not (directory / JOURNAL_NAME).exists():
            raise ReleaseNotFound(
                f"no release {release_id!r} (looked for {directory / JOURNAL_NAME})",
                fix="create it with `relnb new <version>` or check the id with `relnb list`",
            )
        config.register_available_secrets()
        return cls(release_id, JournalWriter.open(directory), config)

    def close(self) -> None:
        self.journal.close()

    @property
    def directory(self) -> Path:
        return self.journal.directory

    # -- reading -------------------------------------------------------------------------------

    @property
    def state(self) -> ReleaseState:
        # by the number of events, not only the append hook: a check running side by side
        # (sidebyside.py) may append between another thread's fold and its assignment
        events = self.journal.events
        state = self._state
        if state is None or state.events != len(events):
            state = self._state = fold(self.id, events)
        return state

    def result(self, gate_id: str) -> GateResult:
        return self.state.result(gate_id)

    def status(self) -> StatusTable:
        return self.state.table()

    @property
    def info(self) -> dict[str, Any]:
        return self.state.created

    # -- gates ---------------------------------------------------------------------------------

    def run(self, gate_id: str, check: Check, *, rerun: bool = False, reason: str | None = None) -> GateResult:
        """Run an automatic gate's check, or read its settled result back from the journal.

        Only automatic checks run here: a sign-off gate's "pass" is a person's, and an action's
        is its one confirmed run, so letting `run()` decide either would be a pass nobody earned.
        Forcing a settled gate again voids waivers downstream, so it needs a reason.
        """
        from .checklist import takes_sign_off

        spec = get_gate(gate_id)
        if spec.kind is Kind.ACTION:
            raise UsageError(
                f"{spec.id} is an action; run() runs checks only",
                gate=spec.id, fix=f"use release.act({spec.id!r}, confirmed=...): it runs once, after confirmation",
            )
        if takes_sign_off(spec.id, self.config.data["gates"]["manual"]):
            raise UsageError(
                f"{spec.id} is settled by a person's sign-off; run() cannot pass it",
                gate=spec.id, fix=f"use release.check({spec.id!r}) to gather its evidence, then sign it off",
            )
        current = self.result(spec.id)
        forced = rerun or spec.id in self.context.rerun
        if forced:
            reason = reason or (self.context.rerun_reason if spec.id in self.context.rerun else None)
            if not (reason and reason.strip()):
                raise UsageError(
                    f"re-running {spec.id} needs a reason", gate=spec.id,
                    fix="pass reason='why it must run again' (headless: --rerun-reason)",
                )
        if current.status.ok_for_promotion and current.recorded and not forced:
            return current
        refused = self._guard(spec.id)
        if refused is not None:
            return refused
        return self._execute(spec.id, check, event="gate", forced=forced, reason=reason)

    def check(
        self,
        gate_id: str,
        fn: Check | None = None,
        *,
        submitted: str | dict[str, Any] | None = None,
        rerun: bool = False,
        reason: str | None = None,
    ) -> GateResult:
        """The template's one-liner for a non-action gate: run the registered provider.

        Sign-off gates (and checks not automated yet) gather evidence and wait for a person;
        automatic gates decide by themselves.
        """
        from .checklist import provider_for, takes_sign_off
        from .gatecontext import GateContext

        spec = get_gate(gate_id)
        if spec.kind is Kind.ACTION:
            raise UsageError(f"{spec.id} is an action; use release.act({spec.id!r}, confirmed=...)", gate=spec.id)
        if fn is None and not rerun:
            from .sidebyside import start_beside

            side = start_beside(self, spec.id)
            early = side.take(spec.id) if side is not None else None
            if early is not None:
                return early
        listed_manual = self.config.data["gates"]["manual"]
        provider, _ = provider_for(spec.id)
        if spec.id in {g.upper() for g in listed_manual}:
            provider, _ = provider_for("__manual__")
        ctx = GateContext(self, spec.id)
        step: Check = fn or (lambda: provider(ctx))
        # the one rule for who settles a gate (checklist.takes_sign_off), as run() and sign_off() apply it
        if takes_sign_off(spec.id, listed_manual):
            if not self.result(spec.id).status.ok_for_promotion:
                refused = self._guard(spec.id)
                if refused is not None:
                    return refused
            return self.request_sign_off(spec.id, evidence=step, submitted=submitted)
        result = self.run(spec.id, step, rerun=rerun, reason=reason)
        if spec.watches:
            result = self._waive_shortened_window(spec.id, result)
            from .watch import figures

            result = result.with_(figures=figures(self, spec.id))
        return result

    def _waive_shortened_window(self, gate_id: str, result: GateResult) -> GateResult:
        """A window shorter than configured is at most waived, in the words of whoever shortened
        it (`relnb run --window-reason`); samples that broke a rule stay failed, and a window
        that lacked evidence for another reason stays inconclusive."""
        shortened = result.evidence.get("shortened")
        why = self.context.window_reason
        # only a window whose samples would pass: a breach, a source that went away or too few
        # samples is not the shortening's doing, and no reason given for shortening covers it
        if result.status is not Status.INCONCLUSIVE or not isinstance(shortened, dict) or not why:
            return result
        if shortened.get("would_pass") is not True:
            return result
        if result.recorded and self.state.gates[gate_id].waiver is not None:
            return result
        try:
            return self.waive(gate_id, approver=whoami(), reason=why)
        except RelnbError as exc:  # e.g. signing required and no approval for it: stays inconclusive
            self.note(f"{gate_id}'s shortened window was not waived: {exc}", gate=gate_id)
            return result

    def monitor(self, window: str | None = None, interval: str | None = None, *, rerun: bool = False) -> GateResult:
        """The production monitoring window, optionally shorter or sampled more often (journaled as such)."""
        from .gatecontext import GateContext
        from .watch import monitor_production

        gate = PRODUCTION_WINDOW_GATE
        return self.check(gate, lambda: monitor_production(GateContext(self, gate), window, interval), rerun=rerun)

    def section(self, letter: str, *results: GateResult) -> StatusTable:
        """A section's summary cell; in marimo it also orders the next section after this one."""
        letter = letter.upper()
        rows = tuple(self.result(g) for g in GATE_IDS if g[0] == letter)
        return StatusTable(self.id, rows, SECTIONS)

    def __repr__(self) -> str:
        return repr(self.status())

    def _repr_html_(self) -> str:
        return self.status()._repr_html_()


def _check_id(release_id: str) -> None:
    if not release_id or "/" in release_id or release_id.startswith(".") or len(release_id) > 100:
        raise UsageError(f"release id {release_id!r} is not usable as a directory name", fix="use e.g. 1.4.0")


def _relnb_version() -> str:
    from ._version import __version__

    return __version__


def read_state(release_id: str, *, root: str | os.PathLike[str] | None = None, config: Config | None = None) -> ReleaseState:
    """Read-only status of any release (no lock taken), e.g. while a notebook is writing it."""
    config = config or load_config(start=find_root(root))
    path = release_dir(config.root, release_id, config) / JOURNAL_NAME
    if not path.exists():
        raise ReleaseNotFound(
            f"no release {release_id!r} (looked for {path})",
            fix="check the id with `relnb list`, or create it with `relnb new <version>`",
        )
    return fold(release_id, read_events(path))


__all__ = [
    "ENV_APPROVALS",
    "ENV_CONFIRM",
    "ENV_HEADLESS",
    "ENV_RERUN",
    "ENV_ROOT",
    "ENV_SIGNOFFS",
    "ENV_SKIPS",
    "ROLLBACK_ON_FAILURE",
    "SECTIONS",
    "Check",
    "RecordedOutcomes",
    "Release",
    "RunContext",
    "confirmation",
    "find_root",
    "read_state",
    "release_dir",
]
