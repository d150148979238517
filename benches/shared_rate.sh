#!/usr/bin/env bash
# What rate_scope = "shared" costs: one redis-server, two portcullis processes
# (TLS + client certificate, 2 worker threads) in front of it, identical but
# for limits.rate_scope ("local" / "shared"), user bench with a rate far above
# what the machine can do (so nothing is refused: the cost of keeping the
# budget is all that differs). redis-benchmark SET/GET at -c 50, -P 1 and -P 16,
# interleaved rounds; prints requests/s and the proxy's CPU per request.
#   benches/shared_rate.sh [ROUNDS] [REQUESTS]     (builds the release binary if needed)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/portcullis"
ROUNDS="${1:-3}"
REQUESTS="${2:-200000}"
[[ -x $BIN ]] || (cd "$ROOT" && cargo build --release)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-rate.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
source "$ROOT/benches/lib.sh"
read -r REDIS LOCAL SHARED <<<"$(free_ports 3)"
"$BIN" gen-certs --out "$DIR/certs" --client bench >/dev/null
setsid redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" >/dev/null &
PIDS+=("$!")
for scope in local shared; do
  port=$LOCAL; [[ $scope == shared ]] && port=$SHARED
  cat >"$DIR/$scope.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
worker_threads = 2
[tls]
cert = "certs/server.pem"
key = "certs/server.key"
client_ca = "certs/ca.pem"
[upstream]
address = "127.0.0.1:$REDIS"
[limits]
rate_scope = "$scope"
[[users]]
name = "bench"
rules = "on ~* &* +@all -@dangerous"
rate = { ops_per_sec = 10000000, burst = 10000000 }
TOML
  PORTCULLIS_LOG=warn setsid "$BIN" run --config "$DIR/$scope.toml" >"$DIR/$scope.log" 2>&1 &
  PIDS+=("$!")
  eval "PID_$scope=$!"
done
TLS=(--tls --cert "$DIR/certs/bench.pem" --key "$DIR/certs/bench.key" --cacert "$DIR/certs/ca.pem")
for port in $LOCAL $SHARED; do
  for _ in $(seq 100); do
    [[ $(redis-cli -p "$port" "${TLS[@]}" ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
  done
done
: >"$DIR/rows"
for round in $(seq "$ROUNDS"); do
  for p in 1 16; do
    for scope in local shared; do
      port=$LOCAL; pid=$PID_local
      [[ $scope == shared ]] && { port=$SHARED; pid=$PID_shared; }
      t0=$(ticks "$pid")
      out=$(redis-benchmark -h 127.0.0.1 -p "$port" "${TLS[@]}" -c 50 -n "$REQUESTS" -P "$p" -t set,get --csv 2>/dev/null \
        | grep -E '^"(SET|GET)"' | tr -d '"' | cut -d, -f1,2 | tr '\n' ' ')
      t1=$(ticks "$pid")
      echo -e "$p\t$scope\t$out\t$((t1 - t0))" >>"$DIR/rows"
      echo "[shared-rate] round $round -P $p $scope: $out" >&2
    done
  done
done
python3 - "$DIR/rows" "$REQUESTS" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
from collections import defaultdict
rows, n, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rps = defaultdict(list); cpu = defaultdict(list)
for line in open(rows):
    p, scope, tests, ticks = line.rstrip("\n").split("\t")
    for item in tests.split():
        t, v = item.split(","); rps[(p, scope, t)].append(float(v))
    cpu[(p, scope)].append(int(ticks) * 1e6 / hz / (2 * n))
print("| scenario | test | local rps | shared rps | shared / local | proxy CPU/req local / shared (µs) |")
print("|---|---|--:|--:|--:|--:|")
for p in ("1", "16"):
    for t in ("SET", "GET"):
        l = statistics.median(rps[(p, "local", t)]); s = statistics.median(rps[(p, "shared", t)])
        cl = statistics.median(cpu[(p, "local")]); cs = statistics.median(cpu[(p, "shared")])
        print(f"| -c 50 -P {p} | {t} | {l:,.0f} | {s:,.0f} | {s / l:.2f}× | {cl:.2f} / {cs:.2f} |")
PY
