#!/usr/bin/env bash
# Builds a Python plugin into a wasm component with componentize-py, installing it first (PyPI,
# pinned, into a venv under target/) when it is missing. Usage:
#   scripts/componentize-py.sh <world> <module> <source dir> <out.wasm>
# e.g. scripts/componentize-py.sh sizing-policy cold_aware examples/python-plugin cold_aware.wasm
# <world> is one of the worlds of wit/warmpool-plugin@0.1.0: sizing-policy, exhaustion-strategy,
# health-check. The output is written to a temporary name and renamed, so a daemon watching
# <out.wasm> never sees half a file.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
VERSION=${COMPONENTIZE_PY_VERSION:-0.25.1}
VENV=${COMPONENTIZE_PY_VENV:-$root/target/componentize-venv}
if [ $# -ne 4 ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
world=$1 module=$2 src=$3 out=$4
wit="$root/wit/warmpool-plugin@0.1.0"

# Up to date: built by this version for this world, and newer than its sources, the WIT and
# this script. Two builds of one tree (a `cargo clippy` and a `cargo test`, or two target
# directories) then compile it once, and a file a test is reading is not replaced by a copy of
# itself.
stamp="$(dirname "$out")/.$(basename "$out").built-by"
want="componentize-py $VERSION $world $module"
if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
  && [ -z "$(find "$src" "$wit" "$0" -newer "$out" -print -quit)" ]; then
  exit 0
fi

if ! [ -x "$VENV/bin/componentize-py" ] \
  || [ "$("$VENV/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $VERSION" ]; then
  # Two builds may start at once (test processes): one installs, the other waits for it.
  mkdir -p "$(dirname "$VENV")"
  exec 9>"$VENV.lock"
  flock 9
  if ! [ -x "$VENV/bin/componentize-py" ] \
    || [ "$("$VENV/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $VERSION" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "componentize-py==$VERSION"
    echo "componentize-py.sh: installed componentize-py $VERSION in $VENV" >&2
  fi
  exec 9>&-
fi

mkdir -p "$(dirname "$out")"
# No __pycache__ beside the sources: the checkout stays clean, and a build script watching the
# source directory is not woken by its own build.
export PYTHONDONTWRITEBYTECODE=1
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$VENV/bin/componentize-py" -d "$wit" -w "$world" \
  componentize "$module" -p "$src" -o "$tmp" >/dev/null
mv "$tmp" "$out"
echo "$want" >"$stamp"
