#!/usr/bin/env bash
# End-to-end benchmark: portcullis vs HAProxy vs Redis's own TLS, in one run.
#
# Starts, on free loopback ports (never 6379):
#   redis       one redis-server with a plaintext port and a TLS port (mutual TLS)
#   haproxy     HAProxy, TCP mode, TLS + client certificates, -> redis plaintext port
#   portcullis  target/release/portcullis, TLS + client certificates (CN "bench"
#               names the ACL user), -> redis plaintext port, one upstream
#               connection per client
#   portcullis-pooled  the same binary with upstream.mode = "pooled", pool_size 2
# and runs redis-benchmark (SET and GET; 50 clients, and 500 in one scenario)
# against redis TLS, HAProxy, both portcullis targets and, as a reference,
# plaintext redis, in interleaved rounds: every
# round runs every scenario against every target, so slow drift of the machine
# hits all targets alike. Prints the median requests/s and p50/p99 latency per
# target, the portcullis/HAProxy, portcullis/redis-TLS and pooled/dedicated ratios,
# CPU per request of each proxy and of the redis-server behind it, and writes
# the same markdown to target/e2e-bench.md (raw rows: target/e2e-bench.raw.tsv).
#
# Then, unless --no-cluster, the cluster scenario (benches/e2e_cluster.sh): a
# 3-master Redis Cluster, portcullis in cluster mode vs redis-benchmark --cluster
# straight to the nodes; its table is appended to the report.
#
# Usage: benches/e2e.sh [--quick] [--rounds R] [--keep] [--baseline BIN] [--no-cluster] [--help]
#   --quick      1 round with a fifth of the requests (a smoke run, ~1 minute)
#   --rounds R   rounds per scenario and target (default 3)
#   --keep       keep the temporary directory (certs, configs, logs, raw CSV)
#   --baseline BIN  also run BIN (another portcullis build, e.g. of the commit
#                before a change) as target "portcullis-base", same config, same
#                rounds: before/after figures measured in one run
#   --no-cluster skip the cluster scenario
# Environment: PORTCULLIS_BENCH_NO_GIT=1 skips `git describe` in the machine notes.
#
# Needs: redis-server, redis-cli, redis-benchmark (7.0), haproxy, python3, openssl.
# Every process it starts is stopped on exit, including on Ctrl-C.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/portcullis"
REPORT="$ROOT/target/e2e-bench.md"
RAW="$ROOT/target/e2e-bench.raw.tsv"

PROXY_THREADS=2       # portcullis worker_threads and HAProxy nbthread
ROUNDS=3
QUICK=0
KEEP=0
CLUSTER=1
BENCH_TIMEOUT_S=300   # one redis-benchmark run; a stalled target fails instead of hanging

# Scenarios: "id clients pipeline value-size requests" (requests for a full run).
# Sized so that a full 3-round run takes about 10 minutes on 2 cores.
# (One full round is ~3 minutes on a 2-core EPYC; --quick runs a fifth of it.)
SCENARIOS=(
  "p16-d3      50 16     3 1000000"
  "p1-d3       50  1     3  200000"
  "c500-p1-d3 500  1     3  200000"
  "p16-d1024   50 16  1024  600000"
  "p16-d16384  50 16 16384  150000"
)
POOL_SIZE=2           # portcullis-pooled's upstream.pool_size
# Targets in table order; the rounds rotate the order they are run in.
TARGETS=(redis redis-tls haproxy portcullis portcullis-pooled)
BASELINE=""   # --baseline: the binary of target portcullis-base

TMP=""
PIDS=()        # every long-running process we started (each in its own session, so a
               # Ctrl-C reaches only this script, whose trap then stops them in order)
BENCH_PID=""   # the redis-benchmark run in progress, if any
FAILED=0       # set by die: keep the temporary directory for its logs
declare -A PORT      # target -> port
declare -A PID_OF    # target -> pid of the process serving it

# ---------------------------------------------------------------- helpers

