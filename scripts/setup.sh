#!/usr/bin/env bash
# One-time (and idempotent) setup of a maas checkout on Debian:
#   - system packages: protoc with the well-known protos, etcd
#   - a project venv (.venv) with PyTorch 2.11.0, whose LibTorch the binaries link,
#     ONNX Runtime (whose library the node loads for ONNX models), the ONNX
#     exporter, torchvision and transformers (real architectures for tests)
#   - a release build of every binary (they find LibTorch through their rpath)
#   - the example models (.maas/models) and development certificates (.maas/certs)
# Each step is skipped when already done.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAAS_ROOT"

TORCH_VERSION=2.11.0
step() { printf '\n== %s\n' "$*"; }

step "system packages"
missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
[ -e /usr/include/google/protobuf/timestamp.proto ] || missing+=(libprotobuf-dev)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
    echo "installed ${missing[*]}"
else
    echo "protoc, etcd and python3 are present"
fi

step "python venv with torch==$TORCH_VERSION"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --no-cache-dir --upgrade pip
    .venv/bin/python -m pip install --quiet --no-cache-dir "torch==$TORCH_VERSION"
fi
.venv/bin/python -c 'import torch; print("torch", torch.__version__, "at", torch.__path__[0])'

step "python packages for ONNX, real architectures and language models"
# torchvision must match torch; onnxruntime's version is the one the node's
# ONNX Runtime binding (ort, API 31) targets. transformers with fastapi and
# uvicorn (its `serving` extra) runs `transformers serve`, the OpenAI-compatible engine the tests
# put behind maas; openai is the client they speak through.
PACKAGES=("onnxruntime==1.31.1" "torchvision==0.26.0" onnx onnxscript "transformers[serving]" tokenizers openai)
if ! .venv/bin/python -c "import onnxruntime, torchvision, onnx, onnxscript, transformers, tokenizers, fastapi, uvicorn, openai, sys; sys.exit(onnxruntime.__version__ != '1.31.1')" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --no-cache-dir "${PACKAGES[@]}"
fi
.venv/bin/python -c 'import onnxruntime, torchvision, transformers; print("onnxruntime", onnxruntime.__version__, "torchvision", torchvision.__version__, "transformers", transformers.__version__)'

step "build (release)"
cargo build --release --workspace --bins

step "example models"
.venv/bin/python scripts/export_models.py --out .maas/models

step "development certificates"
# The CA key lives in .maas/ca, apart from the leaf keys; a folder from
# before certificates had roles is reissued (its CA key moves out).
if [ ! -f .maas/ca/ca.key ] || [ ! -f .maas/certs/front.pem ]; then
    "$MAAS_TARGET_DIR/release/maas-certs" --dir .maas/certs --role coordinator coordinator
    "$MAAS_TARGET_DIR/release/maas-certs" --dir .maas/certs --role node node-0 node-1 node-2 node-3
    "$MAAS_TARGET_DIR/release/maas-certs" --dir .maas/certs --role front front
else
    echo "certificates in .maas/certs are present"
fi
