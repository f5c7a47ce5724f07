#!/usr/bin/env bash
# `maas tune` on the example CNN in a local cluster of one node: the
# frontier of max_batch_size, max_queue_delay_us and instances within a p99
# target, against the example's configuration (batch 32, delay 1000 us, one
# instance). Writes the report and the frontier plot to bench/results/.
#
#   bench/tune.sh [P99_MS] [SECONDS_PER_POINT]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
p99=${1:-20}
seconds=${2:-3}
day=$(date +%F)
trap 'scripts/cluster.sh down >/dev/null 2>&1 || true' EXIT
scripts/cluster.sh down >/dev/null 2>&1 || true
export MAAS_ETCD_PREFIX="/maas-bench/tune-$(date +%s)/"
MAAS_NODE_MODELS=mlp scripts/cluster.sh up 1 >/dev/null
maas="$MAAS_TARGET_DIR/release/maas"
"$maas" deploy cnn --model .maas/models/cnn/1/model.pt --config .maas/models/cnn/config.json >/dev/null
"$maas" tune cnn --p99-ms "$p99" --seconds "$seconds" --plot "bench/results/tune-cnn-$day.svg" \
    | tee "bench/results/tune-cnn-$day.txt"
