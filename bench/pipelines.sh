#!/usr/bin/env bash
# Pipelines against their models called with prepared tensors, in one
# local cluster on the same cores: the text pipeline (raw strings →
# tokenizer → BERT → softmax, top label) against BERT given token ids, a
# pipeline of the model step alone (the hop through a pipeline), and the
# image pipeline (JPEG → decode, resize, crop, normalise → ResNet-18 →
# top-5) against ResNet-18 given pixels; requests/s and latency at 1 and 8
# clients (bench/pipelines.py), and each step's time from
# maas_pipeline_step_seconds. Fixtures: tests/fixtures/pipelines.py.
#
#   bench/pipelines.sh [SECONDS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$MAAS_ROOT"
seconds=${1:-10}
out=.maas/bench-pipelines
mkdir -p "$out"
[ -f "$out/text/model.pt" ] || .venv/bin/python tests/fixtures/pipelines.py text "$out/text" >/dev/null 2>&1
[ -f "$out/image/model.pt" ] || .venv/bin/python tests/fixtures/pipelines.py image "$out/image" >/dev/null 2>&1
cat >"$out/text/pipeline.json" <<'JSON'
{"platform": "pipeline", "max_batch_size": 16,
 "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [-1, 1]}],
 "outputs": [{"name": "LABEL", "datatype": "BYTES", "shape": [-1, 1]}, {"name": "SCORE", "datatype": "FP32", "shape": [-1, 1]}],
 "pipeline": {"steps": [
  {"name": "tokenize", "tokenizer": {"tokenizer": "tokenizer.json", "max_length": 16},
   "input_map": {"text": "TEXT"}, "output_map": {"input_ids": "ids", "attention_mask": "mask"}},
  {"name": "classify", "model": {"model": "bert"},
   "input_map": {"input_ids": "ids", "attention_mask": "mask"}, "output_map": {"logits": "logits"}},
  {"name": "label", "post": {"softmax": true, "top_k": 1, "labels": "labels.txt"},
   "input_map": {"scores": "logits"}, "output_map": {"top_labels": "LABEL", "top_scores": "SCORE"}}]}}
JSON
cat >"$out/text/hop.json" <<'JSON'
{"platform": "pipeline", "max_batch_size": 16,
 "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [-1, 16]}, {"name": "attention_mask", "datatype": "INT64", "shape": [-1, 16]}],
 "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}],
 "pipeline": {"steps": [{"name": "classify", "model": {"model": "bert"},
   "input_map": {"input_ids": "input_ids", "attention_mask": "attention_mask"}, "output_map": {"logits": "logits"}}]}}
JSON
cat >"$out/image/pipeline.json" <<'JSON'
{"platform": "pipeline", "max_batch_size": 8,
 "inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [-1, 1]}],
 "outputs": [{"name": "LABELS", "datatype": "BYTES", "shape": [-1, 5]}, {"name": "SCORES", "datatype": "FP32", "shape": [-1, 5]}],
 "pipeline": {"steps": [
  {"name": "decode", "image": {"resize": 256, "crop": 224}, "input_map": {"image": "IMAGE"}, "output_map": {"pixels": "pixels"}},
  {"name": "classify", "model": {"model": "resnet"}, "input_map": {"pixels": "pixels"}, "output_map": {"logits": "logits"}},
  {"name": "top5", "post": {"softmax": true, "top_k": 5, "labels": "labels.txt"},
   "input_map": {"scores": "logits"}, "output_map": {"top_labels": "LABELS", "top_scores": "SCORES"}}]}}
JSON
trap 'scripts/cluster.sh down >/dev/null 2>&1 || true' EXIT
scripts/cluster.sh down >/dev/null 2>&1 || true
export MAAS_ETCD_PREFIX="/maas-bench/pipelines-$(date +%s)/"
MAAS_NODE_MODELS=mlp scripts/cluster.sh up 1 >/dev/null
maas="$MAAS_TARGET_DIR/release/maas"
"$maas" deploy bert --model "$out/text/model.pt" --config "$out/text/config.json" >/dev/null
"$maas" deploy resnet --model "$out/image/model.pt" --config "$out/image/config.json" >/dev/null
"$maas" pipeline sentiment --config "$out/text/pipeline.json" >/dev/null
"$maas" pipeline bert-hop --config "$out/text/hop.json" >/dev/null
"$maas" pipeline classify-image --config "$out/image/pipeline.json" >/dev/null
url="http://127.0.0.1:${MAAS_HTTP_PORT:-8000}"
token=$(cat .maas/coordinator/admin.token)
for model in bert resnet; do
    for _ in $(seq 120); do
        curl -sf -H "Authorization: Bearer $token" "$url/v2/models/$model/ready" >/dev/null && break
        sleep 0.5
    done
done
.venv/bin/python bench/pipelines.py "$url" "$token" "$out" "$seconds"