log() { printf '[e2e] %s\n' "$*" >&2; }
die() { printf '[e2e] ERROR: %s\n' "$*" >&2; FAILED=1; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --quick) QUICK=1; ROUNDS=1 ;;
      --rounds)
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--rounds needs a positive integer"
        ROUNDS="$2"; shift ;;
      --keep) KEEP=1 ;;
      --no-cluster) CLUSTER=0 ;;
      --baseline)
        [[ -x ${2:-} ]] || die "--baseline needs an executable portcullis binary"
        BASELINE="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
        TARGETS+=(portcullis-base); shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
  done
}

need_tools() {
  local tool
  for tool in redis-server redis-cli redis-benchmark haproxy python3 openssl timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
  done
}

# Build the release binary only when it is missing or older than the sources.
ensure_binary() {
  if [[ ! -x $BIN ]] || [[ -n $(find "$ROOT/src" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" \
        -newer "$BIN" -print -quit) ]]; then
    log "building target/release/portcullis (missing or older than src/)"
    (cd "$ROOT" && cargo build --release)
  fi
}

# Stop everything we started. Runs on every exit (trap EXIT); INT/TERM exit through it.
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  if [[ -n $BENCH_PID ]]; then kill "$BENCH_PID" 2>/dev/null || true; fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 30); do   # up to 3 s for a clean exit, then SIGKILL
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ $KEEP == 1 || $FAILED == 1 ]]; then
      log "kept $TMP (certs, configs, logs)"
    else
      rm -rf "$TMP"
    fi
  fi
  exit "$status"
}

