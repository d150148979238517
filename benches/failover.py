#!/usr/bin/env python3
"""Sentinel failover time: portcullis vs Sentinel-aware clients, on the same failovers.

Each trial starts, on free loopback ports, a master, a replica, three sentinels
(down-after-milliseconds 1000, failover-timeout 2000, quorum 2) and portcullis
(target/release/portcullis, [upstream.sentinel], mutual TLS with a certificate
from `portcullis gen-certs`). Three writers run at once, each writing
`<name>:<n>` in order and retrying a write until it is acknowledged:

  portcullis   through the proxy, reconnecting after any error (what any
               plain client does: it knows nothing about Sentinel)
  redis-py     redis-py's Sentinel client (`Sentinel.master_for`), retrying on
               ConnectionError / ReadOnlyError / TimeoutError
  ask-sentinel what a `redis-cli` script does: ask a sentinel
               (SENTINEL GET-MASTER-ADDR-BY-NAME) at every reconnect

After two seconds of writes the master is SIGKILLed; each writer's failover
time is from the kill to its first acknowledged write. Prints every trial and
the median per writer.

Usage: python3 benches/failover.py [--trials 5] [--keep]
Needs: redis-server, redis-py (pip install redis), a release build.
"""

import argparse
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "portcullis")
MASTER = "mymaster"


def free_port():
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port != 6379:
            return port


