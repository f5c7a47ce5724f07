#!/usr/bin/env bash
# Sets up the checkout if needed and runs every test: unit tests of each
# crate and the cross-process tests under tests/ (real nodes, real
# coordinators, real LibTorch, on loopback).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAAS_ROOT"
scripts/setup.sh
printf '\n== tests\n'
cargo test --release --workspace -- --test-threads=2 "$@"
