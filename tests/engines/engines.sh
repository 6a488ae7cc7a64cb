#!/usr/bin/env bash
# engines.sh: extra Docker engines for warmpool's tests, each in its own network namespace and
# private mount namespace, reachable over TCP from the host. See README.md beside this file,
# or run `engines.sh --help`.
set -Eeuo pipefail

PROG=engines.sh
trap 'log "error: status $? at line $LINENO: $BASH_COMMAND"' ERR
export PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Ownership registry: one directory per tag, claimed with mkdir (atomic), holding the state dir
# path, the engine count and the optional owner pid. Lives on /run, so it goes with a reboot,
# as do the namespaces, links and cgroups it describes.
REG=/run/warmpool-engines
MAX_ENGINES=20
DEFAULT_TIMEOUT=60
LOCK_WAIT=150

usage() {
  cat <<'EOF'
engines.sh: start and stop extra Docker engines for warmpool's tests.

Each engine is a dockerd (with its own containerd) in a network namespace of its own, joined to
a bridge the script creates, listening on tcp://10.231.TAG.(10+i):2375 (2376 with TLS) and on a
unix socket in its directory. TAG is a per-run number (1..250) in every name and address, so
concurrent runs do not clash. All names start with "wpe". Needs root.

Usage:
  engines.sh up DIR N [--tls I]... [--tls all] [--tag T] [--owner PID] [--timeout S]
                      [--storage-driver D] [--live-restore] [--runsc I]... [--runsc all]
                      [--experimental] [--default-runtime R]
      Start engines e1..eN (N <= 20) under DIR (created if missing, must be empty). Waits up to
      S seconds (default 60) until every engine answers `docker version` on its TCP endpoint;
      on any failure prints the dockerd log tails, tears everything down and exits 1.
      Writes DIR/engines.env and prints it on stdout (all other output goes to stderr).
        --tls I           engine eI listens with TLS (--tlsverify) on port 2376; repeatable;
                          `--tls all` for every engine. Certificates are under DIR/tls/.
        --tag T           use this tag instead of picking a free one (fails if taken).
        --owner PID       the run's owner process (e.g. the test binary); `gc` removes the run
                          once that process is gone.
        --storage-driver  dockerd storage driver; default auto: overlay2 when an overlay
                          mount works on DIR's filesystem, else vfs.
        --live-restore    start dockerd with --live-restore (containers survive `kill`).
        --runsc I         engine eI registers gVisor's runsc as runtime "runsc" (with
                          --network=none, which runsc needs in a namespace without a network);
                          repeatable, or `all`. Installs Debian's runsc package when missing.
        --experimental    start dockerd in experimental mode (checkpoint and restore).
        --default-runtime R
                          every engine runs containers under runtime R unless told otherwise
                          ("default-runtime" in daemon.json; e.g. runsc with --runsc all).
  engines.sh load DIR NAME IMAGE|FILE.tar
      Copy IMAGE from the host engine (`docker save`, honouring DOCKER_HOST) into engine NAME,
      or load a `docker save` tar file.
  engines.sh cut DIR NAME       Take NAME's network away (its host-side veth down); it keeps running.
  engines.sh restore DIR NAME   Bring it back.
  engines.sh kill DIR NAME [--containerd]
      SIGKILL NAME's dockerd (and first its containerd with --containerd; containerd also dies
      with dockerd on its own). Containers keep running until the engine comes back.
  engines.sh start DIR NAME [--timeout S]
      Start NAME's dockerd again on the same data root; waits until it answers (on the unix
      socket only while the engine is cut). Rewrites DIR/engines.env and prints it.
  engines.sh status DIR         Print each engine's state (running/stopped, cut) to stdout.
  engines.sh down DIR
      Tear everything down: containers, dockerd, containerd, shims, every process in the
      engines' cgroups and network namespaces, the cgroups, namespaces, veths, bridge, any
      mount under DIR, DIR itself and the registry entry. Idempotent; works after a crash at
      any point of `up`. Exits 1 only if something could not be removed.
  engines.sh gc [--dry-run]
      Tear down earlier runs whose owner is gone: a registered run whose DIR no longer exists,
      whose --owner process died, or (without --owner) none of whose engines has a live dockerd.
      A run whose DIR is locked by a running engines.sh command is never touched. Unregistered
      wpe* leftovers are only reported.

DIR/engines.env, one record a line, space-separated, no field contains spaces:
  tag TAG
  bridge BRIDGE
  subnet 10.231.TAG.0/24
  storage_driver DRIVER
  tls_ca PATH | tls_cert PATH | tls_key PATH     (client credentials; only if an engine has TLS)
  engine NAME ENDPOINT tls|plain SOCKET PID NETNS VETH_HOST VETH_NS
Lines starting with # are comments. PID is 0 while the engine is stopped.
EOF
}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# --- processes ---------------------------------------------------------------------------------

proc_fields() { # PID: the fields of /proc/PID/stat after the command name (state first)
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  printf '%s\n' "${s##*) }"
}
alive() { # PID: exists and is not a zombie
  local f
  [[ ${1:-} =~ ^[0-9]+$ ]] && [ "$1" -gt 1 ] || return 1
  f=$(proc_fields "$1") || return 1
  case ${f%% *} in Z | X | x) return 1 ;; esac
}
proc_start() { # PID: start time in clock ticks since boot (pid reuse check)
  local f a
  f=$(proc_fields "$1") || return 1
  read -ra a <<<"$f"
  printf '%s\n' "${a[19]}"
}
owned() { # PID E: alive, and one of its arguments names a path under engine directory E
  alive "$1" || return 1
  tr "\0" "\n" 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "$2/"
}
pid_from() { # FILE E: the pid in FILE if that process is alive and ours
  local p
  p=$(tr -dc "0-9" 2>/dev/null <"$1") || return 1
  owned "$p" "$2" || return 1
  printf '%s\n' "$p"
}
dockerd_pid() { # E
  pid_from "$1/dockerd.pid" "$1" || pid_from "$1/pid" "$1"
}
containerd_pid() { # E
  pid_from "$1/exec/containerd/containerd.pid" "$1"
}
stop_pid() { # PID E SECS: TERM, wait up to SECS, then KILL (only while the pid is still ours)
  local p=$1 e=$2 secs=$3 i
  owned "$p" "$e" || return 0
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    alive "$p" || return 0
    sleep 0.1
  done
  if owned "$p" "$e"; then
    log "pid $p did not exit within ${secs}s of SIGTERM; SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
  fi
  for ((i = 0; i < 50; i++)); do
    alive "$p" || return 0
    sleep 0.1
  done
  log "warning: pid $p still alive after SIGKILL"
}

