#!/usr/bin/env bash
# Deploy API + worker of one environment: scripts/release/deploy-vps.sh production
# Version/SHA come from RELNB_VERSION/RELNB_SHA (or TAG/SHA). On a real VPS this runs
# `docker compose -f infra/docker/docker-compose.deploy.example.yml up -d`; in the relnb demo
# it asks the demo stack's control endpoint (DOCFLOW_CONTROL_FILE) to restart the processes.
set -euo pipefail
environment="${1:-${DEPLOY_ENV:-production}}"
version="${RELNB_VERSION:-${TAG:-}}"
sha="${RELNB_SHA:-${SHA:-}}"
if [ -z "$version" ] || [ -z "$sha" ]; then
  echo "deploy-vps.sh: set RELNB_VERSION and RELNB_SHA (or TAG and SHA)" >&2
  exit 2
fi
echo "deploying docflow $version ($sha) to $environment"
exec "${DOCFLOW_PYTHON:-python3}" -m relnb_demo.deploy --env "$environment" --version "$version" --sha "$sha"
