"""What the demo stack is made of: its two environments, their ports and databases, the images
and the worker replicas, and the frontends each one serves.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .services import (
    ManagedProcess,
)

ENVIRONMENTS = ("staging", "production")


IMAGE_REPOSITORIES = {"api": "docflow-api", "worker": "docflow-worker"}


WORKER_REPLICAS = 2


SEED_DOCUMENTS = 50_000


def frontends_for(env: str) -> list[dict[str, str]]:
    host = "staging-web.docflow.test" if env == "staging" else "app.docflow.test"
    return [
        {"origin": f"http://{host}", "redirect_uri": f"http://{host}/auth/callback"},
        {"origin": f"http://admin.{host}", "redirect_uri": f"http://admin.{host}/auth/callback"},
    ]


@dataclass
class EnvState:
    name: str
    port: int
    database_name: str
    database_url: str = ""
    redis_url: str = ""
    queue_prefix: str = "bull"
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    version: str = ""
    sha: str = ""
    history: list[tuple[str, str]] = field(default_factory=list)
    api: ManagedProcess | None = None
    workers: list[ManagedProcess] = field(default_factory=list)
    big_workspace_id: int = 0
    big_doc_range: tuple[int, int] = (0, 0)
    backup_key: str = ""
    deploys: int = 0
    # the variable the deploy's env file gives the OIDC issuer in (rollback-fails: the 1.1.0
    # deploy rewrites it with the template's KEYCLOAK_ISSUER_URL, which 1.0.0 does not read)
    issuer_var: str = "OIDC_ISSUER"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
