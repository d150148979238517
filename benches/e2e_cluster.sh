#!/usr/bin/env bash
# The cluster scenario of benches/e2e.sh (also runs alone):
#   benches/e2e_cluster.sh BIN DIR [ROUNDS] [REQUESTS]
# Starts a 3-master Redis Cluster (no replicas: fewer processes on the shared
# cores) on free loopback ports, portcullis (TLS + client certificate, pooled,
# 2 worker threads) in front of it, and runs redis-benchmark -t set,get -c 50
# at -P 1 and -P 16: once straight to the nodes (`redis-benchmark --cluster`,
# plaintext) and once through the proxy, in interleaved rounds. Prints a
# markdown table: requests/s, and CPU per request of the proxy and of the
# three redis-servers together, measured from /proc around every run.
# DIR receives configs and logs (the caller removes it). Needs the
# certificates of `BIN gen-certs --client bench` in DIR/certs.
set -euo pipefail

BIN="$1"
DIR="$2"
ROUNDS="${3:-3}"
REQUESTS="${4:-200000}"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

source "$(dirname "$0")/lib.sh"

read -r -a PORTS <<<"$(free_ports 4)"
NODES=("${PORTS[@]:0:3}")
PROXY_PORT="${PORTS[3]}"
mkdir -p "$DIR/cluster"
for port in "${NODES[@]}"; do
  mkdir -p "$DIR/cluster/$port"
  setsid redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --cluster-enabled yes --cluster-config-file nodes.conf --dir "$DIR/cluster/$port" \
    --logfile "$DIR/cluster/$port/redis.log" --daemonize no &
  PIDS+=("$!")
done
NODE_PIDS=("${PIDS[@]}")
for port in "${NODES[@]}"; do
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
redis-cli --cluster create "${NODES[@]/#/127.0.0.1:}" --cluster-yes >/dev/null
for _ in $(seq 100); do
  redis-cli -p "${NODES[0]}" cluster info | grep -q cluster_state:ok && break
  sleep 0.1
done

cat >"$DIR/cluster/proxy.toml" <<EOF
[server]
listen = "127.0.0.1:$PROXY_PORT"
worker_threads = 2
shutdown_grace_s = 1

[tls]
cert = "../certs/server.pem"
key = "../certs/server.key"
client_ca = "../certs/ca.pem"

[upstream]
pool_size = 2
[upstream.cluster]
seeds = ["127.0.0.1:${NODES[0]}"]

[auth]
cert_user = "cn"

[[users]]
name = "bench"
rules = "on ~* &* +@all -@dangerous"
EOF
PORTCULLIS_LOG="${PORTCULLIS_LOG:-warn}" setsid "$BIN" run --config "$DIR/cluster/proxy.toml" \
  >"$DIR/cluster/proxy.log" 2>&1 &
PIDS+=("$!")
PROXY_PID=$!
TLS=(--tls --cert "$DIR/certs/bench.pem" --key "$DIR/certs/bench.key" --cacert "$DIR/certs/ca.pem")
for _ in $(seq 100); do
  [[ $(redis-cli -p "$PROXY_PORT" "${TLS[@]}" set bench:check 1 2>/dev/null) == OK ]] && break
  sleep 0.1
done

nodes_ticks() { local t=0 pid; for pid in "${NODE_PIDS[@]}"; do t=$((t + $(ticks "$pid"))); done; echo "$t"; }

: >"$DIR/cluster/rows.tsv"
for round in $(seq "$ROUNDS"); do
  for pipeline in 1 16; do
    for target in direct proxy; do
      if [[ $target == direct ]]; then
        args=(--cluster -h 127.0.0.1 -p "${NODES[0]}")
      else
        args=(-h 127.0.0.1 -p "$PROXY_PORT" "${TLS[@]}")
      fi
      n0=$(nodes_ticks); p0=$(ticks "$PROXY_PID")
      out=$(timeout 300 redis-benchmark "${args[@]}" -c 50 -n "$REQUESTS" -P "$pipeline" \
        -t set,get --csv 2>/dev/null | grep -E '^"(SET|GET)"' | tr -d '"' | cut -d, -f1,2 | tr '\n' ' ')
      n1=$(nodes_ticks); p1=$(ticks "$PROXY_PID")
      [[ $target == direct ]] && p1=$p0
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$pipeline" "$target" "$round" "$out" \
        $((n1 - n0)) $((p1 - p0)) >>"$DIR/cluster/rows.tsv"
      echo "[e2e-cluster] round $round -P $pipeline $target: $out" >&2
    done
  done
done

python3 - "$DIR/cluster/rows.tsv" "$REQUESTS" "$(getconf CLK_TCK)" <<'EOF'
import statistics, sys
from collections import defaultdict
rows, n, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rps = defaultdict(list); cpu = defaultdict(list)
for line in open(rows):
    p, target, _round, tests, nodes, proxy = line.rstrip("\n").split("\t")
    for item in tests.split():
        test, value = item.split(",")
        rps[(p, target, test)].append(float(value))
    per = 1e6 / hz / (2 * n)
    cpu[(p, target)].append((int(nodes) * per, int(proxy) * per))
print("### Cluster: through portcullis vs redis-benchmark --cluster straight to the nodes")
print()
print("3 masters, no replicas; -c 50; straight: plaintext, the client routes by slot; through the")
print("proxy: mutual TLS, one endpoint. Median of the rounds. CPU per request: the three")
print("redis-servers together / the proxy (µs).")
print()
print("| scenario | test | straight rps | through portcullis rps | ratio | CPU straight (nodes) | CPU through (nodes / proxy) |")
print("|---|---|--:|--:|--:|--:|--:|")
for p in ("1", "16"):
    for test in ("SET", "GET"):
        d = statistics.median(rps[(p, "direct", test)]); x = statistics.median(rps[(p, "proxy", test)])
        cd = statistics.median(c[0] for c in cpu[(p, "direct")])
        cn = statistics.median(c[0] for c in cpu[(p, "proxy")])
        cp = statistics.median(c[1] for c in cpu[(p, "proxy")])
        print(f"| -P {p} | {test} | {d:,.0f} | {x:,.0f} | {x / d:.2f}× | {cd:.2f} | {cn:.2f} / {cp:.2f} |")
EOF
