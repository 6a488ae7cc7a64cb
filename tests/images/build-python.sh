#!/usr/bin/env bash
# Builds warmpool-test/python:latest without any registry: a minimal Debian (debootstrap
# --variant=minbase) with python3, python3-venv and python-is-python3, imported with
# `docker import`. python3-venv and python-is-python3 are what the llm-sandbox peer needs in the
# benchmark, with its venv pre-built at /sandbox/.sandbox-venv. About a minute; the mirror is taken from this machine's apt sources.
# Idempotent: skips the build when the image exists, unless --force.
set -euo pipefail
IMAGE=${WARMPOOL_PYTHON_IMAGE:-warmpool-test/python:latest}

if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "build-python: $IMAGE already present"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "build-python: installing debootstrap"
  "$(dirname "$0")/../../scripts/apt-install.sh" debootstrap
fi

# The first Debian mirror and suite the machine's apt sources name (deb822 or one-line style).
mirror=${WARMPOOL_DEBIAN_MIRROR:-}
suite=${WARMPOOL_DEBIAN_SUITE:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi
if [ -z "$suite" ]; then
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "build-python: debootstrap $suite from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  "$suite" "$root" "$mirror" >/tmp/build-python.debootstrap.log 2>&1 \
  || { tail -20 /tmp/build-python.debootstrap.log >&2; exit 1; }
# llm-sandbox (the benchmark's peer) runs code with the venv under its workdir, and its own
# setup would `pip install --upgrade pip` from PyPI inside the container, which has no network
# here. So the venv is pre-built in the image and the peer skips its setup (BENCHMARKS.md says so).
chroot "$root" python3 -m venv --system-site-packages /sandbox/.sandbox-venv
# Keep the image small: package lists and caches are not needed to run python.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" -c . | docker import \
  -c 'CMD ["sleep", "infinity"]' -c 'WORKDIR /work' -c 'ENV LANG=C.UTF-8' - "$IMAGE" >/dev/null
docker run --rm --network none "$IMAGE" python3 -c 'import venv, sys; print("build-python: python", sys.version.split()[0])'
echo "build-python: built $IMAGE"
