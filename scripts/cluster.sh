#!/usr/bin/env bash
# A local maas deployment on loopback: an etcd holding the registry, N nodes
# serving the example models, and one coordinator in front of them. Models
# deployed with the `maas` CLI land in .maas/artifacts and load on every node.
#
#   scripts/cluster.sh up [NODES]   set up if needed, start NODES nodes (default 2) and a coordinator
#   scripts/cluster.sh status       processes, readiness and models
#   scripts/cluster.sh down         stop everything
#
# Ports: coordinator HTTP $MAAS_HTTP_PORT (8000); etcd 2379; node i QUIC 7100+i, metrics 9100+i.
# Logs and pids: .maas/run/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAAS_ROOT"

RUN=.maas/run
HTTP_PORT=${MAAS_HTTP_PORT:-8000}
BIN="$MAAS_TARGET_DIR/release"
MODELS=.maas/models

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_process() { # name, command...
    local name=$1
    shift
    if running "$RUN/$name.pid"; then
        echo "$name is already running (pid $(cat "$RUN/$name.pid"))"
        return
    fi
    nohup "$@" >"$RUN/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
    echo "started $name (pid $!, log $RUN/$name.log)"
}

wait_ready() {
    for _ in $(seq 1 300); do
        if curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "the coordinator did not become ready; see $RUN/*.log" >&2
    return 1
}

up() {
    local nodes=${1:-2}
    scripts/setup.sh
    mkdir -p "$RUN"
    local names=()
    for i in $(seq 0 $((nodes - 1))); do
        names+=("node-$i")
    done
    "$BIN/maas-certs" --dir .maas/certs coordinator "${names[@]}" >/dev/null
    start_process etcd etcd --name maas --data-dir .maas/etcd \
        --listen-client-urls "http://127.0.0.1:${MAAS_ETCD_PORT:-2379}" \
        --advertise-client-urls "http://127.0.0.1:${MAAS_ETCD_PORT:-2379}" \
        --listen-peer-urls "http://127.0.0.1:${MAAS_ETCD_PEER_PORT:-2380}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${MAAS_ETCD_PEER_PORT:-2380}" \
        --initial-cluster "maas=http://127.0.0.1:${MAAS_ETCD_PEER_PORT:-2380}"
    local addresses=()
    for i in $(seq 0 $((nodes - 1))); do
        start_process "node-$i" "$BIN/maas-node" --name "node-$i" \
            --quic-addr "127.0.0.1:$((7100 + i))" --metrics-addr "127.0.0.1:$((9100 + i))" \
            --cert-dir .maas/certs --model-repository "$MODELS" \
            --artifact-store .maas/artifacts --data-dir ".maas/node-$i" \
            --intra-op-threads "${MAAS_NODE_INTRA_OP_THREADS:-1}"
        addresses+=("node-$i=127.0.0.1:$((7100 + i))")
    done
    local joined
    joined=$(IFS=,; echo "${addresses[*]}")
    start_process coordinator "$BIN/maas-coordinator" --http-addr "127.0.0.1:$HTTP_PORT" \
        --cert-dir .maas/certs --node "$joined" --data-dir .maas/coordinator \
        --artifact-store .maas/artifacts --etcd-endpoints "http://127.0.0.1:${MAAS_ETCD_PORT:-2379}"
    wait_ready
    cat <<EOT

maas is serving on http://127.0.0.1:$HTTP_PORT with $nodes node(s). Try:

  curl -s -X POST http://127.0.0.1:$HTTP_PORT/v2/models/ranker/infer \\
    -d '{"inputs":[{"name":"ids","shape":[1,8],"datatype":"INT64","data":[1,2,3,4,5,6,7,8]},
                   {"name":"features","shape":[1,4],"datatype":"FP32","data":[0.1,0.2,0.3,0.4]}]}'

Models: $(ls "$MODELS" | tr '\n' ' ')
Deploy your own: target/release/maas deploy NAME --model model.pt --config config.json --alias production
  (the admin token is in .maas/coordinator/admin.token, which the CLI reads by default)
Status: scripts/cluster.sh status     Stop: scripts/cluster.sh down
EOT
}

status() {
    for pidfile in "$RUN"/*.pid; do
        [ -e "$pidfile" ] || { echo "nothing started"; return; }
        local name
        name=$(basename "$pidfile" .pid)
        if running "$pidfile"; then echo "$name: running (pid $(cat "$pidfile"))"; else echo "$name: stopped"; fi
    done
    if curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null; then
        echo "coordinator http://127.0.0.1:$HTTP_PORT: ready"
    else
        echo "coordinator http://127.0.0.1:$HTTP_PORT: not ready"
    fi
    for model in $(ls "$MODELS"); do
        local code
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/v2/models/$model/ready" || true)
        echo "  model $model: $([ "$code" = 200 ] && echo ready || echo "not ready ($code)")"
    done
}

down() {
    for pidfile in "$RUN"/*.pid; do
        [ -e "$pidfile" ] || continue
        if running "$pidfile"; then
            kill "$(cat "$pidfile")" && echo "stopped $(basename "$pidfile" .pid)"
        fi
        rm -f "$pidfile"
    done
}

case "${1:-}" in
    up) up "${2:-2}" ;;
    status) status ;;
    down) down ;;
    *) sed -n '2,10p' "$0"; exit 2 ;;
esac
