"""B9: real preflights against a Starlette API with CORSMiddleware, and a Keycloak-shaped issuer.

The issuer answers the way Keycloak does (HTTP 400 "Invalid parameter: redirect_uri" for an
unregistered redirect URI, "Client not found." for an unknown client); its admin API replays
Keycloak's documented client representation (redirectUris, webOrigins).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from relnb.checks.http.cors_oidc import KeycloakAdmin, check_cors_and_redirects
from relnb.redact import REDACTOR, Secret
from relnb.results import Status

STAGING_WEB = "http://staging-web.docflow.test"
ADMIN_WEB = "http://staging-admin.docflow.test"
FRONTENDS = [
    {"origin": STAGING_WEB, "redirect_uri": f"{STAGING_WEB}/auth/callback"},
    {"origin": ADMIN_WEB, "redirect_uri": f"{ADMIN_WEB}/auth/callback"},
]
ADMIN_PASSWORD = "kc-admin-pass-123"


async def me(request: Request) -> Response:
    if not request.headers.get("authorization"):
        return JSONResponse({"detail": "missing bearer token"}, status_code=401)
    return JSONResponse({"sub": "u1"})


def api(
    origins,
    *,
    credentials=True,
    methods=("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
    headers=("Authorization", "Content-Type"),
) -> Starlette:
    return Starlette(
        routes=[Route("/me", me)],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(origins),
                allow_credentials=credentials,
                allow_methods=list(methods),
                allow_headers=list(headers),
            )
        ],
    )


def raw_api(preflight_headers: dict, status: int = 200) -> Starlette:
    """An API whose preflight answer is written by hand (misconfigured proxies, wildcard)."""

    async def endpoint(request: Request) -> Response:
        if request.method == "OPTIONS":
            return PlainTextResponse("", status_code=status, headers=preflight_headers)
        return JSONResponse({}, status_code=401, headers=preflight_headers)

    return Starlette(routes=[Route("/me", endpoint, methods=["GET", "OPTIONS"])])


class Keycloak:
    def __init__(self) -> None:
        self.redirect_uris = [f"{STAGING_WEB}/auth/callback", f"{ADMIN_WEB}/*"]
        self.web_origins = ["+"]
        self.discovery_mode = "ok"
        self.admin_tokens: list[str] = []

    def app(self) -> Starlette:
        realm = "/realms/demo"

        async def discovery(request: Request) -> Response:
            if self.discovery_mode == "500":
                return JSONResponse({"error": "x"}, status_code=500)
            if self.discovery_mode == "malformed":
                return Response('{"issuer": ', media_type="application/json")
            if self.discovery_mode == "slow":
                await asyncio.sleep(2)
            issuer = self.url + realm
            if self.discovery_mode == "wrong-issuer":
                issuer = "https://elsewhere.example.com/realms/demo"
            return JSONResponse(
                {
                    "issuer": issuer,
                    "authorization_endpoint": f"{self.url}{realm}/protocol/openid-connect/auth",
                    "token_endpoint": f"{self.url}{realm}/protocol/openid-connect/token",
                    "jwks_uri": f"{self.url}{realm}/protocol/openid-connect/certs",
                    "response_types_supported": ["code"],
                }
            )

        async def auth(request: Request) -> Response:
            q = request.query_params
            if q.get("client_id") != "docflow-web":
                return HTMLResponse("<html><body>Client not found.</body></html>", status_code=400)
            uri = q.get("redirect_uri", "")
            ok = any(
                uri == p or (p.endswith("*") and uri.startswith(p[:-1])) for p in self.redirect_uris
            )
            if not ok:
                return HTMLResponse(
                    "<html><title>We are sorry...</title><p>Invalid parameter: redirect_uri</p></html>",
                    status_code=400,
                )
            return HTMLResponse("<html><form id='kc-form-login'>Sign in</form></html>")

        async def admin_token(request: Request) -> Response:
            form = await request.form()
            if form.get("client_id") != "admin-cli" or form.get("password") != ADMIN_PASSWORD:
                return JSONResponse({"error": "invalid_grant"}, status_code=401)
            tok = "eyJadmin-access-token-xyz"
            self.admin_tokens.append(tok)
            return JSONResponse({"access_token": tok, "token_type": "Bearer", "expires_in": 60})

        async def clients(request: Request) -> Response:
            if request.headers.get("authorization") not in {
                f"Bearer {t}" for t in self.admin_tokens
            }:
                return JSONResponse({"error": "HTTP 401 Unauthorized"}, status_code=401)
            cid = request.query_params.get("clientId")
            reps = [
                {
                    "id": "8c1a",
                    "clientId": "docflow-web",
                    "enabled": True,
                    "publicClient": True,
                    "redirectUris": self.redirect_uris,
                    "webOrigins": self.web_origins,
                }
            ]
            return JSONResponse([r for r in reps if r["clientId"] == cid])

        return Starlette(
            routes=[
                Route(f"{realm}/.well-known/openid-configuration", discovery),
                Route(f"{realm}/protocol/openid-connect/auth", auth),
                Route(
                    "/realms/master/protocol/openid-connect/token", admin_token, methods=["POST"]
                ),
                Route("/admin/realms/demo/clients", clients),
            ]
        )


@pytest.fixture
def kc(serve):
    k = Keycloak()
    k.url = serve(k.app())
    k.issuer = k.url + "/realms/demo"
    return k


@pytest.fixture
def admin_secret():
    yield Secret("KC_ADMIN_PASSWORD", ADMIN_PASSWORD)
    REDACTOR.forget_all()


def check(api_url, kc, **kw):
    return check_cors_and_redirects(
        api_url,
        kw.pop("frontends", FRONTENDS),
        kc.issuer,
        kw.pop("client_id", "docflow-web"),
        timeout_s=kw.pop("timeout_s", 3),
        **kw,
    )


def test_correct_cors_and_redirects_pass(serve, kc, admin_secret):
    url = serve(api([STAGING_WEB, ADMIN_WEB]))
    admin = KeycloakAdmin(kc.url, "demo", username="admin", password=admin_secret)
    out = check(url, kc, keycloak_admin=admin)
    assert out.status is Status.PASSED, out.evidence["problems"]
    first = out.evidence["cors"][0]
    assert first["allow_origin"] == STAGING_WEB and first["allow_credentials"] == "true"
    assert "origin" in first["vary"] and "authorization" in first["allow_headers"]
    assert [r["verdict"] for r in out.evidence["redirects"]] == ["accepted", "accepted"]
    assert out.evidence["keycloak_admin"]["webOrigins"] == ["+"]
    assert ADMIN_PASSWORD not in json.dumps(out.evidence)


def test_origin_missing_from_cors_fails(serve, kc):
    url = serve(api([STAGING_WEB]))  # the admin frontend was forgotten
    out = check(url, kc)
    assert out.status is Status.FAILED
    admin = out.evidence["cors"][1]
    assert admin["status"] == 400 and admin["allow_origin"] is None
    assert any(ADMIN_WEB in p and "HTTP 400" in p for p in out.evidence["problems"])


def test_authorization_header_not_allowed_fails(serve, kc):
    url = serve(api([STAGING_WEB, ADMIN_WEB], headers=("Content-Type",)))
    out = check(url, kc)
    assert out.status is Status.FAILED
    assert any("Authorization" in p for p in out.evidence["problems"])


def test_method_not_allowed_fails(serve, kc):
    url = serve(api([STAGING_WEB, ADMIN_WEB], methods=("GET", "POST")))
    out = check(url, kc, method="DELETE")
    assert out.status is Status.FAILED and any("DELETE" in p for p in out.evidence["problems"])


def test_wildcard_with_credentials_fails(serve, kc):
    url = serve(
        raw_api(
            {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": "*",
            }
        )
    )
    out = check(url, kc)
    assert out.status is Status.FAILED
    assert any("* while credentials" in p for p in out.evidence["problems"])
    # `*` never covers Authorization, even without credentials
    out = check(url, kc, credentials=False)
    assert any("header Authorization" in p for p in out.evidence["problems"])


def test_missing_vary_origin_fails(serve, kc):
    url = serve(
        raw_api(
            {
                "Access-Control-Allow-Origin": STAGING_WEB,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "GET",
                "Access-Control-Allow-Headers": "authorization, content-type",
            }
        )
    )
    out = check(url, kc, frontends=FRONTENDS[:1])
    assert out.status is Status.FAILED and any(
        "Vary: Origin" in p for p in out.evidence["problems"]
    )


def test_non_2xx_preflight_fails_even_with_headers(serve, kc):
    url = serve(
        raw_api(
            {
                "Access-Control-Allow-Origin": STAGING_WEB,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "GET",
                "Access-Control-Allow-Headers": "authorization",
                "Vary": "Origin",
            },
            status=405,
        )
    )
    out = check(url, kc, frontends=FRONTENDS[:1])
    assert out.status is Status.FAILED and any("HTTP 405" in p for p in out.evidence["problems"])


def test_unregistered_redirect_uri_fails(serve, kc):
    url = serve(api([STAGING_WEB, ADMIN_WEB]))
    kc.redirect_uris = [f"{STAGING_WEB}/auth/callback"]
    out = check(url, kc)
    assert out.status is Status.FAILED
    assert [r["verdict"] for r in out.evidence["redirects"]] == ["accepted", "rejected"]
    assert any(f"{ADMIN_WEB}/auth/callback" in p for p in out.evidence["problems"])


def test_unknown_client_fails(serve, kc):
    url = serve(api([STAGING_WEB, ADMIN_WEB]))
    out = check(url, kc, client_id="no-such-client")
    assert (
        out.status is Status.FAILED and out.evidence["redirects"][0]["verdict"] == "client-unknown"
    )


@pytest.mark.parametrize("mode", ["500", "wrong-issuer", "malformed"])
def test_bad_discovery_fails(serve, kc, mode):
    url = serve(api([STAGING_WEB, ADMIN_WEB]))
    kc.discovery_mode = mode
    out = check(url, kc)
    assert out.status is Status.FAILED
    assert any("discovery" in p for p in out.evidence["problems"])
    assert out.evidence["redirects"] == [] or mode == "wrong-issuer"


def test_slow_issuer_is_not_a_pass(serve, kc):
    url = serve(api([STAGING_WEB, ADMIN_WEB]))
    kc.discovery_mode = "slow"
    out = check(url, kc, timeout_s=0.5)
    assert out.status is Status.INCONCLUSIVE and "issuer" in out.summary


def test_api_down_is_not_a_pass(dead_url, kc):
    out = check(dead_url, kc)
    assert out.status is Status.INCONCLUSIVE and "API" in out.summary


def test_keycloak_admin_view_of_the_client(serve, kc, admin_secret):
    url = serve(api([STAGING_WEB, ADMIN_WEB]))
    kc.web_origins = [STAGING_WEB]  # explicit list without the admin frontend
    admin = KeycloakAdmin(kc.url, "demo", username="admin", password=admin_secret)
    out = check(url, kc, keycloak_admin=admin)
    assert out.status is Status.FAILED
    assert out.evidence["problems"] == [f"Keycloak client lacks web origin {ADMIN_WEB}"]
    bad = KeycloakAdmin(kc.url, "demo", token=Secret("KC_TOKEN", "not-a-valid-admin-token"))
    out = check(url, kc, keycloak_admin=bad)
    assert out.status is Status.FAILED and "HTTP 401" in out.evidence["keycloak_admin"]["problem"]
    assert "not-a-valid-admin-token" not in json.dumps(out.evidence)


def test_no_frontends_configured(kc):
    assert check("http://127.0.0.1:9", kc, frontends=[]).status is Status.INCONCLUSIVE


GOOD = {
    "Access-Control-Allow-Origin": STAGING_WEB,
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Headers": "authorization, content-type",
    "Vary": "Origin",
}


@pytest.mark.parametrize(
    ("preflight_headers", "actual_headers", "words"),
    [
        (
            {**GOOD, "Access-Control-Allow-Origin": "http://other.test"},
            GOOD,
            "not the exact origin",
        ),
        (
            {k: v for k, v in GOOD.items() if k != "Access-Control-Allow-Credentials"},
            GOOD,
            "Allow-Credentials",
        ),
        (GOOD, {"Vary": "Origin"}, "actual request"),
        (GOOD, {**GOOD, "Vary": "Accept"}, "response lacks Vary: Origin"),
    ],
)
def test_cors_rules_each_fail(serve, kc, preflight_headers, actual_headers, words):
    async def endpoint(request: Request) -> Response:
        if request.method == "OPTIONS":
            return PlainTextResponse("", headers=preflight_headers)
        return JSONResponse({}, status_code=401, headers=actual_headers)

    url = serve(Starlette(routes=[Route("/me", endpoint, methods=["GET", "OPTIONS"])]))
    out = check(url, kc, frontends=FRONTENDS[:1])
    assert out.status is Status.FAILED
    assert any(words in p for p in out.evidence["problems"]), out.evidence["problems"]
    # the same server with correct headers passes: the rule, not the server, made it fail
    if preflight_headers is GOOD and actual_headers is not GOOD:
        ok_url = serve(raw_api(GOOD))
        assert check(ok_url, kc, frontends=FRONTENDS[:1]).status is Status.PASSED


def test_keycloak_admin_redirect_uri_patterns(serve, kc, admin_secret):
    url = serve(api([STAGING_WEB, ADMIN_WEB]))
    admin = KeycloakAdmin(kc.url, "demo", username="admin", password=admin_secret)
    out = check_cors_and_redirects(
        url, FRONTENDS, kc.issuer, "docflow-web", keycloak_admin=admin, timeout_s=3
    )
    assert out.status is Status.PASSED
    kc.redirect_uris = [
        f"{STAGING_WEB}/auth/callback",
        f"{ADMIN_WEB}/auth/callback",
        "http://x.test/*",
    ]
    kc.web_origins = ["*"]
    assert check(url, kc, keycloak_admin=admin).status is Status.PASSED
    kc.redirect_uris = [f"{STAGING_WEB}/auth/callback"]
    out = check(url, kc, keycloak_admin=admin)
    assert (
        f"Keycloak client lacks redirect URI {ADMIN_WEB}/auth/callback" in out.evidence["problems"]
    )
