#!/usr/bin/env bash
# Section 1 of BENCHMARKS.md, webhook verification and parsing: builds
# bench-verify and runs it, which times ours, the HMAC floor, stripe-node and
# stripe-python on one signed ~10 KB event and writes the section to $1.
#   bash bench/sections/1-verify.sh target/bench/sections/1-verify.md
# Env: TARGET_DIR (cargo target dir, default target/), BENCH_QUICK=1 for tiny
# counts. Needs the peers (bash bench/peers/install.sh); not moto.
set -euo pipefail
# One package set for every section, so they share one build (a different
# set can unify features differently and rebuild).
BENCH_PACKAGES="${BENCH_PACKAGES:--p tenancy-bench -p stripe-webhook -p tenantctl}"
out="$(realpath -m "${1:?usage: 1-verify.sh SECTION.md}")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

target="${TARGET_DIR:-$root/target}"
CARGO_TARGET_DIR="$target" cargo build --release --locked -q $BENCH_PACKAGES

counts=()
quick=""
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  counts=(--quick --batches 5 --rust-iterations 100 --node-iterations 20 --python-iterations 3)
  quick="BENCH_QUICK=1 "
fi
# The section shows how to reproduce it with no path of this machine in it
# (the target directory may be anywhere: CARGO_TARGET_DIR, TARGET_DIR).
command="${quick}make bench    # or this section alone:
${quick}bash bench/sections/1-verify.sh 1-verify.md"
"$target/release/bench-verify" --out "$out" --work-dir "$target/bench/verify" --command "$command" "${counts[@]}"