# --- names -------------------------------------------------------------------------------------

# Engine I of tag T: netns and cgroup wpeTeI, veths wpeTeIh (host side) and wpeTeIn (in the
# netns), address 10.231.T.(10+I), docker0 inside the netns on 10.(231+I).T.1/24.
eng_ns() { echo "wpe$1e$2"; }
eng_ip() { echo "10.231.$1.$((10 + $2))"; }
bridge_name() { echo "wpe$1br"; }

engine_tls() { # E: 1 when the engine listens with TLS
  [ "$(kv "$1/engine" tls)" = 1 ]
}
engine_endpoint() { # TAG I E
  if engine_tls "$3"; then echo "tcp://$(eng_ip "$1" "$2"):2376"; else echo "tcp://$(eng_ip "$1" "$2"):2375"; fi
}
kv() { # FILE KEY: value of KEY=value in FILE (empty if FILE or KEY is missing)
  [ -f "$1" ] || return 0
  sed -n "s/^$2=//p" "$1" | tail -n 1
}

# docker client with no DOCKER_* environment getting in the way
xdocker() { env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH -u DOCKER_CONTEXT -u DOCKER_TLS docker "$@"; }
sdocker() { # E ARGS...: the engine through its unix socket
  local e=$1
  shift
  xdocker -H "unix://$e/docker.sock" "$@"
}
tcp_args() { # DIR TAG I: client arguments for the engine's TCP endpoint
  local e=$1/e$3
  if engine_tls "$e"; then
    echo "--tlsverify --tlscacert=$1/tls/client/ca.pem --tlscert=$1/tls/client/cert.pem --tlskey=$1/tls/client/key.pem -H $(engine_endpoint "$2" "$3" "$e")"
  else
    echo "-H $(engine_endpoint "$2" "$3" "$e")"
  fi
}

# --- cgroups -----------------------------------------------------------------------------------

cg_dirs() { # TAG I: the engine's cgroup directory in every hierarchy
  local n d
  n=$(eng_ns "$1" "$2")
  for d in /sys/fs/cgroup/*/"$n" /sys/fs/cgroup/"$n"; do
    [ -d "$d" ] && printf '%s\n' "$d"
  done
  return 0
}
cg_pids() { # TAG I
  local d
  for d in $(cg_dirs "$1" "$2"); do
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -un
}
cg_track_dirs() { # TAG I: where the engine's dockerd (and so containerd and shims) is placed
  local n h
  n=$(eng_ns "$1" "$2")
  for h in pids freezer; do
    [ -f "/sys/fs/cgroup/$h/cgroup.procs" ] && echo "/sys/fs/cgroup/$h/$n/daemon"
  done
  [ -f /sys/fs/cgroup/cgroup.controllers ] && echo "/sys/fs/cgroup/$n/daemon" # pure cgroup v2
  return 0
}
cg_kill() { # TAG I: SIGKILL every process in the engine's cgroups (frozen first, so none forks or exits meanwhile)
  local fz pids round i
  fz=/sys/fs/cgroup/freezer/$(eng_ns "$1" "$2")/freezer.state
  for ((round = 0; round < 50; round++)); do
    pids=$(cg_pids "$1" "$2")
    [ -n "$pids" ] || return 0
    if [ -f "$fz" ]; then
      echo FROZEN >"$fz" 2>/dev/null || true
      for ((i = 0; i < 20; i++)); do
        [ "$(cat "$fz" 2>/dev/null)" = FROZEN ] && break
        sleep 0.05
      done
      pids=$(cg_pids "$1" "$2")
    fi
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    [ -f "$fz" ] && { echo THAWED >"$fz" 2>/dev/null || true; }
    sleep 0.1
  done
  log "warning: $(eng_ns "$1" "$2"): processes left in its cgroups: $(cg_pids "$1" "$2" | tr '\n' ' ')"
  return 1
}
cg_remove() { # TAG I
  local d i rc=0
  for d in $(cg_dirs "$1" "$2"); do
    for ((i = 0; i < 50; i++)); do
      find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$d" ] || break
      sleep 0.1
    done
    [ -d "$d" ] && { log "warning: could not remove cgroup $d"; rc=1; }
  done
  return $rc
}

# --- network -----------------------------------------------------------------------------------

link_exists() { ip link show dev "$1" >/dev/null 2>&1; }
netns_exists() { [ -e "/run/netns/$1" ]; }
netns_kill() { # NS: SIGKILL every process in the namespace (they can only be this engine's)
  local i pids
  netns_exists "$1" || return 0
  for ((i = 0; i < 50; i++)); do
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  log "warning: processes left in netns $1: $(ip netns pids "$1" 2>/dev/null | tr '\n' ' ')"
  return 1
}

# --- mounts and directories --------------------------------------------------------------------

mounts_under() { # DIR, deepest first
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
remove_dir() { # DIR: unmount whatever is mounted under it, then remove it (never across a mount)
  local d=$1 m i
  [ -e "$d" ] || return 0
  for ((i = 0; i < 5; i++)); do
    m=$(mounts_under "$d")
    [ -n "$m" ] || break
    log "unmounting under $d: $(echo "$m" | tr '\n' ' ')"
    echo "$m" | while read -r x; do umount -l "$x" 2>/dev/null || true; done
  done
  if [ -n "$(mounts_under "$d")" ]; then
    log "warning: mounts remain under $d; not removing it"
    return 1
  fi
  rm -rf --one-file-system -- "$d" || true
  [ ! -e "$d" ] || {
    log "warning: could not remove $d"
    return 1
  }
}

check_dir_arg() { # PATH -> canonical absolute path in $DIR
  [ -n "${1:-}" ] || die "DIR missing (see --help)"
  DIR=$(realpath -m -- "$1")
  [[ $DIR =~ ^/[A-Za-z0-9._+/-]+$ ]] || die "DIR must be a path of [A-Za-z0-9._+/-] only: $DIR"
  [ "$DIR" != / ] || die "DIR cannot be /"
}

lock_dir() { # take DIR/.lock on fd 9 (waits for another engines.sh command on the same DIR)
  exec 9>>"$DIR/.lock"
  flock -w "$LOCK_WAIT" 9 || die "$DIR is locked by another engines.sh command for ${LOCK_WAIT}s"
}

# --- registry ----------------------------------------------------------------------------------

reg_dir_of_tag() { cat "$REG/$1/dir" 2>/dev/null || true; }
reg_tag_of_dir() { # DIR -> the registered tag whose dir is DIR
  local e
  for e in "$REG"/*/; do
    [ -d "$e" ] || continue
    e=${e%/}
    [ "$(cat "$e/dir" 2>/dev/null)" = "$1" ] && { basename "$e"; return 0; }
  done
  return 1
}
tag_names_exist() { # TAG: any link, netns or cgroup with this tag
  local t=$1 d
  ip -o link show 2>/dev/null | grep -qE "^[0-9]+: wpe${t}(br|e[0-9]+[hn])[@:]" && return 0
  ip netns list 2>/dev/null | grep -qE "^wpe${t}e[0-9]+( |$)" && return 0
  for d in /sys/fs/cgroup/*/wpe"${t}"e* /sys/fs/cgroup/wpe"${t}"e*; do
    [[ -d $d && ${d##*/} =~ ^wpe${t}e[0-9]+$ ]] && return 0
  done
  return 1
}
tag_net_clash() { # TAG: the bridge subnet overlaps a route or address already on the host
  ip -4 route show to match "10.231.$1.1" 2>/dev/null | grep -qv '^default' && return 0
  [ -n "$(ip -4 -o addr show to "10.231.$1.0/24" 2>/dev/null)" ] && return 0
  return 1
}
alloc_tag() { # WANTED(optional) -> $TAG, registry entry claimed
  local want=$1 t k start
  local -a cands=()
  if [ -n "$want" ]; then
    cands=("$want")
  else
    start=$(($$ % 250 + 1))
    for ((k = 0; k < 250; k++)); do cands+=($(((start - 1 + k) % 250 + 1))); done
  fi
  for t in "${cands[@]}"; do
    mkdir -p "$REG"
    if ! mkdir "$REG/$t" 2>/dev/null; then
      [ -n "$want" ] && die "tag $t is registered to $(reg_dir_of_tag "$t")"
      continue
    fi
    if tag_names_exist "$t" || tag_net_clash "$t"; then
      rmdir "$REG/$t" 2>/dev/null || true
      [ -n "$want" ] && die "tag $t: wpe${t}* names exist or 10.231.$t.0/24 is in use on the host"
      continue
    fi
    TAG=$t
    return 0
  done
  die "no free tag in 1..250"
}

