#!/usr/bin/env bash
# Start Ray for this machine's role, then (on the head) the engine.
#   FLY_PROCESS_GROUP=head    ray start --head, then aitrader up --headless --address auto
#   FLY_PROCESS_GROUP=worker  ray start --address <head.process.$FLY_APP_NAME.internal>:6379
# Fly machines reach each other over IPv6 on the private network, so Ray binds FLY_PRIVATE_IP.
# Every node shares the RAY_AUTH_TOKEN secret (Ray 2.60 turns token authentication on).
set -euo pipefail

role="${1:-${FLY_PROCESS_GROUP:-head}}"
node_ip="${FLY_PRIVATE_IP:-127.0.0.1}"
ray_port="${RAY_PORT:-6379}"
: "${RAY_AUTH_TOKEN:?RAY_AUTH_TOKEN is not set: aitrader deploy sets it as a Fly secret}"
export RAY_AUTH_TOKEN LOG_FORMAT="${LOG_FORMAT:-json}"

stop_ray() {
    ray stop --force >/dev/null 2>&1 || true
}
trap stop_ray EXIT

case "$role" in
    head|app)
        ray start --head --node-ip-address="$node_ip" --port="$ray_port" \
            --dashboard-host=127.0.0.1 --ray-client-server-port=10001 --num-cpus="${RAY_NUM_CPUS:-2}" \
            --disable-usage-stats
        # exec would drop the trap; run in the foreground so SIGTERM reaches the engine.
        aitrader up --headless --address auto &
        engine=$!
        trap 'kill -TERM "$engine" 2>/dev/null; wait "$engine"; stop_ray' TERM INT
        wait "$engine"
        ;;
    worker)
        : "${FLY_APP_NAME:?FLY_APP_NAME is not set: a worker must know its app to find the head}"
        head="${RAY_HEAD_ADDRESS:-head.process.${FLY_APP_NAME}.internal}"
        # .internal names have only AAAA records: resolve to an IPv6 literal for Ray.
        head_ip=""
        for _ in $(seq 1 30); do
            head_ip=$(getent ahostsv6 "$head" | awk 'NR == 1 { print $1 }') && [ -n "$head_ip" ] && break
            sleep 2
        done
        [ -n "$head_ip" ] || { echo "entrypoint: cannot resolve the head $head" >&2; exit 1; }
        ray start --address="[${head_ip}]:${ray_port}" --node-ip-address="$node_ip" \
            --num-cpus="${RAY_NUM_CPUS:-2}" --disable-usage-stats --block
        ;;
    *)
        echo "entrypoint: unknown FLY_PROCESS_GROUP '$role' (use head or worker)" >&2
        exit 2
        ;;
esac
