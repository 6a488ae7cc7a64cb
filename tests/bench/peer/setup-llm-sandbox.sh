#!/usr/bin/env bash
# Installs the peer, llm-sandbox (PyPI, with its Docker extra), into a venv under target/ so the
# benchmark can measure it beside warmpool on the same engine. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../../.."
VENV=${LLM_SANDBOX_VENV:-target/peer-venv}
VERSION=${LLM_SANDBOX_VERSION:-}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import llm_sandbox' 2>/dev/null; then
  echo "setup-llm-sandbox: present in $VENV ($("$VENV/bin/python" -m pip show llm-sandbox 2>/dev/null | awk '/^Version/{print $2}'))"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "llm-sandbox[docker]${VERSION:+==$VERSION}"
echo "setup-llm-sandbox: installed llm-sandbox $("$VENV/bin/python" -m pip show llm-sandbox | awk '/^Version/{print $2}') in $VENV"
