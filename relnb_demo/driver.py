"""`relnb demo`: the whole checklist against the demo stack, headless, with one command.

The stack (relnb_demo.stack) runs docflow's staging and production; this driver turns its
description into an ordinary relnb project (relnb.toml + secrets in the environment), creates the
release notebook from the template, runs it through `relnb run` with every action confirmed,
then prints the gate table. Nothing here is demo-only logic in the gates: the same providers run
against a real team's systems.

Approvals are signed the way a team does it headless: with `[signing] required = true`, the
demo's reviewer (role db-reviewer, which A3 needs) and release lead pre-sign their sign-offs and
skips with `relnb sign`'s library call into the release's approvals file, which the run checks
before it starts and consumes like `relnb run --sign-offs FILE`; the seal is signed at archive
time with the lead's key ($RELNB_SIGNING_KEY). The notes say plainly that no human reviewed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEMO_NOTE = "signed in advance by `relnb demo` with a demo key (not a human review)"
# gate -> (who signs: "lead" | "reviewer", extra words for the note)
SIGN_OFFS = {
    "A3": ("reviewer", ": the new migration adds a nullable column"),
    "A4": ("lead", ": expand/contract — new column is nullable, old code ignores it"),
    "A5": ("lead", ""),
}
APP_SECRETS = ("DATABASE_URL", "REDIS_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "KEYCLOAK_ISSUER_URL")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Just enough TOML writing for a generated config (tables, arrays of tables, scalars)."""
    scalars, tables, arrays = [], [], []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            scalars.append(f"{k} = {_toml_value(v)}")
    out = []
    if scalars:
        if prefix:
            out.append(f"[{prefix}]")
        out += scalars
        out.append("")
    for k, v in tables:
        out.append(to_toml(v, f"{prefix}.{k}" if prefix else k))
    for k, items in arrays:
        for item in items:
            out.append(f"[[{prefix}.{k}]]" if prefix else f"[[{k}]]")
            out += [f"{ik} = {_toml_value(iv)}" for ik, iv in item.items() if iv is not None]
            out.append("")
    return "\n".join(out)


