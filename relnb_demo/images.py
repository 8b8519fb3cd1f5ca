"""docflow's images: small real OCI images (config + one layer + manifest) for `docflow-api` and
`docflow-worker`, pushed over the registry HTTP API with no Docker on the machine.

`python -m relnb_demo.images push --registry URL --tag 1.1.0 --sha <sha>` is what the repo's
`scripts/release/build-images.sh` calls (B3); the stack pushes 1.0.0's the same way (E1).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Mapping

REPOSITORIES = ("docflow-api", "docflow-worker")


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join(
    (
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


def _layer(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A gzipped tar layer and its diff_id (sha256 of the uncompressed tar)."""
    import gzip

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


def push_image(registry_url: str, repository: str, tag: str, *, sha: str, version: str) -> str:
    """Push a tiny but real OCI image (config + one layer + manifest); returns the manifest digest.

    docker-registry's monolithic upload: POST .../blobs/uploads/ answers 202 with a Location that
    carries `_state`; the PUT goes to that URL with `digest=` appended by hand (httpx's `params=`
    would drop `_state`).
    """
    import httpx

    base = registry_url.rstrip("/")
    layer, diff_id = _layer({"app/VERSION": f"{version}\n{sha}\n".encode()})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Labels": {
                    "org.opencontainers.image.revision": sha,
                    "org.opencontainers.image.version": version,
                }
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        sort_keys=True,
    ).encode()
    with httpx.Client(timeout=10) as client:

        def upload(blob: bytes) -> str:
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            head = client.head(f"{base}/v2/{repository}/blobs/{digest}")
            if head.status_code == 200:
                return digest
            start = client.post(f"{base}/v2/{repository}/blobs/uploads/")
            if start.status_code != 202:
                raise RuntimeError(
                    f"blob upload start: HTTP {start.status_code} {start.text[:200]}"
                )
            loc = start.headers["location"]
            if loc.startswith("/"):
                loc = base + loc
            sep = "&" if "?" in loc else "?"
            put = client.put(
                f"{loc}{sep}digest={digest}",
                content=blob,
                headers={"Content-Type": "application/octet-stream"},
            )
            if put.status_code != 201:
                raise RuntimeError(f"blob upload: HTTP {put.status_code} {put.text[:200]}")
            return digest

        config_digest = upload(config)
        layer_digest = upload(layer)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
                "annotations": {"org.opencontainers.image.revision": sha},
            },
            sort_keys=True,
        ).encode()
        put = client.put(
            f"{base}/v2/{repository}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        if put.status_code != 201:
            raise RuntimeError(f"manifest put: HTTP {put.status_code} {put.text[:200]}")
        return "sha256:" + hashlib.sha256(manifest).hexdigest()


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
