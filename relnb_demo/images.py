"""`python -m relnb_demo.images push --registry URL --tag 1.1.0 --sha <sha>`: the demo's image build.

Pushes small real OCI images (config + one layer + manifest) for `docflow-api` and
`docflow-worker` to a registry — what the repo's `scripts/release/build-images.sh` calls.
"""

from __future__ import annotations

import argparse
import sys

from .services import push_image

REPOSITORIES = ("docflow-api", "docflow-worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relnb_demo.images")
    parser.add_argument("command", choices=("push",))
    parser.add_argument(
        "--registry", required=True, help="registry base URL, e.g. http://127.0.0.1:5000"
    )
    parser.add_argument("--tag", required=True)
    parser.add_argument("--sha", required=True)
    args = parser.parse_args(argv)
    registry = args.registry if "://" in args.registry else f"http://{args.registry}"
    try:
        for repo in REPOSITORIES:
            digest = push_image(
                registry, repo, args.tag, sha=args.sha, version=args.tag.removeprefix("v")
            )
            print(f"pushed {repo}:{args.tag} {digest}")
    except Exception as exc:
        print(f"push failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
