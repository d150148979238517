#!/usr/bin/env python3
"""RSS per idle mTLS connection through portcullis.

Starts redis-server and the release proxy (certificates from `portcullis
gen-certs`), opens N mutual-TLS connections, and reads the proxy's VmRSS from
/proc after the handshakes and again after each connection sent one PING
(which opens its upstream connection). Prints KiB per connection for each N.

    python3 benches/idle_conns.py [--counts 1000,10000] [--bin target/release/portcullis]
"""

import argparse
import asyncio
import os
import resource
import shutil
import socket
import ssl
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


async def open_conns(ctx, port, n, sources):
    conns = []
    for i in range(n):
        # Spread over loopback addresses so max_clients_per_ip is not the limit.
        src = sources[i % len(sources)]
        r, w = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost", local_addr=(src, 0)
        )
        conns.append((r, w))
    return conns


async def ping_all(conns):
    # In waves: thousands of simultaneous upstream connects would overflow
    # redis-server's listen backlog (see README, "Reconnect storms").
    for i in range(0, len(conns), 256):
        wave = conns[i : i + 256]
        for _, w in wave:
            w.write(b"*1\r\n$4\r\nPING\r\n")
        for r, _ in wave:
            line = await r.readline()
            assert line == b"+PONG\r\n", line


async def measure(ctx, port, pid, n):
    base = rss_kib(pid)
    conns = await open_conns(ctx, port, n, [f"127.0.1.{i}" for i in range(1, 41)])
    await asyncio.sleep(1)
    handshaken = rss_kib(pid)
    await ping_all(conns)
    await asyncio.sleep(1)
    pinged = rss_kib(pid)
    for _, w in conns:
        w.close()
    await asyncio.sleep(1)
    return base, handshaken, pinged


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--bin", default="target/release/portcullis")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = tempfile.mkdtemp(prefix="portcullis-idle-")
    procs = []
    try:
        subprocess.run([args.bin, "gen-certs", "--out", f"{tmp}/certs", "--client", "bench"],
                       check=True, capture_output=True)
        rport, pport = free_port(), free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxclients", "20000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with open(f"{tmp}/proxy.toml", "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{pport}"
worker_threads = 2
[tls]
cert = "certs/server.pem"
key = "certs/server.key"
client_ca = "certs/ca.pem"
[upstream]
address = "127.0.0.1:{rport}"
[auth]
cert_user = "cn"
[limits]
max_clients = 30000
conn_rate_per_ip = {{ ops_per_sec = 0, burst = 1 }}
[[users]]
name = "bench"
rules = "on ~* &* +@all"
""")
        proxy = subprocess.Popen([args.bin, "--config", f"{tmp}/proxy.toml"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proxy)
        wait_port(rport)
        wait_port(pport)
        ctx = ssl.create_default_context(cafile=f"{tmp}/certs/ca.pem")
        ctx.load_cert_chain(f"{tmp}/certs/bench.pem", f"{tmp}/certs/bench.key")
        print(f"{'conns':>7} {'RSS before':>11} {'after TLS':>10} {'KiB/conn':>9} {'after PING':>11} {'KiB/conn':>9}")
        for n in (int(c) for c in args.counts.split(",")):
            base, hs, pg = asyncio.run(measure(ctx, pport, proxy.pid, n))
            print(f"{n:>7} {base:>9} Ki {hs:>8} Ki {(hs - base) / n:>9.1f} {pg:>9} Ki {(pg - base) / n:>9.1f}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
