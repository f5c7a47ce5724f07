#!/usr/bin/env bash
# A decoder run natively by maas nodes against Hugging Face on the same
# model and cores: a tiny GPT-2 (random weights, tests/fixtures/tiny_llm.py)
# exported with scripts/export_decoder.py and published with `maas decoder`
# in a local cluster, `transformers serve` on the same model, and
# Hugging Face `generate` in process; streamed completions at 1, 4, 16 and
# 64 streams at once (bench/native_decoder.py).
#
#   bench/native_decoder.sh [MAX_TOKENS] [ROUNDS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
max_tokens=${1:-64}
rounds=${2:-2}
out=.maas/bench-native-decoder
port=${MAAS_ENGINE_PORT:-8011}
mkdir -p "$out"
[ -f "$out/tiny-llm/model.safetensors" ] || .venv/bin/python tests/fixtures/tiny_llm.py "$out/tiny-llm" >/dev/null
[ -f "$out/decoder/model.pt" ] || .venv/bin/python scripts/export_decoder.py "$out/tiny-llm" "$out/decoder" >/dev/null
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
export MAAS_ETCD_PREFIX="/maas-bench/native-decoder-$(date +%s)/"
MAAS_NODE_MODELS=mlp scripts/cluster.sh up 1 >/dev/null
"$MAAS_TARGET_DIR/release/maas" decoder tiny --dir "$out/decoder" --max-batch-size 64 >/dev/null
for _ in $(seq 120); do
    curl -sf -H "Authorization: Bearer $(cat .maas/coordinator/admin.token)" \
        "http://127.0.0.1:${MAAS_HTTP_PORT:-8000}/v2/models/tiny/ready" >/dev/null && break
    sleep 0.5
done
.venv/bin/python bench/native_decoder.py "$model_dir" "http://127.0.0.1:$port" "$model_dir" \
    "http://127.0.0.1:${MAAS_HTTP_PORT:-8000}" "$(cat .maas/coordinator/admin.token)" tiny "$max_tokens" "$rounds"
