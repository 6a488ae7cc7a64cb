#!/usr/bin/env bash
# Builds warmpool-test/busybox:latest without any registry: FROM scratch plus the static busybox
# from Debian's busybox-static package (installed here if missing). About 2 s once the package
# is present. Idempotent: skips the build when the image exists, unless --force.
set -euo pipefail
IMAGE=${WARMPOOL_TEST_IMAGE:-warmpool-test/busybox:latest}

if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "build-busybox: $IMAGE already present"
  exit 0
fi

# Debian's busybox-static puts a static /bin/busybox; a dynamic one cannot run FROM scratch.
bin=/bin/busybox
if [ ! -x "$bin" ] || ldd "$bin" >/dev/null 2>&1; then
  echo "build-busybox: installing Debian's busybox-static"
  export DEBIAN_FRONTEND=noninteractive
  "$(dirname "$0")/../../scripts/apt-install.sh" busybox-static
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/busybox"
cat >"$ctx/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$ctx/group" <<'G'
root:x:0:
nogroup:x:65534:
G
cat >"$ctx/Dockerfile" <<'D'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /work /root /etc /usr/bin && chmod 1777 /tmp && ln -s /bin/env /usr/bin/env
COPY passwd group /etc/
LABEL org.opencontainers.image.description="warmpool test image: static busybox on scratch"
CMD ["sleep", "infinity"]
D
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >/dev/null 2>"$ctx/build.log" || { cat "$ctx/build.log" >&2; exit 1; }
echo "build-busybox: built $IMAGE"
