"""What the release does to the running demo: push images, deploy a version (migrations, restart,
faults of the new version), roll back, switch faults, freeze a worker, take a backup.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import subprocess
import time
import uuid
from typing import Any

from . import repo as demo_repo
from .images import push_image
from .services import (
    PostgresService,
)
from .topology import (
    IMAGE_REPOSITORIES,
)


class Operations:
    """Mixed into DemoStack: the operations its deploy and rollback scripts reach."""

    def backup(self, env: str) -> str:
        """pg_dump (custom format) of the environment's database into the S3 backup bucket.

        truncated-backup: production's dump job is cut off mid-way (killed for memory), and the
        upload step ships the part it has, as a cron job piping pg_dump into `aws s3 cp` does.
        """
        st = self.envs[env]
        dump = subprocess.run(
            [
                self._pg_dump(),
                "--format=custom",
                "--no-owner",
                "-d",
                st.database_url,
            ],
            capture_output=True,
            timeout=300,
            check=True,
        )
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        key = f"{env}/docflow-{env}-{stamp}-{uuid.uuid4().hex[:6]}.dump"
        body = dump.stdout
        if self.has_fault("truncated-backup", env):
            body = body[: len(body) * 2 // 5]
        self.s3.upload(key, body)
        return key

    def _pg_dump(self) -> str:
        """The pg_dump a team's nightly job runs: the one installed with their server. On a
        machine's Postgres (--postgres-url) that is the system's (Debian's wrapper picks the
        cluster's version); pgserver's newer one would write a dump format the server's own
        pg_restore cannot read."""
        system = shutil.which("pg_dump")
        if self.postgres.external_url and system:
            return system
        return str(PostgresService.bin_dir() / "pg_dump")

    def push_images(self, version: str, sha: str) -> dict[str, str]:
        """Push api and worker images tagged `version` to the registry; returns repo -> digest."""
        if self.registry is None:
            raise RuntimeError("no registry running (this stack was made with with_registry=False)")
        out = {
            repo: push_image(self.registry.url, repo, version, sha=sha, version=version)
            for repo in IMAGE_REPOSITORIES.values()
        }
        self.images[version] = out
        return out

    def delete_images(self, version: str) -> None:
        """Delete the images tagged `version` from the registry, as a retention policy that keeps
        only recent tags does (missing-previous-image)."""
        import httpx

        assert self.registry is not None
        for repo, digest in self.images.pop(version).items():
            r = httpx.delete(f"{self.registry.url}/v2/{repo}/manifests/{digest}", timeout=10)
            if r.status_code != 202:
                raise RuntimeError(f"registry delete {repo}@{digest}: HTTP {r.status_code} {r.text[:200]}")

    def pull_images(self, version: str) -> None:
        """What `docker compose pull` does before a deploy: every image of `version` must be in
        the registry, or the deploy stops here (no registry running: nothing to pull from)."""
        import httpx

        from .images import MANIFEST_ACCEPT

        if self.registry is None:
            return
        for repo in IMAGE_REPOSITORIES.values():
            r = httpx.head(
                f"{self.registry.url}/v2/{repo}/manifests/{version}",
                headers={"Accept": MANIFEST_ACCEPT},
                timeout=10,
            )
            if r.status_code != 200:
                raise RuntimeError(
                    f"pull {self.registry.address}/{repo}:{version}: manifest unknown (HTTP {r.status_code})"
                )

    def deploy(self, env: str, version: str, sha: str) -> dict[str, Any]:
        """Replace the environment's API + workers with `version` at `sha` (same URL)."""
        if env not in self.envs:
            raise ValueError(f"unknown environment {env!r}")
        version = version.removeprefix("v")
        if version not in (demo_repo.PREVIOUS_VERSION, demo_repo.NEW_VERSION):
            raise ValueError(f"no image for version {version!r} (have 1.0.0, 1.1.0)")
        assert self.repo
        full = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"],
            cwd=self.repo.path,
            capture_output=True,
            text=True,
            check=False,
        )
        if full.returncode != 0:
            raise ValueError(f"commit {sha!r} is not in the repository")
        sha = full.stdout.strip()
        with self._lock:
            if self._stopped:
                raise RuntimeError("the demo stack is stopping")
            st = self.envs[env]
            is_new = version == demo_repo.NEW_VERSION
            faults = self.runtime_faults(
                env, new_version_on_production=(env == "production" and is_new)
            )
            if env == "production" and is_new and self.has_fault("wrong-sha", "production"):
                sha = (
                    self.repo.previous_sha
                )  # the deploy "succeeds" but the old build keeps running
            self.pull_images(version)
            if env == "production" and is_new and self.has_fault("rollback-fails", "production"):
                # the 1.1.0 deploy rewrites production's env file from the template, whose issuer
                # variable 1.0.0 does not read: from now on 1.0.0 cannot start there
                st.issuer_var = "KEYCLOAK_ISSUER_URL"
            previous = (st.version, st.sha)
            old = [*st.workers, st.api]
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda p: p and p.stop(), old))
            st.deploys += 1
            self._launch(st, version, sha, faults)
            self._record_pids()
            self._wait_healthy(st)
            # only a deploy that came up is one to roll back from (a failed one changed nothing
            # a rollback could return to: the next rollback aims at the same version again)
            st.history.append(previous)
            return {
                "env": env,
                "version": version,
                "sha": st.sha,
                "previous": {"version": previous[0], "sha": previous[1]},
            }

    def rollback(self, env: str) -> dict[str, Any]:
        """Redeploy what ran before the last deploy of `env`."""
        st = self.envs.get(env)
        if st is None:
            raise ValueError(f"unknown environment {env!r}")
        if not st.history:
            raise ValueError(f"{env} has no previous deploy to roll back to")
        version, sha = st.history[-1]
        result = self.deploy(env, version, sha)
        st.history = st.history[:-2] if len(st.history) >= 2 else []
        return result

    def set_faults(self, env: str, **changes: Any) -> dict[str, Any]:
        """Change an environment's runtime faults through its admin endpoint (as an operator would)."""
        import httpx

        st = self.envs[env]
        r = httpx.post(
            f"{st.base_url}/_admin/faults",
            json=changes,
            headers={"X-Admin-Token": st.admin_token},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()

    def freeze_worker(self, env: str, replica: int = 0) -> int:
        """SIGSTOP one worker replica (a hung process); returns its pid. stop() still ends it."""
        w = self.envs[env].workers[replica]
        os.kill(w.pid, signal.SIGSTOP)
        return w.pid