def enc(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b"-", b":"):
        return (kind, rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return (b"$", None)
        data = f.read(n + 2)
        return (b"$", data[:-2])
    if kind == b"*":
        n = int(rest)
        return (b"*", [read_reply(f) for _ in range(max(n, 0))])
    raise ConnectionError("bad reply %r" % line)


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


class Trial:
    def __init__(self, tmp, index):
        self.dir = os.path.join(tmp, "trial%d" % index)
        os.makedirs(self.dir)
        self.procs = []
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.proxy_port = free_port()

    def spawn(self, args, log):
        p = subprocess.Popen(args, stdout=open(os.path.join(self.dir, log), "w"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def start(self, certs):
        base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir]
        self.servers = {
            self.master_port: self.spawn(["redis-server", "--port", str(self.master_port)] + base,
                                         "master.log"),
            self.replica_port: self.spawn(["redis-server", "--port", str(self.replica_port),
                                           "--replicaof", "127.0.0.1", str(self.master_port)] + base,
                                          "replica.log"),
        }
        for i, port in enumerate(self.sentinel_ports):
            conf = os.path.join(self.dir, "sentinel%d.conf" % i)
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\n" % (port, self.dir))
                f.write("sentinel monitor %s 127.0.0.1 %d 2\n" % (MASTER, self.master_port))
                f.write("sentinel down-after-milliseconds %s 1000\n" % MASTER)
                f.write("sentinel failover-timeout %s 2000\n" % MASTER)
            self.spawn(["redis-server", conf, "--sentinel"], "sentinel%d.log" % i)
        for port in [self.master_port, self.replica_port] + self.sentinel_ports:
            wait_port(port)
        self.wait_settled()
        conf = os.path.join(self.dir, "proxy.toml")
        addresses = ", ".join('"127.0.0.1:%d"' % p for p in self.sentinel_ports)
        with open(conf, "w") as f:
            f.write('[server]\nlisten = "127.0.0.1:%d"\n' % self.proxy_port)
            f.write('[tls]\ncert = "%s/server.pem"\nkey = "%s/server.key"\nclient_ca = "%s/ca.pem"\n'
                    % (certs, certs, certs))
            f.write('[upstream]\nconnect_timeout_ms = 300\n[upstream.sentinel]\nmaster = "%s"\naddresses = [%s]\n'
                    % (MASTER, addresses))
            f.write('[[users]]\nname = "bench"\nrules = "on ~* &* +@all"\n')
        self.spawn([BIN, "run", "--config", conf], "proxy.log")
        wait_port(self.proxy_port)

    def sentinel_cmd(self, port, *args):
        with socket.create_connection(("127.0.0.1", port), 1) as s:
            f = s.makefile("rb")
            s.sendall(enc(*args))
            return read_reply(f)

    def wait_settled(self):
        end = time.time() + 30
        while time.time() < end:
            ok = True
            for port in self.sentinel_ports:
                try:
                    _, fields = self.sentinel_cmd(port, "SENTINEL", "MASTER", MASTER)
                    d = {fields[i][1]: fields[i + 1][1] for i in range(0, len(fields), 2)}
                    ok &= d.get(b"num-slaves") == b"1" and d.get(b"num-other-sentinels") == b"2"
                except (OSError, ConnectionError, TypeError, IndexError):
                    ok = False
            if ok:
                return
            time.sleep(0.1)
        raise RuntimeError("the sentinels did not settle")

    def stop(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            p.wait()


class Writer(threading.Thread):
    """Writes in order until `stop`; records when each acknowledged write was sent and acknowledged."""

    def __init__(self, name, connect):
        super().__init__(daemon=True)
        self.name, self.connect = name, connect
        self.acked, self.stop = [], threading.Event()

    def run(self):
        n, conn = 0, None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                sent = time.time()
                if conn(b"SET", "%s:%d" % (self.name, n), n):
                    self.acked.append((sent, time.time()))
                    n += 1
                else:
                    time.sleep(0.01)
            except Exception:  # any failure: reconnect and write the same again
                conn = None
                time.sleep(0.01)

    def first_after(self, t):
        """From `t` to the acknowledgement of the first write sent after `t`
        (a reply still on its way from the old master does not count)."""
        return next((acked - t for sent, acked in self.acked if sent > t), None)


def raw_client(host, port, context=None):
    sock = socket.create_connection((host, port), 0.5)
    sock.settimeout(0.5)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    f = sock.makefile("rb")

    def call(*args):
        sock.sendall(enc(*args))
        kind, _ = read_reply(f)
        if kind == b"-":
            raise ConnectionError("error reply")
        return True
    return call


def run_trial(trial, certs, context):
    import redis
    from redis.sentinel import Sentinel

    trial.start(certs)

    def proxy():
        return raw_client("127.0.0.1", trial.proxy_port, context)

    def ask_sentinel():
        for port in trial.sentinel_ports:
            try:
                _, (host, port_) = trial.sentinel_cmd(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
                return raw_client(host[1].decode(), int(port_[1]))
            except (OSError, ConnectionError, TypeError, ValueError):
                continue
        raise ConnectionError("no sentinel")

    sentinel = Sentinel([("127.0.0.1", p) for p in trial.sentinel_ports], socket_timeout=0.5)

    def redis_py():
        master = sentinel.master_for(MASTER, socket_timeout=0.5, retry_on_timeout=False)

        def call(*args):
            return master.execute_command(*args) is not None
        return call

    writers = [Writer("portcullis", proxy), Writer("redis-py", redis_py), Writer("ask-sentinel", ask_sentinel)]
    for w in writers:
        w.start()
    time.sleep(2)
    # The master the sentinels name now (a loaded machine may already have
    # failed over once while starting).
    _, (_, port) = trial.sentinel_cmd(trial.sentinel_ports[0], "SENTINEL",
                                      "GET-MASTER-ADDR-BY-NAME", MASTER)
    master = trial.servers[int(port[1])]
    master.kill()
    master.wait()  # dead: nothing it acknowledges from now on
    killed = time.time()
    end = time.time() + 20
    while time.time() < end and any(w.first_after(killed) is None for w in writers):
        time.sleep(0.05)
    time.sleep(0.5)
    for w in writers:
        w.stop.set()
    for w in writers:
        w.join(2)
    return {w.name: w.first_after(killed) for w in writers}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(BIN):
        subprocess.check_call(["cargo", "build", "--release"], cwd=ROOT)
    tmp = tempfile.mkdtemp(prefix="portcullis-failover.")
    certs = os.path.join(tmp, "certs")
    subprocess.check_call([BIN, "gen-certs", "--out", certs, "--client", "bench"], stdout=subprocess.DEVNULL)
    context = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    context.load_cert_chain(os.path.join(certs, "bench.pem"), os.path.join(certs, "bench.key"))
    results = []
    try:
        for i in range(args.trials):
            trial = Trial(tmp, i)
            try:
                r = run_trial(trial, certs, context)
            finally:
                trial.stop()
            results.append(r)
            print("trial %d: %s" % (i + 1, "  ".join(
                "%s %s" % (k, "%.2f s" % v if v is not None else "none") for k, v in r.items())))
            sys.stdout.flush()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| writer | failover time, median of %d kills (s) | min | max |" % len(results))
    print("|---|--:|--:|--:|")
    for name in results[0]:
        times = [r[name] for r in results if r[name] is not None]
        if times:
            print("| %s | %.2f | %.2f | %.2f |" % (name, statistics.median(times), min(times), max(times)))
        else:
            print("| %s | none | | |" % name)


if __name__ == "__main__":
    main()
