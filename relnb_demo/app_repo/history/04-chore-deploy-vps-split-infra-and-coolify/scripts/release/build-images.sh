#!/usr/bin/env bash
# Build and publish the API and worker images: TAG=1.1.0 IMAGE_PREFIX=registry/docflow ./scripts/release/build-images.sh
# In the relnb demo the "build" pushes OCI manifests for this commit to the local registry.
set -euo pipefail
TAG="${TAG:-${RELNB_VERSION:-}}"
: "${TAG:?TAG is required}"
: "${IMAGE_PREFIX:?IMAGE_PREFIX is required (registry URL, e.g. http://127.0.0.1:5000)}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
sha="$(git -C "$here" rev-parse HEAD)"
exec "${DOCFLOW_PYTHON:-python3}" -m relnb_demo.images push --registry "$IMAGE_PREFIX" --tag "$TAG" --sha "$sha"