# --- TLS ---------------------------------------------------------------------------------------

gen_tls() { # DIR TAG INDICES...: CA, a client cert (DIR/tls/client, DOCKER_CERT_PATH layout), one server cert per index
  local dir=$1 tag=$2 t=$1/tls i
  shift 2
  mkdir -p "$t/client"
  (
    umask 077
    cd "$t"
    newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    sign() { # KEY CERT CN EXTFILE
      newkey "$1"
      openssl req -new -key "$1" -subj "/CN=$3" -out "$2.csr"
      openssl x509 -req -in "$2.csr" -CA ca.pem -CAkey ca-key.pem -set_serial "0x$(openssl rand -hex 8)" \
        -days 30 -extfile "$4" -out "$2" 2>/dev/null
      rm -f "$2.csr" "$4"
    }
    newkey ca-key.pem
    openssl req -new -x509 -key ca-key.pem -out ca.pem -days 30 -subj "/CN=warmpool test engines CA wpe$tag" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >client.ext
    sign client/key.pem client/cert.pem "wpe$tag client" client.ext
    cp ca.pem client/ca.pem
    for i in "$@"; do
      mkdir -p "e$i"
      printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" \
        "subjectAltName=IP:$(eng_ip "$tag" "$i")" >"e$i.ext"
      sign "e$i/key.pem" "e$i/cert.pem" "wpe${tag}e$i" "e$i.ext"
      cp ca.pem "e$i/ca.pem"
    done
    chmod 644 ca.pem client/ca.pem client/cert.pem e*/cert.pem e*/ca.pem 2>/dev/null || true
  ) || die "certificate generation failed"
}

overlay_works() { # DIR: an overlay mount works on DIR's filesystem (tried in a throwaway mount namespace)
  local p=$1/.overlay-probe rc=0
  mkdir -p "$p"/{l,u,w,m}
  unshare --mount --propagation private sh -c \
    "mount -t overlay wpe-probe -o lowerdir=$p/l,upperdir=$p/u,workdir=$p/w $p/m && touch $p/m/x" \
    >/dev/null 2>&1 || rc=1
  rm -rf --one-file-system -- "$p"
  return $rc
}

# --- engines -----------------------------------------------------------------------------------

