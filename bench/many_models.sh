#!/usr/bin/env bash
# Many models on few nodes: starts the local cluster with two nodes whose
# memory budgets together hold about a tenth of the models, publishes MODELS
# versions loaded on demand over 20 MLP artifacts of 1 to 40 MB, and drives
# Zipf-distributed traffic at them (maas-bench zipf), reporting the cache hit
# rate, cold starts, hot and cold p99, evictions, peak memory per node
# against its budget, and failed requests. The nodes' peak resident memory
# is sampled from /proc beside it.
#
#   bench/many_models.sh [MODELS] [SECONDS] [CLIENTS] [BUDGET_MIB_PER_NODE]
#   e.g. bench/many_models.sh 1000 180 16 1024
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
models=${1:-1000}
seconds=${2:-180}
clients=${3:-16}
budget_mib=${4:-1024}
artifacts=.maas/bench-mlps
python3 bench/make_mlps.py "$artifacts" 20 1 40 >/dev/null
scripts/cluster.sh down >/dev/null 2>&1 || true
MAAS_NODE_MEMORY_BYTES=$((budget_mib << 20)) scripts/cluster.sh up 2 >/dev/null
peak_rss() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
"$MAAS_TARGET_DIR/release/maas-bench" zipf --artifacts "$artifacts" --models "$models" --seconds "$seconds" --clients "$clients" \
    --other-coordinator "http://127.0.0.1:$((${MAAS_HTTP_PORT:-8000} + 1))"
echo
echo "| node | peak RSS (MiB) |"
echo "|---|---:|"
for node in node-0 node-1; do
    echo "| $node | $(peak_rss "$(cat .maas/run/$node.pid)") |"
done
scripts/cluster.sh down >/dev/null 2>&1 || true
