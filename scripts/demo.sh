#!/usr/bin/env bash
# make demo: start the local stack, send it the signed sample events from
# events/ (plus two deliveries Stripe's checks must refuse), show the queue.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --quiet -p tenantctl
tenantctl="$root/target/debug/tenantctl"

export STRIPE_MODE=test
export STRIPE_WEBHOOK_SECRET="whsec_local_demo_secret_0001"
log="$(mktemp -t tenantctl-demo.XXXXXX.log)"
bash -c 'exec "$0" local serve --addr 127.0.0.1:0' "$tenantctl" >"$log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT

base=""
for _ in $(seq 1 100); do
  base="$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$log" | head -n1 || true)"
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "local server did not start" >&2; cat "$log" >&2; exit 1; }

echo "== local stack on $base (Stripe test mode)"
echo
echo "== signed sample events, as Stripe would deliver them"
"$tenantctl" send --url "$base/stripe/webhook" events/*.json
echo
echo "== deliveries that must be refused"
echo "-- signed with a secret this endpoint does not hold:"
"$tenantctl" send --url "$base/stripe/webhook" --secret whsec_someone_elses_secret \
  events/01-checkout.session.completed.json
echo "-- a replay of an old delivery (signed an hour ago):"
"$tenantctl" send --url "$base/stripe/webhook" --timestamp "$(( $(date +%s) - 3600 ))" \
  events/01-checkout.session.completed.json
echo
echo "== what reached the queue (the workflow consumes it next)"
"$tenantctl" local queue --server "$base"
echo
echo "== server log (JSON, one line per delivery)"
cat "$log"
