"""Bad input stops relnb before anything is recorded: exit 3 and one line naming file, key and fix
(issue 22, "Bad input"). In-process through relnb.cli.main, so each case costs no interpreter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relnb import UsageError
from relnb.cli import main
from relnb.signing.approvals_file import read_approvals

from .helpers import make_project
from .test_cli import CONFIG


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj")
    (root / "relnb.toml").write_text(CONFIG.format(log=root / "actions.log"))
    monkeypatch.chdir(root)
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    monkeypatch.delenv("RELNB_SIGNOFFS", raising=False)
    assert main(["new", "1.0.0"]) == 0
    return root


def journal(root: Path) -> Path:
    return root / "releases" / "1.0.0" / "journal.jsonl"


def nb(root: Path) -> str:
    return str(root / "notebooks" / "release-1.0.0.py")


def usage_error(capsys, argv: list[str], *needles: str) -> str:
    """Run argv, expect exit 3, no gate table on stdout and one stderr line holding every needle."""
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 3, out + err
    assert len(lines) == 1, err
    assert "Traceback" not in out + err and "PENDING" not in out, out
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("toml", ["", '[project]\nname = "x"\n[environments.staging]\nbase_url = "http://127.0.0.1:9"\n'])
def test_config_without_the_release_environment_stops_run_before_the_journal(project, capsys, toml):
    """issue 22 item 1: an empty relnb.toml ran a whole release (55 events); now exit 3 naming
    the file, the release's environment and how to add it, with the journal untouched."""
    before = journal(project).read_bytes()
    (project / "relnb.toml").write_text(toml)
    usage_error(capsys, ["run", nb(project)], "relnb.toml", "environments.production", "base_url")
    assert journal(project).read_bytes() == before


P = "environments.production"


@pytest.mark.parametrize(
    "old, new, key",
    [
        ('base_url = "http://127.0.0.1:9"', 'base_url = "htp:/bad url"', "environments.staging.base_url"),
        ("", f'[{P}.observability]\nprometheus_url = "localhost:9090"\n', f"{P}.observability.prometheus_url"),
        ("", f'[{P}.metrics]\nurls = ["http://ok:1/metrics", "http://a b/metrics"]\n', f"{P}.metrics.urls[1]"),
        ("", f'[{P}.oidc]\nissuer = "ftp://idp/realms/x"\n', f"{P}.oidc.issuer"),
        ("", f'[{P}.backups]\nendpoint_url = "http://:9000"\n', f"{P}.backups.endpoint_url"),
    ],
)
def test_malformed_urls_are_config_errors_naming_the_key(project, capsys, old, new, key):
    """issue 22 item 2: `base_url = "htp:/bad url"` was accepted and the release sealed as passed."""
    cfg = project / "relnb.toml"
    text = cfg.read_text()
    cfg.write_text(text.replace(old, new, 1) if old else text + new)
    before = journal(project).read_bytes()
    usage_error(capsys, ["status", "1.0.0"], key, "is not a URL", "http(s)://")
    usage_error(capsys, ["run", nb(project)], key)
    assert journal(project).read_bytes() == before


