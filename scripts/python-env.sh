#!/usr/bin/env bash
# The Python side of the tests, in a venv under target/pyenv (never the machine's own Python):
# the client (clients/python, editable, with its test extras), schemathesis for the API
# contract and selenium for the status page. Debian's chromium, chromium-driver, prometheus
# (promtool) and tmux (the terminal the `warmpool shell` test drives, tests/tests/cli_shell.rs)
# come from apt when missing. Idempotent: a second run only checks.
# Prints nothing but problems; the venv's python is target/pyenv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# `python3 -m venv` needs ensurepip, which Debian ships apart.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -ne 0 ]; then
  echo "python-env.sh: installing ${need[*]} with apt"
  scripts/apt-install.sh "${need[@]}"
fi

venv=target/pyenv
stamp=$venv/.stamp
# Reinstall when a requirement changes.
want=$(cat clients/python/pyproject.toml tests/python/requirements.txt | sha256sum | cut -c1-16)
if [ ! -x $venv/bin/python ] || [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
  echo "python-env.sh: setting up $venv"
  python3 -m venv $venv
  $venv/bin/pip install --quiet --upgrade pip
  $venv/bin/pip install --quiet -e 'clients/python[test]' -r tests/python/requirements.txt
  echo "$want" >$stamp
fi