# A distinct free loopback port per target, held open together so they differ; never 6379.
pick_ports() {
  local ports target i=0
  ports=$(python3 - "${#TARGETS[@]}" <<'EOF'
import socket, sys
socks, skipped = [], []
while len(socks) < int(sys.argv[1]):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    # 6379 stays bound in `skipped` until we are done, so it is not handed out again.
    (skipped if s.getsockname()[1] == 6379 else socks).append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
  read -r -a ports <<<"$ports"
  for target in "${TARGETS[@]}"; do PORT[$target]=${ports[$i]}; i=$((i + 1)); done
}

# redis-cli / redis-benchmark arguments that reach target $1.
client_args() {
  local target="$1"
  printf '%s\n' -h 127.0.0.1 -p "${PORT[$target]}"
  if [[ $target != redis ]]; then
    printf '%s\n' --tls --cert "$TMP/certs/bench.pem" --key "$TMP/certs/bench.key" \
      --cacert "$TMP/certs/ca.pem"
  fi
}

# Print the last lines of a log, for error messages.
show_log() { log "--- last lines of $1:"; tail -n 20 "$1" >&2 || true; }

# ---------------------------------------------------------------- servers

make_certs() {
  "$BIN" gen-certs --out "$TMP/certs" --client bench >/dev/null
  # HAProxy's `crt` wants certificate and key in one file.
  cat "$TMP/certs/server.pem" "$TMP/certs/server.key" >"$TMP/certs/server-combined.pem"
}

start_redis() {
  setsid redis-server --bind 127.0.0.1 --port "${PORT[redis]}" \
    --tls-port "${PORT[redis-tls]}" \
    --tls-cert-file "$TMP/certs/server.pem" --tls-key-file "$TMP/certs/server.key" \
    --tls-ca-cert-file "$TMP/certs/ca.pem" --tls-auth-clients yes \
    --save "" --appendonly no --dir "$TMP" --logfile "$TMP/redis.log" \
    --daemonize no &
  PIDS+=("$!"); PID_OF[redis]=$!; PID_OF[redis-tls]=$!
}

start_haproxy() {
  cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread $PROXY_THREADS
    maxconn 8192
    tune.ssl.default-dh-param 2048

defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s

frontend tls_in
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $TMP/certs/server-combined.pem ca-file $TMP/certs/ca.pem verify required
    default_backend redis

backend redis
    server redis1 127.0.0.1:${PORT[redis]}
EOF
  haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy rejected $TMP/haproxy.cfg"
  setsid haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
  PIDS+=("$!"); PID_OF[haproxy]=$!
}

# start_portcullis TARGET BIN [UPSTREAM-KEYS]: BIN serving TARGET's port, with
# UPSTREAM-KEYS (e.g. the pooled mode's) added to [upstream].
start_portcullis() {
  local target="$1" bin="$2" keys="${3:-}"
  cat >"$TMP/$target.toml" <<EOF
[server]
listen = "127.0.0.1:${PORT[$target]}"
worker_threads = $PROXY_THREADS
shutdown_grace_s = 1

[tls]
cert = "certs/server.pem"
key = "certs/server.key"
client_ca = "certs/ca.pem"

[upstream]
address = "127.0.0.1:${PORT[redis]}"
$keys

[auth]
cert_user = "cn"

[[users]]
name = "bench"
rules = "on ~* &* +@all -@dangerous"
EOF
  "$bin" check --config "$TMP/$target.toml" >/dev/null || die "$target check rejected $TMP/$target.toml"
  PORTCULLIS_LOG="${PORTCULLIS_LOG:-warn}" setsid "$bin" run --config "$TMP/$target.toml" \
    >"$TMP/$target.log" 2>&1 &
  PIDS+=("$!"); PID_OF[$target]=$!
}

# wait_ready TARGET LOG: wait (up to 10 s) until TARGET answers PING.
wait_ready() {
  local target="$1" logfile="$2" args pid="${PID_OF[$1]}"
  mapfile -t args < <(client_args "$target")
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { show_log "$logfile"; die "$target exited during startup"; }
    [[ $(redis-cli "${args[@]}" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  show_log "$logfile"
  die "$target did not answer PING on port ${PORT[$target]} within 10 s"
}

# check_target TARGET: PING, SET and GET must work before we benchmark it.
check_target() {
  local target="$1" args value="e2e-check-$RANDOM" reply
  mapfile -t args < <(client_args "$target")
  reply=$(redis-cli "${args[@]}" ping 2>&1) || true
  [[ $reply == PONG ]] || die "$target: PING answered '$reply'"
  reply=$(redis-cli "${args[@]}" set e2e:check "$value" 2>&1) || true
  [[ $reply == OK ]] || die "$target: SET answered '$reply'"
  reply=$(redis-cli "${args[@]}" get e2e:check 2>&1) || true
  [[ $reply == "$value" ]] || die "$target: GET answered '$reply', expected '$value'"
  log "$target (port ${PORT[$target]}): PING/SET/GET ok"
}

# The TLS version and cipher suite a client gets from TARGET (OpenSSL, like redis-benchmark).
tls_summary() {
  local target="$1" out proto cipher
  out=$(timeout 5 openssl s_client -brief -connect "127.0.0.1:${PORT[$target]}" \
    -CAfile "$TMP/certs/ca.pem" -cert "$TMP/certs/bench.pem" -key "$TMP/certs/bench.key" \
    </dev/null 2>&1) || true
  proto=$(sed -n 's/^Protocol version: *//p' <<<"$out" | head -n1)
  cipher=$(sed -n 's/^Ciphersuite: *//p' <<<"$out" | head -n1)
  printf '%s %s' "${proto:-?}" "${cipher:-?}"
}

# ---------------------------------------------------------------- benchmark

# Requests for a scenario: the full count, or a fifth of it with --quick.
requests_for() {
  local n="$1"
  if [[ $QUICK == 1 ]]; then n=$((n / 5)); fi
  printf '%s' "$n"
}

# cpu_ticks PID: user + system CPU time the process has used, in clock ticks.
cpu_ticks() {
  # Fields after the ")" that ends the command name: utime and stime are the 12th and 13th.
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# run_one SCENARIO-ID CLIENTS PIPELINE SIZE REQUESTS TARGET ROUND: one redis-benchmark run;
# appends its CSV rows to $TMP/results.tsv as "scenario target round csv-row", and the
# CPU time the target's proxy and redis-server used during it to $TMP/cpu.tsv as
# "scenario target round proxy-ticks redis-ticks requests ticks-per-second".
run_one() {
  local id="$1" clients="$2" pipeline="$3" size="$4" n="$5" target="$6" round="$7" args out err
  local proxy_before=0 proxy_after=0 redis_before redis_after
  kill -0 "${PID_OF[$target]}" 2>/dev/null || die "$target is no longer running (before $id round $round)"
  redis_before=$(cpu_ticks "${PID_OF[redis]}")
  if [[ ${PID_OF[$target]} != "${PID_OF[redis]}" ]]; then
    proxy_before=$(cpu_ticks "${PID_OF[$target]}")
  fi

  mapfile -t args < <(client_args "$target")
  out="$TMP/bench-$id-$target-r$round.csv"
  err="$TMP/bench-$id-$target-r$round.err"
  # In the background + wait, so that Ctrl-C/SIGTERM reach our trap at once.
  timeout "$BENCH_TIMEOUT_S" redis-benchmark "${args[@]}" -c "$clients" -n "$n" \
    -P "$pipeline" -d "$size" -t set,get --csv >"$out" 2>"$err" &
  BENCH_PID=$!
  if ! wait "$BENCH_PID"; then
    BENCH_PID=""
    cat "$err" >&2
    die "redis-benchmark against $target failed ($id, round $round)"
  fi
  BENCH_PID=""
  redis_after=$(cpu_ticks "${PID_OF[redis]}")
  if [[ ${PID_OF[$target]} != "${PID_OF[redis]}" ]]; then
    proxy_after=$(cpu_ticks "${PID_OF[$target]}")
  fi
  # -t set,get: n SETs then n GETs.
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$target" "$round" \
    $((proxy_after - proxy_before)) $((redis_after - redis_before)) $((2 * n)) \
    "$(getconf CLK_TCK)" >>"$TMP/cpu.tsv"
  grep -q '^"SET"' "$out" && grep -q '^"GET"' "$out" \
    || { cat "$out" "$err" >&2; die "redis-benchmark against $target printed no SET/GET rows"; }
  grep '^"' "$out" | grep -v '^"test"' | while IFS= read -r row; do
    printf '%s\t%s\t%s\t%s\n' "$id" "$target" "$round" "$row"
  done >>"$TMP/results.tsv"
  log "$(printf 'round %s  %-11s %-10s ' "$round" "$id" "$target")$(tr -d '"' <"$out" \
    | awk -F, '$1 == "SET" || $1 == "GET" { printf "%s %9.0f rps  p99 %s ms   ", $1, $2, $7 }')"
}

run_all() {
  local round i k line id clients pipeline size n target
  : >"$TMP/results.tsv"
  : >"$TMP/cpu.tsv"
  : >"$TMP/scenarios.tsv"
  for line in "${SCENARIOS[@]}"; do
    read -r id clients pipeline size n <<<"$line"
    printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$clients" "$pipeline" "$size" "$(requests_for "$n")" \
      >>"$TMP/scenarios.tsv"
  done
  for round in $(seq "$ROUNDS"); do
    for line in "${SCENARIOS[@]}"; do
      read -r id clients pipeline size n <<<"$line"
      n=$(requests_for "$n")
      # Rotate the target order each round so no target always runs first.
      for k in "${!TARGETS[@]}"; do
        i=$(( (k + round - 1) % ${#TARGETS[@]} ))
        target="${TARGETS[$i]}"
        run_one "$id" "$clients" "$pipeline" "$size" "$n" "$target" "$round"
      done
    done
  done
}

# "7.0.15 (Debian 5:7.0.15-1~deb12u10)", or just the version outside Debian.
redis_version() {
  local v pkg=""
  v=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
  if command -v dpkg-query >/dev/null 2>&1; then
    # shellcheck disable=SC2016  # ${Version} is dpkg-query's format, not ours
    pkg=$(dpkg-query -W -f='${Version}' redis-server 2>/dev/null || true)
  fi
  printf '%s%s' "${v:-unknown}" "${pkg:+ (Debian $pkg)}"
}

# The machine and software, one "key<TAB>value" per line, for the report.
write_meta() {
  local cpu describe=""
  cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -n1)
  if [[ -z ${PORTCULLIS_BENCH_NO_GIT:-} ]] && command -v git >/dev/null 2>&1; then
    describe=$(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || true)
  fi
  {
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'machine\t%s cores (nproc), %s, Linux %s\n' "$(nproc)" "${cpu:-unknown CPU}" "$(uname -r)"
    printf 'redis-server\t%s\n' "$(redis_version)"
    printf 'haproxy\t%s (nbthread %s)\n' "$(haproxy -v | head -n1 | awk '{print $3}')" "$PROXY_THREADS"
    printf 'portcullis\t%s%s (worker_threads %s; pooled: pool_size %s)\n' \
      "$("$BIN" --version | awk '{print $2}')" "${describe:+, git $describe}" "$PROXY_THREADS" \
      "$POOL_SIZE"
    if [[ -n $BASELINE ]]; then
      printf 'portcullis-base\t%s\n' "$BASELINE"
    fi
    printf 'openssl\t%s\n' "$(openssl version | awk '{print $2}')"
    printf 'TLS negotiated\tredis %s; haproxy %s; portcullis %s\n' \
      "$(tls_summary redis-tls)" "$(tls_summary haproxy)" "$(tls_summary portcullis)"
    printf 'load\tredis-benchmark -t set,get (one key), mutual TLS with a client certificate; '
    printf 'client, proxies and redis share the same cores\n'
  } >"$TMP/meta.tsv"
}

# ---------------------------------------------------------------- main

main() {
  parse_args "$@"
  need_tools
  ensure_binary

  trap cleanup EXIT
  trap 'log "interrupted"; exit 130' INT
  trap 'log "terminated"; exit 143' TERM
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-e2e.XXXXXX")

  make_certs
  pick_ports
  local target
  log "ports: $(for target in "${TARGETS[@]}"; do printf '%s %s, ' "$target" "${PORT[$target]}"; done)"
  start_redis
  wait_ready redis "$TMP/redis.log"
  wait_ready redis-tls "$TMP/redis.log"
  start_haproxy
  start_portcullis portcullis "$BIN"
  start_portcullis portcullis-pooled "$BIN" "$(printf 'mode = "pooled"\npool_size = %s' "$POOL_SIZE")"
  wait_ready haproxy "$TMP/haproxy.log"
  wait_ready portcullis "$TMP/portcullis.log"
  wait_ready portcullis-pooled "$TMP/portcullis-pooled.log"
  if [[ -n $BASELINE ]]; then
    start_portcullis portcullis-base "$BASELINE"
    wait_ready portcullis-base "$TMP/portcullis-base.log"
  fi
  for target in "${TARGETS[@]}"; do check_target "$target"; done

  write_meta
  log "benchmarking: $ROUNDS round(s), ${#SCENARIOS[@]} scenarios, ${#TARGETS[@]} targets"
  local started=$SECONDS
  run_all
  log "benchmark runs took $((SECONDS - started)) s"

  mkdir -p "$(dirname "$REPORT")"
  cp "$TMP/results.tsv" "$RAW"
  echo
  python3 "$ROOT/benches/e2e_report.py" --results "$TMP/results.tsv" --cpu "$TMP/cpu.tsv" \
    --scenarios "$TMP/scenarios.tsv" --meta "$TMP/meta.tsv" --rounds "$ROUNDS" --out "$REPORT" \
    --targets "${TARGETS[@]}"
  echo
  if [[ $CLUSTER == 1 ]]; then
    local requests=200000
    [[ $QUICK == 1 ]] && requests=40000
    log "cluster scenario: $ROUNDS round(s), $requests requests per run"
    "$ROOT/benches/e2e_cluster.sh" "$BIN" "$TMP" "$ROUNDS" "$requests" >"$TMP/cluster.md"
    { echo; cat "$TMP/cluster.md"; } | tee -a "$REPORT"
    echo
  fi
  log "markdown written to ${REPORT#"$ROOT"/}, raw rows to ${RAW#"$ROOT"/}"
}

main "$@"
