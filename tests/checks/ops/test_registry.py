"""B3/E1 against a real registry: Debian's docker-registry (distribution 2.8), with real pushed
manifests, once open and once behind `auth: token` with a token server of our own (JWT RS256,
x5c header, certificate generated here and trusted through `rootcertbundle`)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relnb.checks.ops.registry import (
    check_image_tags,
    check_previous_tags,
    parse_challenge,
    split_reference,
)
from relnb.redact import REDACTOR, Secret
from relnb.results import Status

from ...conftest import need_debian, unused_port

SERVICE = "relnb-test-registry"
ISSUER = "relnb-test-issuer"
USER, PASSWORD = "ci-bot", "registry-pass-0123"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _start_registry(tmp: Path, auth: dict | None) -> tuple[str, subprocess.Popen]:
    port = unused_port()
    cfg = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(tmp / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex},
    }
    if auth:
        cfg["auth"] = auth
    path = tmp / "config.yml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    log = open(tmp / "registry.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([need_debian("docker-registry")["docker-registry"], "serve", str(path)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp / "registry.log").read_text())
        try:
            if httpx.get(url + "/v2/", timeout=1).status_code in (200, 401):
                return url, proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("docker-registry did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(
    url: str, name: str, tag: str, *, token: str | None = None, docker: bool = False
) -> str:
    """Push config + one layer + a manifest using monolithic uploads; returns the manifest digest."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": []},
            "tag": tag,
        }
    ).encode()
    layer = f"layer of {name}:{tag}".encode()
    with httpx.Client(timeout=10, headers=headers) as c:
        for blob in (config, layer):
            start = c.post(f"{url}/v2/{name}/blobs/uploads/")
            assert start.status_code == 202, start.text
            loc = start.headers["location"]
            loc = loc if loc.startswith("http") else url + loc
            sep = "&" if "?" in loc else "?"
            put = c.put(
                f"{loc}{sep}digest={_digest(blob)}",
                content=blob,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert put.status_code == 201, put.text
        if docker:
            media, cfg_media, layer_media = (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        else:
            media, cfg_media, layer_media = (
                OCI_MANIFEST,
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media,
                "config": {"mediaType": cfg_media, "digest": _digest(config), "size": len(config)},
                "layers": [
                    {"mediaType": layer_media, "digest": _digest(layer), "size": len(layer)}
                ],
            }
        ).encode()
        put = c.put(
            f"{url}/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": media}
        )
        assert put.status_code == 201, put.text
    return _digest(manifest)


# --- an open registry -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory):
    url, proc = _start_registry(tmp_path_factory.mktemp("registry-open"), None)
    digests = {
        "api:1.0.0": push_image(url, "docflow/api", "1.0.0"),
        "worker:1.0.0": push_image(url, "docflow/worker", "1.0.0", docker=True),
        "api:1.1.0": push_image(url, "docflow/api", "1.1.0"),
        "worker:1.1.0": push_image(url, "docflow/worker", "1.1.0", docker=True),
    }
    yield url, digests
    _stop(proc)


def test_present_tags_pass_with_digests(open_registry):
    url, digests = open_registry
    out = check_image_tags(
        url, {"api": "docflow/api:1.1.0", "worker": "docflow/worker:1.1.0"}, timeout_s=5
    )
    assert out.status is Status.PASSED, out
    assert out.evidence["images"]["api"]["digest"] == digests["api:1.1.0"]
    assert out.evidence["images"]["api"]["media_type"] == OCI_MANIFEST
    assert out.evidence["images"]["worker"]["media_type"] == DOCKER_MANIFEST
    assert out.evidence["auth"] == ["anonymous"]


def test_registry_needs_accept_header_for_head(open_registry):
    """Why the client sends the manifest Accept types: without them this registry says 404."""
    url, _ = open_registry
    assert httpx.head(f"{url}/v2/docflow/api/manifests/1.1.0", timeout=5).status_code == 404


def test_missing_tag_fails(open_registry):
    url, _ = open_registry
    out = check_image_tags(url, ["docflow/api:1.1.0", "docflow/worker:1.2.0"], timeout_s=5)
    assert out.status is Status.FAILED
    assert out.evidence["images"]["docflow/worker:1.2.0"]["verdict"] == "missing"
    assert "docflow/worker:1.2.0 (missing)" in out.summary


def test_missing_repository_fails(open_registry):
    url, _ = open_registry
    out = check_image_tags(url, ["docflow/nope:1.0.0"], timeout_s=5)
    assert out.status is Status.FAILED


