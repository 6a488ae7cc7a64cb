#!/usr/bin/env bash
# Builds cold_aware.py into cold_aware.wasm, a sizing-policy component (componentize-py is
# installed into the checkout's target/ on first use). Then:
#   warmpool plugin check cold_aware.wasm --world sizing --config per_cold=3
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/../../scripts/componentize-py.sh" sizing-policy cold_aware "$here" "${1:-$here/cold_aware.wasm}"
echo "built ${1:-$here/cold_aware.wasm}"
