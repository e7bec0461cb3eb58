#!/usr/bin/env bash
# Runs `cargo test` with the given arguments and ends with one line that sums
# every test binary's result: "tests: N passed, N failed".
set -uo pipefail

out="$(mktemp -t cargo-test.XXXXXX.log)"
trap 'rm -f "$out"' EXIT
cargo test "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
read -r passed failed < <(
  grep -E '^test result: ' "$out" |
    sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' |
    awk '{p += $1; f += $2} END {print p + 0, f + 0}'
)
echo
echo "tests: ${passed} passed, ${failed} failed"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit "$status"
