#!/usr/bin/env python3
"""Soak test for portcullis (not run in CI): good clients must see zero errors while abusers hammer the proxy.

    python3 scripts/soak.py [--duration 60] [--good 1000] [--bad 1500]
                            [--rate-mode reject|delay] [--bin PATH] [--no-new-keys] [--keep]

Needs Python 3.11 (stdlib only), redis-server on PATH and `cargo build --release`. Makes a dev PKI
(clients good, abuser, hog) in a temp dir, starts redis-server and the proxy on free loopback ports,
then runs --good clients (cert `good`, from 127.0.0.2: SET/GET, 20-command pipelines, pub/sub, BLPOP
timeouts, every reply checked, reconnecting now and then) next to --bad abusers (from 127.0.0.1)
rotating through: protocol garbage, a declared 60 MB bulk trickled, idle TLS, TCP without TLS,
wrong-password AUTH loops, rate abuse and >50 connections as `abuser`, slow readers (200 pipelined
GETs of 4 MiB, never read; at most 2 at once: redis-server buffers up to 800 MiB for each) and TLS
connection floods. A status line every 5 s, a summary at the end. Exit 1 if a good client saw an
unexpected reply, error or disconnect, or the proxy died. Abuser observations are informational.
--new-keys (default on) sets limits.conn_rate_per_ip / auth_failures_per_ip, falling back without
them if `portcullis check` refuses them. PORTCULLIS_LOG sets the proxy's log level (default warn).
"""
import argparse, asyncio, collections, contextlib, json, os, random, resource, shutil, signal
import socket, ssl, subprocess, sys, tempfile, time
from pathlib import Path

GOOD_IP, BAD_IP = "127.0.0.2", "127.0.0.1"  # separate sources: per-IP limits must not hit good clients
OP_TIMEOUT = 30.0                           # one good-client operation, seconds
IDLE_TIMEOUT_S = 20
NEW_KEYS = ("conn_rate_per_ip = { ops_per_sec = 2000, burst = 4000 }\n"
            "auth_failures_per_ip = { ops_per_sec = 50, burst = 100 }\n")
REFUSALS = ("-ERR max number", "-ERR rate limit", "-ERR Protocol error", "closed", "reset", "tls error")
CAPS = {"rate": 8, "overflow": 1, "slowreader": 2}  # these abuser kinds run at most N at once

class Err(str):  # an error reply (-...)
    pass

class GoodError(Exception):  # a good client saw something it should not have
    pass

class Run:
    """Shared state of one soak run."""
    def __init__(self, args, port, certs):
        self.args, self.port, self.stop, self.t0 = args, port, asyncio.Event(), time.monotonic()
        self.ctx = {name: client_ctx(certs, name) for name in ("good", "abuser", "hog")}
        self.blob, self.big = os.urandom(8192), os.urandom(4 << 20)
        self.good_ok = self.open = self.refusals = self.max_rss = 0
        self.good_err, self.first_errors = collections.Counter(), []
        self.bad = collections.defaultdict(collections.Counter)
        self.sems = {k: asyncio.Semaphore(v) for k, v in CAPS.items()}

    def note(self, kind, obs, n=1):
        self.bad[kind][obs] += n
        if any(m in obs for m in REFUSALS):
            self.refusals += n

    def good_error(self, i, reason):
        self.good_err[reason] += 1
        if len(self.first_errors) < 10:
            self.first_errors.append(f"t={time.monotonic() - self.t0:.1f}s client {i}: {reason}")


# ---------------------------------------------------------------- RESP and connections
def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

async def send(w, data):
    w.write(data)
    await w.drain()

async def read_reply(r):
    line = await r.readuntil(b"\r\n")
    t, rest = line[:1], line[1:-2]
    if t in (b"$", b"*"):
        if (n := int(rest)) < 0:
            return None
        return (await r.readexactly(n + 2))[:-2] if t == b"$" else [await read_reply(r) for _ in range(n)]
    if not (conv := {b"+": bytes.decode, b"-": lambda b: Err(b.decode(errors="replace")), b":": int}.get(t)):
        raise ValueError(f"bad reply line {line[:40]!r}")
    return conv(rest)

