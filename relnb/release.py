"""A release: its identity, its gates and actions, and the rules between them.

`Release` is the run lifecycle: it journals the start and finish of every gate and action, times
them, turns exceptions into scrubbed evidence, and applies the contracts from DESIGN.md:

- settled gates (passed, skipped, waived) are read back from the journal, so re-executing a cell,
  reloading a page or re-running a notebook headlessly repeats nothing; unsettled ones run again;
  `rerun=True` forces a settled gate to run again and is journaled (it voids waivers downstream);
- an action runs only when confirmed, at most once: a finished action returns its recorded
  result; `force=True` needs a reason; an action cut off mid-way needs `resume=True`;
- section D refuses to run until A–C are passed, skipped or waived, naming the blockers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Protocol

from . import git
from .config import Config, load_config
from .errors import ActionRefused, PromotionRefused, ReleaseNotFound, RelnbError, UsageError
from .gates import (
    DEPLOY_GATE,
    GATE_IDS,
    GUARDED_SECTION,
    PRODUCTION_WINDOW_GATE,
    ROLLBACK_GATE,
    SECTIONS,
    Kind,
    get_gate,
)
from .identity import Identity, whoami
from .journal import JOURNAL_NAME, JournalWriter, read_events, utcnow
from .redact import format_exception, scrub, scrub_obj
from .results import GateResult, Outcome, Status, StatusTable
from .state import ReleaseState, fold, guarded

Check = Callable[[], Outcome]

# Environment variables through which `relnb run` tells a headless notebook what it may do.
ENV_CONFIRM = "RELNB_CONFIRM"  # "all", or gate IDs / section letters, comma separated
ENV_SIGNOFFS = "RELNB_SIGNOFFS"  # path to a JSON file {gate: {"by": ..., "note": ...}}, or a `relnb sign` file
ENV_APPROVALS = "RELNB_APPROVALS"  # path to a `relnb sign` approvals file (pre-signed skips, waivers, ...)
ENV_RERUN = "RELNB_RERUN"  # gate IDs to run again although settled
ENV_SKIPS = "RELNB_SKIPS"  # JSON {gate: reason} for optional gates the run declares not needed
ENV_HEADLESS = "RELNB_HEADLESS"
# A rollback decided in advance for one case only: production did not pass after the deploy
# (headless CI's "roll back if monitoring fails"). Plain ROLLBACK rolls back unconditionally.
ROLLBACK_ON_FAILURE = "ROLLBACK-ON-FAILURE"
ENV_ROOT = "RELNB_ROOT"


class RecordedOutcomes(Protocol):
    """Answers a step from a record instead of running it: the double `relnb replay` injects
    (relnb.archive.replay), so a replayed notebook touches no system and signs nothing."""

    def outcome(self, gate_id: str) -> Outcome: ...


@dataclass
class RunContext:
    """What the operator allowed for this run, from the CLI (headless) or nothing (interactive)."""

    confirm: set[str] = field(default_factory=set)
    sign_offs: dict[str, dict[str, Any]] = field(default_factory=dict)
    rerun: set[str] = field(default_factory=set)
    skips: dict[str, str] = field(default_factory=dict)
    headless: bool = False
    # Pre-signed approvals (`relnb sign`): each decision of the run picks up the one made for it.
    presigned: list[dict[str, Any]] = field(default_factory=list)
    # Set for a whole process by `use_recorded` (relnb replay's child): every Release opened
    # there answers its steps from the record.
    recorded: RecordedOutcomes | None = None
    process_recorded: ClassVar[RecordedOutcomes | None] = None

    @classmethod
    def use_recorded(cls, recorded: RecordedOutcomes | None) -> None:
        """Make every context created from now on in this process answer from `recorded`."""
        cls.process_recorded = recorded

    @classmethod
    def from_env(cls) -> RunContext:
        ctx = cls(headless=os.environ.get(ENV_HEADLESS) == "1", recorded=cls.process_recorded)
        ctx.confirm = {c.strip().upper() for c in os.environ.get(ENV_CONFIRM, "").split(",") if c.strip()}
        ctx.rerun = {c.strip().upper() for c in os.environ.get(ENV_RERUN, "").split(",") if c.strip()}
        skips = os.environ.get(ENV_SKIPS)
        if skips:
            try:
                ctx.skips = {k.upper(): str(v) for k, v in json.loads(skips).items()}
            except ValueError as exc:
                raise UsageError(f"{ENV_SKIPS} is not JSON: {exc}") from None
        path = os.environ.get(ENV_SIGNOFFS)
        if path:
            try:
                data = json.loads(Path(path).read_text())
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read sign-offs file {path}: {exc}", path=path) from None
            from .signing.approvals_file import is_approvals_file

            if is_approvals_file(data):  # RELNB_SIGNOFFS may name a `relnb sign` file directly
                ctx.add_approvals(Path(path))
            else:
                ctx.sign_offs = {k.upper(): v for k, v in data.items()}
        approvals = os.environ.get(ENV_APPROVALS)
        if approvals:
            ctx.add_approvals(Path(approvals))
        return ctx

    def add_approvals(self, path: Path) -> None:
        """Take a `relnb sign` file's approvals: its sign-offs and skips become this run's
        decisions (unless the operator gave them otherwise), and every approval is kept for the
        event it was signed for."""
        from .signing.approvals_file import read_approvals, sign_offs_for_run, skips_for_run

        file = read_approvals(path)
        for gate, entry in sign_offs_for_run(file).items():
            self.sign_offs.setdefault(gate, entry)
        for gate, reason in skips_for_run(file).items():
            self.skips.setdefault(gate, reason)
        self.presigned.extend(a.to_dict() for a in file.approvals)

    def presigned_of_kind(self, kind: str, gate: str | None) -> list[dict[str, Any]]:
        """Every pre-signed approval of one kind for one gate (promotion votes carry free notes)."""
        return [
            a
            for a in self.presigned
            if (a.get("statement") or {}).get("kind") == kind
            and (a.get("statement") or {}).get("gate") == gate
        ]

    def presigned_for(self, kind: str, gate: str | None, text: str) -> dict[str, Any] | None:
        """The pre-signed approval made for exactly this decision (kind, gate and text), if any."""
        for a in self.presigned:
            st = a.get("statement") or {}
            if st.get("kind") == kind and st.get("gate") == gate and st.get("text", "") == (text or ""):
                return a
        return None

    def confirmed(self, gate_id: str) -> bool:
        if gate_id == "ROLLBACK":  # never implied by `all` or `E`: a rollback is asked for by name
            return "ROLLBACK" in self.confirm
        return bool({"ALL", gate_id, gate_id[0]} & self.confirm)


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


class Release:
    """One release's journal and the operations the checklist needs."""

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
        writer = JournalWriter.open(directory, create=True)
        repo = config.repo_path()
        who = Identity.parse(author) if author else whoami()
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
        if self._state is None:
            self._state = fold(self.id, self.journal.events)
        return self._state

    def result(self, gate_id: str) -> GateResult:
        return self.state.result(gate_id)

    def status(self) -> StatusTable:
        return self.state.table()

    @property
    def info(self) -> dict[str, Any]:
        return self.state.created

    # -- gates ---------------------------------------------------------------------------------

    def run(self, gate_id: str, check: Check, *, rerun: bool = False, reason: str | None = None) -> GateResult:
        """Run an automatic gate's check, or read its settled result back from the journal."""
        spec = get_gate(gate_id)
        current = self.result(spec.id)
        forced = rerun or spec.id in self.context.rerun
        if current.status.ok_for_promotion and current.recorded and not forced:
            return current
        refused = self._guard(spec.id)
        if refused is not None:
            return refused
        return self._execute(spec.id, check, event="gate", forced=forced, reason=reason)

    def _execute(
        self,
        gate_id: str,
        fn: Check,
        *,
        event: str,
        forced: bool = False,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> GateResult:
        spec = get_gate(gate_id)
        attempt = self.state.gates[gate_id].attempts + 1
        started = utcnow()
        payload: dict[str, Any] = {"gate": gate_id, "attempt": attempt}
        if event == "action":
            payload["action"] = (extra or {}).get("action", gate_id)
        if forced:
            payload.update(forced=True, reason=reason, by=whoami().to_dict())
            grant = self._approval("force", payload.get("action") or gate_id, reason or "")
            if grant:
                payload.update(by=grant.identity, **grant.payload())
        payload.update(extra or {})
        self.journal.append(f"{event}-started", payload)
        recorded = self.context.recorded
        if recorded is not None:  # `relnb replay`: answer from the archive, touch nothing
            fn = partial(recorded.outcome, gate_id)
        t0 = time.monotonic()
        try:
            outcome = fn()
            if not isinstance(outcome, Outcome):
                outcome = Outcome.failed(
                    f"check returned {type(outcome).__name__}, not an Outcome (a bug in the check)"
                )
        except KeyboardInterrupt:
            self._finish(event, payload, spec, attempt, started, t0, Outcome(
                Status.INTERRUPTED, f"interrupted by the user after {time.monotonic() - t0:.1f} s", {}
            ))
            raise
        except Exception as exc:  # a crashing check is a failed gate with the evidence, never a pass
            outcome = Outcome.failed(
                f"{type(exc).__name__}: {scrub(str(exc))}".strip()[:300],
                traceback=format_exception(exc),
            )
        return self._finish(event, payload, spec, attempt, started, t0, outcome)

    def _finish(self, event, payload, spec, attempt, started, t0, outcome: Outcome) -> GateResult:
        finished = utcnow()
        summary = scrub(" ".join(str(outcome.summary).split()))
        evidence = scrub_obj(outcome.evidence)
        body = {
            **{k: payload[k] for k in ("gate", "action") if k in payload},
            "attempt": attempt,
            "status": str(outcome.status),
            "summary": summary,
            "evidence": evidence,
            "started_at": started,
            "finished_at": finished,
            "duration_s": round(time.monotonic() - t0, 3),
        }
        self.journal.append(f"{event}-finished", body)
        return GateResult(
            spec.id, outcome.status, summary, body["evidence"], started, finished, attempt, spec.title
        )

    def _guard(self, gate_id: str) -> GateResult | None:
        """Refuse section D before A–C allow it, and actions or D/F gates whose inputs are missing."""
        spec = get_gate(gate_id)
        if guarded(gate_id):
            blockers = self.state.promotion_blockers()
            if not blockers:
                self._take_presigned_promotions()
                missing = self.promotion_votes_missing()
                if missing:
                    return self._refuse(gate_id, f"{gate_id} refused: {missing}", [("D", missing)])
            if blockers:
                err = PromotionRefused(gate_id, blockers)
                last = self.state.gates[gate_id].refused
                if not last or last.get("blockers") != [list(b) for b in blockers]:
                    self.journal.append(
                        "refused", {"gate": gate_id, "summary": err.message, "blockers": [list(b) for b in blockers]}
                    )
                return GateResult(gate_id, Status.PENDING, err.message, {"blockers": blockers}, title=spec.title)
        if spec.kind is Kind.ACTION or spec.section in ("D", "F"):
            waiting = [
                (d, str(self.result(d).status)) for d in spec.depends_on if not self.result(d).status.ok_for_promotion
            ]
            if waiting:
                names = ", ".join(f"{d} ({s})" for d, s in waiting)
                return GateResult(gate_id, Status.PENDING, f"waiting for {names}", {"waiting_for": waiting}, title=spec.title)
        return None

    def _approval(self, kind: str, gate: str | None, text: str, presigned: Any = None) -> Any:
        """An SSH-signed approval for this decision when signing is on ([signing] in relnb.toml).

        Runs the policy (roles, four-eyes) first: a violation is journaled and raised. Returns
        None in unsigned mode; the caller then records the approval as unsigned.
        """
        if self.context.recorded is not None:
            # `relnb replay` re-enacts recorded decisions in a scratch journal it throws away;
            # the archived approvals themselves are what `relnb verify` checks.
            return None
        signing = self.config.data["signing"]
        if presigned is None:
            presigned = self.context.presigned_for(kind, gate, text)
            if presigned is not None and self._used(presigned):
                presigned = None
        if not (signing["enabled"] or signing["required"] or presigned):
            return None
        from .signing import SigningSettings, approve

        return approve(
            self.journal,
            kind=kind,
            gate=gate,
            text=text or "",
            settings=SigningSettings.from_mapping(signing),
            repo=self.config.repo_path(),
            presigned=presigned,
            project_release_lead=self.config.project.get("release_lead"),
            email=whoami().email,
        )

    def _used(self, approval: dict[str, Any]) -> bool:
        """Was this pre-signed approval consumed already? (Each one is good for one event.)"""
        st = approval.get("statement")
        return any(
            isinstance(ev.payload.get("approval"), dict) and ev.payload["approval"].get("statement") == st
            for ev in self.journal.events
        )

    def _refuse(self, gate_id: str, summary: str, blockers: list[tuple[str, str]]) -> GateResult:
        """A pending result naming what blocks the gate, journaled once per distinct reason."""
        last = self.state.gates[gate_id].refused
        if not last or last.get("summary") != summary:
            self.journal.append(
                "refused", {"gate": gate_id, "summary": summary, "blockers": [list(b) for b in blockers]}
            )
        return GateResult(gate_id, Status.PENDING, summary, {"blockers": blockers}, title=get_gate(gate_id).title)

    def approve_promotion(self, *, by: Identity | str | None = None, note: str = "") -> str:
        """Record one approval to promote this release to production (`[signing]
        min_production_approvers`): signed like a sign-off, refused for the release lead under
        four-eyes and for a second vote by the same person. Returns what is still missing ("" when
        section D may start)."""
        self.require_promotion()
        who = Identity.parse(by) if by else whoami()
        grant = self._approval("promote", "D", note)
        if grant:
            who = Identity.parse(grant.identity)
        self.journal.append("promotion-approved", {"gate": "D", "by": who.to_dict(), "note": note, **(grant.payload() if grant else {})})
        return self.promotion_votes_missing()

    def promotion_votes_missing(self) -> str:
        """What the promotion policy still needs before section D, or "" (also when it is off)."""
        signing = self.config.data["signing"]
        if int(signing["min_production_approvers"] or 0) <= 0:
            return ""
        from .signing import SigningSettings
        from .signing.approve import recorded_approvals

        events = self.journal.events
        policy = SigningSettings.from_mapping(signing).policy(
            project_release_lead=self.config.project.get("release_lead"),
            created=events[0].payload if events else None,
        )
        violations = policy.check_promotion(recorded_approvals(events))
        if not violations:
            return ""
        return (
            f"{violations[0].message} — the approver runs release.approve_promotion(note=...), "
            f"or signs one in advance: relnb sign {self.id} D --kind promote"
        )

    def _take_presigned_promotions(self) -> None:
        """Headless runs: record the promotion votes signed in advance (relnb run --sign-offs)."""
        for approval in self.context.presigned_of_kind("promote", "D"):
            if self._used(approval):
                continue
            note = str((approval.get("statement") or {}).get("text") or "")
            grant = self._approval("promote", "D", note, presigned=approval)
            who = Identity.parse(grant.identity) if grant else whoami()
            self.journal.append(
                "promotion-approved",
                {"gate": "D", "by": who.to_dict(), "note": note, **(grant.payload() if grant else {})},
            )

    def require_promotion(self) -> None:
        """Raise PromotionRefused unless A–C allow production steps (for scripts that prefer errors)."""
        blockers = self.state.promotion_blockers()
        if blockers:
            raise PromotionRefused("D", blockers)

    def check(
        self,
        gate_id: str,
        fn: Check | None = None,
        *,
        submitted: str | dict[str, Any] | None = None,
        rerun: bool = False,
    ) -> GateResult:
        """The template's one-liner for a non-action gate: run the registered provider.

        Sign-off gates (and checks not automated yet) gather evidence and wait for a person;
        automatic gates decide by themselves.
        """
        from .checklist import provider_for
        from .gatecontext import GateContext

        spec = get_gate(gate_id)
        if spec.kind is Kind.ACTION:
            raise UsageError(f"{spec.id} is an action; use release.act({spec.id!r}, confirmed=...)", gate=spec.id)
        provider, manual = provider_for(spec.id)
        if spec.id in {g.upper() for g in self.config.data["gates"]["manual"]}:
            provider, manual = provider_for("__manual__")
        ctx = GateContext(self, spec.id)
        step: Check = fn or (lambda: provider(ctx))
        if spec.kind is Kind.SIGN_OFF or (manual and fn is None):
            if not self.result(spec.id).status.ok_for_promotion:
                refused = self._guard(spec.id)
                if refused is not None:
                    return refused
            return self.request_sign_off(spec.id, evidence=step, submitted=submitted)
        result = self.run(spec.id, step, rerun=rerun)
        if spec.watches:
            from .watch import figures

            result = result.with_(figures=figures(self, spec.id))
        return result

    def monitor(self, window: str | None = None, interval: str | None = None, *, rerun: bool = False) -> GateResult:
        """D7, the monitoring window, with an optional shorter window/interval (journaled as such)."""
        from .gatecontext import GateContext
        from .watch import monitor_production

        gate = PRODUCTION_WINDOW_GATE
        return self.check(gate, lambda: monitor_production(GateContext(self, gate), window, interval), rerun=rerun)

    def act(
        self,
        gate_id: str,
        fn: Check | None = None,
        *,
        confirmed: Any = False,
        force: bool = False,
        reason: str | None = None,
        resume: bool = False,
        skip: Any = None,
    ) -> GateResult:
        """The template's one-liner for an action gate: run the registered provider once.

        `skip` (a reason, or a submitted skip form) declares an optional gate not needed.
        """
        from .checklist import provider_for
        from .gatecontext import GateContext

        spec = get_gate(gate_id)
        reason_to_skip = getattr(skip, "value", skip) or self.context.skips.get(spec.id)
        if reason_to_skip and self.result(spec.id).status is not Status.PASSED:
            return self.skip(spec.id, reason=str(reason_to_skip))
        provider, manual = provider_for(spec.id)
        ctx = GateContext(self, spec.id)
        step: Check = fn or (lambda: provider(ctx))
        if manual and fn is None:  # not automated yet: an honest sign-off, still behind the guard
            if not self.result(spec.id).status.ok_for_promotion:
                refused = self._guard(spec.id)
                if refused is not None:
                    return refused
            return self.request_sign_off(spec.id, evidence=step)
        return self.action(
            spec.id, step, confirmed=confirmation(confirmed, spec.id, self), force=force, reason=reason, resume=resume
        )

    def rollback(self, *, confirmed: Any = False) -> StatusTable:
        """Run the prepared rollback (E2/E3 plan) as named, journaled, run-once actions."""
        from .gatecontext import GateContext
        from .providers import rollback_steps

        title = get_gate(ROLLBACK_GATE).title
        heading = {get_gate(ROLLBACK_GATE).section: "Rollback"}
        if self.action_result(DEPLOY_GATE) is None:
            row = GateResult(ROLLBACK_GATE, Status.PENDING, f"nothing deployed in this release ({DEPLOY_GATE} has not run): no rollback needed", {}, title=title)
            return StatusTable(self.id, (row,), heading)
        try:
            steps = rollback_steps(GateContext(self, ROLLBACK_GATE))
        except RelnbError as exc:
            return StatusTable(self.id, (GateResult(ROLLBACK_GATE, Status.FAILED, f"rollback cannot start: {exc}", {}, title=title),), heading)
        go = confirmation(confirmed, ROLLBACK_GATE, self) or self.context.confirmed("ROLLBACK")
        if not go and ROLLBACK_ON_FAILURE in self.context.confirm:
            hurt = self.production_failures()
            go = bool(hurt)
            if hurt and any(name not in self.state.actions for name, _ in steps):
                self.note(
                    f"rollback confirmed in advance ({ROLLBACK_ON_FAILURE}) and due: "
                    f"{', '.join(hurt)} did not pass after the deploy",
                    gates=hurt,
                )
        results = []
        for name, step in steps:
            res = self.action(ROLLBACK_GATE, step, name=name, confirmed=go, confirm_key="ROLLBACK")
            results.append(res.with_(gate_id=ROLLBACK_GATE, title=name, summary=f"{name}: {res.summary}"))
            if res.status is not Status.PASSED:
                break
        return StatusTable(self.id, tuple(results), heading)

    def production_failures(self) -> list[str]:
        """Production gates that ended failed, inconclusive or interrupted: the case in which a
        rollback confirmed with ROLLBACK-ON-FAILURE goes ahead."""
        bad = (Status.FAILED, Status.INCONCLUSIVE, Status.INTERRUPTED)
        return [
            g for g in GATE_IDS if get_gate(g).section == GUARDED_SECTION and self.result(g).status in bad
        ]

    def section(self, letter: str, *results: GateResult) -> StatusTable:
        """A section's summary cell; in marimo it also orders the next section after this one."""
        letter = letter.upper()
        rows = tuple(self.result(g) for g in GATE_IDS if g[0] == letter)
        return StatusTable(self.id, rows, SECTIONS)

    # -- people --------------------------------------------------------------------------------

    def request_sign_off(
        self,
        gate_id: str,
        *,
        evidence: Check | None = None,
        submitted: str | dict[str, Any] | None = None,
        by: Identity | str | None = None,
    ) -> GateResult:
        """A sign-off gate: gather evidence first (once), then wait for a person's sign-off.

        `submitted` is what the notebook's form returned (a note), or None; headless runs take
        sign-offs from `relnb run --sign-off`. Without one the gate stays `pending`.
        """
        spec = get_gate(gate_id)
        gs = self.state.gates[spec.id]
        rerun = spec.id in self.context.rerun
        if gs.sign_off is not None and not rerun:
            return self.result(spec.id)
        if evidence is not None and (gs.result is None or rerun):
            self._execute(spec.id, _as_pending(evidence), event="gate", forced=rerun)
        provided = self.context.sign_offs.get(spec.id)
        if submitted is not None:
            note = submitted.get("note", "") if isinstance(submitted, dict) else str(submitted)
            return self.sign_off(spec.id, by=by or whoami(), note=note)
        if provided is not None:
            return self.sign_off(
                spec.id, by=provided.get("by") or whoami(), note=provided.get("note", ""), approval=provided.get("approval")
            )
        return self.result(spec.id)

    def sign_off(
        self, gate_id: str, *, by: Identity | str | None = None, note: str = "", approval: Any = None
    ) -> GateResult:
        spec = get_gate(gate_id)
        who = Identity.parse(by) if by else whoami()
        base = self.state.gates[spec.id].result
        if base is not None and base.status is Status.FAILED:
            raise UsageError(
                f"{spec.id} evidence failed ({base.summary}); a sign-off cannot turn a failure into a pass",
                gate=spec.id,
                fix="fix the cause and re-run the gate, or record a waiver with an approver and reason",
            )
        requires = base.evidence.get("sign_off_requires") if base else None
        if requires and not note.strip():
            raise UsageError(
                f"{spec.id} sign-off needs a note: {requires}",
                gate=spec.id,
                fix="describe it in the sign-off note",
            )
        grant = self._approval("sign-off", spec.id, note, presigned=approval)
        extra = grant.payload() if grant else {}
        if grant:
            who = Identity.parse(grant.identity)
        self.journal.append("sign-off", {"gate": spec.id, "by": who.to_dict(), "note": note, **extra})
        return self.result(spec.id)

    def waive(self, gate_id: str, *, approver: Identity | str, reason: str) -> GateResult:
        spec = get_gate(gate_id)
        if not reason or not reason.strip():
            raise UsageError(f"a waiver of {spec.id} needs a reason", gate=spec.id, fix="say why it is acceptable")
        current = self.result(spec.id)
        if not current.status.is_failure:
            raise UsageError(
                f"{spec.id} is {current.status}; only failed, inconclusive or interrupted gates can be waived",
                gate=spec.id,
            )
        who = Identity.parse(approver)
        grant = self._approval("waiver", spec.id, reason)
        if grant:
            who = Identity.parse(grant.identity)
        self.journal.append(
            "waiver",
            {"gate": spec.id, "approver": who.to_dict(), "reason": reason, "waives": str(current.status),
             **(grant.payload() if grant else {})},
        )
        return self.result(spec.id)

    def skip(self, gate_id: str, *, reason: str, by: Identity | str | None = None) -> GateResult:
        spec = get_gate(gate_id)
        if not spec.optional:
            raise UsageError(
                f"{spec.id} is not optional; only {', '.join(g for g in GATE_IDS if get_gate(g).optional)} can be skipped",
                gate=spec.id,
                fix="run it, or waive a failure with an approver and reason",
            )
        if not reason.strip():
            raise UsageError(f"skipping {spec.id} needs a reason", gate=spec.id)
        current = self.result(spec.id)
        if current.status is Status.SKIPPED:
            return current
        who = Identity.parse(by) if by else whoami()
        grant = self._approval("skip", spec.id, reason)
        if grant:
            who = Identity.parse(grant.identity)
        self.journal.append("skip", {"gate": spec.id, "by": who.to_dict(), "reason": reason, **(grant.payload() if grant else {})})
        return self.result(spec.id)

    def incident(
        self,
        title: str,
        *,
        severity: str = "minor",
        evidence: dict[str, Any] | None = None,
        started_at: str | None = None,
        ended_at: str | None = None,
        gate: str | None = None,
        follow_up: str | None = None,
        test: str | None = None,
    ) -> dict[str, Any]:
        if severity not in ("minor", "major", "critical"):
            raise UsageError(f"incident severity {severity!r}", fix="use minor, major or critical")
        payload = {
            "title": title,
            "severity": severity,
            "evidence": evidence or {},
            "started_at": started_at,
            "ended_at": ended_at,
            "gate": gate,
            "follow_up": follow_up,
            "test": test,
            "by": whoami().to_dict(),
        }
        return self.journal.append("incident", payload).payload

    def note(self, text: str, **data: Any) -> None:
        self.journal.append("note", {"text": text, **data})

    # -- actions -------------------------------------------------------------------------------

    def action(
        self,
        gate_id: str,
        fn: Check,
        *,
        confirmed: bool = False,
        name: str | None = None,
        force: bool = False,
        reason: str | None = None,
        resume: bool = False,
        by: Identity | str | None = None,
        confirm_key: str | None = None,
    ) -> GateResult:
        """Run a side effect once per release.

        `confirmed` is the person's explicit go (a button click); headless runs get it from
        `relnb run --confirm`. Without it the action is `pending`, never silently skipped.
        """
        spec = get_gate(gate_id)
        key = name or spec.id
        if force and not (reason and reason.strip()):
            raise ActionRefused(
                f"force=True on {key} needs a reason", gate=spec.id, fix="pass reason='why it must run again'"
            )
        entry = self.state.actions.get(key)
        # A person's click (or typed yes) is an explicit "run this now", and may retry a failed
        # action; a blanket headless --confirm only starts actions that never finished.
        explicit = confirmed or spec.id in self.context.rerun
        confirmed = confirmed or self.context.confirmed(confirm_key or spec.id)
        cut_off = bool(entry) and (
            entry.get("state") == "running" or entry.get("finished", {}).get("status") == Status.INTERRUPTED
        )
        if entry and entry.get("state") == "finished" and not force and not cut_off:
            finished = entry["finished"]
            if Status(finished["status"]) is Status.PASSED or not explicit:
                return self._recorded_action(spec.id, key, finished)
        if cut_off and not (resume and confirmed) and not force:
            started = entry["started"]
            return GateResult(
                spec.id,
                Status.INTERRUPTED,
                f"{key} started at {entry.get('at')} and was cut off: check the system, "
                f"then confirm it again with resume=True (or `relnb run --resume {spec.id}`)",
                {"started": started},
                title=spec.title,
                recorded=True,
            )
        refused = self._guard(spec.id)
        if refused is not None:
            return refused
        if not confirmed:
            return GateResult(
                spec.id,
                Status.PENDING,
                f"waiting for confirmation to run {key} (click its button, or `relnb run --confirm {spec.id}`)",
                {},
                title=spec.title,
            )
        who = Identity.parse(by) if by else whoami()
        extra = {"action": key, "confirmed_by": who.to_dict()}
        if resume:
            extra["resumed"] = True
        if key != spec.id:
            return self._execute_secondary(spec.id, key, fn, extra, force, reason)
        return self._execute(spec.id, fn, event="action", forced=force, reason=reason, extra=extra)

    def _execute_secondary(self, gate_id, key, fn, extra, force, reason) -> GateResult:
        """Actions that are not a gate's verdict (rollback steps) are journaled under their own name."""
        spec = get_gate(gate_id)
        started = utcnow()
        payload = {"action": key, "of_gate": gate_id, **extra}
        if force:
            payload.update(forced=True, reason=reason)
            grant = self._approval("force", key, reason or "")
            if grant:
                payload.update(by=grant.identity, **grant.payload())
        self.journal.append("action-started", payload)
        t0 = time.monotonic()
        try:
            outcome = fn()
        except KeyboardInterrupt:
            self.journal.append(
                "action-finished",
                {"action": key, "of_gate": gate_id, "status": "interrupted", "summary": "interrupted by the user"},
            )
            raise
        except Exception as exc:
            outcome = Outcome.failed(f"{type(exc).__name__}: {scrub(str(exc))}"[:300], traceback=format_exception(exc))
        body = {
            "action": key,
            "of_gate": gate_id,
            "status": str(outcome.status),
            "summary": scrub(outcome.summary),
            "evidence": scrub_obj(outcome.evidence),
            "started_at": started,
            "finished_at": utcnow(),
            "duration_s": round(time.monotonic() - t0, 3),
        }
        self.journal.append("action-finished", body)
        return GateResult(gate_id, outcome.status, body["summary"], body["evidence"], started, body["finished_at"], 0, spec.title)

    def _recorded_action(self, gate_id: str, key: str, finished: dict[str, Any]) -> GateResult:
        spec = get_gate(gate_id)
        return GateResult(
            gate_id,
            Status(finished["status"]),
            finished.get("summary", ""),
            finished.get("evidence", {}),
            finished.get("started_at"),
            finished.get("finished_at"),
            finished.get("attempt", 0),
            spec.title,
            recorded=True,
        )

    def action_result(self, key: str) -> dict[str, Any] | None:
        """The recorded finish of an action (for later gates, e.g. E3 needs D2's snapshot key)."""
        entry = self.state.actions.get(key)
        return entry.get("finished") if entry else None

    def __repr__(self) -> str:
        return repr(self.status())

    def _repr_html_(self) -> str:
        return self.status()._repr_html_()


def confirmation(control: Any, gate_id: str, release: Release) -> bool:
    """A button's value in marimo; in Jupyter an explicit typed `yes`; otherwise a bool."""
    if isinstance(control, bool) or control is None:
        return bool(control)
    value = getattr(control, "value", None)
    if isinstance(value, bool):
        return value
    ask = getattr(control, "ask", None)
    if callable(ask):
        return bool(ask())
    return bool(control)


def _as_pending(evidence: Check) -> Check:
    """Evidence for a sign-off never passes by itself: a pass becomes `pending` awaiting a person."""

    def run() -> Outcome:
        out = evidence()
        if out.status is Status.PASSED:
            return Outcome(Status.PENDING, f"evidence gathered, awaiting sign-off: {out.summary}", out.evidence)
        return out

    return run


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


__all__ = ["SECTIONS", "Release", "RunContext", "find_root", "read_state"]
