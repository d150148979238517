#!/usr/bin/env bash
# The test command: every unit, property and integration test (real redis-server,
# real TLS, certificates made at test time). Installs redis-server when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
exec cargo test --all-targets "$@"
