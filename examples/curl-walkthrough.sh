#!/usr/bin/env bash
# A walk through the HTTP API with curl, against a daemon started on examples/quickstart.yaml.
# Run it while the daemon runs:  examples/curl-walkthrough.sh
# Every POST says `content-type: application/json`, even without a body: the daemon refuses any
# other (a web page could send it cross-site).
set -euo pipefail
W=${WARMPOOL_URL:-http://127.0.0.1:7070}
AUTH=()
[ -n "${WARMPOOL_TOKEN:-}" ] && AUTH=(-H "Authorization: Bearer $WARMPOOL_TOKEN")
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
json() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

say "curl $W/readyz"
curl -s "$W/readyz"; echo

say "curl -X POST $W/v1/leases -H 'content-type: application/json' -d '{\"pool\":\"busybox\",\"ttl_s\":300}'"
LEASE=$(curl -s "${AUTH[@]}" -X POST "$W/v1/leases" -H 'content-type: application/json' -d '{"pool":"busybox","ttl_s":300}')
echo "$LEASE"
ID=$(echo "$LEASE" | json lease_id)

say "curl -X POST $W/v1/leases/$ID/exec -H 'content-type: application/json' -d '{\"cmd\":[\"sh\",\"-c\",\"uname -a; echo to-stderr >&2; exit 3\"]}'"
curl -s "${AUTH[@]}" -X POST "$W/v1/leases/$ID/exec" -H 'content-type: application/json' \
  -d '{"cmd":["sh","-c","uname -a; echo to-stderr >&2; exit 3"]}'; echo

say "curl -X PUT --data-binary @- $W/v1/leases/$ID/files/work/hello.txt"
echo "hello from the host" | curl -s "${AUTH[@]}" -X PUT --data-binary @- "$W/v1/leases/$ID/files/work/hello.txt" -w 'HTTP %{http_code}\n'

say "curl $W/v1/leases/$ID/files/work/hello.txt"
curl -s "${AUTH[@]}" "$W/v1/leases/$ID/files/work/hello.txt"

say "curl -X POST $W/v1/leases/$ID/renew -H 'content-type: application/json' -d '{\"ttl_s\":600}'"
curl -s "${AUTH[@]}" -X POST "$W/v1/leases/$ID/renew" -H 'content-type: application/json' -d '{"ttl_s":600}'; echo

say "curl -X DELETE $W/v1/leases/$ID"
curl -s "${AUTH[@]}" -X DELETE "$W/v1/leases/$ID" -w 'HTTP %{http_code}\n'

say "curl $W/v1/pools/busybox"
curl -s "${AUTH[@]}" "$W/v1/pools/busybox"; echo

say "curl $W/metrics | grep warmpool_containers"
curl -s "$W/metrics" | grep '^warmpool_containers'

say "curl -X POST $W/v1/admin/reload -H 'content-type: application/json'"
curl -s "${AUTH[@]}" -X POST "$W/v1/admin/reload" -H 'content-type: application/json'; echo
