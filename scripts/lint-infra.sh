#!/usr/bin/env bash
# Lints infra/template.yaml with cfn-lint, `sam validate --lint` and checkov
# (in a virtualenv of its own: its pins clash with the SAM CLI's).
# Runs offline: neither tool needs AWS credentials or network for this. The
# dummy credentials only stop botocore from searching for real ones.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
bash scripts/bootstrap.sh .venv-checkov scripts/requirements-checkov.txt

export SAM_CLI_TELEMETRY=0
export AWS_ACCESS_KEY_ID=lint-only AWS_SECRET_ACCESS_KEY=lint-only
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

template=infra/template.yaml

echo "cfn-lint $template"
.venv/bin/cfn-lint "$template"

echo "sam validate --lint $template"
.venv/bin/sam validate --lint --template-file "$template" --region us-east-1

# Each skipped check is justified in the template (its header, or the
# resource's Metadata); infra/checkov.yaml lists the template-wide ones.
echo "checkov $template"
.venv-checkov/bin/checkov --config-file infra/checkov.yaml -f "$template"