def test_registry_host_and_named_entries_are_not_mistaken_for_bad_urls(project, capsys):
    """issue 22 item 2 (the other side): a registry named by host[:port], as image names do, and a
    PromQL query that happens to be named `*_url` stay valid config."""
    cfg = project / "relnb.toml"
    cfg.write_text(cfg.read_text() + f'[{P}.registry]\nurl = "registry.example.com:5000"\n'
                   f'[{P}.metrics.queries]\nhealth_url = "up == 1"\n')
    capsys.readouterr()
    assert main(["status", "1.0.0"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--window", "-5m"], ["--window", "0"], ["--window=-1h"], ["--window", "soon"], ["--timeout", "-1s"]])
def test_bad_cli_durations_name_the_option_and_the_fix(project, capsys, argv):
    """issue 22 item 3: `--window -5m` got argparse's "expected one argument", `--window 0` ran."""
    before = journal(project).read_bytes()
    option = argv[0].split("=")[0]
    usage_error(capsys, ["run", nb(project), *argv], option, "not a positive duration", f"{option}=2m")
    assert journal(project).read_bytes() == before


@pytest.mark.parametrize("value, needle", [('"0s"', "not a positive duration"), ('"-1m"', "not a duration"), ('"0"', "not a positive")])
def test_bad_config_durations_name_the_key(project, capsys, value, needle):
    """issue 22 item 3: `[monitor] window` must be a positive duration (a zero window watched nothing)."""
    cfg = project / "relnb.toml"
    cfg.write_text(cfg.read_text() + f"[monitor]\nwindow = {value}\n")
    usage_error(capsys, ["status", "1.0.0"], "monitor.window", needle, "45m")


def test_corrupted_journal_is_exit_3_for_status_and_run_but_verify_fails(project, capsys):
    """issue 22 item 5: a corrupted journal line exited 1 from `relnb status`, like a failed gate."""
    lines = journal(project).read_text().splitlines()
    lines[0] = lines[0].replace('"seq"', '"sEq"')
    journal(project).write_text("\n".join(lines) + "\n")
    usage_error(capsys, ["status", "1.0.0"], "journal.jsonl", "seq")
    usage_error(capsys, ["run", nb(project)], "journal.jsonl")
    capsys.readouterr()
    assert main(["verify", "1.0.0"]) == 1  # verification still reports a failure, not a usage error


def test_invalid_approvals_file_is_exit_3_in_one_line(project, capsys):
    """issue 22 item 5: a bad approval signature exited 1 (as if a gate failed) over several lines."""
    statement = {"kind": "sign-off", "gate": "A3", "release_id": "1.0.0", "release_sha": "0" * 40,
                 "text": "read the SQL", "principal": "mallory@example.org"}
    forged = {"format": "relnb-approvals/1", "release_id": "1.0.0", "release_sha": "0" * 40, "approvals": [
        {"statement": statement, "signature": "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
         "principal": "mallory@example.org", "fingerprint": "SHA256:forged"}]}
    path = project / "approvals.json"
    path.write_text(json.dumps(forged))
    before = journal(project).read_bytes()
    usage_error(capsys, ["run", nb(project), "--sign-offs", str(path)], str(path), "invalid approval", "relnb sign")
    assert journal(project).read_bytes() == before


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"approvals": 7}, "approvals must be a list"),
        ({"approvals": {"A3": "yes"}}, "approvals must be a list"),
        ({"approvals": ["signed"]}, "approvals[0]"),
        ({"approvals": [["statement"]]}, "approvals[0]"),
        ({"approvals": [{"statement": {}, "signature": 1}]}, "approvals[0]"),
        ({"release_id": None}, "release_id is missing"),
        ({"release_sha": 5}, "release_sha is missing"),
    ],
)
def test_a_misshapen_approvals_file_is_exit_3_in_one_line(project, capsys, change, needle):
    """issue 22: fields of the wrong shape raised TypeError/KeyError tracebacks from read_approvals."""
    data = {"format": "relnb-approvals/1", "release_id": "1.0.0", "release_sha": "0" * 40, "approvals": []}
    path = project / "approvals.json"
    path.write_text(json.dumps({**data, **change}))
    before = journal(project).read_bytes()
    usage_error(capsys, ["run", nb(project), "--sign-offs", str(path)], str(path), needle)
    assert journal(project).read_bytes() == before
    with pytest.raises(UsageError, match=re.escape(needle)):  # every reader of the file, not only `run`
        read_approvals(path)


def test_flows_file_errors_stop_the_run_with_exit_3(project, capsys):
    """issue 22 item 5: a broken smoke flows file exited 1 hours into a run; it is config, checked first."""
    (project / "flows.toml").write_text('[flows.login]\nsteps = [{ method = "GET" }]\n')
    cfg = project / "relnb.toml"
    cfg.write_text(cfg.read_text().replace("[ci]", '[smoke]\nfiles = ["flows.toml"]\n[ci]', 1))
    before = journal(project).read_bytes()
    usage_error(capsys, ["run", nb(project)], "flows.toml", "flows.login.steps[0]")
    assert journal(project).read_bytes() == before


def test_locked_release_names_the_holder_and_prints_no_table(project, capsys):
    """issue 22 item 6: a second `relnb run` printed a 64-line JournalLocked traceback and then a
    gate table as if it had run; now exit 3, one line with the holder's pid, host and start."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time, relnb.journal as j; j.JournalWriter.open(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(journal(project).parent)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = journal(project).read_bytes()
        t0 = time.monotonic()
        line = usage_error(capsys, ["run", nb(project)], f"pid {holder.pid}", "on host", "since", "wait for")
        assert "relnb run: release" not in line and time.monotonic() - t0 < 30
        assert journal(project).read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