def short(x):
    """A reply (or a raw first reply line) as a short, tally-friendly string."""
    if isinstance(x, (bytes, bytearray)):
        s = bytes(x).decode(errors="replace").strip()
        if s in ("$-1", "*-1"):
            return "nil"
        if not s or s[0] not in "+-:$*":
            return "non-RESP data"
        if s[0] != "-":
            return s[:30] if s[0] == "+" else {":": "integer", "$": "bulk", "*": "array"}[s[0]]
        x = Err(s[1:])
    if x is None:
        return "nil"
    if isinstance(x, Err):
        return "-" + x.split("'")[0].rstrip(", ")[:60]
    return repr(x)[:60]

def exc_name(e):
    if isinstance(e, ssl.SSLError):
        return f"tls error {e.reason or e}"
    return "closed" if isinstance(e, EOFError) else type(e).__name__

def secs(x):
    return "<1s" if x < 1 else f"~{int(x)}s" if x < 5 else f"~{5 * round(x / 5)}s"

def client_ctx(certs, name):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.load_cert_chain(str(certs / f"{name}.pem"), str(certs / f"{name}.key"))
    return ctx

@contextlib.asynccontextmanager
async def open_conn(run, cert, ip=BAD_IP, tls=True):
    kw = dict(ssl=run.ctx[cert], server_hostname="localhost", ssl_handshake_timeout=20) if tls else {}
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", run.port, local_addr=(ip, 0), **kw), 25)
    run.open += 1
    try:
        yield r, w
    finally:
        run.open -= 1
        w.close() if ip == GOOD_IP else w.transport.abort()

async def observe(r, t=5.0):
    """First reply line (or what happened instead) as a short string."""
    try:
        return short(await asyncio.wait_for(r.readuntil(b"\r\n"), t))
    except asyncio.IncompleteReadError:
        return "closed"
    except TimeoutError:
        return f"no reply in {t:.0f}s"
    except (OSError, asyncio.LimitOverrunError) as e:
        return exc_name(e)

async def watch(r, t):
    """Read until EOF or t seconds: 'open Ns', '[first reply; ]closed ~Ns' or 'reset'."""
    t0, first = time.monotonic(), ""
    try:
        while data := await asyncio.wait_for(r.read(65536), max(0.01, t0 + t - time.monotonic())):
            first = first or short(data.split(b"\r\n")[0] + b"\r\n") + "; "
        return f"{first}closed {secs(time.monotonic() - t0)}"
    except TimeoutError:
        return f"{first}open {t:.0f}s"
    except OSError as e:
        return first + ("reset" if isinstance(e, ConnectionResetError) else exc_name(e))


