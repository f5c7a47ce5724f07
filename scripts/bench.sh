#!/usr/bin/env bash
# The standard benchmark: starts a local deployment with one node if none is
# running, then measures raw LibTorch and HTTP JSON/binary load on the MLP.
# Extra arguments go to `maas-bench suite` (see `maas-bench suite --help`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAAS_ROOT"
MAAS_NODE_INTRA_OP_THREADS=${MAAS_NODE_INTRA_OP_THREADS:-1} scripts/cluster.sh up 1 >/dev/null
"$MAAS_TARGET_DIR/release/maas-bench" suite --url "http://127.0.0.1:${MAAS_HTTP_PORT:-8000}" "$@"
