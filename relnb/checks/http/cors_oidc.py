"""B9: can each staging frontend call the API from the browser and log in?

For each frontend: a real CORS preflight (what the browser sends before an authenticated call)
judged by the Fetch standard's rules, and an authorization request with its redirect URI judged
the way Keycloak (and other OIDC providers) answer it. Optionally the Keycloak admin API shows
the client's registered redirect URIs and web origins.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ...redact import scrub
from ...results import Outcome
from ...tls import http_client

if TYPE_CHECKING:
    import httpx

    from ...redact import Secret

_REJECT_MARKERS = (
    "invalid parameter: redirect_uri",
    "invalid redirect uri",
    "redirect_uri_mismatch",
    "invalid_redirect_uri",
)


@dataclass(frozen=True)
class KeycloakAdmin:
    """How to read the client from Keycloak's admin API: a ready token, or admin-cli credentials."""

    base_url: str  # Keycloak root, e.g. https://sso.example.com (no /realms/...)
    realm: str
    token: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    token_realm: str = "master"
    admin_client_id: str = "admin-cli"


def _split(value: str | None) -> set[str]:
    return {v.strip().lower() for v in (value or "").split(",") if v.strip()}


def _origin_of(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}".lower()


def preflight(
    client: httpx.Client,
    url: str,
    origin: str,
    *,
    method: str,
    headers: Sequence[str],
    credentials: bool,
) -> dict[str, Any]:
    """Send the browser's preflight and list every rule the answer breaks."""
    import httpx

    req_headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ", ".join(h.lower() for h in headers),
    }
    res: dict[str, Any] = {"origin": origin, "url": url, "method": method, "problems": []}
    try:
        resp = client.options(url, headers=req_headers)
    except httpx.TimeoutException:
        res["problems"].append("preflight timed out")
        res["unreachable"] = True
        return res
    except httpx.HTTPError as exc:
        res["problems"].append(f"preflight failed: {scrub(str(exc))[:150]}")
        res["unreachable"] = True
        return res
    h = resp.headers
    acao = h.get("access-control-allow-origin")
    acac = (h.get("access-control-allow-credentials") or "").strip().lower()
    methods = _split(h.get("access-control-allow-methods"))
    allowed_headers = _split(h.get("access-control-allow-headers"))
    vary = _split(h.get("vary"))
    res.update(
        status=resp.status_code,
        allow_origin=acao,
        allow_credentials=acac or None,
        allow_methods=sorted(methods),
        allow_headers=sorted(allowed_headers),
        vary=sorted(vary),
    )
    p = res["problems"]
    if not 200 <= resp.status_code < 300:
        p.append(f"OPTIONS answered HTTP {resp.status_code} ({scrub(resp.text[:80]).strip()!r})")
    if acao is None:
        p.append("no Access-Control-Allow-Origin: origin not allowed")
    elif acao == "*":
        if credentials or acac == "true":
            p.append(
                "Access-Control-Allow-Origin is * while credentials are used (browsers refuse)"
            )
    elif acao.strip() != origin:
        p.append(f"Access-Control-Allow-Origin is {acao!r}, not the exact origin")
    if credentials and acac != "true":
        p.append("Access-Control-Allow-Credentials is not `true`")
    wildcard_ok = not credentials and acac != "true"
    if method.lower() not in methods and not ("*" in methods and wildcard_ok):
        simple = method.upper() in ("GET", "HEAD", "POST")
        if not simple:
            p.append(f"method {method} not in Access-Control-Allow-Methods")
    for name in headers:
        n = name.lower()
        # Fetch: `*` never covers Authorization, and is literal when credentials are used.
        covered = n in allowed_headers or (
            "*" in allowed_headers and wildcard_ok and n != "authorization"
        )
        if not covered:
            p.append(f"header {name} not in Access-Control-Allow-Headers")
    if acao not in (None, "*") and "origin" not in vary:
        p.append("Vary: Origin missing (caches may serve one origin's answer to another)")
    return res


def _actual(client: httpx.Client, url: str, origin: str, credentials: bool) -> dict[str, Any]:
    """The request after the preflight: its answer must also carry the exact origin."""
    import httpx

    res: dict[str, Any] = {"problems": []}
    try:
        resp = client.get(url, headers={"Origin": origin})
    except httpx.HTTPError as exc:
        res["problems"].append(f"request failed: {scrub(str(exc))[:150]}")
        return res
    acao = resp.headers.get("access-control-allow-origin")
    res.update(status=resp.status_code, allow_origin=acao)
    if acao != origin and not (acao == "*" and not credentials):
        res["problems"].append(
            f"response (HTTP {resp.status_code}) has Access-Control-Allow-Origin {acao!r}"
        )
    if acao not in (None, "*") and "origin" not in _split(resp.headers.get("vary")):
        res["problems"].append("response lacks Vary: Origin")
    return res