def test_previous_release_tags_e1(open_registry):
    url, _ = open_registry
    repos = {"api": "docflow/api", "worker": "docflow/worker"}
    out = check_previous_tags(url, repos, "1.0.0", timeout_s=5)
    assert out.status is Status.PASSED and "previous release 1.0.0" in out.summary
    assert check_previous_tags(url, repos, "0.9.0", timeout_s=5).status is Status.FAILED
    assert check_previous_tags(url, repos, None).status is Status.INCONCLUSIVE


def test_lookup_by_digest(open_registry):
    url, digests = open_registry
    out = check_image_tags(url, [f"docflow/api@{digests['api:1.0.0']}"], timeout_s=5)
    assert out.status is Status.PASSED


def test_bad_reference_and_config():
    assert check_image_tags("http://127.0.0.1:9", ["docflow/api"]).status is Status.FAILED
    assert check_image_tags("http://127.0.0.1:9", []).status is Status.INCONCLUSIVE
    assert check_image_tags("", ["a:b"]).status is Status.INCONCLUSIVE


# --- a registry behind the bearer-token flow ---------------------------------------------------


class TokenServer:
    """The Docker token protocol: GET realm?service=&scope= with Basic auth → {"token": JWT}."""

    def __init__(self, key, cert_der: bytes) -> None:
        self.key = key
        self.x5c = [base64.b64encode(cert_der).decode()]
        self.requests: list[dict] = []

    async def token(self, request: Request) -> Response:
        q = request.query_params
        auth = request.headers.get("authorization", "")
        user = None
        if auth.startswith("Basic "):
            name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if (name, pw) != (USER, PASSWORD):
                return JSONResponse({"details": "invalid credentials"}, status_code=401)
            user = name
        self.requests.append(
            {"service": q.get("service"), "scopes": q.getlist("scope"), "user": user}
        )
        access = []
        for scope in q.getlist("scope"):
            kind, name, actions = scope.split(":")
            if user:  # anonymous users get nothing: a private registry
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user or "",
            "aud": q.get("service"),
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        tok = jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": self.x5c})
        return JSONResponse({"token": tok, "access_token": tok, "expires_in": 300})


def _cert(tmp: Path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relnb test token signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = tmp / "token-cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert.public_bytes(serialization.Encoding.DER), pem


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory, serve_module):
    tmp = tmp_path_factory.mktemp("registry-token")
    key, der, pem = _cert(tmp)
    server = TokenServer(key, der)
    realm = serve_module(Starlette(routes=[Route("/token", server.token)])) + "/token"
    url, proc = _start_registry(
        tmp,
        {
            "token": {
                "realm": realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(pem),
            }
        },
    )
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for name in ("docflow/api", "docflow/worker"):
        tok = httpx.get(
            realm,
            params={"service": SERVICE, "scope": f"repository:{name}:pull,push"},
            headers={"Authorization": f"Basic {basic}"},
        ).json()["token"]
        push_image(url, name, "1.0.0", token=tok)
        push_image(url, name, "1.1.0", token=tok)
    yield url, server
    _stop(proc)


@pytest.fixture
def password():
    yield Secret("REGISTRY_PASSWORD", PASSWORD)
    REDACTOR.forget_all()


def test_bearer_challenge_flow_with_credentials(token_registry, password):
    url, server = token_registry
    # the registry really challenges
    head = httpx.head(f"{url}/v2/docflow/api/manifests/1.1.0", timeout=5)
    scheme, params = parse_challenge(head.headers["www-authenticate"])
    assert head.status_code == 401 and scheme == "bearer" and params["service"] == SERVICE
    before = len(server.requests)
    out = check_image_tags(
        url,
        {"api": "docflow/api:1.1.0", "worker": "docflow/worker:1.1.0"},
        username=USER,
        password=password,
        timeout_s=5,
    )
    assert out.status is Status.PASSED, out
    assert out.evidence["auth"] == ["bearer-token"]
    new = server.requests[before:]
    assert [r["scopes"] for r in new] == [
        ["repository:docflow/api:pull"],
        ["repository:docflow/worker:pull"],
    ]
    assert all(r["user"] == USER and r["service"] == SERVICE for r in new)
    text = json.dumps(out.evidence)
    assert PASSWORD not in text and "eyJ" not in text


