#!/usr/bin/env bash
# Runs portcullis with the shipped proxy.toml on 127.0.0.1:6380: makes dev
# certificates in certs/ (CA, server, client "app") if there are none, starts a
# throwaway redis-server on 127.0.0.1:6379 if nothing answers there, then runs
# `cargo run --release -- --config proxy.toml` in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
if [ ! -f certs/server.pem ]; then
  cargo run --release -- gen-certs --out certs --client app
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting a throwaway redis-server on 127.0.0.1:6379" >&2
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize yes \
    --logfile "$(pwd)/target/dev-redis.log" --dir /tmp
fi
exec cargo run --release -- --config proxy.toml
