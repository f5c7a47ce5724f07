#!/usr/bin/env bash
# How far one coordinator scales: starts the local cluster with N nodes in
# simulated-compute mode (`--simulate-compute-us`: nodes validate each batch
# and answer zeros after a fixed time, running no model; a load-testing tool
# only), waits until the coordinator links to all of them, drives closed-loop
# load at 64 clients, and reports requests/s with the coordinator's and a
# node's resident memory. Then the placement cost with up to 1,000 versions
# on 100 nodes.
#
#   bench/scale.sh [NODE_COUNTS] [COMPUTE_US] [SECONDS]    e.g. bench/scale.sh "1 4 16 32" 200 5
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
counts=${1:-"1 4 16 32"}
compute_us=${2:-200}
seconds=${3:-5}
url="http://127.0.0.1:${MAAS_HTTP_PORT:-8000}"
grpc="http://127.0.0.1:$(( ${MAAS_HTTP_PORT:-8000} + 1000 ))"
bench="$MAAS_TARGET_DIR/release/maas-bench"
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "| nodes | binary req/s | grpc-stream req/s | coordinator RSS idle (MiB) | after load (MiB) | node RSS (MiB) |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in $counts; do
    scripts/cluster.sh down >/dev/null 2>&1 || true
    MAAS_NODE_SIMULATE_COMPUTE_US=$compute_us scripts/cluster.sh up "$n" >/dev/null
    token=$(cat .maas/coordinator/admin.token)
    for _ in $(seq 1 300); do
        up=$(curl -sf -H "Authorization: Bearer $token" "$url/v1/cluster" | python3 -c 'import json,sys; print(sum(l["up"] for l in json.load(sys.stdin)["links"]))' 2>/dev/null || echo 0)
        [ "$up" -ge "$n" ] && break
        sleep 0.2
    done
    coordinator=$(cat .maas/run/coordinator.pid)
    idle=$(rss_mib "$coordinator")
    binary=$("$bench" http --url "$url" --grpc-url "$grpc" --model mlp --concurrency 64 --encoding binary --seconds "$seconds" 2>/dev/null | awk -F'|' '/\| mlp/ {gsub(/ /,"",$6); print $6}')
    stream=$("$bench" http --url "$url" --grpc-url "$grpc" --model mlp --concurrency 64 --encoding grpc-stream --seconds "$seconds" 2>/dev/null | awk -F'|' '/\| mlp/ {gsub(/ /,"",$6); print $6}')
    loaded=$(rss_mib "$coordinator")
    node=$(rss_mib "$(cat .maas/run/node-0.pid)")
    echo "| $n | $binary | $stream | $idle | $loaded | $node |"
done
scripts/cluster.sh down >/dev/null 2>&1 || true
echo
"$bench" placement --versions 10,100,1000 --nodes 10,100
