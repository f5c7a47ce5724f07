#!/usr/bin/env bash
# What maas adds to a generative request: a tiny GPT-2 (random weights,
# tests/fixtures/tiny_llm.py) served by `transformers serve` on loopback,
# registered with `maas engine` in a local cluster, then the same streamed
# chat completions sent directly and through the coordinator
# (bench/generation.py).
#
#   bench/generation.sh [REQUESTS] [MAX_TOKENS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
requests=${1:-50}
max_tokens=${2:-64}
out=.maas/bench-generation
port=${MAAS_ENGINE_PORT:-8011}
mkdir -p "$out"
[ -f "$out/tiny-llm/model.safetensors" ] || .venv/bin/python tests/fixtures/tiny_llm.py "$out/tiny-llm" >/dev/null
model_dir="$PWD/$out/tiny-llm"
HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/transformers serve "$model_dir" --host 127.0.0.1 --port "$port" \
    --device cpu >"$out/engine.log" 2>&1 &
engine=$!
trap 'kill $engine 2>/dev/null || true; scripts/cluster.sh down >/dev/null 2>&1 || true' EXIT
for _ in $(seq 180); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 1
done
scripts/cluster.sh down >/dev/null 2>&1 || true
export MAAS_ETCD_PREFIX="/maas-bench/generation-$(date +%s)/"
MAAS_NODE_MODELS=mlp scripts/cluster.sh up 1 >/dev/null
"$MAAS_TARGET_DIR/release/maas" engine tiny --url "http://127.0.0.1:$port" --engine-model "$model_dir" >/dev/null
for _ in $(seq 60); do
    curl -sf -H "Authorization: Bearer $(cat .maas/coordinator/admin.token)" \
        "http://127.0.0.1:${MAAS_HTTP_PORT:-8000}/v2/models/tiny/ready" >/dev/null && break
    sleep 0.5
done
.venv/bin/python bench/generation.py "http://127.0.0.1:$port" "$model_dir" "http://127.0.0.1:${MAAS_HTTP_PORT:-8000}" \
    "$(cat .maas/coordinator/admin.token)" tiny "$requests" "$max_tokens"