setup_engine() { # DIR TAG I TLS(0/1) STORAGE LIVE_RESTORE(0/1) RUNSC(0/1) EXPERIMENTAL(0/1) DEFAULT_RUNTIME
  local dir=$1 tag=$2 i=$3 tls=$4 sd=$5 lr=$6 rs=$7 ex=$8 dr=${9:-}
  local e=$1/e$3 ns vh vn ip br port d dockerd
  ns=$(eng_ns "$tag" "$i")
  vh=${ns}h
  vn=${ns}n
  ip=$(eng_ip "$tag" "$i")
  br=$(bridge_name "$tag")
  mkdir -p "$e"/{data,exec,etc,run-docker,run-containerd,cgmove}
  if [ "$rs" = 1 ]; then
    # Debian's runsc (20221219) leaves the state of a restored sandbox behind when that sandbox
    # is checkpointed again: the shim's plain `delete` fails, and the next restore of the
    # container answers "id already in use". A forced delete clears it (the sandbox has
    # exited by then), so the runtime is registered through this wrapper (README, "Lease
    # hibernation").
    printf '%s\n' '#!/bin/sh' \
      '# runsc, with every delete forced (see engines.sh).' \
      'for a in "$@"; do [ "$a" = delete ] && forced=1; done' \
      "[ -n \"\${forced:-}\" ] || exec $(command -v runsc) \"\$@\"" \
      'n=0; for a in "$@"; do n=$((n+1)); done' \
      'i=0; for a in "$@"; do i=$((i+1)); if [ "$a" = delete ]; then set -- "$@" delete --force; else set -- "$@" "$a"; fi; done' \
      'shift $n' \
      "exec $(command -v runsc) \"\$@\"" >"$e/etc/runsc"
    chmod 755 "$e/etc/runsc"
  fi
  # daemon.json, not flags: `start` relaunches with the same file.
  {
    local sep=""
    printf '{'
    if [ "$rs" = 1 ]; then
      printf '"runtimes": {"runsc": {"path": "%s", "runtimeArgs": ["--network=none"]}}' "$e/etc/runsc"
      sep=", "
    fi
    if [ "$ex" = 1 ]; then
      printf '%s"experimental": true' "$sep"
      sep=", "
    fi
    [ -n "$dr" ] && printf '%s"default-runtime": "%s"' "$sep" "$dr"
    printf '}\n'
  } >"$e/etc/daemon.json"
  printf '%s\n' "name=e$i" "tls=$tls" "netns=$ns" "veth_host=$vh" "veth_ns=$vn" "ip=$ip" >"$e/engine"

  ip netns add "$ns"
  ip link add "$vh" type veth peer name "$vn" netns "$ns"
  ip link set dev "$vh" master "$br" up
  ip -n "$ns" link set dev lo up
  ip -n "$ns" addr add "$ip/24" dev "$vn"
  ip -n "$ns" link set dev "$vn" up
  for d in $(cg_track_dirs "$tag" "$i"); do mkdir -p "$d"; done

  dockerd=$(command -v dockerd) || die "dockerd not found"
  local -a args=(
    "--data-root=$e/data" "--exec-root=$e/exec" "--pidfile=$e/dockerd.pid"
    "--config-file=$e/etc/daemon.json" "-H" "unix://$e/docker.sock"
    "--bip=10.$((231 + i)).$tag.1/24" "--cgroup-parent=/$ns" "--storage-driver=$sd"
    "--iptables=false" "--ip-masq=false"
  )
  if [ "$tls" = 1 ]; then
    port=2376
    args+=("-H" "tcp://$ip:$port" "--tlsverify" "--tlscacert=$dir/tls/e$i/ca.pem"
      "--tlscert=$dir/tls/e$i/cert.pem" "--tlskey=$dir/tls/e$i/key.pem")
  else
    # An explicit --tls=false, or dockerd 20.10 sleeps 15 s to warn about plain TCP.
    port=2375
    args+=("-H" "tcp://$ip:$port" "--tls=false")
  fi
  [ "$lr" = 1 ] && args+=("--live-restore")

  # Runs as: setsid nsenter --net=/run/netns/NS unshare --mount --propagation private sh launch.sh
  cat >"$e/launch.sh" <<EOF
# Generated by engines.sh: starts dockerd for engine e$i of tag $tag. Runs in the engine's
# network namespace and in a private mount namespace of its own; nothing mounted here is seen
# by the host.
set -eu
mount --make-rprivate /
# Drop this namespace's copies of the host's docker, containerd and netns mounts, so that they
# cannot keep the host's container filesystems or namespaces busy.
awk '{ print \$5 }' /proc/self/mountinfo | grep -E '^/(run|var/run|var/lib/docker|var/lib/containerd)(/|\$)' \\
  | sort -r | while read -r m; do umount -l "\$m" 2>/dev/null || true; done
# A sysfs of this network namespace, with the host's cgroup tree put back on top of it (plain
# 'ip netns exec' hides the cgroups: "Devices cgroup isn't mounted").
mount --rbind /sys/fs/cgroup $e/cgmove
mount -t sysfs sysfs /sys
mount --move $e/cgmove /sys/fs/cgroup
# An empty /run: no host containerd socket (dockerd starts its own containerd), no host
# /run/docker; the two runtime dirs that must outlive a dockerd restart are this engine's own.
mount -t tmpfs -o mode=755,size=16m wpe-run /run
mkdir -p /run/docker /run/containerd
mount --bind $e/run-docker /run/docker
mount --bind $e/run-containerd /run/containerd
# Its own /etc/docker: no host daemon.json, and its own key.json (so its own engine ID).
mount --bind $e/etc /etc/docker
# The host engine's state is out of reach (read-only and empty).
[ ! -d /var/lib/docker ] || mount -t tmpfs -o ro,size=4k wpe-none /var/lib/docker
[ ! -d /var/lib/containerd ] || mount -t tmpfs -o ro,size=4k wpe-none /var/lib/containerd
exec env -i PATH='$PATH' HOME=/root $dockerd ${args[*]}
EOF
}

launch_engine() { # DIR TAG I: start the engine's dockerd, detached; its pid goes to E/pid
  local e=$1/e$3 ns d
  local -a track
  ns=$(eng_ns "$2" "$3")
  mapfile -t track < <(cg_track_dirs "$2" "$3")
  # Stale pid files (the old process dead, or only a zombie that pid 1 has not reaped yet) would
  # make dockerd refuse to start, or wait for a containerd that is gone.
  [ -z "$(pid_from "$e/dockerd.pid" "$e")" ] && rm -f "$e/dockerd.pid"
  [ -z "$(containerd_pid "$e")" ] && rm -f "$e/exec/containerd/containerd.pid"
  echo "--- $(date -u +%FT%TZ) engines.sh: starting e$3" >>"$e/dockerd.log"
  (
    exec 9>&- </dev/null >>"$e/dockerd.log" 2>&1
    # Into the engine's cgroups before anything starts: dockerd, containerd and the shims
    # inherit them, so teardown finds every process even without pid files.
    for d in "${track[@]}"; do echo "$BASHPID" >"$d/cgroup.procs"; done
    exec setsid nsenter "--net=/run/netns/$ns" unshare --mount --propagation private sh "$e/launch.sh"
  ) &
  echo $! >"$e/pid"
}

