#!/usr/bin/env bash
# Installs what the tests run beside the proxy, from Debian/Ubuntu packages,
# when it is missing: redis-server, redis-tools (redis-cli --cluster),
# python3-redis (redis-py's cluster client, driven through the proxy),
# openssl (RSA keys for the token tests), haproxy (send-proxy-v2 in front
# of the proxy) and chromium (the status page in a headless browser).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 \
    && command -v openssl >/dev/null 2>&1 \
    && { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; } \
    && command -v chromium >/dev/null 2>&1 \
    && { python3 -c 'import redis' 2>/dev/null || /usr/bin/python3 -c 'import redis' 2>/dev/null; }; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "redis-server, redis-cli, redis-py, openssl, haproxy or chromium is missing: installing them with apt-get" >&2
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y redis-server redis-tools python3-redis openssl haproxy chromium
