"""B3 (confirm) and E1: do the image tags exist in the OCI registry?

A manifest HEAD per tag, with the Accept types of OCI and Docker manifests and indexes (a
registry answers 404 to a HEAD without them). Registries that want a bearer token answer 401
with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`; the client fetches a token from
the realm (with basic credentials when given, anonymously otherwise) and retries, as docker does.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...redact import scrub
from ...results import Outcome
from ...tls import http_client

if TYPE_CHECKING:
    import httpx

    from ...redact import Secret

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="..."` → ("bearer", {realm, service, ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(rest)
    }
    return scheme.lower(), params


def split_reference(ref: str) -> tuple[str, str]:
    """`team/api:1.2.0` → (`team/api`, `1.2.0`); `team/api@sha256:…` keeps the digest."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        raise ValueError(f"image reference {ref!r} has no tag (write name:tag)")
    return repo, tag


class _Registry:
    def __init__(
        self,
        http: httpx.Client,
        base: str,
        username: str | None,
        password: Secret | None,
        token: Secret | None,
    ) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.username = username
        self.password = password
        self.static_token = token
        self.tokens: dict[tuple[str, str, str], str] = {}
        self.auth_used: set[str] = set()

    def _basic(self) -> str | None:
        if self.username and self.password is not None:
            raw = f"{self.username}:{self.password.reveal()}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return None

    def _bearer_for(self, params: Mapping[str, str], repo: str) -> tuple[str | None, str | None]:
        """A token from the challenge's realm, or (None, problem)."""
        realm = params.get("realm")
        if not realm:
            return None, "Bearer challenge without realm"
        service = params.get("service", "")
        scope = params.get("scope") or f"repository:{repo}:pull"
        key = (realm, service, scope)
        if key in self.tokens:
            return self.tokens[key], None
        query = {"scope": scope}
        if service:
            query["service"] = service
        headers = {}
        basic = self._basic()
        if basic:
            headers["Authorization"] = basic
        resp = self.http.get(realm, params=query, headers=headers)
        self.auth_used.add("bearer-token")
        if resp.status_code != 200:
            return None, f"token endpoint answered HTTP {resp.status_code}"
        try:
            data = resp.json()
            tok = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            return None, "token endpoint answered malformed JSON"
        if not tok:
            return None, "token endpoint answer has no token"
        from ...redact import register

        register(str(tok), "registry-token")  # never let a registry token reach evidence
        self.tokens[key] = str(tok)
        return str(tok), None

    def manifest(self, repo: str, ref: str) -> dict[str, Any]:
        import httpx

        url = f"{self.base}/v2/{repo}/manifests/{ref}"
        res: dict[str, Any] = {"repository": repo, "reference": ref}
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        if self.static_token is not None:
            headers["Authorization"] = f"Bearer {self.static_token.reveal()}"
        try:
            method = "HEAD"
            resp = self.http.request(method, url, headers=headers)
            if resp.status_code == 405:  # a few registries do not implement HEAD
                method = "GET"
                resp = self.http.request(method, url, headers=headers)
            if resp.status_code == 401:
                scheme, params = parse_challenge(resp.headers.get("www-authenticate", ""))
                res["challenge"] = scheme or None
                if scheme == "bearer":
                    tok, problem = self._bearer_for(params, repo)
                    if tok is None:
                        return {**res, "verdict": "denied", "detail": problem}
                    headers["Authorization"] = f"Bearer {tok}"
                elif scheme == "basic" and self._basic():
                    headers["Authorization"] = self._basic() or ""
                    self.auth_used.add("basic")
                else:
                    return {
                        **res,
                        "verdict": "denied",
                        "detail": "registry wants credentials; none configured",
                    }
                resp = self.http.request(method, url, headers=headers)
        except httpx.TimeoutException:
            return {**res, "verdict": "unreachable", "detail": "timeout"}
        except httpx.HTTPError as exc:
            return {**res, "verdict": "unreachable", "detail": scrub(str(exc))[:150]}
        res["status"] = resp.status_code
        if resp.status_code == 200:
            return {
                **res,
                "verdict": "present",
                "digest": resp.headers.get("docker-content-digest"),
                "media_type": resp.headers.get("content-type"),
            }
        if resp.status_code == 404:
            return {**res, "verdict": "missing", "detail": "manifest unknown"}
        if resp.status_code in (401, 403):
            return {
                **res,
                "verdict": "denied",
                "detail": "credentials rejected or no pull access (a missing repository may look like this)",
            }
        return {**res, "verdict": "error", "detail": f"HTTP {resp.status_code}"}


def check_image_tags(
    registry_url: str,
    images: Mapping[str, str] | Sequence[str],
    *,
    username: str | None = None,
    password: Secret | None = None,
    token: Secret | None = None,
    timeout_s: float = 10.0,
    purpose: str = "",
) -> Outcome:
    """Every image reference (`name:tag`; a mapping gives role → reference) has a manifest."""
    roles = dict(images) if isinstance(images, Mapping) else {ref: ref for ref in images}
    if not roles:
        return Outcome.inconclusive("no image repositories configured: set registry.repositories")
    if not registry_url:
        return Outcome.inconclusive("no registry URL configured: set registry.url")
    base = registry_url if "://" in registry_url else f"https://{registry_url}"
    results: dict[str, dict[str, Any]] = {}
    with http_client(
        timeout=timeout_s, follow_redirects=True, headers={"User-Agent": "relnb"}
    ) as http:
        reg = _Registry(http, base, username, password, token)
        for role, ref in roles.items():
            try:
                repo, tag = split_reference(ref)
            except ValueError as exc:
                results[role] = {"reference": ref, "verdict": "invalid", "detail": str(exc)}
                continue
            results[role] = reg.manifest(repo, tag)
        auth = sorted(reg.auth_used) or ["anonymous" if token is None else "static-token"]
    what = f"{purpose} " if purpose else ""
    ev: dict[str, Any] = {"registry": base, "images": results, "auth": auth}
    bad = {r: v for r, v in results.items() if v["verdict"] in ("missing", "denied", "invalid")}
    unsure = {r: v for r, v in results.items() if v["verdict"] in ("unreachable", "error")}
    if bad:
        first = next(iter(bad.items()))
        names = ", ".join(f"{roles[r]} ({v['verdict']})" for r, v in bad.items())
        return Outcome.failed(
            f"{what}image tag(s) not available in {base}: {names}",
            first_problem=first[1].get("detail"),
            **ev,
        )
    if unsure:
        names = ", ".join(f"{roles[r]} ({v.get('detail')})" for r, v in unsure.items())
        return Outcome.inconclusive(f"registry {base} could not be asked about {names}", **ev)
    return Outcome.passed(
        f"{what}{len(results)} image tag(s) present in {base}: " + ", ".join(roles.values()), **ev
    )


def check_previous_tags(
    registry_url: str,
    repositories: Mapping[str, str],
    previous_tag: str | None,
    **kwargs: Any,
) -> Outcome:
    """E1: the previous release's images (API, worker, ...) can still be pulled for a rollback."""
    if not previous_tag:
        return Outcome.inconclusive(
            "no previous release tag known: set project.previous_tag or create a tag"
        )
    images = {role: f"{repo}:{previous_tag}" for role, repo in repositories.items()}
    return check_image_tags(
        registry_url, images, purpose=f"previous release {previous_tag}", **kwargs
    )
