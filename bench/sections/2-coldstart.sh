#!/usr/bin/env bash
# Section 2 of BENCHMARKS.md: cold start of the webhook function beside the
# same job in Python and Node.js (bench/peers/*/webhook_lambda.*), each started
# against a local Lambda Runtime API (bench-coldstart) and moto's server.
#   scripts/with-moto.sh bash bench/sections/2-coldstart.sh OUT.md
# Needs MOTO_ENDPOINT (scripts/with-moto.sh) and the peers (bench/peers/install.sh).
set -euo pipefail
# One package set for every section, so they share one build (a different
# set can unify features differently and rebuild).
BENCH_PACKAGES="${BENCH_PACKAGES:--p tenancy-bench -p stripe-webhook -p tenantctl}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

out="${1:?usage: $0 SECTION.md}"
: "${MOTO_ENDPOINT:?MOTO_ENDPOINT is not set: run under scripts/with-moto.sh}"
target="${TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}}"
starts=20
[ "${BENCH_QUICK:-0}" = 1 ] && starts=3

CARGO_TARGET_DIR="$target" cargo build --release --locked $BENCH_PACKAGES >&2

node="$(command -v node || true)"
[ -n "$node" ] || { echo "2-coldstart: node is not on PATH" >&2; exit 1; }
[ -x bench/.venv/bin/python ] || { echo "2-coldstart: run bash bench/peers/install.sh first" >&2; exit 1; }

quick=""
[ "${BENCH_QUICK:-0}" = 1 ] && quick="BENCH_QUICK=1 "
command="${quick}make bench    # or this section alone:
${quick}bash scripts/with-moto.sh bash bench/sections/2-coldstart.sh 2-coldstart.md"
"$target/release/bench-coldstart" \
  --rust "$target/release/stripe-webhook" \
  --python bench/.venv/bin/python \
  --python-script bench/peers/python/webhook_lambda.py \
  --node "$node" \
  --node-script bench/peers/node/webhook_lambda.mjs \
  --starts "$starts" \
  --logs "$target/bench/coldstart" \
  --section "$out" \
  --command "$command" >/dev/null
echo "wrote $out" >&2