# ---------------------------------------------------------------- good clients
class Good:
    def __init__(self, run, i):
        self.run, self.i, self.n, self.op = run, i, 0, "connect"
        self.chan = f"soak:ch:{i}".encode()

    async def ask(self, op, conn, ok, *args):
        """Send args (if any), read one reply, raise GoodError unless ok(reply)."""
        self.op = op
        if args:
            await send(conn[1], cmd(*args))
        got = await read_reply(conn[0])
        if not ok(got):
            raise GoodError(f"{op}: unexpected {'value mismatch' if isinstance(got, bytes) else short(got)}")

    def value(self):
        n = random.randint(1, 4096)
        off = random.randrange(len(self.run.blob) - n)
        return self.run.blob[off:off + n]

    async def setget(self):
        key, val = f"soak:{self.i}:{self.n % 50}", self.value()
        await self.ask("SET", self.c, lambda g: g == "OK", "SET", key, val)
        await self.ask("GET", self.c, lambda g: g == val, "GET", key)

    async def pipeline(self):
        vals = [self.value() for _ in range(10)]
        await send(self.c[1], b"".join(cmd("SET", f"soak:{self.i}:p{j}", v) for j, v in enumerate(vals))
                   + b"".join(cmd("GET", f"soak:{self.i}:p{j}") for j in range(10)))
        for want in ["OK"] * 10 + vals:
            await self.ask("pipeline", self.c, lambda g: g == want)

    async def pubsub(self):
        msg = self.value()
        await self.ask("PUBLISH", self.c, lambda g: isinstance(g, int) and g >= 1, "PUBLISH", self.chan, msg)
        await self.ask("pubsub receive", self.sub, lambda g: g == [b"message", self.chan, msg])
        await self.ask("pubsub PING", self.sub, lambda g: g == [b"pong", b""], "PING")  # subscriber stays active

    async def step(self):
        if self.n % 25 == 7:
            await self.ask("BLPOP", self.c, lambda g: g is None, "BLPOP", f"soak:empty:{self.i}", 1)
        elif self.n % 5 == 3:
            await self.pipeline()
        elif self.n % 5 == 1 and self.sub:
            await self.pubsub()
        else:
            await self.setget()

    async def loop(self, delay):
        await asyncio.sleep(delay)
        while not self.run.stop.is_set():
            self.op = "connect"
            try:
                async with contextlib.AsyncExitStack() as st:
                    self.c = await st.enter_async_context(open_conn(self.run, "good", GOOD_IP))
                    self.sub = None
                    if self.i % 4 == 0:  # every 4th client also holds a subscriber connection
                        self.sub = await st.enter_async_context(open_conn(self.run, "good", GOOD_IP))
                        await self.ask("SUBSCRIBE", self.sub, lambda g: g == [b"subscribe", self.chan, 1],
                                       "SUBSCRIBE", self.chan)
                    last = self.n + random.randint(200, 2000)  # then reconnect: new connections must work too
                    while not self.run.stop.is_set() and self.n < last:
                        self.n += 1
                        await asyncio.wait_for(self.step(), OP_TIMEOUT)
                        self.run.good_ok += 1
                    continue
            except GoodError as e:
                self.run.good_error(self.i, str(e))
            except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as e:
                self.run.good_error(self.i, f"{self.op}: {exc_name(e)}")
            await asyncio.sleep(0.5)  # then reconnect


# ---------------------------------------------------------------- abusers
GARBAGE = [("*3000000000", b"*3000000000\r\n"), ("$blabla", b"$blabla\r\n"),
           ("*1 $blabla", b"*1\r\n$blabla\r\n"), ("unbalanced quotes", b'SET "x\r\n'), ("random", None)]

async def k_garbage(run):
    label, data = random.choice(GARBAGE)
    async with open_conn(run, "hog") as (r, w):
        await send(w, data or os.urandom(random.randint(1, 300)) + b"\r\n")
        first = await observe(r)
        run.note("garbage", f"{label}: {first}; {await watch(r, 3)}")

async def k_hugebulk(run):
    async with open_conn(run, "hog") as (r, w):
        await send(w, b"*3\r\n$3\r\nSET\r\n$8\r\nabuse:hb\r\n$60000000\r\n" + os.urandom(16))
        t0 = time.monotonic()
        for _ in range(15):
            if not (got := await watch(r, 1)).startswith("open"):
                return run.note("hugebulk", f"$60000000 trickled: {got} (after {secs(time.monotonic() - t0)})")
            await send(w, os.urandom(8))
        run.note("hugebulk", "$60000000 trickled 15s: still open")

async def k_idle(run):
    async with open_conn(run, "hog") as (r, w):
        run.note("idle", await watch(r, IDLE_TIMEOUT_S + 10))

async def k_notls(run):
    async with open_conn(run, None, tls=False) as (r, w):
        run.note("notls", await watch(r, 30))

async def k_authloop(run):
    async with open_conn(run, "good") as (r, w):
        for _ in range(100):
            t0 = time.monotonic()
            await send(w, cmd("AUTH", "pw", "wrongpass"))
            got = await observe(r, 10)
            run.note("authloop", got + (" (delayed >0.5s)" if time.monotonic() - t0 > 0.5 else ""))
            if not got.startswith("-"):
                return
        await send(w, cmd("AUTH", "pw", "secretpw"))
        run.note("authloop", f"right password after 100 failures: {await observe(r, 10)}")

async def k_rate(run):
    tally = collections.Counter()
    async with open_conn(run, "abuser") as (r, w):
        await send(w, cmd("GET", "abuse:x") * 5000)
        try:
            for _ in range(5000):
                tally[short(await asyncio.wait_for(r.readuntil(b"\r\n"), 30))] += 1
        except (OSError, EOFError) as e:
            tally[f"stopped: {exc_name(e)}"] += 1
    for obs, n in tally.items():
        run.note("rate", obs, n)