def _admin_url(database_url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(database_url)
    params["dbname"] = "postgres"
    return make_conninfo(**params)


ENV_FILE = ".env"


def project_config(d: dict[str, Any], window: str) -> tuple[dict[str, Any], dict[str, str]]:
    """relnb.toml content and the environment variables (secrets) for the demo's project."""
    env_vars = dict(d["env_vars"])
    envs: dict[str, Any] = {}
    for name, e in d["environments"].items():
        names = e["env_var_names"]
        op = name.upper()
        # relnb's own read access to the backups (an operator credential), distinct from the
        # app's production secrets that C4 inspects in the environment's dotenv file.
        env_vars[f"RELNB_DEMO_{op}_S3_ACCESS_KEY"] = e["s3"]["access_key"]
        env_vars[f"RELNB_DEMO_{op}_S3_SECRET_KEY"] = d["_s3_operator_secret"]
        metrics: dict[str, Any] = {"kind": "scrape", "urls": e["metrics"]["scrape_urls"]}
        envs[name] = {
            "base_url": e["base_url"],
            "version_path": e["version_path"],
            "version_field": e["version_field"],
            # staging is already deployed in the demo: B1 need not wait long for a SHA that is wrong
            "version_timeout": "15s" if name == "staging" else "60s",
            "auth": {"token_env": names["owner_token"], "member_token_env": names["member_token"]},
            "database_url_env": names["database_url"],
            "redis_url_env": names["redis_url"],
            "queue": {
                "kind": e["queue"]["kind"],
                "names": e["queue"]["names"],
                "prefix": e["queue"]["prefix"],
                # watch longer than the worker's lock (10 s), so a hung worker's job is seen stalled;
                # extraction jobs take well under a second, so 12 s active is stuck
                "check_interval": "16s",
                "max_job_age": "12s",
            },
            "backups": {
                "kind": "s3",
                "bucket": e["s3"]["bucket"],
                "prefix": e["s3"]["prefix"],
                "endpoint_url": e["s3"]["endpoint_url"],
                "region": e["s3"]["region"],
                "access_key_env": f"RELNB_DEMO_{op}_S3_ACCESS_KEY",
                "secret_key_env": f"RELNB_DEMO_{op}_S3_SECRET_KEY",
                **_restore_test(e, env_vars),
            },
            "metrics": metrics,
            "registry": {"url": e["registry"]["url"], "repositories": e["registry"]["repositories"]}
            if e.get("registry")
            else None,
            "oidc": {
                "issuer": e["oidc"]["issuer"],
                "client_id": e["oidc"]["client_id"],
                "frontends": e["frontends"],
            },
            "commands": {**{k: v for k, v in e["commands"].items() if v}, "smoke": d["smoke_script"]},
            "secrets": {
                # the app's own secrets, as its deploy env file (infra/docker/env.vps.example) names them
                "required": list(APP_SECRETS),
                "source": "dotenv",
                "dotenv": e["dotenv"],
                "probes": [
                    {"name": "DATABASE_URL", "kind": "postgres"},
                    {"name": "REDIS_URL", "kind": "redis"},
                    {
                        "name": "S3_SECRET_ACCESS_KEY",
                        "kind": "s3",
                        "bucket": e["s3"]["bucket"],
                        "endpoint_url": e["s3"]["endpoint_url"],
                        "region": e["s3"]["region"],
                        "access_key_id_from": "S3_ACCESS_KEY_ID",
                    },
                    {"name": "KEYCLOAK_ISSUER_URL", "kind": "oidc"},
                ],
            },
        }
        if e["metrics"].get("prometheus_url"):
            envs[name]["observability"] = {
                "prometheus_url": e["metrics"]["prometheus_url"],
                "alertmanager_url": e["metrics"].get("alertmanager_url"),
                "expected_alerts": e["metrics"].get("alert_rules") or [],
                "error_tracking_dsn_env": f"RELNB_DEMO_{op}_ERROR_DSN",
                "settle": "20s",
            }
            # docflow's error tracking: the stack's Sentry-compatible ingest, which C5 probes
            env_vars[f"RELNB_DEMO_{op}_ERROR_DSN"] = e["error_tracking_dsn"]
    env_vars["RELNB_DEMO_SHADOW_DATABASE_URL"] = _admin_url(
        d["environments"]["production"]["database_url"]
    )
    config = {
        "project": {
            "name": "docflow",
            "repo": d["repo"],
            "main_branch": d["main_branch"],
            "previous_tag": d["previous_tag"],
            "runbooks": d["runbooks"],
            "openapi": d["openapi"],
            # what the code at a commit serves: docflow's routing table (src/docflow/routes.py)
            "routes": {"app": d["routes_app"], "python_path": ["src"]},
            "migrations_dir": d["migrations_dir"],
            "migrations_kind": "prisma",
            "schema_paths": ["prisma/schema.prisma"],
            "deploy_artifacts": d["deploy_artifacts"],
            "env_templates": d["env_templates"],
            "shadow_database_url_env": "RELNB_DEMO_SHADOW_DATABASE_URL",
            "large_table_rows": 10000,
        },
        "ci": {"provider": "command", "command": d["ci_command"], "timeout": "5m"},
        # docflow's own flows (smoke/flows.py in its repository): the checklist's five for B5,
        # health + login + a workspace + a queue job end to end for D5
        "smoke": {"python": ["smoke/flows.py"], "staging": list(STAGING_FLOWS), "production": list(PRODUCTION_FLOWS)},
        # what a team configures: the checklist's 30 minutes in production and an hour's soak on
        # staging; the demo runs them shortened (`--window`), and a shortened window is only ever
        # waived, by the reviewer's signed approval of the demo's reason (WINDOW_REASON)
        "monitor": {"window": CONFIGURED_WINDOW, "interval": "3s", "min_samples": 6, "failure_limit": 2, "soak": CONFIGURED_SOAK},
        "environments": envs,
    }
    signing = d.get("signing")
    if signing:
        lead, reviewer = _signer(d, "lead"), _signer(d, "reviewer")
        config["project"]["release_lead"] = f"{lead['name']} <{lead['principal']}>"
        config["signing"] = {
            "enabled": True,
            "required": True,
            "allowed_signers": signing["allowed_signers"],
            "release_lead": lead["principal"],
            "four_eyes": True,
            "gates": {"A3": [reviewer["roles"][0]]},
        }
    return config, env_vars


def _restore_test(e: dict[str, Any], env_vars: dict[str, str]) -> dict[str, Any]:
    """C2 restores the newest backup into a scratch database: a dump that does not restore (cut
    off, corrupt) is no backup, however recent and large it is."""
    url = e["s3"].get("restore_test_database_url")
    if not url:
        return {}
    env_vars[RESTORE_TEST_ENV] = url
    return {"restore_test": True, "restore_test_database_url_env": RESTORE_TEST_ENV}


RESTORE_TEST_ENV = "RELNB_DEMO_RESTORE_TEST_DATABASE_URL"
CONFIGURED_WINDOW, CONFIGURED_SOAK = "30m", "1h"
# the windows a rehearsal on one machine shortens (B8's own window is shorter than the demo's)
SHORTENED = ("C1", "D7")


def window_reason(window: str) -> str:
    """Why the demo's windows are shorter than configured: the words of the waiver it records."""
    return (f"relnb demo: a rehearsal on one machine watches {window} instead of the configured "
            f"{CONFIGURED_WINDOW} window and {CONFIGURED_SOAK} soak")


STAGING_FLOWS = ("login_me", "create_workspace", "invite_accept", "upload_extraction", "analytics_summary")
PRODUCTION_FLOWS = ("health", "login_me", "create_workspace", "upload_extraction")


def _signer(d: dict[str, Any], who: str) -> dict[str, Any]:
    """The demo signer playing `who` ("lead" or "reviewer"), from the stack's description."""
    from .signers import DB_REVIEWER_ROLE

    for s in d["signing"]["signers"]:
        if (DB_REVIEWER_ROLE in s["roles"]) == (who == "reviewer"):
            return s
    raise KeyError(who)


def presign_approvals(
    d: dict[str, Any], config: Any, version: str, skips: dict[str, str], window: str = ""
) -> Path:
    """Sign the run's sign-offs, skips and (for a shortened `window`) the waivers of the windows
    it shortens in advance, as each person would with `relnb sign`. The waivers are the
    reviewer's: under four eyes the lead who shortened the windows cannot waive them."""
    from relnb import SigningSettings, presign, read_state

    settings = SigningSettings.from_mapping(config.data["signing"])
    out = config.releases_dir() / version / "approvals.json"
    created = read_state(version, config=config).created
    plan = [("sign-off", g, who, DEMO_NOTE + words) for g, (who, words) in SIGN_OFFS.items()]
    plan += [("skip", g, "lead", reason) for g, reason in skips.items()]
    if window:
        plan += [("waiver", g, "reviewer", window_reason(window)) for g in SHORTENED]
    for kind, gate, who, text in plan:
        signer = _signer(d, who)
        presign(
            version,
            gate,
            kind=kind,
            text=text,
            repo=config.repo_path(),
            settings=settings,
            out=out,
            key=signer["key"],
            principal=signer["principal"],
            created=created,
            project_release_lead=config.project.get("release_lead"),
        )
    return out


def crash_title(crash: dict[str, Any]) -> str:
    return (
        f"{crash['process']} ({crash['environment']}, {crash['version']}) exited with "
        f"{crash['exit_code']} while starting and was restarted"
    )


def record_crash(release: Any, crash: dict[str, Any], who: str) -> None:
    """What docflow's on-call does with a crash the restart policy hid: an incident in the
    release's journal, with the process's last words. Its regression test is for whoever fixes
    the cause to link (F2 waits for it)."""
    previous = os.environ.get("RELNB_USER")
    os.environ["RELNB_USER"] = who  # recorded by the release lead, as in the run
    try:
        release.incident(
            crash_title(crash),
            severity="minor",
            evidence={k: crash[k] for k in ("environment", "process", "version", "exit_code", "log_tail")},
            started_at=crash["at"],
            ended_at=crash["at"],
            gate=None,
            follow_up="find why it crashed, fix it, and link the regression test to this incident",
        )
    finally:
        if previous is None:
            os.environ.pop("RELNB_USER", None)
        else:
            os.environ["RELNB_USER"] = previous


def _tool(name: str) -> str:
    """How to call a console script of this installation: its bare name when PATH finds this
    very one (an activated venv), else its full path (the README runs `.venv/bin/relnb`)."""
    here = Path(sys.executable).parent / name
    if not here.is_file():
        return name
    on_path = shutil.which(name)
    return name if on_path and Path(on_path).resolve() == here.resolve() else str(here)


def epilogue(
    project: Path,
    notebook: Path,
    version: str,
    *,
    sealed: bool,
    keep: bool,
    signers: dict[str, dict[str, Any]] | None = None,
) -> str:
    """What a newcomer reads last: where the record is and what to type next."""
    releases = project / "releases" / version
    review = project / "notebooks" / "review.py"
    rows = [
        (f"{_tool('relnb')} show {version} --timeline", "gates, incidents, changelog, every event"),
        (f"{_tool('relnb')} verify {version}", "hash chain, manifest and signatures"),
        (f"{_tool('marimo')} edit {notebook.relative_to(project)}", "the release notebook, cell by cell"),
        (f"{_tool('marimo')} edit {review.relative_to(project)}", "the review dashboard (DORA, gate failures)"),
    ]
    width = max(len(cmd) for cmd, _ in rows)
    lines = [
        f"archive: {releases} (sealed: notebook, HTML, ipynb, journal, manifest)"
        if sealed
        else f"journal: {releases / 'journal.jsonl'} (not sealed: the release did not finish)",
        "next:",
        f"  cd {project}",
        *(f"  {cmd.ljust(width)}  # {why}" for cmd, why in rows),
    ]
    if keep:
        nxt = _next_version(version)
        lines += [
            f"continue with a release of your own (the stack's variables are in {project / ENV_FILE}):",
            f"  {_tool('relnb')} new {nxt}",
        ]
        # the project requires signed sign-offs: each person signs theirs with their demo key
        for gate, (who, _words) in SIGN_OFFS.items():
            signer = (signers or {}).get(who)
            if signer:
                lines.append(
                    f"  {_tool('relnb')} sign {nxt} {gate} --key {signer['key']} --principal {signer['principal']}"
                    f" --note {shlex.quote(f'reviewed for {nxt}')}"
                )
        approvals = f" --sign-offs releases/{nxt}/approvals.json" if signers else ""
        # staging's actions (B: its migrations) run; production's wait for a person's --confirm D
        lines.append(f"  {_tool('relnb')} run notebooks/release-{nxt}.py{approvals} --confirm B")
    else:
        lines.append("(the demo's services are stopped; the project and its releases stay)")
    return "\n".join(lines)


def _next_version(version: str) -> str:
    parts = version.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return f"{parts[0]}.{int(parts[1]) + 1}.0"
    return f"{version}-next"


def write_env_file(path: Path, variables: dict[str, str]) -> None:
    """KEY='value' lines, readable by this user only (relnb refuses a wider mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# written by `relnb demo`: the demo stack's variables; relnb loads it (project.env_file)\n")
        for key, value in sorted(variables.items()):
            if value and "\n" not in value:  # single quotes: parse_dotenv reads them verbatim
                quoted = f"'{value}'" if "'" not in value else '"' + value.replace('"', '\\"') + '"'
                f.write(f"{key}={quoted}\n")
    os.chmod(path, 0o600)


def run_demo(
    *,
    faults: Sequence[str] = (),
    window: str = "2m",
    keep: bool = False,
    postgres_url: str | None = None,
    redis_url: str | None = None,
    workdir: str | None = None,
    install: bool = True,
    emit: Callable[[str], None] = lambda s: print(s, flush=True),
) -> int:
    from relnb import (
        Release,
        RunOptions,
        UsageError,
        instantiate_template,
        load_config,
        load_sign_offs_file,
        redact,
        review_notebook,
        run_notebook,
        template_path,
    )

    from .faults import Fault
    from .provision import provision
    from .stack import DemoStack

    for f in faults:  # a misspelt fault is a usage error before anything is installed or started
        try:
            Fault.parse(f)
        except ValueError as exc:
            raise UsageError(f"--fault {f}: {exc}", key="--fault") from None
    t0 = time.monotonic()
    # Before the stack: a machine that lacks Prometheus/Alertmanager/the registry gets them now,
    # or the demo stops here with the command that installs them (never a release bound to fail).
    provision(allow_install=install, emit=emit)
    base = Path(workdir or tempfile.mkdtemp(prefix="relnb-demo-", dir="/tmp")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    stack = DemoStack(base / "stack", faults=faults, postgres_url=postgres_url, redis_url=redis_url)
    try:
        emit(f"relnb demo: starting the stack in {base} (faults: {', '.join(faults) or 'none'})")
        stack.start()
        d = stack.describe()
        d["_s3_operator_secret"] = stack.s3.secret_key
        for value in d["env_vars"].values():
            redact.register(value, "demo-secret")
        emit(
            f"relnb demo: stack up in {d['startup_seconds']} s — staging {d['environments']['staging']['base_url']}, "
            f"production {d['environments']['production']['base_url']}"
        )
        project = base / "project"
        project.mkdir(exist_ok=True)
        config_data, env_vars = project_config(d, window)
        for value in env_vars.values():
            if value:
                redact.register(value, "demo-secret")
        lead = _signer(d, "lead")
        lead_identity = f"{lead['name']} <{lead['principal']}>"
        # the stack's variables (and the lead's identity and signing key) in a file relnb loads, so
        # a new shell in this project continues where the demo stopped (`relnb demo --keep`)
        config_data["project"]["env_file"] = ENV_FILE
        write_env_file(project / ENV_FILE, {**env_vars, "RELNB_USER": lead_identity, "RELNB_SIGNING_KEY": lead["key"]})
        (project / "relnb.toml").write_text(to_toml(config_data))
        os.environ.update({k: v for k, v in env_vars.items() if v})
        config = load_config(project / "relnb.toml")
        version = d["new_version"]
        text, sha = instantiate_template(template_path(project, "marimo"), version)
        nb = project / "notebooks" / f"release-{version}.py"
        nb.parent.mkdir(exist_ok=True)
        nb.write_text(text)
        shutil.copyfile(review_notebook(), project / "notebooks" / "review.py")  # for the reviewer
        release = Release.create(
            version,
            notebook=str(nb.relative_to(project)),
            template_sha256=sha,
            config=config,
            author=lead_identity,
        )
        try:
            for crash in d["crashes"]:
                emit(f"relnb demo: on-call records an incident: {crash_title(crash)}")
                record_crash(release, crash, lead_identity)
        finally:
            release.close()
        skips = {"D1": "demo: no risky migration needs safe mode"}
        approvals = presign_approvals(d, config, version, skips, window)
        emit(
            "relnb demo: approvals signed in advance by "
            + ", ".join(s["principal"] for s in d["signing"]["signers"])
            + f" into {approvals}"
        )
        opts = RunOptions(
            notebook=nb,
            junit=project / "junit.xml",
            sign_offs=load_sign_offs_file(approvals),  # what `relnb run --sign-offs FILE` reads
            # the lead's standing decision for this release: roll back if production fails
            confirm=["ALL", "ROLLBACK-ON-FAILURE"],
            skips=skips,
            # shorter than the configured windows: C1 and D7 end waived (never passed), in these words
            window=window,
            window_reason=window_reason(window),
            # the lead runs the release and signs the seal with their key (a path, never bytes)
            extra_env={"RELNB_USER": lead_identity, "RELNB_SIGNING_KEY": lead["key"]},
            approvals=approvals,
        )
        code, state = run_notebook(opts, config, emit=emit)
        emit(repr(state.table()))
        emit(f"verdict: {state.verdict()} (exit {code}) in {time.monotonic() - t0:.0f} s")
        signers = {who: _signer(d, who) for who in ("lead", "reviewer")} if d.get("signing") else None
        emit(epilogue(project, nb, version, sealed=state.sealed is not None, keep=keep, signers=signers))
        if keep:
            emit(f"--keep: the stack stays up; stop it with: kill {os.getpid()} (or Ctrl-C)")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return code
    finally:
        stack.stop()
        if not keep and not workdir:
            shutil.rmtree(base / "stack", ignore_errors=True)
