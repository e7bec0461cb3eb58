#!/usr/bin/env bash
# Runs a command with moto's server (a local AWS emulator) on a free loopback
# port, exported as MOTO_ENDPOINT, and stops the server afterwards.
#   scripts/with-moto.sh cargo test --workspace
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"

log="$(mktemp -t moto.XXXXXX.log)"
# exec keeps $! the server itself, so the trap stops the right process.
# scripts/moto-server.py: moto_server, less a per-request cost of its own.
bash -c 'exec "$0" "$1" -H 127.0.0.1 -p 0' "$root/.venv/bin/python" "$root/scripts/moto-server.py" >"$log" 2>&1 &
moto_pid=$!
stop_moto() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$log"
}
trap stop_moto EXIT

endpoint=""
for _ in $(seq 1 150); do
  endpoint="$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$log" | head -n1 || true)"
  [ -n "$endpoint" ] && break
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto_server exited:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.1
done
if [ -z "$endpoint" ]; then
  echo "moto_server did not start within 15 s:" >&2; cat "$log" >&2; exit 1
fi

export MOTO_ENDPOINT="$endpoint"
# The SDK must never find real credentials or a profile while testing.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
echo "moto_server on $MOTO_ENDPOINT" >&2
"$@"
