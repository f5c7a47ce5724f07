#!/usr/bin/env bash
# Which format is fastest: converts the example CNN, a torchvision ResNet-18
# and a small BERT classifier (random weights) to TorchScript, an
# AOTInductor package and ONNX with scripts/convert.py, then measures each
# format raw in this process at batch sizes 1 and 8 (maas-bench raw: the
# backend a node runs it with, nothing around it) and served by a local
# cluster over HTTP binary at 1 and 8 clients (maas-bench http; the three
# formats are three versions of one model on one node).
#
#   bench/formats.sh [SECONDS_PER_POINT]
#   (RAW_MODELS and SERVED_MODELS narrow what is measured, e.g.
#   RAW_MODELS= SERVED_MODELS=bert bench/formats.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
seconds=${1:-3}
out=.maas/bench-formats
bench="$MAAS_TARGET_DIR/release/maas-bench"
convert() {
    local name=$1
    shift
    if [ ! -f "$out/$name/model.pt2" ] || [ ! -f "$out/$name/model.onnx" ]; then
        .venv/bin/python scripts/convert.py --path tests/fixtures --path scripts --formats torchscript,aoti,onnx \
            --out "$out/$name" "$@" | sed "s/^/$name: /" >&2
    fi
}
convert cnn --module export_models:SmallCnn --input x:float32:8,3,64,64 --max-batch-size 32
convert resnet18 --module architectures:resnet18 --input image:float32:2,3,224,224 --max-batch-size 8
convert bert --module architectures:bert_classifier --input input_ids:int64:2,32:1000 \
    --input attention_mask:int64:2,32:2 --max-batch-size 8

formats=("torchscript model.pt config.json" "aoti model.pt2 config.aoti.json" "onnx model.onnx config.onnx.json")
echo "| model | format | batch | rows/s | p50 (ms) |"
echo "|---|---|---:|---:|---:|"
for model in ${RAW_MODELS-cnn resnet18 bert}; do
    for entry in "${formats[@]}"; do
        set -- $entry
        "$bench" raw --artifact "$out/$model/$2" --config "$out/$model/$3" --batch 1,8 --threads 1 \
            --raw-seconds "$seconds" | awk -v m="$model" -v f="$1" -F'|' \
            'NR > 2 && NF > 3 {gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $4); print "| " m " | " f " | " $2 " | " $3 " | " $4 " |"}'
    done
done

echo
scripts/cluster.sh down >/dev/null 2>&1 || true
export MAAS_ETCD_PREFIX="/maas-bench/formats-$(date +%s)/"
MAAS_NODE_MODELS=mlp MAAS_NODE_INTRA_OP_THREADS=1 scripts/cluster.sh up 1 >/dev/null
echo "| model | format | clients | requests/s | p50 (ms) | p99 (ms) |"
echo "|---|---|---:|---:|---:|---:|"
for model in ${SERVED_MODELS:-cnn resnet18 bert}; do
    version=0
    for entry in "${formats[@]}"; do
        set -- $entry
        version=$((version + 1))
        "$MAAS_TARGET_DIR/release/maas" deploy "$model" --model "$out/$model/$2" --config "$out/$model/$3" \
            --source bench/formats.sh >/dev/null
        for _ in $(seq 120); do
            curl -sf "http://127.0.0.1:${MAAS_HTTP_PORT:-8000}/v2/models/$model/versions/$version/ready" >/dev/null && break
            sleep 0.5
        done
        "$bench" http --model "$model/versions/$version" --encoding binary --concurrency 1,8 \
            --seconds "$seconds" --warmup 1 | awk -v m="$model" -v f="$1" -F'|' \
            'NF > 8 && $3 ~ /binary/ {print "| " m " | " f " |" $5 "|" $6 "|" $8 "|" $10 "|"}'
    done
done
scripts/cluster.sh down >/dev/null 2>&1 || true
