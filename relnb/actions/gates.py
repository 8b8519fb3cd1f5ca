"""Providers of the action gates (B3 build, D1 safe mode, D2 snapshot, D4 deploy, F1 tag) and the
rollback's steps: what each side effect is for this project, run once by the release.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import git
from ..checks.http.version import expected_version
from ..checks.migrations.gates import rollback_plan
from ..config import parse_duration
from ..errors import RelnbError
from ..gatecontext import GateContext, command_action, config_error
from ..redact import scrub
from ..results import Outcome, Status


def snapshot(ctx: GateContext) -> Outcome:
    """D2: a fresh backup in the production backup store, else the project's snapshot command."""
    from .backupstores import NotConfigured, backup_store, with_store

    try:
        store = backup_store(ctx)
    except NotConfigured:  # no bucket/instance: the team snapshots with a command, if any
        return command_action(ctx, "snapshot")
    except RelnbError as exc:
        return config_error(exc)
    return with_store(ctx, lambda s: s.snapshot(label=f"release-{ctx.release.id}"), store=store)


def build_images(ctx: GateContext) -> Outcome:
    return command_action(ctx, "build")


def safe_mode(ctx: GateContext) -> Outcome:
    """D1: only with a way back out: safe mode left on after the release is an outage."""
    try:
        commands = ctx.env("production")["commands"]
    except RelnbError as exc:
        return config_error(exc)
    if commands.get("safe_mode_on") and not commands.get("safe_mode_off"):
        return Outcome.failed(
            "safe_mode_on is configured but safe_mode_off is not: relnb could not switch safe mode off "
            "after the deploy or on rollback (set environments.production.commands.safe_mode_off)",
            missing_config="environments.production.commands.safe_mode_off",
        )
    return command_action(ctx, "safe_mode_on")


def safe_mode_off(ctx: GateContext) -> Outcome:
    """The undo of D1, run by the release after the deploy passed or by the rollback."""
    return command_action(ctx, "safe_mode_off")


def deploy(ctx: GateContext) -> Outcome:
    """D4: the environment's deploy provider, then /version must show the released SHA."""
    from .deploy import deploy_and_verify
    from .deployers import DeployTarget
    from .deployers import deploy as run_provider

    env = ctx.env("production")
    sha = ctx.release_sha() or ""
    target = DeployTarget("production", str(ctx.release.info.get("version", "")), sha)

    def step() -> Outcome:
        return run_provider(ctx, target)

    if not env["version_path"]:
        done = step()
        note = "not verified against /version: environments.production.version_path is empty"
        return Outcome(done.status, f"{done.summary} ({note})", {**done.evidence, "sha": sha, "version_check": note})
    out = deploy_and_verify(step, **_version_probe(ctx, env), expected=expected_version(env, sha, target.version)[0])
    return Outcome(out.status, out.summary, {**out.evidence, "sha": sha})


def git_tag(ctx: GateContext) -> Outcome:
    """F1: annotated tag at the SHA that was deployed; refuses a tag that points elsewhere."""
    repo = ctx.repo()
    version = str(ctx.release.info.get("version"))
    tag = f"{ctx.config.project['tag_prefix']}{version}"
    deployed = ctx.release.action_result("D4")
    sha = (deployed or {}).get("evidence", {}).get("sha") or ctx.release.info.get("git_sha")
    if not sha:
        return Outcome.failed("no deployed SHA in the journal and no git SHA at release creation")

    existing = git.run(repo, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}")
    if existing.returncode == 0:
        at = existing.stdout.strip()
        if at == sha:
            return Outcome.passed(f"tag {tag} already at {sha[:12]}", tag=tag, sha=sha, created=False)
        return Outcome.failed(
            f"tag {tag} exists at {at[:12]}, not at the deployed {sha[:12]}: refusing to move it",
            tag=tag, tag_sha=at, deployed_sha=sha,
        )
    state = ctx.release.state
    counts = state.table().counts()
    message = f"Release {version}\n\nrelnb release {ctx.release.id}: " + ", ".join(
        f"{n} {s}" for s, n in sorted(counts.items())
    )
    made = git.run(repo, "tag", "-a", tag, sha, "-m", message, env=_tagger())
    if made.returncode != 0:
        return Outcome.failed(f"git tag failed: {scrub(made.stderr.strip())[:200]}", tag=tag, sha=sha)
    return Outcome.passed(f"created annotated tag {tag} at {sha[:12]}", tag=tag, sha=sha, created=True)


