#!/usr/bin/env bash
# Checks every state machine in infra/statemachine/ with the Amazon States
# Language validators other people wrote, as deployed: each definition's
# ${Name} placeholders are filled from its state machine's
# DefinitionSubstitutions in infra/template.yaml (a !GetAtt X.Arn of a
# function becomes a Lambda ARN of the right shape) before they look at it.
#   - asl-validator (npm), pinned with scripts/asl-validator/package-lock.json
#     and installed by this script into .tools/asl-validator/ (gitignored);
#   - statelint (PyPI: the maintained Python port of awslabs/statelint),
#     pinned in scripts/requirements-dev.txt and installed into .venv/ by
#     scripts/bootstrap.sh.
# Runs offline once installed. Needs Node.js (20 or later) and Python 3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh

bash scripts/install-asl-validator.sh
tools=.tools/asl-validator

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
.venv/bin/python scripts/render-statemachines.py infra/template.yaml "$rendered"

status=0
for definition in "$rendered"/*.asl.json; do
  name="infra/statemachine/$(basename "$definition")"
  echo "asl-validator $name"
  if ! "$tools/node_modules/.bin/asl-validator" --json-path "$definition"; then
    status=1
  fi
  echo "statelint $name"
  if ! .venv/bin/statelint "$definition"; then
    status=1
  fi
done
exit "$status"
