# Helpers the benchmark scripts source (bash).

# N free loopback ports (never 6379), each with port+10000 free too (a
# Redis Cluster node's bus port), space-separated.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
while len(socks) < int(sys.argv[1]):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p == 6379 or p > 55000:
        s.close(); continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000))
    except OSError:
        s.close(); continue
    b.close(); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# CPU ticks (user + system) process $1 has used so far.
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
