"""Credentials for metrics endpoints: named by env var, resolved once, never shown."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from ..errors import SecretMissing
from ..redact import Secret, scrub


def auth_headers(token_env: str | None, headers_env: Mapping[str, str] | None) -> dict[str, str]:
    """HTTP headers whose values come from env vars (registered with the redactor).

    A missing variable is a configuration error raised at construction: a window that cannot
    authenticate would only collect gaps for an hour and end inconclusive.
    """
    headers: dict[str, str] = {}
    wanted: dict[str, str] = dict(headers_env or {})
    if token_env:
        wanted.setdefault("Authorization", token_env)
    for header, env in wanted.items():
        value = os.environ.get(env)
        if not value:
            raise SecretMissing(
                f"env var {env} (for the metrics source's {header} header) is not set",
                key=env,
                fix=f"export {env}=... before running the monitoring window",
            )
        secret = Secret(env, value)
        if header == "Authorization" and env == token_env and " " not in value:
            headers[header] = f"Bearer {secret.reveal()}"
        else:
            headers[header] = secret.reveal()
    return headers


def safe_url(url: str) -> str:
    """The URL without user-info or query string, scrubbed: what evidence may show."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return scrub(urlunsplit((parts.scheme, host, parts.path, "", "")))
