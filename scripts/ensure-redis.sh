#!/usr/bin/env bash
# Installs redis-server (and redis-tools) from Debian/Ubuntu packages when it is missing.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "redis-server is missing: installing it with apt-get" >&2
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y redis-server redis-tools
