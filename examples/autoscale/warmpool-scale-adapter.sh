#!/usr/bin/env bash
# Keep a warmpool pool's min_ready where a decision says, through PUT /v1/pools/{name}/scale:
# the bridge between an autoscaler and the daemon (see README, "Autoscaling a pool").
#
# The decision, each period, is one of:
#   --replicas-cmd CMD   the whole number CMD prints: e.g. the spec.replicas that KEDA or an
#                        HPA set on a Kubernetes object, read with kubectl;
#   --metrics            the daemon's own metrics: ceil(acquire rate x --lead-s) + waiters,
#                        from warmpool_acquires_total{pool} (every source) and
#                        warmpool_pool_waiters{pool}.
# It is clamped to [--floor, --ceiling] and, when it changed, sent as
# {"min_ready": N, "max_ready": CEILING}; --report-cmd CMD then runs with N as $1 (e.g. to
# write it back as the Kubernetes object's status.replicas). The token, when the daemon has
# one, comes from the environment variable --token-env names (default WARMPOOL_TOKEN).
#
# Needs bash, curl (7.76 or later) and awk. Tested against the real daemon by
# tests/tests/scale_adapter.rs.
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: warmpool-scale-adapter.sh --pool NAME --ceiling N (--replicas-cmd CMD | --metrics)
           [--url URL] [--floor N] [--lead-s S] [--period S] [--iterations N]
           [--report-cmd CMD] [--token-env VAR]
EOF
    exit 2
}

url=${WARMPOOL_URL:-http://127.0.0.1:7070}
token_env=WARMPOOL_TOKEN
pool='' mode='' cmd='' report='' ceiling=''
floor=0 lead=10 period=15 iterations=0

while [[ $# -gt 0 ]]; do
    # --opt=value is --opt value.
    if [[ $1 == --*=* ]]; then
        set -- "${1%%=*}" "${1#*=}" "${@:2}"
    fi
    # Every option but --metrics takes a value.
    [[ $1 == --metrics || $# -ge 2 ]] || usage
    case $1 in
    --pool) pool=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    --replicas-cmd) mode=replicas; cmd=$2; shift 2 ;;
    --metrics) mode=metrics; shift ;;
    --report-cmd) report=$2; shift 2 ;;
    --floor) floor=$2; shift 2 ;;
    --ceiling) ceiling=$2; shift 2 ;;
    --lead-s) lead=$2; shift 2 ;;
    --period) period=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --token-env) token_env=$2; shift 2 ;;
    *) usage ;;
    esac
done
[[ -n $pool && -n $mode && -n $ceiling ]] || usage
for n in "$floor" "$ceiling" "$iterations"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "error: not a whole number: $n" >&2; exit 2; }
done
url=${url%/}

auth=()
token=${!token_env:-}
if [[ -n $token ]]; then
    auth=(-H "Authorization: Bearer $token")
fi

# "ACQUIRES WAITERS" of the pool, from the daemon's metrics (which need no token).
sample() {
    curl -sS --fail-with-body "$url/metrics" | awk -v pool="$pool" '
        index($1, "warmpool_acquires_total{") == 1 && index($1, "pool=\"" pool "\"") { acq += $2 }
        $1 == "warmpool_pool_waiters{pool=\"" pool "\"}" { waiters = $2 }
        END { printf "%d %d\n", acq, waiters }'
}

last='' prev_acq='' prev_t='' failed=0 i=0
while :; do
    why='' want=''
    if [[ $mode == metrics ]]; then
        if s=$(sample); then
            read -r acq waiters <<<"$s"
            now=$(date +%s.%N)
            # The first sample has no rate yet; a counter that went down: the daemon restarted.
            want=$(awk -v a="$acq" -v pa="$prev_acq" -v t="$now" -v pt="$prev_t" \
                -v lead="$lead" -v w="$waiters" 'BEGIN {
                    rate = (pa == "" || a < pa || t <= pt) ? 0 : (a - pa) / (t - pt)
                    need = rate * lead; n = int(need); if (n < need) n++
                    printf "%d %.2f\n", n + w, rate }')
            rate=${want#* } want=${want% *}
            prev_acq=$acq prev_t=$now
            why="rate ${rate}/s, waiters $waiters"
        else
            echo "error: cannot read $url/metrics" >&2
        fi
    else
        if ! want=$(bash -c "$cmd" | tr -d '[:space:]'); then
            echo "error: --replicas-cmd failed" >&2
            want=''
        elif ! [[ $want =~ ^[0-9]+$ ]]; then
            echo "error: --replicas-cmd printed '$want', not a whole number" >&2
            want=''
        fi
        why="replicas ${want:-?}"
    fi
    if [[ -n $want ]]; then
        ((want < floor)) && want=$floor
        ((want > ceiling)) && want=$ceiling
        if [[ $want != "$last" ]]; then
            if out=$(curl -sS --fail-with-body -X PUT "${auth[@]}" \
                -H 'Content-Type: application/json' \
                -d "{\"min_ready\":$want,\"max_ready\":$ceiling}" \
                "$url/v1/pools/$pool/scale" 2>&1); then
                echo "$pool: min_ready $want max_ready $ceiling ($why): set"
                last=$want failed=0
                if [[ -n $report ]]; then
                    bash -c "$report" _ "$want" || echo "error: --report-cmd failed" >&2
                fi
            else
                # Tried again next period: the daemon may be restarting.
                echo "error: $pool: min_ready $want not set: $out" >&2
                failed=1
            fi
        else
            echo "$pool: min_ready $want ($why): unchanged"
        fi
    else
        failed=1
    fi
    i=$((i + 1))
    if ((iterations > 0 && i >= iterations)); then
        exit "$failed"
    fi
    sleep "$period"
done