def _tagger() -> dict[str, str]:
    """The annotated tag is the release lead's record: signed by whoever runs the release, which
    also works on a machine whose git has no identity configured (a CI runner, a fresh laptop)."""
    from ..identity import whoami

    who = whoami()
    email = who.email or "relnb@localhost"
    return {"GIT_COMMITTER_NAME": who.name, "GIT_COMMITTER_EMAIL": email}


def _version_probe(ctx: GateContext, env: dict[str, Any]) -> dict[str, Any]:
    """Where D4 and the rollback redeploy read the running version: the same source as B1."""
    from ..checks.http.version import version_source

    return {
        "base_url": env["base_url"],
        "source": version_source(env, where="environments.production", cwd=ctx.repo(), file=ctx.config.file),
        "timeout_s": parse_duration(env["version_timeout"]),
        "headers": ctx.auth_headers("production"),
    }


def rollback_steps(ctx: GateContext) -> list[tuple[str, Callable[[], Outcome]]]:
    """The rollback E2/E3's plan calls for, as named actions. With no migration run, a redeploy of
    the previous version; when the previous version cannot run on the new schema, the schema is
    undone first (down migration or the D2 snapshot), else the old code comes back first and the
    schema follows; with no safe way back (unreadable migrations, nothing to restore) a failing
    step that names why, never a redeploy into an outage."""
    from .deploy import deploy_and_verify

    env = ctx.env("production")
    tag = ctx.previous_tag()
    prev_sha = git.output(ctx.repo(), "rev-parse", f"{tag}^{{commit}}") if tag else None
    prev_version = tag[len(ctx.config.project["tag_prefix"]):] if tag else ""

    def redeploy() -> Outcome:
        from .deployers import DeployTarget
        from .deployers import deploy as run_provider

        if not prev_sha:
            return Outcome.failed("no previous release tag to roll back to: set project.previous_tag")
        target = DeployTarget("production", prev_version, prev_sha, rollback=True)

        def step() -> Outcome:
            return run_provider(ctx, target)

        if not env["version_path"]:
            return step()
        return deploy_and_verify(step, **_version_probe(ctx, env), expected=expected_version(env, prev_sha, prev_version)[0])

    redeploy_step: tuple[str, Callable[[], Outcome]] = ("rollback-redeploy", redeploy)
    if "D3" not in ctx.release.state.actions:  # no migration ran: the schema is the previous one
        return [redeploy_step]
    # the plan this release recorded at E3 is the one to follow (and needs no repository, so a
    # replay elsewhere shows the same steps); work it out now only when E3 has not settled
    recorded = ctx.release.result("E3")
    if recorded.recorded and recorded.status is Status.PASSED:
        plan: Any = recorded
    else:
        try:
            plan = rollback_plan(GateContext(ctx.release, "E3"))
        except Exception as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}")[:200]
            return [("rollback-plan", lambda: Outcome.failed(f"cannot tell the rollback plan (E3): {reason}"))]
    ev = plan.evidence
    undo, safe = ev.get("undo") or "", ev.get("redeploy_safe")
    if plan.status is Status.INCONCLUSIVE or (safe is False and undo not in ("restore", "down-or-restore")):
        # redeploying the previous version over a schema it may not run on is the outage this
        # prevents: the rollback stops here, and a person decides
        why = scrub(plan.summary)[:300]
        return [("rollback-plan", lambda: Outcome.failed(f"no safe rollback: {why}"))]
    undo_step: tuple[str, Callable[[], Outcome]] | None = None
    if undo == "down-or-restore" or str(ev.get("plan", "")).startswith("run down"):
        if env["commands"]["migrate_down"]:
            undo_step = ("rollback-down-migration", lambda: command_action(ctx, "migrate_down"))
        else:
            undo_step = ("rollback-restore-snapshot", _restore(ctx))
    elif undo == "restore":
        undo_step = ("rollback-restore-snapshot", _restore(ctx))
    if undo_step is None:
        return [redeploy_step]
    # the previous version cannot run on this schema: undo it first; otherwise the old code comes
    # back first (it runs on the expanded schema) and the schema follows
    return [undo_step, redeploy_step] if safe is False else [redeploy_step, undo_step]


def _restore(ctx: GateContext) -> Callable[[], Outcome]:
    """Restore the snapshot D2 took in this release (never one of unknown origin)."""

    def restore() -> Outcome:
        from .backupstores import with_store

        d2 = ctx.release.action_result("D2")
        if not d2 or d2.get("status") != "passed":
            return Outcome.failed("no D2 snapshot recorded in this release to restore")
        return with_store(ctx, lambda store: store.restore(d2.get("evidence", {})))

    return restore
