"""D4 providers: a real shell command, and Coolify's API replayed by a local server.

The replay follows Coolify v4's DeployController (`GET|POST /api/v1/deploy?uuid=|tag=&force=`,
`GET /api/v1/deployments/{uuid}`) and its ApplicationDeploymentStatus values (queued,
in_progress, finished, failed, cancelled-by-user); the tag answer uses the older
`{"message": [...], "details": [...]}` shape, the uuid answer `{"deployments": [...]}`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from relnb.actions import deploy
from relnb.redact import Secret
from relnb.results import Status

OLD_SHA = "a" * 40
NEW_SHA = "b" * 40


@dataclass
class Replay:
    token: str
    script: list[str] = field(
        default_factory=lambda: ["queued", "in_progress", "in_progress", "finished"]
    )
    deployments: dict[str, list[str]] = field(default_factory=dict)
    version: dict[str, str] = field(default_factory=lambda: {"sha": OLD_SHA, "image_tag": "1.0.0"})
    calls: list[str] = field(default_factory=list)


def coolify_app(rep: Replay) -> Starlette:
    def authed(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {rep.token}"

    async def deploy_ep(request: Request) -> JSONResponse:
        rep.calls.append(f"{request.method} {request.url.path}?{request.url.query}")
        if not authed(request):
            return JSONResponse({"message": "Unauthenticated."}, status_code=401)
        uuids, tags = request.query_params.get("uuid"), request.query_params.get("tag")
        if uuids and tags:
            return JSONResponse(
                {"message": "You can only use uuid or tag, not both."}, status_code=400
            )
        if uuids:
            out = []
            for u in uuids.split(","):
                if u == "missing":
                    continue
                dep = secrets.token_hex(12)
                rep.deployments[dep] = list(rep.script)
                out.append(
                    {
                        "message": f"Application {u} deployment queued.",
                        "resource_uuid": u,
                        "deployment_uuid": dep,
                    }
                )
            if not out:
                return JSONResponse({"message": "No resources found."}, status_code=404)
            return JSONResponse({"deployments": out})
        if tags:
            dep = secrets.token_hex(12)
            rep.deployments[dep] = list(rep.script)
            return JSONResponse(
                {
                    "message": [
                        "Application api deployment queued.",
                        "Service redis started. It could take a while, be patient.",
                    ],
                    "details": [{"resource_uuid": "app-api", "deployment_uuid": dep}],
                }
            )
        return JSONResponse({"message": "You must provide uuid or tag."}, status_code=400)

    async def deployment(request: Request) -> JSONResponse:
        if not authed(request):
            return JSONResponse({"message": "Unauthenticated."}, status_code=401)
        dep = request.path_params["uuid"]
        steps = rep.deployments.get(dep)
        if steps is None:
            return JSONResponse({"message": "Deployment not found."}, status_code=404)
        status = steps.pop(0) if len(steps) > 1 else steps[0]
        body = {
            "id": 1,
            "application_id": "3",
            "deployment_uuid": dep,
            "pull_request_id": 0,
            "force_rebuild": False,
            "commit": NEW_SHA,
            "status": status,
            "is_webhook": False,
            "is_api": True,
            "application_name": "docflow-api",
            "server_name": "localhost",
        }
        if status == "failed":
            body["logs"] = json.dumps(
                [
                    {"command": None, "output": "Pulling image", "type": "stdout", "hidden": False},
                    {
                        "command": None,
                        "output": f"auth failed for token {rep.token}",
                        "type": "stderr",
                        "hidden": False,
                    },
                ]
            )
        if status == "finished":
            rep.version.update(sha=NEW_SHA, image_tag="1.1.0")
        return JSONResponse(body)

    async def version(request: Request) -> JSONResponse:
        return JSONResponse(
            {**rep.version, "version": rep.version["image_tag"], "environment": "production"}
        )

    return Starlette(
        routes=[
            Route("/api/v1/deploy", deploy_ep, methods=["GET", "POST"]),
            Route("/api/v1/deployments/{uuid}", deployment),
            Route("/version", version),
        ]
    )


def _replay(serve) -> tuple[Replay, str, Secret]:
    raw = "coolify-" + secrets.token_hex(16)
    rep = Replay(raw)
    return rep, serve(coolify_app(rep)), Secret("COOLIFY_TOKEN", raw)


def test_coolify_by_uuid_then_version(serve) -> None:
    rep, url, token = _replay(serve)
    out = deploy.deploy_and_verify(
        lambda: deploy.deploy_coolify(
            url, token, uuid="app-api,app-worker", poll_s=0.05, timeout_s=10
        ),
        base_url=url,
        expected="1.1.0",
        poll_s=0.05,
        timeout_s=5,
    )
    assert out.status is Status.PASSED, out.summary
    deps = out.evidence["deploy"]["deployments"]
    assert len(deps) == 2 and all(d["final"] == "finished" for d in deps)
    assert deps[0]["statuses"] == ["queued", "in_progress", "finished"]
    assert rep.calls[0].startswith("POST /api/v1/deploy?uuid=app-api%2Capp-worker&force=false")
    assert out.evidence["version"]["reported"]["image_tag"] == "1.1.0"
    assert token.reveal() not in json.dumps(out.evidence)


def test_coolify_by_tag_old_shape_and_sha_check(serve) -> None:
    rep, url, token = _replay(serve)
    out = deploy.deploy_and_verify(
        lambda: deploy.deploy_coolify(
            url + "/api/v1", token, tag="production", force=True, poll_s=0.05
        ),
        base_url=url,
        expected=NEW_SHA[:12],
        poll_s=0.05,
        timeout_s=5,
    )
    assert out.status is Status.PASSED, out.summary
    assert "Service redis started" in " ".join(out.evidence["deploy"]["messages"])
    assert "force=true" in rep.calls[0]


def test_coolify_failed_deployment_shows_scrubbed_logs(serve) -> None:
    rep, url, token = _replay(serve)
    rep.script = ["queued", "in_progress", "failed"]
    out = deploy.deploy_coolify(url, token, uuid="app-api", poll_s=0.05)
    assert out.status is Status.FAILED
    assert "ended failed" in out.summary and "[redacted:COOLIFY_TOKEN]" in out.summary
    assert token.reveal() not in json.dumps(out.evidence) + out.summary
    # the version never changed, so deploy_and_verify must not pass either
    out = deploy.deploy_and_verify(
        lambda: deploy.deploy_coolify(url, token, uuid="app-api", poll_s=0.05),
        base_url=url,
        expected="1.1.0",
        poll_s=0.05,
        timeout_s=0.3,
    )
    assert out.status is Status.FAILED


def test_coolify_timeout_auth_and_not_found(serve, dead_url) -> None:
    rep, url, token = _replay(serve)
    rep.script = ["queued", "in_progress"]
    out = deploy.deploy_coolify(url, token, uuid="app-api", poll_s=0.05, timeout_s=0.4)
    assert out.status is Status.FAILED and "ended timeout (in_progress)" in out.summary
    out = deploy.deploy_coolify(url, Secret("WRONG_COOLIFY", "wrong-token-123"), uuid="app-api")
    assert out.status is Status.FAILED and "HTTP 401: Unauthenticated." in out.summary
    out = deploy.deploy_coolify(url, token, uuid="missing")
    assert out.status is Status.FAILED and "No resources found." in out.summary
    out = deploy.deploy_coolify(url, token, uuid="a", tag="b")
    assert out.status is Status.FAILED and "exactly one" in out.summary
    out = deploy.deploy_coolify(dead_url, token, uuid="a")
    assert out.status is Status.FAILED and "unreachable" in out.summary


def test_command_provider_streams_scrubs_and_times_out(serve, tmp_path) -> None:
    _rep, url, token = _replay(serve)
    lines: list[str] = []
    env = {"DEPLOY_KEY": token.reveal()}
    marker = tmp_path / "deployed"
    cmd = f'echo "deploying with $DEPLOY_KEY"; echo step two; touch {marker}'
    out = deploy.deploy_command(cmd, env=env, on_line=lines.append)
    assert out.status is Status.PASSED and marker.exists()
    assert lines == ["deploying with [redacted:COOLIFY_TOKEN]", "step two"]
    out = deploy.deploy_command("sleep 5", timeout_s=0.5)
    assert out.status is Status.FAILED and "timed out" in out.summary
    out = deploy.deploy_command("echo boom >&2; exit 3")
    assert out.status is Status.FAILED and "exited 3: boom" in out.summary
    # a successful command whose app never reports the new version fails D4
    out = deploy.deploy_and_verify(
        lambda: deploy.deploy_command("true"),
        base_url=url,
        expected="1.1.0",
        poll_s=0.05,
        timeout_s=0.3,
    )
    assert out.status is Status.FAILED and "expected 1.1.0" in out.summary
    # a version endpoint that never answers usably is inconclusive, naming the URL polled
    out = deploy.deploy_and_verify(
        lambda: deploy.deploy_command("true"),
        base_url=url,
        path="/nope",
        expected="1.1.0",
        poll_s=0.05,
        timeout_s=0.2,
    )
    assert out.status is Status.INCONCLUSIVE and url + "/nope" in out.summary
