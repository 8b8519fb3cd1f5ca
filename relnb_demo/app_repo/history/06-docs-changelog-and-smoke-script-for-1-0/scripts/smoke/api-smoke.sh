#!/usr/bin/env bash
# Scripted smoke checks: BASE_URL=https://staging-api.example.com OWNER_TOKEN=... ./scripts/smoke/api-smoke.sh
# OWNER_TOKEN may instead be named by OWNER_TOKEN_ENV. The token is never printed: it goes to
# curl through a private header file, not the command line.
set -euo pipefail
: "${BASE_URL:?BASE_URL is required}"
token="${OWNER_TOKEN:-}"
if [ -z "$token" ] && [ -n "${OWNER_TOKEN_ENV:-}" ]; then token="${!OWNER_TOKEN_ENV:-}"; fi
if [ -z "$token" ]; then echo "FAIL: OWNER_TOKEN is not set" >&2; exit 2; fi
PY="${PYTHON:-python3}"
umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf 'Authorization: Bearer %s\n' "$token" > "$tmp/auth"
unset token OWNER_TOKEN
failures=0

call() {  # call NAME EXPECTED_STATUS METHOD PATH [curl args...]
  local name="$1" want="$2" method="$3" path="$4"; shift 4
  local code
  code="$(curl -sS -o "$tmp/body" -w '%{http_code}' --max-time 10 -X "$method" -H @"$tmp/auth" "$@" "$BASE_URL$path" || echo 000)"
  if [ "$code" = "$want" ]; then
    echo "ok   $name ($method $path -> $code)"
  else
    echo "FAIL $name ($method $path -> $code, want $want)"
    failures=$((failures + 1))
    return 1
  fi
}
field() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/body" "$1"; }

call health 200 GET /health || true
call "login bootstrap /me" 200 GET /me || true
if call "create workspace" 201 POST /workspaces -H 'Content-Type: application/json' -d '{"name":"smoke"}'; then
  ws="$(field id)"
  printf 'hello\fworld\n' > "$tmp/doc.txt"
  if call "upload document" 202 POST /documents -F "workspace_id=$ws" -F "file=@$tmp/doc.txt"; then
    doc="$(field id)"
    status=queued
    for _ in $(seq 1 60); do
      call "document status" 200 GET "/documents/$doc" >/dev/null || break
      status="$(field status)"
      case "$status" in extracted|failed) break;; esac
      sleep 0.5
    done
    if [ "$status" = "extracted" ]; then echo "ok   extraction pipeline completes"; else echo "FAIL extraction pipeline ($status)"; failures=$((failures + 1)); fi
  fi
  call "analytics summary" 200 GET "/analytics/summary?workspace_id=$ws" || true
fi
if [ "$failures" -gt 0 ]; then echo "$failures smoke check(s) failed"; exit 1; fi
echo "all smoke checks passed"
