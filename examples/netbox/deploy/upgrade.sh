#!/usr/bin/env bash
# Runs on a NetBox host from its checkout of this repository (/opt/netbox), as the netbox user.
#   upgrade.sh migrate   install the pinned NetBox into .venv and apply its migrations
#   upgrade.sh deploy    restart the web and worker services on the pinned NetBox
set -euo pipefail
cd "$(dirname "$0")/.."
set -a && . /etc/netbox/netbox.env && set +a
export NETBOX_ROOT="$PWD"
case "${1:-}" in
  migrate)
    .venv/bin/pip install -q -r requirements.txt
    .venv/bin/netbox migrate --no-input
    ;;
  deploy)
    .venv/bin/pip install -q -r requirements.txt
    .venv/bin/netbox collectstatic --no-input
    .venv/bin/netbox remove_stale_contenttypes --no-input
    .venv/bin/netbox clearsessions
    sudo systemctl restart netbox netbox-rq
    ;;
  *) echo "usage: $0 migrate|deploy" >&2; exit 2 ;;
esac
