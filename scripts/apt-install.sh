#!/usr/bin/env bash
# Installs Debian packages for the project's scripts: `scripts/apt-install.sh PKG...`.
# The scripts that need packages may run at once (CI builds its images and the Python set-up
# beside the build), and dpkg takes one installer at a time: each install here waits its turn
# on one lock (and on dpkg's own lock, for any other installer). It tries the package lists
# the machine has first, and refreshes them only when that fails. sudo when not root.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PKG..." >&2; exit 2; }
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "apt-install.sh: need root (or sudo) to apt-get install $*" >&2
    exit 1
  fi
  sudo=(sudo)
fi
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q -y)
exec 9>"${TMPDIR:-/tmp}/warmpool-apt.lock"
flock 9
"${apt[@]}" install --no-install-recommends "$@" >/dev/null 2>&1 \
  || { "${apt[@]}" update >/dev/null && "${apt[@]}" install --no-install-recommends "$@" >/dev/null; }