async def k_overflow(run):
    async with contextlib.AsyncExitStack() as st:
        async def one():
            try:
                r, w = await st.enter_async_context(open_conn(run, "abuser"))
                await send(w, cmd("PING"))
                got = await observe(r, 10)
                run.note("overflow", got if got.startswith("+") else f"{got}; {await watch(r, 3)}")
            except (OSError, EOFError) as e:
                run.note("overflow", f"connect: {exc_name(e)}")
        await asyncio.gather(*(one() for _ in range(60)))
        await asyncio.sleep(3)

async def k_slowreader(run):
    async with open_conn(run, "hog") as (r, w):
        await asyncio.wait_for(send(w, cmd("SET", "hog:big", run.big)), 30)
        if (got := await observe(r, 30)) != "+OK":
            return run.note("slowreader", f"SET 4MiB: {got}")
        await asyncio.wait_for(send(w, cmd("GET", "hog:big") * 200), 30)
        await asyncio.sleep(random.uniform(10, 25))
        run.note("slowreader", "200 x GET 4MiB pipelined, never read")

async def k_flood(run):
    end = time.monotonic() + 5
    while time.monotonic() < end and not run.stop.is_set():
        try:
            async with open_conn(run, "hog") as (r, w):
                if random.random() < 0.5:
                    await send(w, cmd("PING"))
                    run.note("flood", await observe(r, 10))
                else:
                    run.note("flood", "connected, closed at once")
        except (OSError, EOFError) as e:
            run.note("flood", f"connect: {exc_name(e)}")

KINDS = {"garbage": k_garbage, "hugebulk": k_hugebulk, "idle": k_idle, "notls": k_notls,
         "authloop": k_authloop, "rate": k_rate, "overflow": k_overflow,
         "slowreader": k_slowreader, "flood": k_flood}

async def abuser(run, i):
    names, k = list(KINDS), i
    while not run.stop.is_set():
        kind, k = names[k % len(names)], k + 1
        sem = run.sems.get(kind) or contextlib.nullcontext()
        if isinstance(sem, asyncio.Semaphore) and sem.locked():
            continue
        t0 = time.monotonic()
        try:
            async with sem:
                await KINDS[kind](run)
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as e:
            run.note(kind, f"error: {exc_name(e)}")
        except asyncio.CancelledError:
            if kind in ("hugebulk", "idle", "notls", "slowreader"):
                run.note(kind, f"still open at the end of the run ({secs(time.monotonic() - t0)} in)")
            raise
        await asyncio.sleep(random.uniform(0, 0.1))


# ---------------------------------------------------------------- processes and config
def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            if (port := s.getsockname()[1]) != 6379:
                return port

def wait_port(port, proc, what, ping=False):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"soak: {what} exited with status {proc.returncode} at startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if not ping:
                    return
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"soak: {what} did not come up on port {port}")

def write_config(path, args, port, redis_port, new_keys):
    users = [("good", "on ~* &* +@all", ""),
             ("abuser", "on ~abuse:* +@all -@dangerous", "rate = { ops_per_sec = 2000, burst = 200 }\nmax_clients = 50\n"),
             ("hog", "on ~* +@all", ""), ("pw", "on >secretpw ~* +@all", "")]
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nshutdown_grace_s = 5\n\n'
        '[tls]\ncert = "certs/server.pem"\nkey = "certs/server.key"\nclient_ca = "certs/ca.pem"\n'
        f'client_auth = "required"\n\n[upstream]\naddress = "127.0.0.1:{redis_port}"\n\n[auth]\ncert_user = "cn"\n\n'
        f'[limits]\nmax_clients = 5000\nmax_clients_per_ip = 4000\nmax_bulk_len = {64 << 20}\n'
        f'max_query_buffer = {128 << 20}\nidle_timeout_s = {IDLE_TIMEOUT_S}\nrate_mode = "{args.rate_mode}"\n'
        + (NEW_KEYS if new_keys else "")
        + "".join(f'\n[[users]]\nname = "{n}"\nrules = "{r}"\n{extra}' for n, r, extra in users))

