#!/usr/bin/env bash
# The whole test suite: `cargo fmt --check` and clippy with warnings denied, then unit tests
# of the pool logic (in-memory backend, paused time), config and API tests, the end-to-end
# tests of the real binary against the real Docker engine, and the tests from outside Rust
# (scripts/test-python.sh: the Python client, the status page in Chromium, schemathesis).
# What those need beyond Rust (chromium, promtool, tmux, a Python venv) is installed by
# scripts/python-env.sh with the machine's package tools.
# Fails loudly when the engine is unreachable: the engine tests never skip.
#
# Time: one build serves every test, clippy's lints included (clippy-driver compiles the
# workspace's crates). Each cargo command selects the whole workspace with the same settings,
# so features resolve once and nothing is compiled twice (the daemon the end-to-end and Python
# tests run is the binary of that build, through WARMPOOL_BIN). The Python set-up
# (network-bound) runs beside the build, and the Python tests beside the fault simulation.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
  echo "test.sh: the Docker engine is not reachable; the end-to-end tests need it." >&2
  echo "test.sh: start it with: nohup dockerd >/var/log/dockerd.log 2>&1 &" >&2
  exit 1
fi

# Containers of test daemons carry host ids starting with e2e-. Whatever happens, none stay.
leftovers() {
  docker ps -a --filter label=warmpool.managed=true --format '{{.ID}} {{.Label "warmpool.host"}}' \
    | awk '$2 ~ /^e2e-/ {print $1}'
}
cleanup() {
  # The Python tests, when the run ends before them (a failing simulation): their process
  # group (pytest, the browser, schemathesis, the test daemons) stops, and so does any daemon
  # of this run that left the group (its config is under warmpool-e2e-*-run$$-*).
  if [ -n "${py_pid:-}" ] && kill -0 "$py_pid" 2>/dev/null; then
    kill -TERM -- "-$py_pid" 2>/dev/null || true
    pkill -TERM -f "serve -c .*/warmpool-e2e-[0-9a-f]*-run$$-" 2>/dev/null || true
    sleep 5
  fi
  # The background lane (the Python set-up), when the run ends before it does.
  for pid in ${pyenv_pid:-}; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  # Extra engines of tests whose process is gone (tests/engines/engines.sh): engines,
  # namespaces, links and their containers.
  bash tests/engines/engines.sh gc >/dev/null 2>&1 || true
  local ids
  ids=$(leftovers)
  if [ -n "$ids" ]; then
    echo "test.sh: removing $(echo "$ids" | wc -l) container(s) left by a test" >&2
    echo "$ids" | xargs docker rm -f >/dev/null
  fi
}
trap cleanup EXIT
t0=$SECONDS
took() { echo "test.sh: $1 done at $((SECONDS - t0)) s"; }

# Plugins build for wasm32-wasip2. rustup may not reach its server here; the workplace keeps a
# copy of the target beside the checkout (../shared/toolchain), which its script installs.
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2/lib" ]; then
  if [ -x ../shared/toolchain/install-wasm-target.sh ]; then
    ../shared/toolchain/install-wasm-target.sh
  else
    rustup target add wasm32-wasip2
  fi
fi

# Formatting drift fails the run before anything is built.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
# The workspaces beside the host's (the agent, the plugins, the plugin template, the fuzz
# targets) too.
cargo fmt --all --check
for ws in host/agent plugins examples/plugin-template tests/fuzz; do
  (cd "$ws" && cargo fmt --all --check)
done
took "fmt"

# The background lane, each job in its own process group (so cleanup stops all of it) with its
# output in a log that is printed when its result is read.
mkdir -p target
# promtool (the metrics test), tmux (the shell test) and the venv of scripts/test-python.sh,
# beside the build
# (scripts/lowprio.sh: its own session, at a lower CPU priority than the build).
scripts/lowprio.sh 10 scripts/python-env.sh >target/python-env.log 2>&1 &
pyenv_pid=$!
# Wait for a background job; print its log; fail the run when it failed.
await() {
  local pid=$1 what=$2 log=$3 status=0
  wait "$pid" || status=$?
  cat "$log"
  if [ "$status" -ne 0 ]; then
    echo "test.sh: FAIL: $what (above, also in $log)" >&2
    exit 1
  fi
}

# Clippy lints inside the build: cargo compiles the workspace's own crates with clippy-driver
# (RUSTC_WORKSPACE_WRAPPER, as `cargo clippy` itself does) and warnings denied, so a lint fails
# the build, and the dependencies are compiled once instead of once more for a separate check.
# Every cargo command below runs with these settings, so none rebuilds.
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
export RUSTC_WORKSPACE_WRAPPER
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-D warnings"

tests/images/build-busybox.sh
cargo test --workspace --locked --no-run
took "build, with clippy's lints"
await "$pyenv_pid" "scripts/python-env.sh" target/python-env.log
took "python env"
# The daemon under test is the one binary this build made; no test builds another. The policy
# lab's binary, `warmpool-lab`, is beside it (host/lab has integration tests, so the build
# links it), where the end-to-end tests look for it.
export WARMPOOL_BIN="$PWD/target/debug/warmpool"
if [ $# -eq 0 ]; then
  # Everything but the fault simulation, which runs below beside the Python tests.
  cargo test --workspace --locked -- --skip random_faults_never_break_a_promise
else
  cargo test --workspace --locked "$@"
fi
took "workspace tests"
# The tests from outside Rust wait on the engine and the network most of the time, the fault
# simulation on the CPU: they run side by side, and the Python tests' output follows the
# simulation's.
pylog=target/test-python.log
export WARMPOOL_E2E_RUN=$$
# The daemon the Python tests run is the one the Rust tests just ran (WARMPOOL_BIN).
setsid scripts/test-python.sh >"$pylog" 2>&1 &
py_pid=$!
# The test kit, with the deterministic fault simulation: thousands of seeds, each a simulated
# daemon under random traffic and faults. It prints its seed count and time; a failure prints
# the seed and the command that replays it.
# The same package selection as the build above, so nothing is rebuilt. (With arguments, the
# selection above already ran whatever of it they name.)
if [ $# -eq 0 ]; then
  cargo test --workspace --locked --test simulation -- --nocapture
fi
took "fault simulation"
py_status=0
wait "$py_pid" || py_status=$?
cat "$pylog"
if [ "$py_status" -ne 0 ]; then
  echo "test.sh: FAIL: scripts/test-python.sh (above, also in $pylog)" >&2
  exit 1
fi
took "python, browser and contract tests"

left=$(leftovers | wc -l)
if [ "$left" -ne 0 ]; then
  echo "test.sh: FAIL: the tests left $left warmpool container(s) on the engine" >&2
  exit 1
fi
netns=$( (ip netns list 2>/dev/null || true) | grep -c '^wpe' || true)
if [ "$netns" -ne 0 ]; then
  echo "test.sh: FAIL: the tests left $netns extra-engine network namespace(s) (wpe*)" >&2
  exit 1
fi
echo "test.sh: no test containers left on the engine"
