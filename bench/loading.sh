#!/usr/bin/env bash
# Loading that does not leak and is fast. Two parts, each on a fresh local
# cluster with one node:
#
#  1. CYCLES load → infer → unload cycles (maas-bench cycles): two models
#     loaded on demand over one 7 MB MLP, called in turn on a node whose
#     budget holds one of them, so each call loads its model and evicts the
#     other; every tenth cycle an artifact that cannot load is offered too.
#     Reports the node's heap and resident memory after the warm-up and
#     every hundred cycles.
#  2. Cold start of a 1 GB MLP: the time to the first answer when the node
#     has the artifact in its cache (after the publish's trial load), and
#     again after its replica went idle and the cached file was removed, so
#     the node fetches it from the artifact store (a local folder here).
#
#   bench/loading.sh [CYCLES] [LARGE_MB]     e.g. bench/loading.sh 1000 1000
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
cycles=${1:-1000}
large_mb=${2:-1000}
url="http://127.0.0.1:${MAAS_HTTP_PORT:-8000}"
token=$(cat .maas/coordinator/admin.token 2>/dev/null || true)
bench="$MAAS_TARGET_DIR/release/maas-bench"
python3 bench/make_mlps.py .maas/bench-mlps 20 1 40 >/dev/null
small=.maas/bench-mlps/mlp-03.pt
small_bytes=$(stat -c %s "$small")

echo "## load → infer → unload, $cycles cycles ($(basename "$small"), $small_bytes bytes)"
scripts/cluster.sh down >/dev/null 2>&1 || true
# Each part in an etcd namespace of its own, so nothing from earlier runs
# (their models, or demand still under a live lease) is placed.
export MAAS_ETCD_PREFIX="/maas-bench/loading-$(date +%s)/"
# Room for one of the two (each declares 26 MiB) beside the repository's
# example MLP (about 16 MiB, measured).
MAAS_NODE_MODELS=mlp MAAS_NODE_MEMORY_BYTES=$((64 << 20)) scripts/cluster.sh up 1 >/dev/null
token=$(cat .maas/coordinator/admin.token)
"$bench" cycles --url "$url" --artifact "$small" --cycles "$cycles"
scripts/cluster.sh down >/dev/null 2>&1 || true

echo
echo "## cold start of a ${large_mb} MB model"
large_dir=.maas/bench-large
python3 bench/make_mlps.py "$large_dir" 1 "$large_mb" "$large_mb" >/dev/null
large="$large_dir/mlp-00.pt"
export MAAS_ETCD_PREFIX="/maas-bench/loading-large-$(date +%s)/"
MAAS_NODE_MODELS=mlp MAAS_COORDINATOR_IDLE_UNLOAD_SECONDS=2 scripts/cluster.sh up 1 >/dev/null
token=$(cat .maas/coordinator/admin.token)
auth=(-H "Authorization: Bearer $token")
sha=$(curl -sf "${auth[@]}" -X PUT --data-binary "@$large" "$url/v1/artifacts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])')
config='{"name": "large", "max_batch_size": 8, "replicas": {"min": 0, "max": 1},
  "inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 64]}],
  "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 10]}]}'
published=$(date +%s.%N)
curl -sf "${auth[@]}" -H 'content-type: application/json' -X POST "$url/v1/models/large/versions" \
    -d "{\"config\": $config, \"artifact\": {\"sha256\": \"$sha\"}, \"source\": \"bench loading\"}" >/dev/null
echo "published (with its trial load) in $(python3 -c "print(round($(date +%s.%N) - $published, 1))") s"
row=$(python3 -c 'print([0.01 * i for i in range(64)])')
infer() {
    curl -sf -o /dev/null -w '%{time_total}' -H 'content-type: application/json' -X POST "$url/v2/models/large/infer" \
        -d "{\"inputs\": [{\"name\": \"INPUT__0\", \"datatype\": \"FP32\", \"shape\": [1, 64], \"data\": $row}]}"
}
loaded() {
    curl -sf "${auth[@]}" "$url/v1/cluster" | python3 -c '
import json, sys
view = json.load(sys.stdin)
print(sum(1 for l in view["links"] for m in (l.get("status") or {}).get("models", []) if m["name"] == "large"))'
}
wait_unloaded() {
    for _ in $(seq 1 120); do
        [ "$(loaded)" = 0 ] && return 0
        sleep 0.5
    done
    echo "the large model was never unloaded" >&2
    return 1
}
echo
echo "| artifact from | first answer (s) |"
echo "|---|---:|"
echo "| node cache | $(infer) |"
wait_unloaded
rm -f .maas/node-0/artifacts/"$sha".pt
echo "| artifact store | $(infer) |"
echo "| loaded (hot) | $(infer) |"
scripts/cluster.sh down >/dev/null 2>&1 || true
