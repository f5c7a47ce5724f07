#!/usr/bin/env bash
# A local maas cluster on loopback: etcd (1 or 3 members) holding the
# registry, membership and placement; N nodes that register there and
# preload the example models; two coordinators that find the nodes through
# etcd, elect a leader, and place deployed models' replicas.
#
#   scripts/cluster.sh up [NODES]   set up if needed, then start everything (default 2 nodes)
#   scripts/cluster.sh status       processes, leader, nodes, placement and model states
#   scripts/cluster.sh down         stop everything (data stays in .maas/)
#
# MAAS_TLS=1 serves both coordinators' HTTP and gRPC fronts over TLS with
# the development CA's `front` certificate (clients trust .maas/certs/ca.pem;
# nodes always speak mutual TLS), and etcd speaks only TLS and admits only
# clients with an `etcd-client` certificate of that CA (its data then lives
# in .maas/etcd-tls-N). MAAS_ETCD_MEMBERS=3 starts a 3-member etcd. Ports: coordinators HTTP 8000
# and 8001 ($MAAS_HTTP_PORT and +1); etcd member i client 2379+2i, peer
# 2380+2i; node i QUIC 7100+i, metrics 9100+i. Logs and pids: .maas/run/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAAS_ROOT"

RUN=.maas/run
HTTP_PORT=${MAAS_HTTP_PORT:-8000}
ETCD_MEMBERS=${MAAS_ETCD_MEMBERS:-1}
BIN="$MAAS_TARGET_DIR/release"
MODELS=.maas/models
if [ -n "${MAAS_TLS:-}" ]; then
    SCHEME=https
    CURL_TLS=(--cacert .maas/certs/ca.pem)
    FRONT_TLS=(--tls-cert .maas/certs/front.pem --tls-key .maas/certs/front.key)
    CLI_TLS=(--ca-file .maas/certs/ca.pem)
    ETCD_SCHEME=https
    ETCD_DATA=.maas/etcd-tls-$ETCD_MEMBERS
    ETCD_SERVER_TLS=(--cert-file .maas/certs/etcd.pem --key-file .maas/certs/etcd.key
        --trusted-ca-file .maas/certs/ca.pem --client-cert-auth)
    ETCD_CLIENT_TLS=(--etcd-ca-file .maas/certs/ca.pem
        --etcd-cert-file .maas/certs/etcd-client.pem --etcd-key-file .maas/certs/etcd-client.key)
else
    SCHEME=http
    CURL_TLS=()
    FRONT_TLS=()
    CLI_TLS=()
    ETCD_SCHEME=http
    ETCD_DATA=.maas/etcd-$ETCD_MEMBERS
    ETCD_SERVER_TLS=()
    ETCD_CLIENT_TLS=()
fi

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

etcd_endpoints() {
    local endpoints=()
    for i in $(seq 0 $((ETCD_MEMBERS - 1))); do
        endpoints+=("$ETCD_SCHEME://127.0.0.1:$((2379 + 2 * i))")
    done
    (IFS=,; echo "${endpoints[*]}")
}

start_etcd() {
    local cluster=()
    for i in $(seq 0 $((ETCD_MEMBERS - 1))); do
        cluster+=("etcd-$i=http://127.0.0.1:$((2380 + 2 * i))")
    done
    local initial
    initial=$(IFS=,; echo "${cluster[*]}")
    for i in $(seq 0 $((ETCD_MEMBERS - 1))); do
        start_process "etcd-$i" etcd --name "etcd-$i" --data-dir "$ETCD_DATA/etcd-$i" \
            --listen-client-urls "$ETCD_SCHEME://127.0.0.1:$((2379 + 2 * i))" \
            --advertise-client-urls "$ETCD_SCHEME://127.0.0.1:$((2379 + 2 * i))" "${ETCD_SERVER_TLS[@]}" \
            --listen-peer-urls "http://127.0.0.1:$((2380 + 2 * i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((2380 + 2 * i))" \
            --initial-cluster "$initial" --initial-cluster-token maas-local
    done
}