probe() { # DIR TAG I MODE(tcp|unix): the engine answers `docker version`
  local e=$1/e$3
  if [ "$4" = unix ]; then
    timeout -k 1 5 env -u DOCKER_HOST docker -H "unix://$e/docker.sock" version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    # shellcheck disable=SC2046
    timeout -k 1 5 env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH -u DOCKER_CONTEXT \
      docker $(tcp_args "$1" "$2" "$3") version --format '{{.Server.Version}}' >/dev/null 2>&1
  fi
}

log_tail() { # E NAME
  log "--- last lines of $1/dockerd.log:"
  grep -v 'module=grpc' "$1/dockerd.log" 2>/dev/null | tail -n 25 | sed "s/^/$2| /" >&2 || true
}

wait_ready() { # DIR TAG TIMEOUT MODE I...: bounded wait until every engine answers
  local dir=$1 tag=$2 to=$3 mode=$4 i p m deadline
  shift 4
  local -a pending=("$@") left
  deadline=$((SECONDS + to))
  while [ ${#pending[@]} -gt 0 ]; do
    left=()
    for i in "${pending[@]}"; do
      p=$(tr -dc "0-9" 2>/dev/null <"$dir/e$i/pid" || true)
      if ! alive "$p"; then
        log "e$i: dockerd (pid ${p:-?}) exited during start-up"
        log_tail "$dir/e$i" "e$i"
        return 1
      fi
      m=$mode
      [ "$m" = auto ] && { if is_cut "$tag" "$i"; then m=unix; else m=tcp; fi; }
      probe "$dir" "$tag" "$i" "$m" || left+=("$i")
    done
    pending=("${left[@]}")
    [ ${#pending[@]} -eq 0 ] && break
    if [ $SECONDS -ge "$deadline" ]; then
      for i in "${pending[@]}"; do
        log "e$i: no answer within ${to}s"
        log_tail "$dir/e$i" "e$i"
      done
      return 1
    fi
    sleep 0.2
  done
}

is_cut() { # TAG I
  local vh
  vh=$(eng_ns "$1" "$2")h
  ! ip -o link show dev "$vh" 2>/dev/null | grep -q '[<,]UP[,>]'
}

write_env() { # DIR: DIR/engines.env from the state files, and the pids as they are now
  local dir=$1 tag n i e pid tls
  tag=$(kv "$dir/state" tag)
  n=$(kv "$dir/state" n)
  {
    echo "# engines.sh: engine NAME ENDPOINT tls|plain SOCKET PID NETNS VETH_HOST VETH_NS (PID 0: stopped)"
    echo "tag $tag"
    echo "bridge $(bridge_name "$tag")"
    echo "subnet 10.231.$tag.0/24"
    echo "storage_driver $(kv "$dir/state" storage_driver)"
    if [ -d "$dir/tls/client" ]; then
      echo "tls_ca $dir/tls/client/ca.pem"
      echo "tls_cert $dir/tls/client/cert.pem"
      echo "tls_key $dir/tls/client/key.pem"
    fi
    for ((i = 1; i <= n; i++)); do
      e=$dir/e$i
      pid=$(dockerd_pid "$e" || echo 0)
      if engine_tls "$e"; then tls=tls; else tls=plain; fi
      echo "engine e$i $(engine_endpoint "$tag" "$i" "$e") $tls $e/docker.sock $pid $(kv "$e/engine" netns)" \
        "$(kv "$e/engine" veth_host) $(kv "$e/engine" veth_ns)"
    done
  } >"$dir/engines.env.tmp"
  mv -f "$dir/engines.env.tmp" "$dir/engines.env"
}

# --- teardown ----------------------------------------------------------------------------------

wait_gone() { # PIDS...: up to 5 s for killed processes to be reaped, so none shows up right after
  local p i left
  for ((i = 0; i < 50; i++)); do
    left=0
    for p in "$@"; do [ ! -e "/proc/$p" ] || left=1; done
    [ $left = 1 ] || return 0
    sleep 0.1
  done
  return 0
}

# shellcheck disable=SC2206,SC2207 # pids only
stop_engine() { # TAG DIR I NAMES(1: names are ours)
  local tag=$1 dir=$2 i=$3 names=$4 e=$2/e$3 dp cp ids ns
  local -a gone=()
  ns=$(eng_ns "$tag" "$i")
  if [ -d "$e" ]; then
    dp=$(dockerd_pid "$e" || true)
    if [ -n "$dp" ] && [ -S "$e/docker.sock" ]; then
      ids=$(timeout -k 1 10 env -u DOCKER_HOST docker -H "unix://$e/docker.sock" ps -aq 2>/dev/null || true)
      if [ -n "$ids" ]; then
        # shellcheck disable=SC2086
        timeout -k 1 60 env -u DOCKER_HOST docker -H "unix://$e/docker.sock" rm -f -v $ids >/dev/null 2>&1 ||
          log "e$i: docker rm -f failed; its containers are killed with the cgroup"
      fi
    fi
    cp=$(containerd_pid "$e" || true)
    gone+=($dp $cp)
    [ -z "$dp" ] || stop_pid "$dp" "$e" 10
    [ -z "$cp" ] || stop_pid "$cp" "$e" 5
    # A launcher between fork and exec (crash during up) is ours too.
    dp=$(pid_from "$e/pid" "$e" || true)
    [ -z "$dp" ] || kill -KILL "$dp" 2>/dev/null || true
  fi
  if [ "$names" = 1 ]; then
    gone+=($(cg_pids "$tag" "$i"))
    netns_exists "$ns" && gone+=($(ip netns pids "$ns" 2>/dev/null || true))
    cg_kill "$tag" "$i" || true
    netns_kill "$ns" || true
    cg_kill "$tag" "$i" || true
    cg_remove "$tag" "$i" || true
  fi
  wait_gone "${gone[@]}"
}

engine_indices() { # TAG N: 1..N plus any engine index found by name
  local tag=$1 n=$2 i d
  {
    for ((i = 1; i <= n; i++)); do echo "$i"; done
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^wpe${tag}e\([0-9]\+\)$/\1/p"
    ip -o link show 2>/dev/null | sed -n "s/^[0-9]\+: wpe${tag}e\([0-9]\+\)[hn][@:].*/\1/p"
    for d in /sys/fs/cgroup/*/wpe"${tag}"e* /sys/fs/cgroup/wpe"${tag}"e*; do
      [ -d "$d" ] || continue
      d=${d##*/}
      [[ $d =~ ^wpe${tag}e([0-9]+)$ ]] && echo "${BASH_REMATCH[1]}"
    done
    true
  } | sort -un
}

teardown() { # TAG DIR N NAMES(1: tag names are ours) KEEPDIR(1: leave DIR, it is not ours)
  local tag=$1 dir=$2 n=$3 names=$4 keep=$5 i ns rc=0
  local -a idx
  mapfile -t idx < <(engine_indices "$tag" "$n")
  for i in "${idx[@]}"; do stop_engine "$tag" "$dir" "$i" "$names" & done
  wait
  if [ "$names" = 1 ]; then
    for i in "${idx[@]}"; do
      ns=$(eng_ns "$tag" "$i")
      if netns_exists "$ns"; then ip netns del "$ns" 2>/dev/null || { log "warning: could not delete netns $ns"; rc=1; }; fi
      if link_exists "${ns}h"; then ip link del dev "${ns}h" 2>/dev/null || { log "warning: could not delete ${ns}h"; rc=1; }; fi
      [ -z "$(cg_dirs "$tag" "$i")" ] || rc=1
    done
    if link_exists "$(bridge_name "$tag")"; then
      ip link del dev "$(bridge_name "$tag")" 2>/dev/null || { log "warning: could not delete $(bridge_name "$tag")"; rc=1; }
    fi
  fi
  if [ "$keep" != 1 ]; then remove_dir "$dir" || rc=1; fi
  if [ "$names" = 1 ] && [ $rc -eq 0 ]; then
    rm -rf -- "${REG:?}/$tag"
    rmdir "$REG" 2>/dev/null || true
  fi
  return $rc
}

# --- commands ----------------------------------------------------------------------------------

UP_DONE=0
UP_TAG=
up_exit() {
  local rc=$?
  if [ "$UP_DONE" != 1 ]; then
    [ $rc -ne 0 ] || rc=1
    log "up failed; tearing down"
    if [ -n "$UP_TAG" ]; then
      teardown "$UP_TAG" "$DIR" "$UP_N" 1 0 || true
    else
      remove_dir "$DIR" || true
    fi
  fi
  exit $rc
}

cmd_up() {
  local n timeout=$DEFAULT_TIMEOUT want_tag="" owner="" sd=auto lr=0 ex=0 dr="" i t0
  local -a tls_list=() runsc_list=()
  check_dir_arg "${1:-}"
  n=${2:-}
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $MAX_ENGINES ] || die "N must be 1..$MAX_ENGINES"
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
    --tls)
      [ $# -ge 2 ] || die "--tls needs an engine index or 'all'"
      if [ "$2" = all ]; then
        for ((i = 1; i <= n; i++)); do tls_list+=("$i"); done
      else
        [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le "$n" ] || die "--tls $2: not an engine index 1..$n"
        tls_list+=("$2")
      fi
      shift 2
      ;;
    --tag)
      [[ ${2:-} =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 250 ] || die "--tag must be 1..250"
      want_tag=$2
      shift 2
      ;;
    --owner)
      alive "${2:-}" || die "--owner ${2:-}: no such process"
      owner="$2 $(proc_start "$2")"
      shift 2
      ;;
    --timeout)
      [[ ${2:-} =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] || die "--timeout needs seconds"
      timeout=$2
      shift 2
      ;;
    --storage-driver)
      [[ ${2:-} =~ ^[a-z0-9-]+$ ]] || die "--storage-driver needs a driver name"
      sd=$2
      shift 2
      ;;
    --live-restore)
      lr=1
      shift
      ;;
    --runsc)
      [ $# -ge 2 ] || die "--runsc needs an engine index or 'all'"
      if [ "$2" = all ]; then
        for ((i = 1; i <= n; i++)); do runsc_list+=("$i"); done
      else
        [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le "$n" ] || die "--runsc $2: not an engine index 1..$n"
        runsc_list+=("$2")
      fi
      shift 2
      ;;
    --experimental)
      ex=1
      shift
      ;;
    --default-runtime)
      [[ ${2:-} =~ ^[a-z0-9._-]+$ ]] || die "--default-runtime needs a runtime name"
      dr=$2
      shift 2
      ;;
    *) die "up: unknown option $1" ;;
    esac
  done
  [ "$(id -u)" = 0 ] || die "needs root"
  for c in dockerd docker ip nsenter unshare setsid flock timeout openssl realpath; do
    command -v "$c" >/dev/null || die "$c not found"
  done
  if [ ${#runsc_list[@]} -gt 0 ] && ! command -v runsc >/dev/null; then
    log "runsc not found; installing Debian's runsc package"
    "$(dirname "$(realpath "$0")")/../../scripts/apt-install.sh" runsc || die "could not install runsc"
    command -v runsc >/dev/null || die "runsc not found after installing it"
  fi
  # Each engine binds its own directory over /etc/docker; the mount point must exist.
  [ -d /etc/docker ] || mkdir -p /etc/docker
  case $DIR/ in
  /run/* | /var/run/* | /var/lib/docker/* | /var/lib/containerd/* | /etc/docker/* | /sys/* | /proc/* | /dev/*)
    die "DIR cannot be under /run, /var/lib/docker, /var/lib/containerd, /etc/docker, /sys, /proc or /dev (the engines' mount namespaces hide those)"
    ;;
  esac
  # Unix sockets are limited to 107 bytes: the longest is .../eN/exec/containerd/containerd.sock.ttrpc
  [ ${#DIR} -le 64 ] || die "DIR is too long for the engines' unix sockets (max 64 chars): $DIR"
  mkdir -p "$DIR"
  [ -z "$(ls -A "$DIR")" ] || die "$DIR is not empty"
  t0=$SECONDS
  lock_dir
  UP_N=$n
  trap up_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP

  if [ "$sd" = auto ]; then
    if overlay_works "$DIR"; then sd=overlay2; else sd=vfs; fi
  fi
  alloc_tag "$want_tag"
  UP_TAG=$TAG
  printf '%s\n' "$DIR" >"$REG/$TAG/dir"
  echo "$n" >"$REG/$TAG/n"
  echo "$owner" >"$REG/$TAG/owner"
  printf '%s\n' "tag=$TAG" "n=$n" "storage_driver=$sd" "live_restore=$lr" >"$DIR/state"
  log "tag $TAG: $n engine(s) under $DIR, storage driver $sd"

  local br
  br=$(bridge_name "$TAG")
  if [ ${#tls_list[@]} -gt 0 ]; then gen_tls "$DIR" "$TAG" "${tls_list[@]}"; fi
  ip link add "$br" type bridge forward_delay 0
  ip addr add "10.231.$TAG.1/24" dev "$br"
  ip link set dev "$br" up
  for ((i = 1; i <= n; i++)); do
    local tls=0 rs=0 x
    for x in "${tls_list[@]}"; do [ "$x" = "$i" ] && tls=1; done
    for x in "${runsc_list[@]}"; do [ "$x" = "$i" ] && rs=1; done
    setup_engine "$DIR" "$TAG" "$i" "$tls" "$sd" "$lr" "$rs" "$ex" "$dr"
    launch_engine "$DIR" "$TAG" "$i"
  done
  local -a all=()
  for ((i = 1; i <= n; i++)); do all+=("$i"); done
  wait_ready "$DIR" "$TAG" "$timeout" tcp "${all[@]}" || die "the engines did not come up"
  write_env "$DIR"
  UP_DONE=1
  log "up: $n engine(s) ready in $((SECONDS - t0))s"
  cat "$DIR/engines.env"
}

resolve_engine() { # DIR NAME -> TAG, IDX, E (engine must have been set up)
  check_dir_arg "$1"
  [ -f "$DIR/state" ] || die "$DIR: no engines here (no state file)"
  TAG=$(kv "$DIR/state" tag)
  [[ ${2:-} =~ ^e([0-9]+)$ ]] || die "NAME must be e1, e2, ..."
  IDX=${BASH_REMATCH[1]}
  E=$DIR/e$IDX
  [ -f "$E/engine" ] || die "$DIR: no engine ${2}"
}

cmd_load() {
  [ $# -eq 3 ] || die "usage: load DIR NAME IMAGE|FILE.tar"
  resolve_engine "$1" "$2"
  dockerd_pid "$E" >/dev/null || die "$2 is not running"
  if [ -f "$3" ]; then
    sdocker "$E" load -i "$3" >&2
  else
    docker save "$3" | sdocker "$E" load >&2
  fi
}

cmd_cut() {
  [ $# -eq 2 ] || die "usage: cut DIR NAME"
  resolve_engine "$1" "$2"
  ip link set dev "$(kv "$E/engine" veth_host)" down
  log "$2 cut"
}

cmd_restore() {
  [ $# -eq 2 ] || die "usage: restore DIR NAME"
  resolve_engine "$1" "$2"
  local vh i
  vh=$(kv "$E/engine" veth_host)
  ip link set dev "$vh" up
  # Wait (briefly) until the bridge forwards to the port again.
  for ((i = 0; i < 50; i++)); do
    [ "$(cat "/sys/class/net/$vh/brport/state" 2>/dev/null)" = 3 ] && [ "$(cat "/sys/class/net/$vh/operstate")" = up ] && break
    sleep 0.1
  done
  log "$2 restored"
}

cmd_kill() {
  [ $# -ge 2 ] || die "usage: kill DIR NAME [--containerd]"
  resolve_engine "$1" "$2"
  local kc=0 dp cp i
  case $#:${3:-} in
  2:) ;;
  3:--containerd) kc=1 ;;
  *) die "usage: kill DIR NAME [--containerd]" ;;
  esac
  lock_dir
  dp=$(dockerd_pid "$E" || true)
  cp=$(containerd_pid "$E" || true)
  if [ -z "$dp" ]; then
    log "$2: dockerd is not running"
  fi
  if [ $kc = 1 ] && [ -n "$cp" ]; then kill -KILL "$cp" 2>/dev/null || true; fi
  [ -z "$dp" ] || kill -KILL "$dp" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$dp" || { [ $kc = 1 ] && alive "$cp"; } || break
    sleep 0.1
  done
  alive "$dp" && die "$2: dockerd $dp survived SIGKILL"
  write_env "$DIR"
  log "$2: killed dockerd ${dp:-?}$([ $kc = 1 ] && echo " and containerd ${cp:-?}")"
}

cmd_start() {
  [ $# -ge 2 ] || die "usage: start DIR NAME [--timeout S]"
  resolve_engine "$1" "$2"
  local timeout=$DEFAULT_TIMEOUT p
  if [ "${3:-}" = --timeout ]; then
    [[ ${4:-} =~ ^[0-9]+$ ]] || die "--timeout needs seconds"
    timeout=$4
  fi
  lock_dir
  p=$(dockerd_pid "$E" || true)
  [ -z "$p" ] || die "$2 is still running (pid $p); kill it first"
  launch_engine "$DIR" "$TAG" "$IDX"
  if ! wait_ready "$DIR" "$TAG" "$timeout" auto "$IDX"; then
    p=$(dockerd_pid "$E" || true)
    [ -z "$p" ] || stop_pid "$p" "$E" 5
    write_env "$DIR"
    die "$2 did not come back"
  fi
  write_env "$DIR"
  log "$2 started (pid $(dockerd_pid "$E" || echo ?))"
  cat "$DIR/engines.env"
}

cmd_status() {
  [ $# -eq 1 ] || die "usage: status DIR"
  check_dir_arg "$1"
  [ -f "$DIR/state" ] || die "$DIR: no engines here"
  local tag n i e p
  tag=$(kv "$DIR/state" tag)
  n=$(kv "$DIR/state" n)
  echo "tag $tag, $n engine(s), registry: $(reg_dir_of_tag "$tag")"
  for ((i = 1; i <= n; i++)); do
    e=$DIR/e$i
    p=$(dockerd_pid "$e" || true)
    printf 'e%s %s %s%s%s\n' "$i" "$(engine_endpoint "$tag" "$i" "$e")" \
      "$([ -n "$p" ] && echo "running pid $p" || echo stopped)" \
      "$(is_cut "$tag" "$i" && echo ", cut" || true)" \
      "$([ -n "$p" ] && ! probe "$DIR" "$tag" "$i" unix && echo ", not answering" || true)"
  done
}

cmd_down() {
  [ $# -eq 1 ] || die "usage: down DIR"
  check_dir_arg "$1"
  local tag="" n=0 names=1 reg rc=0
  if [ -d "$DIR" ]; then
    if [ ! -f "$DIR/state" ] && [ ! -f "$DIR/.lock" ] && [ -n "$(ls -A "$DIR")" ] && ! reg_tag_of_dir "$DIR" >/dev/null; then
      die "$DIR does not look like an engines.sh directory; not touching it"
    fi
    lock_dir
    tag=$(kv "$DIR/state" tag)
    n=$(kv "$DIR/state" n)
  fi
  [ -n "$tag" ] || tag=$(reg_tag_of_dir "$DIR" || true)
  if [ -z "$tag" ]; then
    if [ -d "$DIR" ]; then
      remove_dir "$DIR" || exit 1
      log "down: $DIR removed (no engines had been started)"
    else
      log "down: nothing to do for $DIR"
    fi
    return 0
  fi
  [ -n "$n" ] && [ "$n" != 0 ] || n=$(cat "$REG/$tag/n" 2>/dev/null || echo 0)
  reg=$(reg_dir_of_tag "$tag")
  if [ -d "$REG/$tag" ] && [ -n "$reg" ] && [ "$reg" != "$DIR" ]; then
    log "warning: tag $tag is registered to $reg now; leaving its names alone"
    names=0
  elif [ ! -d "$REG/$tag" ]; then
    log "warning: tag $tag is not registered (registry entry gone); removing its names anyway"
  fi
  teardown "$tag" "$DIR" "$n" "$names" 0 || rc=1
  if [ $rc -eq 0 ]; then log "down: tag $tag removed"; else log "down: tag $tag: some things could not be removed"; fi
  return $rc
}

cmd_gc() {
  local dry=0 e t dir n owner reason p start live i found=0
  [ "${1:-}" = --dry-run ] && dry=1
  for e in "$REG"/*/; do
    [ -d "$e" ] || continue
    e=${e%/}
    t=${e##*/}
    [[ $t =~ ^[0-9]+$ ]] || continue
    dir=$(cat "$e/dir" 2>/dev/null || true)
    n=$(cat "$e/n" 2>/dev/null || echo 0)
    owner=$(cat "$e/owner" 2>/dev/null || true)
    reason=""
    if [ -z "$dir" ]; then
      # Claimed but never filled in: an `up` that died at once, or one starting right now.
      [ $(($(date +%s) - $(stat -c %Y "$e"))) -gt 60 ] && reason="registry entry never completed"
    elif [ -d "$dir" ] && ! flock -n "$dir/.lock" true 2>/dev/null; then
      continue # an engines.sh command is working on it
    elif [ ! -d "$dir" ]; then
      reason="its directory $dir is gone"
    elif [ ! -f "$dir/state" ]; then
      reason="its state file $dir/state is gone"
    elif [ "$(kv "$dir/state" tag)" != "$t" ]; then
      reason="$dir now holds tag $(kv "$dir/state" tag)"
    elif [ -n "$owner" ]; then
      read -r p start <<<"$owner"
      if ! alive "$p" || [ "$(proc_start "$p")" != "$start" ]; then reason="its owner pid $p is gone"; fi
    else
      live=0
      for ((i = 1; i <= n; i++)); do dockerd_pid "$dir/e$i" >/dev/null && live=1; done
      [ $live = 1 ] || reason="no engine of it has a live dockerd"
    fi
    [ -n "$reason" ] || continue
    found=1
    if [ $dry = 1 ]; then
      log "gc: would remove tag $t ($reason)"
      continue
    fi
    log "gc: removing tag $t ($reason)"
    # DIR goes too, unless it now holds another run's state.
    local keep=0
    [ -z "$dir" ] && keep=1
    [ -f "$dir/state" ] && [ "$(kv "$dir/state" tag)" != "$t" ] && keep=1
    teardown "$t" "${dir:-/nonexistent}" "$n" 1 "$keep" || log "gc: tag $t: some things could not be removed"
  done
  # Anything named like ours but not registered is only reported.
  local strays
  strays=$(
    {
      ip -o link show 2>/dev/null | sed -n 's/^[0-9]\+: \(wpe[0-9]\+\(br\|e[0-9]\+[hn]\)\)[@:].*/\1/p'
      ip netns list 2>/dev/null | awk '$1 ~ /^wpe[0-9]+e[0-9]+$/ {print $1}'
      for p in /sys/fs/cgroup/*/wpe* /sys/fs/cgroup/wpe*; do
        [[ -d $p && ${p##*/} =~ ^wpe[0-9]+e[0-9]+$ ]] && echo "$p"
      done
      true
    } | while read -r x; do
      if [[ ${x##*/} =~ ^wpe([0-9]+)(br|e) ]] && [ ! -d "$REG/${BASH_REMATCH[1]}" ]; then echo "$x"; fi
    done | sort -u | tr '\n' ' '
  ) || true
  [ -z "$strays" ] || log "gc: unregistered wpe names, not touched: $strays"
  [ $found = 1 ] || log "gc: nothing to remove"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case $cmd in
  up) cmd_up "$@" ;;
  load) cmd_load "$@" ;;
  cut) cmd_cut "$@" ;;
  restore) cmd_restore "$@" ;;
  kill) cmd_kill "$@" ;;
  start) cmd_start "$@" ;;
  status) cmd_status "$@" ;;
  down) cmd_down "$@" ;;
  gc) cmd_gc "$@" ;;
  -h | --help | help) usage ;;
  "") usage >&2; exit 2 ;;
  *) die "unknown command $cmd (see --help)" ;;
  esac
}

main "$@"
