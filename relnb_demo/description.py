"""The stack described for relnb: URLs, secrets (as env var names and dotenv files), commands and
facts about the demo repository, which the driver turns into an ordinary relnb.toml.
"""

from __future__ import annotations

import sys
from typing import Any

from . import repo as demo_repo
from .app import served_routes
from .debian import ALERT_RULES
from .oidc import API_AUDIENCE, CLIENT_ID, REALM
from .repo import env_keys, routes_at
from .settings import QUEUE_NAME
from .topology import (
    IMAGE_REPOSITORIES,
    frontends_for,
)


class Description:
    """Mixed into DemoStack: how it describes itself to a release."""

    def _missing_secret(self, env: str) -> bool:
        return self.has_fault("missing-secret", env)

    def env_var_names(self, env: str) -> dict[str, str]:
        e = env.upper()
        return {
            "owner_token": f"DOCFLOW_{e}_OWNER_TOKEN",
            "member_token": f"DOCFLOW_{e}_MEMBER_TOKEN",
            "database_url": f"DOCFLOW_{e}_DATABASE_URL",
            "redis_url": f"DOCFLOW_{e}_REDIS_URL",
            "s3_access_key": f"DOCFLOW_{e}_S3_ACCESS_KEY",
            "s3_secret_key": f"DOCFLOW_{e}_S3_SECRET_KEY",
            "admin_token": f"DOCFLOW_{e}_ADMIN_TOKEN",
        }

    def _write_secret_files(self) -> None:
        """Per-environment dotenv with the keys of infra/docker/env.vps.example (C4 reads it)."""
        assert self.oidc
        for env, st in self.envs.items():
            values = {
                "DATABASE_URL": st.database_url,
                "REDIS_URL": st.redis_url,
                "S3_ENDPOINT": self.s3.endpoint_url,
                "S3_BUCKET": self.s3.bucket,
                "S3_ACCESS_KEY_ID": self.s3.access_key,
                "S3_SECRET_ACCESS_KEY": self.s3.secret_key,
                "KEYCLOAK_ISSUER_URL": self.oidc.issuer,
                "KEYCLOAK_CLIENT_ID": CLIENT_ID,
                "CORS_ORIGINS": ",".join(fe["origin"] for fe in frontends_for(env)),
                "TAG": st.version,
                "IMAGE_PREFIX": self.registry.url if self.registry else "registry.docflow.test",
            }
            if self._missing_secret(env):
                values.pop("S3_SECRET_ACCESS_KEY")
            path = self.workdir / f"{env}.env"
            path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
            path.chmod(0o600)
        assert set(env_keys()) <= {
            "DATABASE_URL",
            "REDIS_URL",
            "S3_ENDPOINT",
            "S3_BUCKET",
            "S3_ACCESS_KEY_ID",
            "S3_SECRET_ACCESS_KEY",
            "KEYCLOAK_ISSUER_URL",
            "KEYCLOAK_CLIENT_ID",
            "CORS_ORIGINS",
        }

    def describe(self) -> dict[str, Any]:
        """Everything the lead needs for relnb.toml and the environment (secrets in plain keys)."""
        assert self.repo and self.oidc and self.control
        py = sys.executable
        repo = str(self.repo.path)
        out_envs: dict[str, Any] = {}
        env_vars: dict[str, str] = {}
        for env, st in self.envs.items():
            names = self.env_var_names(env)
            owner = self.oidc.token_for("owner")
            member = self.oidc.token_for("member")
            s3: dict[str, Any] = {
                "endpoint_url": self.s3.endpoint_url,
                "bucket": self.s3.bucket,
                "prefix": f"{env}/",
                "access_key": self.s3.access_key,
                "secret_key": self.s3.secret_key,
                "region": self.s3.region,
                "latest_backup_key": st.backup_key,
            }
            if env == "production":  # C2 restores production's newest backup here to prove it
                s3["restore_test_database_url"] = self.restore_test_url
            values = {
                "owner_token": owner,
                "member_token": member,
                "database_url": st.database_url,
                "redis_url": st.redis_url,
                "s3_access_key": self.s3.access_key,
                "s3_secret_key": self.s3.secret_key,
                "admin_token": st.admin_token,
            }
            if self._missing_secret(env):
                del s3["secret_key"]
                del values["s3_secret_key"]
            for key, value in values.items():
                env_vars[names[key]] = value
            control = f"env DOCFLOW_CONTROL_FILE={self.control_file} DOCFLOW_PYTHON={py}"
            out_envs[env] = {
                "base_url": st.base_url,
                "version_path": "/version",
                "version_field": "sha",
                "running": {"version": st.version, "sha": st.sha},
                "routes": served_routes(routes_at(repo, st.sha)),
                "frontends": frontends_for(env),
                "oidc": {
                    "issuer": self.oidc.issuer,
                    "client_id": CLIENT_ID,
                    "audience": API_AUDIENCE,
                },
                "database_url": st.database_url,
                "redis_url": st.redis_url,
                "queue": {"kind": "bullmq", "prefix": st.queue_prefix, "names": [QUEUE_NAME]},
                "s3": s3,
                "metrics": {
                    "scrape_urls": [f"{st.base_url}/metrics"],
                    "prometheus_url": self.prometheus.url if self.prometheus else None,
                    "alertmanager_url": self.alertmanager.url if self.alertmanager else None,
                    "alert_rules": sorted(ALERT_RULES) if self.prometheus else [],
                    "prometheus_job": f"docflow-api-{env}",
                },
                "registry": (
                    {"url": self.registry.url, "repositories": dict(IMAGE_REPOSITORIES)}
                    if self.registry
                    else None
                ),
                "admin_token": st.admin_token,
                # the DSN of docflow's error tracking (the stack's Sentry-compatible ingest)
                "error_tracking_dsn": self.error_tracker.dsn(env) if self.errors_server else None,
                "owner_token": owner,
                "member_token": member,
                "env_var_names": names,
                "dotenv": str(self.workdir / f"{env}.env"),
                "required_secrets": [
                    names[k]
                    for k in ("database_url", "redis_url", "s3_access_key", "s3_secret_key")
                ],
                "commands": {
                    "deploy": f"{control} bash {repo}/scripts/release/deploy-vps.sh {env}",
                    "rollback": f"{control} {py} -m relnb_demo.deploy --env {env} --rollback",
                    "migrate": f"{py} -m relnb_demo.migrate deploy --dir {repo}/prisma/migrations --url-env {names['database_url']}",
                    "migrate_down": f"{py} -m relnb_demo.migrate down --dir {repo}/prisma/migrations --url-env {names['database_url']}",
                    "smoke": f"env BASE_URL={st.base_url} OWNER_TOKEN_ENV={names['owner_token']} PYTHON={py} bash {repo}/scripts/smoke/api-smoke.sh",
                    "build": (
                        f"env IMAGE_PREFIX={self.registry.url} DOCFLOW_PYTHON={py} bash {repo}/scripts/release/build-images.sh"
                        if self.registry
                        else None
                    ),
                },
            }
        env_vars["DOCFLOW_KEYCLOAK_ADMIN_PASSWORD"] = self.oidc.admin_password
        return {
            "workdir": str(self.workdir),
            "repo": repo,
            "main_branch": "main",
            "previous_tag": self.repo.previous_tag,
            "previous_sha": self.repo.previous_sha,
            "head_sha": self.repo.head_sha,
            "previous_version": demo_repo.PREVIOUS_VERSION,
            "new_version": demo_repo.NEW_VERSION,
            "new_migration": self.repo.new_migration,
            "ci_command": f"{py} -m pytest -q",
            "openapi": "openapi.yaml",
            # the routing table as an ASGI router, importable with src/ on the path (A2's source)
            "routes_app": "docflow.routes:app",
            "migrations_dir": "prisma/migrations",
            "runbooks": [
                "ApplicationDevDocuments/DeploymentRunbook.MD",
                "ApplicationDevDocuments/RollbackRunbook.MD",
            ],
            "deploy_artifacts": [
                "infra/docker/docker-compose.deploy.example.yml",
                "infra/docker/env.vps.example",
                "scripts/release/deploy-vps.sh",
                "infra/docker/docker-compose.infra.example.yml",
                "infra/docker/env.infra.example",
                "infra/docker/docker-compose.coolify.example.yml",
                "infra/docker/env.coolify.example",
                "ApplicationDevDocuments/BeginnerDeployCoolify.MD",
            ],
            "env_templates": ["infra/docker/env.vps.example"],
            "smoke_script": "scripts/smoke/api-smoke.sh",
            "oidc": {
                "issuer": self.oidc.issuer,
                "client_id": CLIENT_ID,
                "realm": REALM,
                "admin": {
                    "base_url": self.oidc.base_url,
                    "realm": REALM,
                    "username": self.oidc.admin_username,
                    "password": self.oidc.admin_password,
                },
            },
            "control": {"url": self.control.url, "file": str(self.control_file)},
            "environments": out_envs,
            "env_vars": env_vars,
            "faults": [str(f) for f in self.faults],
            # processes that exited while coming up and were restarted (what an on-call is told)
            "crashes": list(self.crashes),
            "startup_seconds": self.startup_seconds,
            # who approves: principal, roles and the *path* of each private key (never its bytes)
            "signing": {
                "allowed_signers": demo_repo.ALLOWED_SIGNERS,
                "signers": [
                    {
                        "name": sg.name,
                        "principal": sg.principal,
                        "roles": list(sg.roles),
                        "key": str(sg.key),
                    }
                    for sg in self.signers
                ],
            },
        }