wait_ready() {
    for _ in $(seq 1 300); do
        if curl -sf "${CURL_TLS[@]}" "$SCHEME://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "the coordinator did not become ready; see $RUN/*.log" >&2
    return 1
}

up() {
    local nodes=${1:-2}
    # MAAS_PREBUILT=1 runs the binaries already in the target folder as they
    # are (another build of maas, for a comparison) instead of setting up.
    if [ -z "${MAAS_PREBUILT:-}" ]; then
        scripts/setup.sh
    fi
    mkdir -p "$RUN"
    local names=()
    for i in $(seq 0 $((nodes - 1))); do
        names+=("node-$i")
    done
    "$BIN/maas-certs" --dir .maas/certs --role coordinator coordinator coordinator-b >/dev/null
    "$BIN/maas-certs" --dir .maas/certs --role node "${names[@]}" >/dev/null
    "$BIN/maas-certs" --dir .maas/certs --role front front >/dev/null
    "$BIN/maas-certs" --dir .maas/certs --role etcd etcd >/dev/null
    "$BIN/maas-certs" --dir .maas/certs --role etcd-client etcd-client >/dev/null
    start_etcd
    local endpoints
    endpoints=$(etcd_endpoints)
    for i in $(seq 0 $((nodes - 1))); do
        start_process "node-$i" "$BIN/maas-node" --name "node-$i" \
            --quic-addr "127.0.0.1:$((7100 + i))" --metrics-addr "127.0.0.1:$((9100 + i))" \
            --cert-dir .maas/certs --model-repository "$MODELS" \
            --artifact-store .maas/artifacts --data-dir ".maas/node-$i" \
            --etcd-endpoints "$endpoints" "${ETCD_CLIENT_TLS[@]}" \
            --intra-op-threads "${MAAS_NODE_INTRA_OP_THREADS:-1}"
    done
    local port=$HTTP_PORT
    for name in coordinator coordinator-b; do
        start_process "$name" "$BIN/maas-coordinator" --name "$name" --http-addr "127.0.0.1:$port" \
            --cert-dir .maas/certs --data-dir .maas/coordinator \
            --artifact-store .maas/artifacts --etcd-endpoints "$endpoints" "${ETCD_CLIENT_TLS[@]}" "${FRONT_TLS[@]}"
        port=$((port + 1))
    done
    wait_ready
    cat <<EOT

maas is serving on $SCHEME://127.0.0.1:$HTTP_PORT and :$((HTTP_PORT + 1)) (gRPC on :$((HTTP_PORT + 1000)) and :$((HTTP_PORT + 1001)))
with $nodes node(s) and $ETCD_MEMBERS etcd member(s). Try:

  curl -s ${CURL_TLS[*]} -X POST $SCHEME://127.0.0.1:$HTTP_PORT/v2/models/ranker/infer \\
    -d '{"inputs":[{"name":"ids","shape":[1,8],"datatype":"INT64","data":[1,2,3,4,5,6,7,8]},
                   {"name":"features","shape":[1,4],"datatype":"FP32","data":[0.1,0.2,0.3,0.4]}]}'

Models: $(ls "$MODELS" | xargs)
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
    local token
    token=$(cat .maas/coordinator/admin.token 2>/dev/null || true)
    for port in "$HTTP_PORT" "$((HTTP_PORT + 1))"; do
        local view
        if view=$(curl -sf "${CURL_TLS[@]}" -H "Authorization: Bearer $token" "$SCHEME://127.0.0.1:$port/v1/cluster"); then
            python3 - "$port" "$view" <<'PY'
import json, sys
port, view = sys.argv[1], json.loads(sys.argv[2])
print(f"coordinator :{port}: {'leader' if view['leader'] else 'follower'}")
for link in view["links"]:
    live = link.get("status") or {}
    load = ""
    if "in_flight" in live:
        queued = sum(m["queued"] for m in live["models"])
        load = (f", {live['in_flight']} in flight, {queued} queued, "
                f"{live['memory_used_bytes'] / 2**30:.2f}/{live['memory_bytes'] / 2**30:.2f} GiB"
                f"{', draining' if live['draining'] else ''}")
    print(f"  node {link['name']} at {link['addr']}: {'up' if link['up'] else 'down'}{load}")
if view["leader"]:
    for version, a in view.get("placement", {}).get("assignments", {}).items():
        note = f"  ({a['unplaceable']})" if a.get("unplaceable") else ""
        print(f"  placement {version}: {', '.join(a['nodes']) or '-'}{note}")
PY
        else
            echo "coordinator :$port: not answering"
        fi
    done
    "$BIN/maas" --url "$SCHEME://127.0.0.1:$HTTP_PORT" "${CLI_TLS[@]}" status 2>/dev/null || true
}

down() {
    local pids=()
    for pidfile in "$RUN"/*.pid; do
        [ -e "$pidfile" ] || continue
        if running "$pidfile"; then
            pids+=("$(cat "$pidfile")")
            kill "$(cat "$pidfile")" && echo "stopped $(basename "$pidfile" .pid)"
        fi
        rm -f "$pidfile"
    done
    # Nodes drain before they exit; wait for every process to be gone (so
    # its ports are free for the next start), killing what outlives 15 s.
    for _ in $(seq 150); do
        local alive=0
        for pid in "${pids[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        [ "$alive" = 0 ] && return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
}

case "${1:-}" in
    up) up "${2:-2}" ;;
    status) status ;;
    down) down ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
esac
