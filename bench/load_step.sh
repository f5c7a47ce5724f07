#!/usr/bin/env bash
# A load step on one model whose replicas follow load (maas-bench step): on
# a fresh local cluster with two nodes, a model with `replicas: {min: 0,
# max: 2, target_in_flight: 4}` gets one client, then CLIENTS at once, then
# one again, then none. Reports the p99 of each phase, when the second
# replica was placed, and when the last one went (scale to zero). The
# coordinators scale up after 3 s above the target and down after
# SCALE_DOWN_SECONDS below it; an idle version is unloaded after
# IDLE_SECONDS.
#
#   bench/load_step.sh [CLIENTS] [PHASE_SECONDS] [SCALE_DOWN_SECONDS] [IDLE_SECONDS]
#   e.g. bench/load_step.sh 16 15 10 20
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
clients=${1:-16}
seconds=${2:-15}
export MAAS_COORDINATOR_SCALE_DOWN_SECONDS=${3:-10}
export MAAS_COORDINATOR_IDLE_UNLOAD_SECONDS=${4:-20}
python3 bench/make_mlps.py .maas/bench-mlps 20 1 40 >/dev/null
scripts/cluster.sh down >/dev/null 2>&1 || true
# A namespace of its own in etcd: nothing from earlier runs is placed.
export MAAS_ETCD_PREFIX="/maas-bench/step-$(date +%s)/"
MAAS_NODE_MODELS=mlp scripts/cluster.sh up 2 >/dev/null
"$MAAS_TARGET_DIR/release/maas-bench" step --artifact .maas/bench-mlps/mlp-03.pt --clients "$clients" --seconds "$seconds"
scripts/cluster.sh down >/dev/null 2>&1 || true
