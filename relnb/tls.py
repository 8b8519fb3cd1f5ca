"""The certificate authorities relnb's HTTPS clients trust: the machine's, as pip and curl do.

httpx trusts certifi's bundle unless SSL_CERT_FILE or SSL_CERT_DIR is set. A team behind a company
CA or a TLS-inspecting proxy installs that CA in the system store; with certifi every HTTPS gate
(registry, CI, Coolify, OIDC, smoke, Prometheus) would be inconclusive there: never a false pass,
but no release could ever be proved. OpenSSL's default paths still honour both variables.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


def system_trust() -> ssl.SSLContext:
    """One context per (SSL_CERT_FILE, SSL_CERT_DIR): loading the store costs ~10 ms per client."""
    return _context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    del cafile, capath  # the cache key: create_default_context reads both through OpenSSL
    return ssl.create_default_context()


def http_client(**kwargs: Any) -> httpx.Client:
    import httpx

    kwargs.setdefault("verify", system_trust())
    return httpx.Client(**kwargs)


def async_http_client(**kwargs: Any) -> httpx.AsyncClient:
    import httpx

    kwargs.setdefault("verify", system_trust())
    return httpx.AsyncClient(**kwargs)
