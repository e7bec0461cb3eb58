#!/usr/bin/env bash
# make bench: every benchmark, in one run on this machine, written to
# BENCHMARKS.md. Each bench/sections/N-name.sh is called with the path of the
# Markdown section it writes (target/bench/sections/N-name.md), with moto's
# server running (MOTO_ENDPOINT) and the peers installed.
#   BENCH_QUICK=1 make bench   small counts: checks the harness, not the figures
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export BENCH_QUICK="${BENCH_QUICK:-0}"
sections="$TARGET_DIR/bench/sections"
output="${BENCH_OUTPUT:-$root/BENCHMARKS.md}"

bash scripts/bootstrap.sh
bash bench/peers/install.sh
rm -rf "$sections"
mkdir -p "$sections"

shopt -s nullglob
started=$(date +%s)
for section in bench/sections/*.sh; do
  name="$(basename "${section%.sh}")"
  echo "== $name" >&2
  bash scripts/with-moto.sh bash "$section" "$sections/$name.md"
done
elapsed=$(( $(date +%s) - started ))

cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d) at commit"
  echo "\`$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!BENCHMARKS.md' || echo ', with uncommitted changes')\`, in ${elapsed} s."
  echo "Every ratio compares figures measured in this same run on this machine."
  [ "$BENCH_QUICK" = 1 ] && echo && echo "**Quick run (BENCH_QUICK=1): counts too small for the figures to mean anything.**"
  echo
  echo "| Machine | |"
  echo "| --- | --- |"
  echo "| CPU | ${cpu:-unknown}, $(nproc) cores available |"
  echo "| Memory | $(free -g | awk '/^Mem:/ {print $2}') GiB |"
  echo "| OS | $(. /etc/os-release && echo "$PRETTY_NAME"), Linux $(uname -r) |"
  echo "| Rust | $(rustc -V) |"
  echo "| Python | $(bench/.venv/bin/python -V 2>&1 | cut -d' ' -f2), stripe $(bench/.venv/bin/python -c 'import stripe; print(stripe.VERSION)'), boto3 $(bench/.venv/bin/python -c 'import boto3; print(boto3.__version__)') |"
  echo "| Node.js | $(node -v), stripe $(node -p 'require("./bench/peers/node/node_modules/stripe/package.json").version'), @aws-sdk/client-sqs $(node -p 'require("./bench/peers/node/node_modules/@aws-sdk/client-sqs/package.json").version') |"
  echo "| AWS emulator | moto $(.venv/bin/python -c 'import moto; print(moto.__version__)') (server mode, loopback) |"
  echo
  echo "Reproduce: \`make bench\` on a clone (it installs its peers, pinned, from"
  echo "PyPI and npm). Each section says the exact command behind its figures."
  echo
  for file in "$sections"/*.md; do
    cat "$file"
    echo
  done
  # What each change bought: written by hand, kept beside the figures.
  cat bench/changes.md
} >"$output"
echo "wrote $output" >&2
