"""The demo's deploy mechanism: ask the running DemoStack to restart an environment's API + worker.

`python -m relnb_demo.deploy --env production --version 1.1.0 --sha <sha>` (or `--rollback`).
Version and SHA default to RELNB_VERSION / RELNB_SHA (what relnb sets for deploy commands). The
stack's control endpoint and token come from `--control-file` or DOCFLOW_CONTROL_FILE (written by
the stack, mode 0600), so the token never appears on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def request_deploy(
    control_url: str,
    token: str,
    env: str,
    *,
    version: str | None = None,
    sha: str | None = None,
    rollback: bool = False,
    timeout: float = 120,
) -> dict[str, Any]:
    """POST the deploy to the stack; returns its answer or raises RuntimeError with the reason."""
    import httpx

    body: dict[str, Any] = {"env": env, "rollback": rollback}
    if not rollback:
        body.update({"version": version, "sha": sha})
    try:
        resp = httpx.post(
            control_url.rstrip("/") + "/deploy",
            json=body,
            headers={"X-Control-Token": token},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise RuntimeError(
            f"demo stack control endpoint {control_url} unreachable: {exc}"
        ) from None
    try:
        data = resp.json()
    except ValueError:
        data = {"error": resp.text[:200]}
    if resp.status_code != 200:
        raise RuntimeError(f"deploy refused (HTTP {resp.status_code}): {data.get('error')}")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relnb_demo.deploy")
    parser.add_argument("--env", required=True, choices=("staging", "production"))
    parser.add_argument("--version", default=os.environ.get("RELNB_VERSION"))
    parser.add_argument("--sha", default=os.environ.get("RELNB_SHA"))
    parser.add_argument(
        "--rollback", action="store_true", help="redeploy what ran before the last deploy"
    )
    parser.add_argument("--control-file", default=os.environ.get("DOCFLOW_CONTROL_FILE"))
    args = parser.parse_args(argv)
    if not args.control_file:
        print(
            "deploy: set DOCFLOW_CONTROL_FILE (written by the demo stack) or --control-file",
            file=sys.stderr,
        )
        return 2
    try:
        control = json.loads(Path(args.control_file).read_text())
    except (OSError, ValueError) as exc:
        print(f"deploy: cannot read control file {args.control_file}: {exc}", file=sys.stderr)
        return 2
    if not args.rollback and (not args.version or not args.sha):
        print(
            "deploy: --version and --sha (or RELNB_VERSION and RELNB_SHA) are required",
            file=sys.stderr,
        )
        return 2
    try:
        result = request_deploy(
            control["url"],
            control["token"],
            args.env,
            version=args.version,
            sha=args.sha,
            rollback=args.rollback,
        )
    except RuntimeError as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    print(f"deployed {result['env']}: version {result['version']} sha {result['sha']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
