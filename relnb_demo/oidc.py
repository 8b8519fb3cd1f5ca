"""A Keycloak-shaped OIDC issuer for the demo: realm `demo`, client `docflow-web`, two users.

Same paths and the same answers Keycloak gives where the release checks look: discovery, JWKS
(RS256 key generated at start), the authorization endpoint's redirect_uri validation (HTTP 400
"Invalid parameter: redirect_uri"; unknown client: "Client not found."), the password grant,
and the admin API's client listing (`GET /admin/realms/demo/clients?clientId=`) with a token from
the master realm's `admin-cli`. The `redirect-uri` fault simply registers fewer URIs.
"""

from __future__ import annotations

import html
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REALM = "demo"
CLIENT_ID = "docflow-web"
API_AUDIENCE = "docflow-api"
TOKEN_LIFETIME_S = 12 * 3600  # long enough for a demo soak window; Keycloak's default is 300


@dataclass
class DemoUser:
    username: str
    email: str
    password: str
    sub: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class OidcClient:
    client_id: str
    redirect_uris: list[str]
    web_origins: list[str]


def _uri_allowed(uri: str, patterns: Sequence[str]) -> bool:
    # Keycloak: exact match, or a registered pattern ending in `*` matching as a prefix.
    return any(uri == p or (p.endswith("*") and uri.startswith(p[:-1])) for p in patterns)


