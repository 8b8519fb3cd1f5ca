#!/usr/bin/env bash
# Runs on a Superset host from its checkout of this repository (/opt/superset), as the superset user.
#   upgrade.sh migrate   install the pinned Superset into .venv, apply its Alembic migrations, sync roles
#   upgrade.sh deploy    restart the web and worker services on the pinned Superset
set -euo pipefail
cd "$(dirname "$0")/.."
set -a && . "${SUPERSET_ENV_FILE:-/etc/superset/superset.env}" && set +a
export SUPERSET_CONFIG_PATH="$PWD/conf/superset_config.py"
case "${1:-}" in
  migrate)
    .venv/bin/pip install -q -r requirements.txt
    .venv/bin/superset db upgrade
    .venv/bin/superset init
    ;;
  deploy)
    .venv/bin/pip install -q -r requirements.txt
    .venv/bin/python deploy/queues.py
    ${SUPERSET_RESTART:-sudo systemctl restart superset superset-worker}
    ;;
  *) echo "usage: $0 migrate|deploy" >&2; exit 2 ;;
esac
