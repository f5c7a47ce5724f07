#!/usr/bin/env bash
# CPU time the serving processes spend per request: closed-loop load on the
# local one-node cluster (started if none runs), with the coordinator's and
# the node's CPU time (user + system, from /proc) divided by the requests the
# coordinator counted. Unlike requests/s, this hardly moves when other work
# shares the machine, so it shows what a change to the hot path saves.
#
#   bench/cpu_cost.sh [SECONDS] [MODEL ...]
#
# The default measures the example mlp and cnn at 64 clients, HTTP binary and
# gRPC streaming, one row per request (ROWS=N in the environment for more).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
seconds=${1:-5}
shift || true
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mlp cnn)
port=${MAAS_HTTP_PORT:-8000}
url="http://127.0.0.1:$port"
grpc="http://127.0.0.1:$((port + 1000))"
rows=${ROWS:-1}
# The load generator; comparisons give both sides the same one, since its
# own CPU use shifts what the serving processes get on a small machine.
bench=${MAAS_BENCH_BIN:-$MAAS_TARGET_DIR/release/maas-bench}

MAAS_NODE_INTRA_OP_THREADS=${MAAS_NODE_INTRA_OP_THREADS:-1} scripts/cluster.sh up 1 >/dev/null
coordinator=$(pgrep -f "maas-coordinator --name coordinator --http-addr 127.0.0.1:$port" | head -1)
node=$(pgrep -f "maas-node --name node-0 " | head -1)
ticks_per_second=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
requests() {
    curl -sf "$url/metrics" | awk -v m="model=\"$1\"" '/^maas_inference_requests_total/ && index($0, m) {n += $2} END {print n + 0}'
}
# Batches dispatched for the model so far (the batch-size histogram's count):
# rows per batch explains much of the per-request cost, larger batches
# sharing one frame, one forward and one answer among more requests.
batches() {
    curl -sf "$url/metrics" | awk -v m="model=\"$1\"" '/^maas_inference_batch_size_count/ && index($0, m) {n += $2} END {print n + 0}'
}

echo "| model | rows/request | encoding | requests/s | requests/batch | coordinator µs/request | node µs/request |"
echo "|---|---:|---|---:|---:|---:|---:|"
for model in "${models[@]}"; do
    for encoding in binary grpc-stream; do
        # Warm up, then measure one point.
        "$bench" http --url "$url" --grpc-url "$grpc" --model "$model" \
            --concurrency 64 --encoding "$encoding" --rows "$rows" --seconds 1 >/dev/null 2>&1
        before_requests=$(requests "$model")
        before_batches=$(batches "$model")
        before_coordinator=$(cpu_ticks "$coordinator")
        before_node=$(cpu_ticks "$node")
        started=$(date +%s%N)
        "$bench" http --url "$url" --grpc-url "$grpc" --model "$model" \
            --concurrency 64 --encoding "$encoding" --rows "$rows" --seconds "$seconds" >/dev/null 2>&1
        elapsed_ns=$(( $(date +%s%N) - started ))
        served=$(( $(requests "$model") - before_requests ))
        dispatched=$(( $(batches "$model") - before_batches ))
        coordinator_ticks=$(( $(cpu_ticks "$coordinator") - before_coordinator ))
        node_ticks=$(( $(cpu_ticks "$node") - before_node ))
        awk -v m="$model" -v r="$rows" -v e="$encoding" -v n="$served" -v b="$dispatched" -v s="$elapsed_ns" -v c="$coordinator_ticks" -v d="$node_ticks" -v hz="$ticks_per_second" \
            'BEGIN { printf "| %s | %s | %s | %.0f | %.1f | %.1f | %.1f |\n", m, r, e, n / (s / 1e9), n / (b > 0 ? b : 1), c / hz / n * 1e6, d / hz / n * 1e6 }'
    done
done