class OidcIssuer:
    """Keys, users and clients of the realm, plus the Starlette app that serves them."""

    def __init__(
        self, clients: Sequence[OidcClient], users: Sequence[DemoUser] | None = None
    ) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]
        self.clients = {c.client_id: c for c in clients}
        self.users = {
            u.username: u
            for u in (
                users
                or [
                    DemoUser("owner", "owner@docflow.test", secrets.token_urlsafe(12)),
                    DemoUser("member", "member@docflow.test", secrets.token_urlsafe(12)),
                ]
            )
        }
        self.admin_username = "admin"
        self.admin_password = secrets.token_urlsafe(16)
        self.base_url = ""  # set once the server listens

    # -- tokens -----------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{REALM}"

    def jwks(self) -> dict[str, Any]:
        import json

        from jwt.algorithms import RSAAlgorithm

        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def mint(
        self, user: DemoUser, *, azp: str = CLIENT_ID, lifetime_s: int = TOKEN_LIFETIME_S
    ) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user.sub,
            "aud": [API_AUDIENCE, "account"],
            "azp": azp,
            "typ": "Bearer",
            "iat": now,
            "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
            "email": user.email,
            "email_verified": True,
            "preferred_username": user.username,
            "scope": "openid email profile",
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def token_for(self, username: str) -> str:
        return self.mint(self.users[username])

    # -- HTTP -------------------------------------------------------------------------------

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, JSONResponse, Response
        from starlette.routing import Route

        realm = f"/realms/{REALM}"
        oidc = f"{realm}/protocol/openid-connect"

        async def discovery(request: Request) -> Response:
            iss = self.issuer
            return JSONResponse(
                {
                    "issuer": iss,
                    "authorization_endpoint": f"{iss}/protocol/openid-connect/auth",
                    "token_endpoint": f"{iss}/protocol/openid-connect/token",
                    "jwks_uri": f"{iss}/protocol/openid-connect/certs",
                    "userinfo_endpoint": f"{iss}/protocol/openid-connect/userinfo",
                    "end_session_endpoint": f"{iss}/protocol/openid-connect/logout",
                    "response_types_supported": ["code", "id_token", "code id_token"],
                    "grant_types_supported": ["authorization_code", "password", "refresh_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid", "email", "profile"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        async def certs(request: Request) -> Response:
            return JSONResponse(self.jwks())

        def error_page(message: str, status: int = 400) -> Response:
            body = (
                "<!DOCTYPE html><html><head><title>Sign in to demo</title></head><body>"
                f'<div id="kc-error-message"><p class="instruction">{html.escape(message)}</p></div>'
                "</body></html>"
            )
            return HTMLResponse(body, status_code=status)

        async def auth(request: Request) -> Response:
            q = request.query_params
            client = self.clients.get(q.get("client_id", ""))
            if client is None:
                return error_page("Client not found.")
            redirect_uri = q.get("redirect_uri")
            if not redirect_uri or not _uri_allowed(redirect_uri, client.redirect_uris):
                return error_page("Invalid parameter: redirect_uri")
            if q.get("response_type") not in ("code", "id_token", "code id_token"):
                return error_page("Invalid parameter: response_type")
            return HTMLResponse(
                "<!DOCTYPE html><html><head><title>Sign in to demo</title></head><body>"
                '<form id="kc-form-login" method="post">'
                '<input name="username"><input name="password" type="password">'
                '<input type="submit" value="Sign In"></form></body></html>'
            )

        async def token(request: Request) -> Response:
            form = await request.form()
            client_id = str(form.get("client_id", ""))
            if form.get("grant_type") != "password":
                return JSONResponse(
                    {
                        "error": "unsupported_grant_type",
                        "error_description": "Unsupported grant_type",
                    },
                    status_code=400,
                )
            if client_id not in self.clients:
                return JSONResponse(
                    {
                        "error": "invalid_client",
                        "error_description": "Invalid client or Invalid client credentials",
                    },
                    status_code=401,
                )
            user = self.users.get(str(form.get("username", "")))
            if user is None or not secrets.compare_digest(
                user.password, str(form.get("password", ""))
            ):
                return JSONResponse(
                    {"error": "invalid_grant", "error_description": "Invalid user credentials"},
                    status_code=401,
                )
            return JSONResponse(
                {
                    "access_token": self.mint(user, azp=client_id),
                    "token_type": "Bearer",
                    "expires_in": TOKEN_LIFETIME_S,
                    "scope": "openid email profile",
                }
            )

        self._admin_tokens: dict[str, float] = {}

        async def master_token(request: Request) -> Response:
            form = await request.form()
            if (
                form.get("grant_type") == "password"
                and form.get("client_id") == "admin-cli"
                and form.get("username") == self.admin_username
                and secrets.compare_digest(str(form.get("password", "")), self.admin_password)
            ):
                tok = secrets.token_urlsafe(24)
                self._admin_tokens[tok] = time.time() + 300
                return JSONResponse(
                    {"access_token": tok, "token_type": "Bearer", "expires_in": 300}
                )
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "Invalid user credentials"},
                status_code=401,
            )

        async def admin_clients(request: Request) -> Response:
            auth_header = request.headers.get("authorization", "")
            tok = auth_header[7:] if auth_header.lower().startswith("bearer ") else ""
            if self._admin_tokens.get(tok, 0) < time.time():
                return JSONResponse({"error": "HTTP 401 Unauthorized"}, status_code=401)
            if request.path_params["realm"] != REALM:
                return JSONResponse({"error": "Realm not found."}, status_code=404)
            wanted = request.query_params.get("clientId")
            out = [
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, c.client_id)),
                    "clientId": c.client_id,
                    "enabled": True,
                    "publicClient": True,
                    "redirectUris": list(c.redirect_uris),
                    "webOrigins": list(c.web_origins),
                    "standardFlowEnabled": True,
                    "directAccessGrantsEnabled": True,
                }
                for c in self.clients.values()
                if wanted is None or c.client_id == wanted
            ]
            return JSONResponse(out)

        return Starlette(
            routes=[
                Route(f"{realm}/.well-known/openid-configuration", discovery),
                Route(f"{oidc}/certs", certs),
                Route(f"{oidc}/auth", auth),
                Route(f"{oidc}/token", token, methods=["POST"]),
                Route(
                    "/realms/master/protocol/openid-connect/token", master_token, methods=["POST"]
                ),
                Route("/admin/realms/{realm}/clients", admin_clients),
            ]
        )


def demo_clients(
    frontends: Mapping[str, Sequence[Mapping[str, str]]], drop: Sequence[str] = ()
) -> list[OidcClient]:
    """`docflow-web` with every environment's frontends; `drop` = redirect URIs left unregistered."""
    uris: list[str] = []
    origins: list[str] = []
    for fes in frontends.values():
        for fe in fes:
            if fe["redirect_uri"] not in drop:
                uris.append(fe["redirect_uri"])
            origins.append(fe["origin"])
    return [OidcClient(CLIENT_ID, uris, origins)]