def test_missing_tag_behind_token_auth_fails(token_registry, password):
    url, _ = token_registry
    out = check_image_tags(
        url,
        ["docflow/api:1.1.0", "docflow/api:2.0.0"],
        username=USER,
        password=password,
        timeout_s=5,
    )
    assert out.status is Status.FAILED
    assert out.evidence["images"]["docflow/api:2.0.0"]["verdict"] == "missing"
    assert out.evidence["images"]["docflow/api:1.1.0"]["verdict"] == "present"


def test_anonymous_pull_denied_fails(token_registry):
    url, _ = token_registry
    out = check_image_tags(url, ["docflow/api:1.1.0"], timeout_s=5)
    assert (
        out.status is Status.FAILED
        and out.evidence["images"]["docflow/api:1.1.0"]["verdict"] == "denied"
    )


def test_wrong_password_fails(token_registry):
    url, _ = token_registry
    wrong = Secret("REGISTRY_PASSWORD", "not-the-password")
    try:
        out = check_image_tags(
            url, ["docflow/api:1.1.0"], username=USER, password=wrong, timeout_s=5
        )
    finally:
        REDACTOR.forget_all()
    assert out.status is Status.FAILED
    assert (
        "token endpoint answered HTTP 401" in out.evidence["images"]["docflow/api:1.1.0"]["detail"]
    )


# --- registry faults ---------------------------------------------------------------------------


def test_registry_down_is_inconclusive(dead_url):
    out = check_image_tags(dead_url, ["docflow/api:1.1.0"], timeout_s=2)
    assert out.status is Status.INCONCLUSIVE


def test_registry_500_and_slow_are_inconclusive(serve):
    import asyncio

    async def broken(request):
        if "slow" in request.url.path:
            await asyncio.sleep(2)
        return JSONResponse({"errors": [{"code": "UNKNOWN"}]}, status_code=500)

    url = serve(Starlette(routes=[Route("/v2/{rest:path}", broken, methods=["GET", "HEAD"])]))
    out = check_image_tags(url, ["docflow/api:1.1.0"], timeout_s=2)
    assert out.status is Status.INCONCLUSIVE and "HTTP 500" in out.summary
    out = check_image_tags(url, ["docflow/slow:1.1.0"], timeout_s=0.5)
    assert out.status is Status.INCONCLUSIVE and "timeout" in out.summary


def test_parse_challenge_and_reference():
    scheme, p = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/ubuntu:pull",error="insufficient_scope"'
    )
    assert scheme == "bearer" and p["realm"] == "https://auth.docker.io/token"
    assert p["scope"] == "repository:library/ubuntu:pull" and p["error"] == "insufficient_scope"
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})
    assert split_reference("team/api:1.2.0") == ("team/api", "1.2.0")
    with pytest.raises(ValueError):
        split_reference("team/api")


def test_basic_challenge_and_head_not_allowed(serve, password):
    """Registries behind htpasswd answer `Basic realm=`; some do not implement HEAD (405).
    (distribution's htpasswd needs bcrypt hashes, not available here, so this one is replayed.)"""
    good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    seen = []

    async def manifests(request):
        seen.append((request.method, request.headers.get("accept", "")))
        if request.method == "HEAD":
            return Response(status_code=405)
        if request.headers.get("authorization") != good:
            return Response(
                status_code=401, headers={"WWW-Authenticate": 'Basic realm="Registry Realm"'}
            )
        if request.path_params["tag"] != "1.1.0":
            return JSONResponse({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status_code=404)
        return Response(
            "{}",
            headers={"Docker-Content-Digest": "sha256:" + "a" * 64, "Content-Type": OCI_MANIFEST},
        )

    url = serve(
        Starlette(
            routes=[Route("/v2/{name:path}/manifests/{tag}", manifests, methods=["GET", "HEAD"])]
        )
    )
    out = check_image_tags(
        url, ["docflow/api:1.1.0"], username=USER, password=password, timeout_s=5
    )
    assert out.status is Status.PASSED, out
    assert out.evidence["auth"] == ["basic"]
    assert [m for m, _ in seen] == ["HEAD", "GET", "GET"] and OCI_MANIFEST in seen[0][1]
    assert (
        check_image_tags(url, ["docflow/api:9.9.9"], username=USER, password=password).status
        is Status.FAILED
    )
    out = check_image_tags(url, ["docflow/api:1.1.0"], timeout_s=5)  # no credentials configured
    assert (
        out.status is Status.FAILED
        and "none configured" in out.evidence["images"]["docflow/api:1.1.0"]["detail"]
    )
