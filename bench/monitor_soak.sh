#!/usr/bin/env bash
# Counts false alerts and watches memory under steady load: starts the local
# cluster (one node), sends single-row binary requests to the MLP at a fixed
# concurrency for SECONDS (default 600) while sampling the resident memory of
# the coordinator and the node every minute, then lists every alert the
# coordinators raised. A healthy run raises none and its memory stays flat.
#
#   bench/monitor_soak.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
seconds=${1:-600}
concurrency=${2:-16}
MAAS_NODE_INTRA_OP_THREADS=${MAAS_NODE_INTRA_OP_THREADS:-1} scripts/cluster.sh up 1 >/dev/null
url="http://127.0.0.1:${MAAS_HTTP_PORT:-8000}"
token=$(cat .maas/coordinator/admin.token)
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "-"; }
coordinator=$(cat .maas/run/coordinator.pid)
node=$(cat .maas/run/node-0.pid)
echo "steady load: $concurrency clients, binary, mlp, ${seconds} s"
echo "memory before load: coordinator $(rss_mib "$coordinator") MiB, node $(rss_mib "$node") MiB"
"$MAAS_TARGET_DIR/release/maas-bench" http --url "$url" --model mlp --concurrency "$concurrency" \
    --encoding binary --seconds "$seconds" --warmup 2 &
load=$!
echo "| minute | coordinator RSS (MiB) | node RSS (MiB) |"
echo "|---:|---:|---:|"
for minute in $(seq 1 $(( (seconds + 59) / 60 ))); do
    sleep 60
    kill -0 "$load" 2>/dev/null || break
    echo "| $minute | $(rss_mib "$coordinator") | $(rss_mib "$node") |"
done
wait "$load"
for port in "${MAAS_HTTP_PORT:-8000}" "$(( ${MAAS_HTTP_PORT:-8000} + 1 ))"; do
    alerts=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/alerts" || echo '{}')
    python3 - "$port" "$alerts" <<'PY'
import json, sys
port, alerts = sys.argv[1], json.loads(sys.argv[2] or "{}")
found = alerts.get("active", []) + alerts.get("recent", [])
print(f"coordinator :{port}: {len(found)} alert(s) raised")
for a in found:
    print(f"  {a['kind']} {a['model']} v{a['version']} observed={a['observed']:.6f} baseline={a['baseline']:.6f}")
PY
done
