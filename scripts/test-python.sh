#!/usr/bin/env bash
# The tests that speak to the daemon from outside Rust, against the real binary and engine:
# - the Python client (clients/python): its generated blocking half is current, its types
#   pass mypy --strict, then pytest;
# - the status page at GET /, in headless Chromium (tests/browser), with screenshots in
#   target/artifacts;
# - the API contract: schemathesis on /openapi.json (tests/contract), every operation and
#   check, stateful links included, a fixed seed and a bounded number of examples.
# scripts/test.sh runs this after the Rust tests, which build target/debug/warmpool.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-env.sh
# The binary under test is current (a no-op when it is). scripts/test.sh builds it before
# starting this script beside another build, and says so.
if [ -z "${WARMPOOL_E2E_RUN:-}" ]; then
  cargo build --locked -p warmpool
fi
py=target/pyenv/bin
t0=$SECONDS
# The blocking client is generated from the async one; a stale generated module fails here.
$py/python clients/python/scripts/unasync.py --check
$py/mypy --strict --config-file clients/python/pyproject.toml clients/python/src
echo "test-python.sh: mypy done at $((SECONDS - t0)) s"
$py/pytest -q -p no:cacheprovider clients/python/tests tests/browser
echo "test-python.sh: pytest done at $((SECONDS - t0)) s"
$py/python tests/contract/run.py --max-examples "${CONTRACT_EXAMPLES:-50}" --seed 1
echo "test-python.sh: contract done at $((SECONDS - t0)) s"