def probe_redirect_uri(
    client: httpx.Client, authorization_endpoint: str, client_id: str, redirect_uri: str
) -> dict[str, Any]:
    """Start an authorization request; 'accepted' only when the provider shows a login (or redirects on)."""
    import httpx

    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": "relnb-b9-check",
        "nonce": "relnb-b9-check",
    }
    res: dict[str, Any] = {"redirect_uri": redirect_uri}
    try:
        resp = client.get(authorization_endpoint, params=params)
    except httpx.TimeoutException:
        return {**res, "verdict": "unreachable", "detail": "timeout"}
    except httpx.HTTPError as exc:
        return {**res, "verdict": "unreachable", "detail": scrub(str(exc))[:150]}
    body = resp.text[:4000]
    low = body.lower()
    res["status"] = resp.status_code
    if any(m in low for m in _REJECT_MARKERS):
        return {**res, "verdict": "rejected", "detail": "provider says the redirect_uri is invalid"}
    if "client not found" in low or "unauthorized_client" in low or "invalid_client" in low:
        return {**res, "verdict": "client-unknown", "detail": scrub(body[:150])}
    if resp.status_code >= 500:
        return {**res, "verdict": "error", "detail": f"HTTP {resp.status_code}"}
    if 400 <= resp.status_code < 500:
        return {**res, "verdict": "rejected", "detail": scrub(body[:150]).strip()}
    if 300 <= resp.status_code < 400:
        location = resp.headers.get("location", "")
        res["location_host"] = urlsplit(location).netloc or None
        if location.startswith(redirect_uri) and "error=" in location:
            # The provider trusts the URI enough to send the error there.
            return {
                **res,
                "verdict": "accepted",
                "detail": "redirected to the URI with an OAuth error",
            }
        return {**res, "verdict": "accepted", "detail": "redirected to login"}
    return {**res, "verdict": "accepted", "detail": "login page shown"}


def _uri_registered(uri: str, patterns: Sequence[str]) -> bool:
    """Keycloak's rule: exact match, or a pattern ending in `*` matching the prefix."""
    return any(uri == p or (p.endswith("*") and fnmatch.fnmatchcase(uri, p)) for p in patterns)