def check_config(binary, path, args, port, redis_port):
    """Write proxy.toml and run `portcullis check`; fall back without the new keys if it refuses them."""
    for new_keys in ([True, False] if args.new_keys else [False]):
        write_config(path, args, port, redis_port, new_keys)
        res = subprocess.run([binary, "check", "--config", str(path)], capture_output=True, text=True)
        if res.returncode == 0:
            return new_keys
        out = (res.stdout + res.stderr).strip()
        if not new_keys:
            sys.exit(f"soak: `portcullis check` refused the config:\n{out}")
        print("soak: `portcullis check` refused the config with the new [limits] keys conn_rate_per_ip / "
              "auth_failures_per_ip (this binary probably predates them); falling back without them. "
              f"check said:\n  {out}", flush=True)

def raise_nofile(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    need = 2 * (args.good * 5 // 4 + args.bad + 100) + 200  # the proxy holds a client and an upstream fd each
    if soft != resource.RLIM_INFINITY and soft < need:
        print(f"soak: WARNING: open-file limit {soft} is below the ~{need} this run needs "
              "(raise the hard limit: ulimit -Hn, limits.conf)", flush=True)

def proc_mem(pid):
    """(VmRSS, VmSize) of a process in bytes, from /proc/<pid>/status."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        mem = {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in f) if k in ("VmRSS", "VmSize")}
        return mem.get("VmRSS", 0), mem.get("VmSize", 0)
    return 0, 0

def mib(n):
    return f"{n / (1 << 20):.1f} MiB"

def stop(proc, timeout=15):
    """SIGTERM (then SIGKILL after timeout) a process we started; its exit status."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc and proc.wait()


# ---------------------------------------------------------------- the run
async def soak(args, port, certs, proxy):
    run = Run(args, port, certs)
    ramp = min(5.0, args.good / 200)  # spread the good clients' TLS handshakes, then start the abusers
    died, end, bads = False, run.t0 + args.duration, []
    goods = [asyncio.create_task(Good(run, i).loop(ramp * i / max(args.good, 1))) for i in range(args.good)]
    try:
        await asyncio.sleep(ramp + 1)
        bads = [asyncio.create_task(abuser(run, i)) for i in range(args.bad)]
        died = await monitor(run, proxy, end)
    finally:  # also on Ctrl-C (cancelled): stop flag first, since Python 3.11's wait_for can swallow a cancel
        run.stop.set()
        for t in bads:
            t.cancel()
        if not died and time.monotonic() >= end:
            await asyncio.wait(goods, timeout=OP_TIMEOUT + 5)  # good clients finish their current operation
        while pending := [t for t in goods + bads if not t.done()]:
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=1)
    return run, died or proxy.poll() is not None

async def monitor(run, proxy, end):
    """Sample the proxy every second, print a status line every 5 s; True if the proxy died."""
    last_ok, last_ref, next_status = 0, 0, run.t0 + 5
    while (now := time.monotonic()) < end:
        await asyncio.sleep(min(1, end - now))
        if proxy.poll() is not None:
            print(f"soak: PROXY DIED (status {proxy.returncode})", flush=True)
            return True
        rss, vsz = proc_mem(proxy.pid)
        run.max_rss = max(run.max_rss, rss)
        if time.monotonic() >= next_status:
            fds = "?"
            with contextlib.suppress(OSError):
                fds = len(os.listdir(f"/proc/{proxy.pid}/fd"))
            print(f"[{time.monotonic() - run.t0:4.0f}s] good ok {run.good_ok} (+{(run.good_ok - last_ok) / 5:.0f}/s) "
                  f"errors {sum(run.good_err.values())} | open conns {run.open} (proxy fds {fds}) | proxy RSS "
                  f"{mib(rss)} VmSize {mib(vsz)} | abuser refusals {(run.refusals - last_ref) / 5:.0f}/s", flush=True)
            last_ok, last_ref, next_status = run.good_ok, run.refusals, next_status + 5
    return False

def summary(run, died, proxy_status, new_keys):
    errs = sum(run.good_err.values())
    print(f"\n==== soak summary ({run.args.duration:.0f}s, {run.args.good} good, {run.args.bad} abusive, "
          f"rate_mode {run.args.rate_mode}, new [limits] keys {'on' if new_keys else 'off'}) ====")
    print(f"good ops ok: {run.good_ok}")
    print(f"GOOD-CLIENT ERRORS: {errs}" + ("" if errs else " (ok)"))
    for reason, n in run.good_err.most_common():
        print(f"  {n:8d}  {reason}")
    for line in run.first_errors:
        print(f"  first: {line}")
    print(f"proxy max RSS: {mib(run.max_rss)}; proxy {'DIED' if died else 'alive'} at the end; "
          f"exit status after SIGTERM: {proxy_status}")
    print("abusers (informational):")
    for kind in KINDS:
        tally = run.bad.get(kind, {})
        print(f"  {kind}: {sum(tally.values())} observations")
        for obs, n in sorted(tally.items(), key=lambda kv: -kv[1])[:8]:
            print(f"    {n:8d}  {obs}")
    return 1 if errs or died else 0

def log_summary(path):
    """Tally the proxy's WARN/ERROR log lines by message; show lines that are not JSON (panics)."""
    tally, raw = collections.Counter(), []
    for line in open(path, errors="replace"):
        try:
            ev = json.loads(line)
        except ValueError:
            raw.append(line.rstrip()[:200])
            continue
        f = ev.get("fields", {})
        tally[f"{ev.get('level')} {f.get('message')}" + (f" ({str(f['error'])[:60]})" if "error" in f else "")] += 1
    print("proxy log (informational):" + ("" if tally or raw else " empty"))
    for msg, n in tally.most_common(10):
        print(f"  {n:8d}  {msg}")
    for line in raw[:10]:
        print(f"  non-JSON: {line}")

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60, help="seconds (default 60)")
    p.add_argument("--good", type=int, default=1000, help="good clients (default 1000)")
    p.add_argument("--bad", type=int, default=1500, help="abusive clients (default 1500)")
    p.add_argument("--rate-mode", choices=["reject", "delay"], default="reject")
    p.add_argument("--bin", default=str(Path(__file__).resolve().parent.parent / "target/release/portcullis"))
    p.add_argument("--new-keys", action=argparse.BooleanOptionalAction, default=True,
                   help="put limits.conn_rate_per_ip / auth_failures_per_ip in the config (default on)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (config, certs, proxy log)")
    args = p.parse_args()
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        sys.exit(f"soak: no proxy binary at {binary}; build it with `cargo build --release` (or pass --bin)")
    if not shutil.which("redis-server"):
        sys.exit("soak: redis-server not found on PATH (apt-get install redis-server)")
    raise_nofile(args)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    tmp, redis, proxy, code = Path(tempfile.mkdtemp(prefix="portcullis-soak-")), None, None, 1
    try:
        certs = tmp / "certs"
        subprocess.run([binary, "gen-certs", "--out", str(certs), "--client", "good", "--client", "abuser",
                        "--client", "hog"], check=True, capture_output=True)
        redis_port, port = free_port(), free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(redis_port, redis, "redis-server", ping=True)
        new_keys = check_config(binary, tmp / "proxy.toml", args, port, redis_port)
        env = dict(os.environ, PORTCULLIS_LOG=os.environ.get("PORTCULLIS_LOG", "warn"))
        with open(tmp / "proxy.log", "wb") as log:
            proxy = subprocess.Popen([binary, "--log-format", "json", "run", "--config", str(tmp / "proxy.toml")], stdout=log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_port(port, proxy, "portcullis")
        print(f"soak: proxy pid {proxy.pid} on 127.0.0.1:{port}, redis-server on {redis_port}; "
              f"{args.good} good + {args.bad} abusive clients for {args.duration:.0f}s", flush=True)
        run, died = asyncio.run(soak(args, port, certs, proxy))
        status = stop(proxy)
        code = summary(run, died, status, new_keys)
        log_summary(tmp / "proxy.log")
    except KeyboardInterrupt:
        print("\nsoak: interrupted, cleaning up", flush=True)
        code = 130
    except subprocess.CalledProcessError as e:
        print(f"soak: {' '.join(map(str, e.cmd[:2]))} failed:\n{e.stderr.decode(errors='replace')}")
    finally:
        stop(proxy)
        stop(redis)
        if args.keep:
            print(f"soak: kept {tmp} (proxy.toml, proxy.log, certs)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(code)

if __name__ == "__main__":
    main()
