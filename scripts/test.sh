#!/usr/bin/env bash
# Sets up the checkout if needed and runs every test: unit tests of each
# crate and the cross-process tests under tests/ (real nodes, real
# coordinators, real LibTorch, on loopback).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAAS_ROOT"
scripts/setup.sh
printf '\n== test tools\n'
# An S3-compatible server on loopback for the object-storage tests.
if [ ! -x .venv/bin/moto_server ]; then
    .venv/bin/python -m pip install --quiet "moto[server]==5.2.5"
fi
echo "moto_server: $(.venv/bin/python -c 'import moto; print(moto.__version__)')"
printf '\n== tests\n'
cargo test --release --workspace -- --test-threads=2 "$@"
