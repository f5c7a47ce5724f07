#!/usr/bin/env bash
# What monitoring costs: the MLP at 64 clients (HTTP binary and gRPC
# streaming) with the coordinator's monitoring on, then off
# (`--no-monitoring`: no statistics, detectors, drift or feedback), twice each,
# alternating, on the local one-node cluster.
#
#   bench/monitor_cost.sh [SECONDS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
seconds=${1:-5}
url="http://127.0.0.1:${MAAS_HTTP_PORT:-8000}"
grpc="http://127.0.0.1:$(( ${MAAS_HTTP_PORT:-8000} + 1000 ))"
echo "| round | monitoring | binary req/s | grpc-stream req/s |"
echo "|---:|---|---:|---:|"
round=0
for monitoring in on off on off; do
    round=$((round + 1))
    scripts/cluster.sh down >/dev/null 2>&1 || true
    if [ "$monitoring" = off ]; then flag=true; else flag=false; fi
    MAAS_COORDINATOR_NO_MONITORING=$flag MAAS_NODE_INTRA_OP_THREADS=1 scripts/cluster.sh up 1 >/dev/null 2>&1
    rates=$("$MAAS_TARGET_DIR/release/maas-bench" http --url "$url" --grpc-url "$grpc" --model mlp --concurrency 64 \
        --encoding binary,grpc-stream --seconds "$seconds" 2>/dev/null | awk -F'|' '/\| mlp/ {gsub(/ /,"",$6); printf "%s ", $6}')
    read -r binary stream <<<"$rates"
    echo "| $round | $monitoring | $binary | $stream |"
done
scripts/cluster.sh down >/dev/null 2>&1 || true
