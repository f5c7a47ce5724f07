#!/usr/bin/env bash
# A registry of many models (maas-bench registry): on a fresh local cluster
# with one node, publishes MODELS versions loaded on demand over the
# smallest bench MLP, then reports the publish rate, the time to list the
# registry, each coordinator's last reconcile round and the leader's last
# placement round, and each coordinator's heap and resident memory before
# and after (what an idle version costs it).
#
#   bench/registry_scale.sh [MODELS]     e.g. bench/registry_scale.sh 10000
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
models=${1:-10000}
port=${MAAS_HTTP_PORT:-8000}
python3 bench/make_mlps.py .maas/bench-mlps 20 1 40 >/dev/null
scripts/cluster.sh down >/dev/null 2>&1 || true
# A namespace of its own in etcd: nothing from earlier runs is placed.
export MAAS_ETCD_PREFIX="/maas-bench/registry-$(date +%s)/"
MAAS_NODE_MODELS=mlp scripts/cluster.sh up 1 >/dev/null
"$MAAS_TARGET_DIR/release/maas-bench" registry --url "http://127.0.0.1:$port" --url "http://127.0.0.1:$((port + 1))" \
    --artifact .maas/bench-mlps/mlp-00.pt --models "$models"
scripts/cluster.sh down >/dev/null 2>&1 || true