def _keycloak_client(
    http: httpx.Client, admin: KeycloakAdmin, client_id: str
) -> tuple[dict[str, Any] | None, str | None]:
    """The client representation from the admin API, or (None, problem)."""
    base = admin.base_url.rstrip("/")
    if admin.token is not None:
        bearer = admin.token.reveal()
    elif admin.username and admin.password is not None:
        tok = http.post(
            f"{base}/realms/{admin.token_realm}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": admin.admin_client_id,
                "username": admin.username,
                "password": admin.password.reveal(),
            },
        )
        if tok.status_code != 200:
            return None, f"admin token request answered HTTP {tok.status_code}"
        try:
            bearer = tok.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            return None, "admin token answer has no access_token"
    else:
        return None, "no admin token or credentials given"
    resp = http.get(
        f"{base}/admin/realms/{admin.realm}/clients",
        params={"clientId": client_id},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    if resp.status_code != 200:
        return None, f"admin API answered HTTP {resp.status_code} listing clients"
    try:
        clients = resp.json()
    except ValueError:
        return None, "admin API answered malformed JSON"
    if not isinstance(clients, list):
        return None, "admin API answer is not a list of clients"
    match = [c for c in clients if isinstance(c, dict) and c.get("clientId") == client_id]
    if not match:
        return None, f"client {client_id} not found in realm {admin.realm}"
    return match[0], None


def check_cors_and_redirects(
    api_base_url: str,
    frontends: Sequence[Mapping[str, str]],
    issuer: str | None,
    client_id: str | None,
    *,
    preflight_path: str = "/me",
    method: str = "GET",
    request_headers: Sequence[str] = ("Authorization", "Content-Type"),
    credentials: bool = True,
    check_actual_request: bool = True,
    keycloak_admin: KeycloakAdmin | None = None,
    timeout_s: float = 10.0,
) -> Outcome:
    """CORS preflight per frontend origin + OIDC discovery + redirect URI acceptance per frontend."""
    import httpx

    if not frontends:
        return Outcome.inconclusive(
            "no frontends configured: set oidc.frontends (origin, redirect_uri)"
        )
    url = api_base_url.rstrip("/") + "/" + preflight_path.lstrip("/")
    problems: list[str] = []
    unreachable: list[str] = []
    ev: dict[str, Any] = {"api_url": url, "issuer": issuer, "client_id": client_id}
    cors: list[dict[str, Any]] = []
    redirects: list[dict[str, Any]] = []
    with http_client(timeout=timeout_s, follow_redirects=False) as http:
        for fe in frontends:
            origin = fe["origin"].rstrip("/")
            res = preflight(
                http, url, origin, method=method, headers=request_headers, credentials=credentials
            )
            if check_actual_request and not res.get("unreachable"):
                actual = _actual(http, url, origin, credentials)
                res["actual"] = actual
                res["problems"].extend(f"actual request: {x}" for x in actual["problems"])
            cors.append(res)
            if res.get("unreachable"):
                unreachable.append(f"API {url} ({res['problems'][0]})")
            else:
                problems.extend(f"CORS {origin}: {x}" for x in res["problems"])
        ev["cors"] = cors

        discovery: dict[str, Any] = {}
        # a frontend without a redirect_uri does not log in through OIDC (an app with its own
        # login, e.g. NetBox's): its CORS is checked, and the evidence says redirects were not
        oidc_frontends = [fe for fe in frontends if fe.get("redirect_uri")]
        if not oidc_frontends:
            discovery["skipped"] = "no frontend has a redirect_uri: OIDC redirects not checked"
        elif not issuer or not client_id:
            problems.append("OIDC issuer/client_id not configured (oidc.issuer, oidc.client_id)")
        else:
            disc_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            discovery["url"] = disc_url
            try:
                resp = http.get(disc_url)
                discovery["status"] = resp.status_code
                doc = resp.json() if resp.status_code == 200 else None
            except httpx.HTTPError as exc:
                doc = None
                unreachable.append(f"issuer {issuer}")
                discovery["error"] = scrub(str(exc))[:150]
            except ValueError:
                doc = None
                discovery["error"] = "malformed JSON"
            if not isinstance(doc, dict):
                # an unreachable issuer is reported with the other unreachable targets (inconclusive)
                if f"issuer {issuer}" not in unreachable:
                    problems.append(
                        f"OIDC discovery {disc_url} unusable ({discovery.get('error') or 'HTTP ' + str(discovery.get('status'))})"
                    )
            else:
                discovery["issuer"] = doc.get("issuer")
                auth_ep = doc.get("authorization_endpoint")
                discovery["authorization_endpoint"] = auth_ep
                if str(doc.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
                    problems.append(
                        f"discovery issuer {doc.get('issuer')!r} differs from configured {issuer!r}"
                    )
                if not isinstance(auth_ep, str) or not auth_ep.startswith("http"):
                    problems.append("discovery has no authorization_endpoint")
                else:
                    for fe in oidc_frontends:
                        r = probe_redirect_uri(http, auth_ep, client_id, fe["redirect_uri"])
                        redirects.append(r)
                        if r["verdict"] == "unreachable":
                            unreachable.append(f"authorization endpoint {auth_ep}")
                        elif r["verdict"] != "accepted":
                            problems.append(
                                f"redirect URI {fe['redirect_uri']}: {r['verdict']} ({r.get('detail')})"
                            )
        ev["discovery"] = discovery
        ev["redirects"] = redirects

        if keycloak_admin is not None and client_id:
            try:
                rep, why = _keycloak_client(http, keycloak_admin, client_id)
            except httpx.HTTPError as exc:
                rep, why = None, f"admin API unreachable: {scrub(str(exc))[:150]}"
            admin_ev: dict[str, Any] = {"realm": keycloak_admin.realm}
            if rep is None:
                admin_ev["problem"] = why
                problems.append(f"Keycloak admin: {why}")
            else:
                uris = [str(u) for u in rep.get("redirectUris") or []]
                web = [str(o) for o in rep.get("webOrigins") or []]
                admin_ev.update(redirectUris=uris, webOrigins=web, enabled=rep.get("enabled"))
                derived = {_origin_of(u) for u in uris if "://" in u}
                for fe in oidc_frontends:
                    if not _uri_registered(fe["redirect_uri"], uris):
                        problems.append(f"Keycloak client lacks redirect URI {fe['redirect_uri']}")
                    o = fe["origin"].rstrip("/").lower()
                    if not (
                        "*" in web
                        or o in {w.rstrip("/").lower() for w in web}
                        or ("+" in web and o in derived)
                    ):
                        problems.append(f"Keycloak client lacks web origin {fe['origin']}")
                if rep.get("enabled") is False:
                    problems.append(f"Keycloak client {client_id} is disabled")
            ev["keycloak_admin"] = admin_ev

    ev["problems"] = problems
    ev["unreachable"] = sorted(set(unreachable))
    n = len(frontends)
    if problems:
        return Outcome.failed(f"{len(problems)} CORS/OIDC problem(s): {problems[0]}", **ev)
    if unreachable:
        return Outcome.inconclusive(f"could not reach {', '.join(sorted(set(unreachable)))}", **ev)
    if not oidc_frontends:
        return Outcome.passed(
            f"{n} frontend(s): preflight allowed with exact origin (no OIDC redirect URIs configured)", **ev
        )
    return Outcome.passed(
        f"{n} frontend(s): preflight allowed with exact origin, redirect URI accepted by {issuer}",
        **ev,
    )
