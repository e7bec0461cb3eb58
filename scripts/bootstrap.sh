#!/usr/bin/env bash
# Creates .venv/ at the repo root and installs scripts/requirements-dev.txt
# (or the virtualenv and requirements file given: `bootstrap.sh VENV REQ`).
# Idempotent: pip runs only when the requirements file changed since the last
# successful install (hash kept in VENV/.requirements.sha256).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${1:-.venv}"
req="${2:-scripts/requirements-dev.txt}"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" = "$have" ]; then
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/python" -m pip install -q -r "$req"
# Written last, so an interrupted or failed install is retried next time.
printf '%s\n' "$want" >"$stamp"
