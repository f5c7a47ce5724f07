#!/usr/bin/env bash
# Sets up the checkout if needed, checks formatting and lints, and runs
# every test: unit tests of each crate and the cross-process tests under
# tests/ (real nodes, real coordinators, real LibTorch, on loopback).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAAS_ROOT"
scripts/setup.sh
printf '\n== test tools\n'
# An S3-compatible server on loopback for the object-storage tests.
if [ ! -x .venv/bin/moto_server ]; then
    .venv/bin/python -m pip install --quiet --no-cache-dir "moto[server]==5.2.5"
fi
echo "moto_server: $(.venv/bin/python -c 'import moto; print(moto.__version__)')"
# The clients users already have: NVIDIA's tritonclient and KServe's SDK
# (setuptools stays below 82, as torch 2.11 requires).
if ! .venv/bin/python -c 'import tritonclient.http, tritonclient.grpc, kserve' 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --no-cache-dir "tritonclient[http,grpc]==2.73.0" "kserve==0.21.0" "setuptools<82"
fi
echo "clients: $(.venv/bin/python -m pip list 2>/dev/null | grep -E '^(tritonclient|kserve) ' | tr -s ' ' | paste -sd, -)"
# A real browser for the web console's tests: Debian's Chromium and its
# driver, driven from the tests by Selenium.
browser_missing=()
command -v chromium >/dev/null || browser_missing+=(chromium)
command -v chromedriver >/dev/null || browser_missing+=(chromium-driver)
if [ ${#browser_missing[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${browser_missing[@]}" >/dev/null
fi
if ! .venv/bin/python -c 'import selenium' 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --no-cache-dir "selenium==4.38.0"
fi
echo "browser: $(chromium --version 2>/dev/null | head -1), $(chromedriver --version | cut -d' ' -f1-2)"
printf '\n== format and lints\n'
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings
printf '\n== tests\n'
cargo test --release --workspace -- --test-threads=2 "$@"
