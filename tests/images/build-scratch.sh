#!/usr/bin/env bash
# Builds warmpool-test/scratch:latest without any registry: FROM scratch and one static binary,
# tests/images/scratch/tool.c (no shell, no libc, nothing else), compiled with the machine's gcc.
# The agent's tests run it as a non-root user on a read-only root. Idempotent: skips the build
# when the image exists and the tool is unchanged, unless --force.
set -euo pipefail
cd "$(dirname "$0")"
IMAGE=warmpool-test/scratch:latest
sum=$(cat scratch/tool.c "$(basename "$0")" | sha256sum | cut -c1-16)
if [ "${1:-}" != "--force" ] && [ "$(docker image inspect -f '{{index .Config.Labels "tool.sum"}}' "$IMAGE" 2>/dev/null || true)" = "$sum" ]; then
  echo "build-scratch: $IMAGE already present"
  exit 0
fi
command -v gcc >/dev/null || ../../scripts/apt-install.sh gcc libc6-dev
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root"
gcc -static -O2 -o "$ctx/root/tool" scratch/tool.c
mkdir -m 1777 "$ctx/root/tmp"
# docker import of a tar whose modes are ours (a Dockerfile's COPY would not keep /tmp's 1777).
tar -C "$ctx/root" --numeric-owner --owner=0 --group=0 -cf "$ctx/image.tar" tool tmp
docker import \
  --change 'CMD ["/tool", "sleep"]' \
  --change "LABEL tool.sum=$sum" \
  --change 'LABEL org.opencontainers.image.description="warmpool test image: one static binary, no shell"' \
  "$ctx/image.tar" "$IMAGE" >/dev/null
echo "build-scratch: built $IMAGE"
