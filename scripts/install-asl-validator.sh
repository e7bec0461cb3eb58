#!/usr/bin/env bash
# Installs asl-validator (npm) into .tools/asl-validator/ with `npm ci` from
# the committed lock file, only when the lock file changed since the last
# install (its hash is kept beside the install).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools=.tools/asl-validator
lock=scripts/asl-validator/package-lock.json
want="$(cat scripts/asl-validator/package.json "$lock" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$tools/.lock.sha256" 2>/dev/null || true)" != "$want" ] \
  || [ ! -x "$tools/node_modules/.bin/asl-validator" ]; then
  command -v npm >/dev/null || { echo "lint-asl: npm (Node.js 20+) is needed for asl-validator" >&2; exit 1; }
  rm -rf "$tools"
  mkdir -p "$tools"
  cp scripts/asl-validator/package.json "$lock" "$tools/"
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$want" >"$tools/.lock.sha256"
fi
