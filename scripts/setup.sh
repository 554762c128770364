#!/usr/bin/env bash
# Installs what the tests need on a fresh machine. Idempotent: fast when everything is there.
#   - kubectl (the machine's, else Debian's kubernetes-client)
#   - a Python virtual environment in .venv with the `kubernetes` client and pytest
#   - Node.js and the OIDC provider of the end-to-end tests (tests/oidc, oauth2-mock-server via npm ci)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import kubernetes, pytest, jsonschema' 2>/dev/null; then
  echo "setup: creating .venv with the Python kubernetes client"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
fi
if [ ! -d tests/oidc/node_modules/oauth2-mock-server ]; then
  echo "setup: installing the OIDC test provider (npm ci in tests/oidc)"
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: kubectl $(kubectl version --client 2>/dev/null | head -1)"
