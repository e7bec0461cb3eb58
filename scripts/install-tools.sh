#!/usr/bin/env bash
# Installs every pinned tool `make test` uses, the three at once (they are
# downloads, mostly): .venv/ (moto, cfn-lint, SAM CLI, statelint),
# .venv-checkov/ and asl-validator. Each is idempotent and hash-stamped, so a
# second run costs nothing; the lint scripts call their own again.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh & dev=$!
bash scripts/bootstrap.sh .venv-checkov scripts/requirements-checkov.txt & checkov=$!
bash scripts/install-asl-validator.sh & asl=$!

status=0
wait "$dev" || { echo "install-tools: .venv (scripts/requirements-dev.txt) failed" >&2; status=1; }
wait "$checkov" || { echo "install-tools: .venv-checkov (scripts/requirements-checkov.txt) failed" >&2; status=1; }
wait "$asl" || { echo "install-tools: asl-validator failed" >&2; status=1; }
exit "$status"
