"""Gates, sign-offs, waivers, skips, actions and the promotion guard, through the public API."""

import pytest

import relnb
from relnb import ActionRefused, Outcome, Release, Status, UsageError

from .helpers import all_green, make_project

A_TO_C = [g.id for g in relnb.GATES if g.section in "ABC"]


@pytest.fixture
def release(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    for var in ("RELNB_CONFIRM", "RELNB_SIGNOFFS", "RELNB_RERUN", "RELNB_SKIPS", "RELNB_HEADLESS"):
        monkeypatch.delenv(var, raising=False)
    root = make_project(tmp_path / "p")
    r = Release.create("1.4.0", root=root)
    yield r
    r.close()


def test_status_is_a_fold_over_the_journal(release):
    release.run("A1", lambda: Outcome.passed("green", checks=12))
    again = relnb.read_state("1.4.0", root=release.config.root)
    assert again.result("A1").status is Status.PASSED
    assert again.result("A1").evidence == {"checks": 12}
    assert again.result("A2").status is Status.PENDING


def test_settled_gate_is_read_back_unsettled_runs_again(release):
    calls = []
    release.run("A1", lambda: calls.append(1) or Outcome.passed("ok"))
    release.run("A1", lambda: calls.append(1) or Outcome.passed("ok"))
    assert len(calls) == 1
    release.run("A2", lambda: calls.append(2) or Outcome.failed("missing spec"))
    release.run("A2", lambda: calls.append(2) or Outcome.passed("documented"))
    assert calls.count(2) == 2
    assert release.result("A2").status is Status.PASSED
    with pytest.raises(UsageError, match="needs a reason"):
        release.run("A1", lambda: calls.append(1) or Outcome.failed("red now"), rerun=True)
    release.run("A1", lambda: calls.append(1) or Outcome.failed("red now"), rerun=True, reason="CI re-ran")
    assert release.result("A1").status is Status.FAILED


def test_a_crashing_check_fails_with_a_traceback(release):
    res = release.run("A6", lambda: {}["missing"])
    assert res.status is Status.FAILED
    assert "KeyError" in res.summary and "Traceback" in res.evidence["traceback"]


def test_a_check_returning_the_wrong_type_fails(release):
    assert release.run("A6", lambda: True).status is Status.FAILED


def test_promotion_guard_names_blockers_then_waiver_then_void(release):
    all_green(release, except_=("C3",))
    release.run("C3", lambda: Outcome.failed("ALTER TABLE takes ACCESS EXCLUSIVE"))
    ran = []
    for gid in [g.id for g in relnb.GATES if g.section == "D"]:
        spec = relnb.get_gate(gid)
        if spec.kind is relnb.Kind.ACTION:
            res = release.action(gid, lambda gid=gid: ran.append(gid) or Outcome.passed("x"), confirmed=True)
        else:
            res = release.run(gid, lambda gid=gid: ran.append(gid) or Outcome.passed("x"))
        assert res.status is Status.PENDING
        assert "C3 (failed)" in res.summary, res.summary
    assert ran == []
    with pytest.raises(relnb.PromotionRefused) as exc:
        release.require_promotion()
    assert exc.value.blockers == [("C3", "failed")]

    release.waive("C3", approver="Second Person <second@example.org>", reason="table has 10 rows")
    assert release.result("C3").status is Status.WAIVED
    d2 = release.action("D2", lambda: Outcome.passed("snapshot s3://b/k"), confirmed=True)
    assert d2.status is Status.PASSED

    release.run("C3", lambda: Outcome.failed("still unsafe"), rerun=True, reason="new table size")
    assert release.result("C3").status is Status.FAILED
    d3 = release.action("D3", lambda: Outcome.passed("migrated"), confirmed=True)
    assert d3.status is Status.PENDING and "C3 (failed)" in d3.summary


def test_rerunning_an_upstream_gate_voids_downstream_waiver(release):
    release.run("B1", lambda: Outcome.failed("staging runs the old SHA"))
    release.run("B6", lambda: Outcome.failed("stuck jobs"))
    release.waive("B6", approver="Other <o@example.org>", reason="accepted")
    assert release.result("B6").status is Status.WAIVED
    release.run("B1", lambda: Outcome.passed("staging runs main"), rerun=True, reason="redeployed staging")
    state = release.state
    assert release.result("B6").status is Status.FAILED
    assert state.gates["B6"].voided_waivers[0]["voided_by"]["gate"] == "B1"


def test_waiver_rules(release):
    release.run("A1", lambda: Outcome.passed("ok"))
    with pytest.raises(UsageError):
        release.waive("A1", approver="X", reason="why")  # nothing to waive
    release.run("A2", lambda: Outcome.inconclusive("spec unreadable"))
    with pytest.raises(UsageError):
        release.waive("A2", approver="X", reason="  ")


def test_skip_only_optional_with_reason(release):
    with pytest.raises(UsageError):
        release.skip("B2", reason="no")
    with pytest.raises(UsageError):
        release.skip("B3", reason=" ")
    assert release.skip("B3", reason="images built by CI").status is Status.SKIPPED


def test_sign_off_gathers_evidence_then_waits(release):
    res = release.request_sign_off("A3", evidence=lambda: Outcome.passed("1 new migration", sql="ALTER ..."))
    assert res.status is Status.PENDING and "awaiting sign-off" in res.summary
    res = release.request_sign_off("A3", submitted="read the SQL")
    assert res.status is Status.PASSED
    assert res.evidence["sign_off"]["by"]["email"] == "lead@example.org"
    assert res.evidence["sql"] == "ALTER ..."


def test_sign_off_cannot_pass_failed_evidence_and_requires_note_when_asked(release):
    release.request_sign_off("A3", evidence=lambda: Outcome.failed("schema changed, no migration"))
    with pytest.raises(UsageError):
        release.sign_off("A3", by="Alice <alice@example.org>", note="fine")
    release.request_sign_off(
        "A4", evidence=lambda: Outcome.passed("1 destructive change", sign_off_requires="an expand/contract plan")
    )
    with pytest.raises(UsageError):
        release.sign_off("A4", by="Alice <alice@example.org>", note="")
    assert release.sign_off("A4", by="Alice <alice@example.org>", note="expand now, contract in 1.5").status is Status.PASSED


def test_action_runs_once_and_force_needs_reason(release):
    all_green(release)
    calls = []
    step = lambda: calls.append(1) or Outcome.passed("snapshot taken", key="s3://b/1")  # noqa: E731
    assert release.action("D2", step, confirmed=False).status is Status.PENDING
    assert calls == []
    first = release.action("D2", step, confirmed=True)
    second = release.action("D2", step, confirmed=True)
    assert first.status is second.status is Status.PASSED
    assert second.recorded and calls == [1]
    with pytest.raises(ActionRefused):
        release.action("D2", step, confirmed=True, force=True)
    release.action("D2", step, confirmed=True, force=True, reason="first snapshot was partial")
    assert calls == [1, 1]
    started = [e for e in release.journal.events if e.type == "action-started"]
    assert started[-1].payload["forced"] is True and started[-1].payload["reason"] == "first snapshot was partial"


def test_interrupted_action_needs_resume(release):
    all_green(release)

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        release.action("D2", interrupted, confirmed=True)
    assert release.result("D2").status is Status.INTERRUPTED
    calls = []
    res = release.action("D2", lambda: calls.append(1) or Outcome.passed("ok"), confirmed=True)
    assert res.status is Status.INTERRUPTED and calls == []
    res = release.action("D2", lambda: calls.append(1) or Outcome.passed("ok"), confirmed=True, resume=True)
    assert res.status is Status.PASSED and calls == [1]
    # an action whose process died mid-way (started, never finished)
    release.journal.append("action-started", {"gate": "D3", "action": "D3", "attempt": 1})
    res = release.action("D3", lambda: calls.append(2) or Outcome.passed("ok"), confirmed=True)
    assert res.status is Status.INTERRUPTED and "resume=True" in res.summary and calls == [1]
    res = release.action("D3", lambda: calls.append(2) or Outcome.passed("ok"), confirmed=True, resume=True)
    assert res.status is Status.PASSED and calls == [1, 2]


def test_headless_context_confirms_and_signs(release, monkeypatch, tmp_path):
    all_green(release)
    so = tmp_path / "so.json"
    so.write_text('{"a5": {"by": "Flag Owner <f@example.org>", "note": "flag docflow.analytics"}}')
    monkeypatch.setenv("RELNB_CONFIRM", "D")
    monkeypatch.setenv("RELNB_SIGNOFFS", str(so))
    ctx = relnb.RunContext.from_env()
    assert ctx.confirmed("D2") and not ctx.confirmed("B2")
    release.context = ctx
    assert release.action("D2", lambda: Outcome.passed("x")).status is Status.PASSED


def test_incident_and_note(release):
    inc = release.incident("error rate 4%", severity="major", gate="D7", evidence={"max": 0.04})
    assert inc["severity"] == "major"
    with pytest.raises(UsageError):
        release.incident("x", severity="apocalyptic")
    release.note("paused for lunch")
    assert release.state.incidents[0]["title"] == "error rate 4%"


def test_rendering(release):
    res = release.run("A1", lambda: Outcome.failed("2 checks red", red=["lint", "e2e"]))
    html = res._repr_html_()
    assert 'data-status="failed"' in html and "2 checks red" in html and "<details>" in html
    assert repr(res).startswith("[FAIL] A1")
    table = release.status()
    assert len(table.rows) == 33
    assert "A1" in repr(table) and 'data-gate="F3"' in table._repr_html_()


def test_failed_action_retries_only_on_an_explicit_go(release, monkeypatch):
    all_green(release)
    calls = []
    release.action("D2", lambda: calls.append(1) or Outcome.failed("pg_dump exited 1"), confirmed=True)
    monkeypatch.setenv("RELNB_CONFIRM", "all")
    release.context = relnb.RunContext.from_env()
    again = release.action("D2", lambda: calls.append(1) or Outcome.passed("ok"))
    assert again.status is Status.FAILED and again.recorded and calls == [1]
    clicked = release.action("D2", lambda: calls.append(1) or Outcome.passed("ok"), confirmed=True)
    assert clicked.status is Status.PASSED and calls == [1, 1]


def with_rollback_command(release, tmp_path):
    """A production whose rollback command appends to a log; A–C settled. Returns the log."""
    log = tmp_path / "rb.log"
    cfg = release.config.root / "relnb.toml"
    cfg.write_text(f'[environments.production]\nbase_url = "http://127.0.0.1:9"\nversion_path = ""\n'
                   f'[environments.production.commands]\nrollback = "echo rb >> {log}"\n')
    release.config = relnb.load_config(cfg)
    all_green(release)
    return log


def test_rollback_runs_only_when_asked_by_name_and_once(release, monkeypatch, tmp_path):
    log = with_rollback_command(release, tmp_path)
    assert release.rollback(confirmed=True).rows[0].status is Status.PENDING  # nothing deployed yet
    release.action("D2", lambda: Outcome.passed("snap"), confirmed=True)
    release.action("D3", lambda: Outcome.passed("migrated"), confirmed=True)
    release.action("D4", lambda: Outcome.passed("deployed", sha="abc"), confirmed=True)
    monkeypatch.setenv("RELNB_CONFIRM", "all")
    release.context = relnb.RunContext.from_env()
    table = release.rollback()
    assert [r.status for r in table.rows] == [Status.PENDING]  # `all` does not imply a rollback
    assert not log.exists()
    monkeypatch.setenv("RELNB_CONFIRM", "rollback")
    release.context = relnb.RunContext.from_env()
    table = release.rollback()
    # no previous tag in this repo: the redeploy step fails honestly and is journaled once
    assert table.rows[0].status is Status.FAILED and "previous release tag" in table.rows[0].summary
    started = [e for e in release.journal.events if e.type == "action-started" and e.payload["action"] == "rollback-plan"]
    assert len(started) == 1


def test_rollback_on_failure_waits_for_a_failing_production_gate(release, monkeypatch, tmp_path):
    log = with_rollback_command(release, tmp_path)
    for gate in ("D2", "D3", "D4"):
        release.action(gate, lambda: Outcome.passed("done", sha="abc"), confirmed=True)
    monkeypatch.setenv("RELNB_CONFIRM", "all,rollback-on-failure")
    release.context = relnb.RunContext.from_env()
    release.run("D5", lambda: Outcome.passed("smoke ok"))
    release.skip("D6", reason="no bearer tokens for the scripted check")
    assert [r.status for r in release.rollback().rows] == [Status.PENDING]  # production is fine
    assert release.production_failures() == [] and not log.exists()
    release.run("D7", lambda: Outcome.failed("error_rate 28% > 1%"))
    assert release.production_failures() == ["D7"]
    table = release.rollback()
    # the rollback went ahead (no previous tag here: its redeploy step fails honestly, once)
    assert table.rows[0].status is Status.FAILED and "previous release tag" in table.rows[0].summary
    notes = [e.payload["text"] for e in release.journal.events if e.type == "note"]
    assert notes == ["rollback confirmed in advance (ROLLBACK-ON-FAILURE) and due: D7 did not pass after the deploy"]
    release.rollback()  # re-running the cell repeats nothing and notes nothing new
    assert sum(e.type == "note" for e in release.journal.events) == 1


def test_d4_reads_the_running_version_where_b1_does(release, tmp_path):
    """A custom version endpoint (version_path/version_field) is honoured by D4, not only by B1."""
    import http.server
    import json as _json
    import threading

    sha = release.info["git_sha"]
    served = {"build": {"commit": "0" * 40}}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = _json.dumps(served).encode() if self.path == "/api/build" else b"{}"
            self.send_response(200 if self.path == "/api/build" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        marker = tmp_path / "deployed"
        cfg = release.config.root / "relnb.toml"
        cfg.write_text(
            f'[environments.production]\nbase_url = "{url}"\nversion_path = "/api/build"\n'
            f'version_field = "build.commit"\nversion_timeout = "1s"\n'
            f'[environments.production.commands]\ndeploy = "touch {marker}"\n'
        )
        release.config = relnb.load_config(cfg)
        from relnb.actions.gates import deploy
        from relnb.gatecontext import GateContext

        out = deploy(GateContext(release, "D4"))
        assert marker.exists()
        assert out.status is Status.FAILED and "/api/build" in out.summary, out.summary
        served["build"]["commit"] = sha
        out = deploy(GateContext(release, "D4"))
        assert out.status is Status.PASSED, out.summary
        assert out.evidence["version"]["url"] == url + "/api/build"
    finally:
        server.shutdown()
