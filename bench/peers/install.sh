#!/usr/bin/env bash
# Installs the peers make bench measures against, pinned: stripe-python and
# boto3 into bench/.venv, stripe-node and the AWS SDK for JavaScript into
# bench/peers/node/node_modules (from package-lock.json). Idempotent: each
# installs again only when its pin file changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# One install at a time: two at once would build the same venv together.
exec 9>bench/.install.lock
flock 9

venv=bench/.venv
req=bench/peers/requirements.txt
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ "$want" != "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" ]; then
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q -r "$req"
  printf '%s\n' "$want" >"$venv/.requirements.sha256"
fi

node=bench/peers/node
want="$(sha256sum "$node/package-lock.json" | cut -d' ' -f1)"
if [ "$want" != "$(cat "$node/node_modules/.lock.sha256" 2>/dev/null || true)" ]; then
  npm ci --prefix "$node" --no-audit --no-fund --loglevel=error
  printf '%s\n' "$want" >"$node/node_modules/.lock.sha256"
fi
