#!/usr/bin/env bash
# CPU cost per request of this checkout against another build of maas,
# alternating so both see the same machine (and which goes first): bench/cpu_cost.sh runs in the
# other checkout (with its own target folder), then in this one, ROUNDS
# times, each on a fresh local cluster.
#
#   bench/cpu_compare.sh OTHER_CHECKOUT OTHER_TARGET_DIR [ROUNDS] [SECONDS] [MODEL ...]
#
# e.g. git worktree add /tmp/maas-before <commit>, build it with
# CARGO_TARGET_DIR=/tmp/maas-before-target scripts/setup.sh, then compare.
# The other build's binaries run as they are (MAAS_PREBUILT): OTHER_CHECKOUT
# may be this checkout, with OTHER_TARGET_DIR/release holding the release
# binaries of another commit (maas-coordinator, maas-node, maas-bench,
# maas-certs, maas). Both sides are loaded by the same maas-bench (this
# checkout's, or MAAS_BENCH_BIN), whose own CPU use would otherwise differ.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
other=${1:?the other checkout}
other_target=${2:?its target folder}
rounds=${3:-2}
seconds=${4:-5}
shift 4 || shift $#
models=("$@")
# One load generator for both sides: this checkout's.
export MAAS_BENCH_BIN=${MAAS_BENCH_BIN:-$MAAS_TARGET_DIR/release/maas-bench}
for round in $(seq "$rounds"); do
    # Alternate which side goes first, so a drift in the machine's load
    # over a sitting does not favour one.
    order="other this"
    if [ $((round % 2)) = 0 ]; then order="this other"; fi
    for side in $order; do
        if [ "$side" = other ]; then dir=$other; target=$other_target; else dir=$MAAS_ROOT; target=$MAAS_TARGET_DIR; fi
        echo "== round $round: $side ($dir)"
        prebuilt=""
        if [ "$side" = other ]; then prebuilt=1; fi
        (cd "$dir" && MAAS_PREBUILT=$prebuilt CARGO_TARGET_DIR=$target bench/cpu_cost.sh "$seconds" "${models[@]}" | grep '^|')
        (cd "$dir" && CARGO_TARGET_DIR=$target scripts/cluster.sh down >/dev/null)
    done
done
