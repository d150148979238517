//! Random conversations (pub/sub, MULTI, CLIENT REPLY, HELLO, pipelined, split
//! anywhere) through the connection task in-process (`conn::serve` over an
//! in-memory client stream, a real redis-server behind it), compared reply
//! frame by reply frame with the same bytes sent straight to a second
//! redis-server: exactly one reply per command, in order, the same bytes.
//!
//! The proxy's `default` user may do everything, so it is transparent; the
//! generator avoids the few commands the proxy refuses inside MULTI where Redis
//! would queue them (AUTH, HELLO, CLIENT REPLY, the SUBSCRIBE family).
//!
//!   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run conversation -- -max_total_time=1800
//!
//! Needs `redis-server` on the PATH (two are started on free loopback ports).
#![no_main]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portcullis::conn::{self, ClientIdentity, Shared, Shutdown};
use portcullis::resp::reply::{pubsub_kind, PubSubKind, ReplyScan, ReplyScanner};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The commands a conversation is made of (`MULTI_UNSAFE`: never inside MULTI).
const ALPHABET: &[(&[&str], bool)] = &[
    (&["PING"], false),
    (&["PING", "x"], false),
    (&["ECHO", "e"], false),
    (&["SET", "k", "v"], false),
    (&["GET", "k"], false),
    (&["INCR", "n"], false),
    (&["WATCH", "k"], false),
    (&["MULTI"], false),
    (&["EXEC"], false),
    (&["DISCARD"], false),
    (&["PUBLISH", "c", "m"], false),
    (&["PUBLISH", "pc", "m"], false),
    (&["CLIENT", "GETNAME"], false),
    (&["NOSUCHCOMMAND", "a"], false),
    (&["GET"], false),
    (&["SUBSCRIBE", "c"], true),
    (&["SUBSCRIBE", "c", "d"], true),
    (&["PSUBSCRIBE", "p*"], true),
    (&["UNSUBSCRIBE"], true),
    (&["UNSUBSCRIBE", "c"], true),
    (&["PUNSUBSCRIBE"], true),
    (&["CLIENT", "REPLY", "OFF"], true),
    (&["CLIENT", "REPLY", "ON"], true),
    (&["CLIENT", "REPLY", "SKIP"], true),
    (&["CLIENT", "REPLY", "skip\0x"], true),
    (&["HELLO", "2"], true),
    (&["HELLO", "3"], true),
    (&["HELLO", "3", "SETNAME", "nm"], true),
    (&["HELLO", "3", "SETNAME", "a b"], true),
    (&["HELLO", "4"], true),
    (&["RESET"], false),
];

struct Env {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    upstream: u16,
    oracle: u16,
    _servers: Vec<Child>,
    _dir: std::path::PathBuf,
}

fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if port != 6379 {
            return port;
        }
    }
}

fn redis(port: u16, dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server")
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("portcullis-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    portcullis::certgen::write_dev_pki(&dir, &[]).expect("dev PKI");
    let (upstream, oracle) = (free_port(), free_port());
    let servers = vec![redis(upstream, &dir), redis(oracle, &dir)];
    let config = dir.join("proxy.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n\
         [upstream]\naddress = \"127.0.0.1:{upstream}\"\n\
         [[users]]\nname = \"default\"\nrules = \"on nopass ~* &* +@all\"\n"
    );
    std::fs::write(&config, text).expect("proxy.toml");
    let parsed = portcullis::config::load(&config).expect("config");
    let shared = portcullis::server::prepare(parsed).expect("prepare").shared;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Wait for both servers.
    rt.block_on(async {
        for port in [upstream, oracle] {
            for _ in 0..200 {
                if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    Env {
        rt,
        shared,
        upstream,
        oracle,
        _servers: servers,
        _dir: dir,
    }
});

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// The reply of the `ECHO` that ends every conversation.
const END_REPLY: &[u8] = b"$3\r\nEND\r\n";

/// The conversation `data` describes: its bytes (ending in `PING`, `RESET`,
/// `ECHO END`), and where the client splits its writes.
fn conversation(data: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut in_multi = false;
    let mut splits = Vec::new();
    for &b in data.iter().take(40) {
        let (cmd, unsafe_in_multi) = ALPHABET[usize::from(b) % ALPHABET.len()];
        if in_multi && unsafe_in_multi {
            continue;
        }
        match cmd[0] {
            "MULTI" => in_multi = true,
            "EXEC" | "DISCARD" | "RESET" => in_multi = false,
            _ => {}
        }
        bytes.extend(encode(cmd));
        if b & 0x80 != 0 {
            splits.push(bytes.len() - usize::from(b & 0x7) - 1);
        }
    }
    // The PING takes a CLIENT REPLY SKIP left at the end (Redis would hide the
    // RESET's reply after one); RESET ends MULTI, pub/sub and CLIENT REPLY OFF.
    bytes.extend(encode(&["PING", "end"]));
    bytes.extend(encode(&["RESET"]));
    bytes.extend(encode(&["ECHO", "END"]));
    (bytes, splits)
}

/// Writes `bytes` (split at `splits`), then reads frames until the `ECHO END`.
async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: S,
    bytes: &[u8],
    splits: &[usize],
) -> Vec<Vec<u8>> {
    let mut at = 0;
    for &split in splits.iter().chain([&bytes.len()]) {
        if split > at && split <= bytes.len() {
            conn.write_all(&bytes[at..split]).await.expect("write");
            conn.flush().await.expect("flush");
            at = split;
        }
    }
    let (mut buf, mut frames) = (Vec::new(), Vec::new());
    let mut scanner = ReplyScanner::new();
    loop {
        match scanner.scan(&buf).expect("valid RESP") {
            ReplyScan::Complete { len } => {
                let frame: Vec<u8> = buf.drain(..len).collect();
                if frame == END_REPLY {
                    return frames;
                }
                frames.push(normalized(frame));
            }
            ReplyScan::Incomplete => {
                let mut chunk = [0u8; 16384];
                let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
                    .await
                    .unwrap_or_else(|_| panic!("stalled; frames so far: {frames:?}"))
                    .expect("read");
                assert!(n > 0, "closed early; frames so far: {frames:?}");
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// A `HELLO` reply's connection id differs between the two servers.
fn normalized(frame: Vec<u8>) -> Vec<u8> {
    let key = b"$2\r\nid\r\n:";
    let Some(at) = frame.windows(key.len()).position(|w| w == key) else {
        return frame;
    };
    let start = at + key.len();
    let end = frame[start..].iter().position(|&b| b == b'\r').map_or(frame.len(), |e| start + e);
    [&frame[..start], b"ID", &frame[end..]].concat()
}

/// Unsubscribe-all confirmations come in hash-table order (each server seeds
/// its own): within a run of them, the channel names are put in sorted order
/// and the counts, which depend only on the position, stay where they are.
fn sorted_confirmations(mut frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    // (the kind lines, the channel, the count) of a RESP2 or RESP3 confirmation.
    fn parts(f: &[u8]) -> Option<(usize, usize)> {
        if !matches!(
            pubsub_kind(f),
            Some((PubSubKind::Unsubscribe | PubSubKind::PUnsubscribe, _))
        ) {
            return None;
        }
        let mut lines = f.windows(2).enumerate().filter(|(_, w)| w == b"\r\n");
        let head_end = lines.nth(2)?.0 + 2;
        let count_at = f.iter().rposition(|&b| b == b':')?;
        (head_end <= count_at).then_some((head_end, count_at))
    }
    let mut i = 0;
    while i < frames.len() {
        let mut j = i;
        while j < frames.len() && parts(&frames[j]).is_some() {
            j += 1;
        }
        let mut names: Vec<Vec<u8>> = frames[i..j]
            .iter()
            .filter_map(|f| parts(f).map(|(h, c)| f[h..c].to_vec()))
            .collect();
        names.sort();
        for (frame, name) in frames[i..j].iter_mut().zip(names) {
            if let Some((h, c)) = parts(frame) {
                *frame = [&frame[..h], &name[..], &frame[c..]].concat();
            }
        }
        i = j.max(i + 1);
    }
    frames
}

async fn flush(port: u16) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.expect("admin");
    c.write_all(&encode(&["FLUSHALL"])).await.expect("flushall");
    let mut line = [0u8; 5];
    c.read_exact(&mut line).await.expect("+OK");
}

fuzz_target!(|data: &[u8]| {
    let env = &*ENV;
    let (bytes, splits) = conversation(data);
    env.rt.block_on(async {
        flush(env.upstream).await;
        flush(env.oracle).await;
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let client = ClientIdentity {
            addr: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:6380".parse().unwrap(),
            cert_user: None,
            identity: None,
        };
        let task = tokio::spawn(conn::serve(
            theirs,
            client,
            Arc::clone(&env.shared),
            env.shared.live(),
            Shutdown::default(),
        ));
        let oracle = TcpStream::connect(("127.0.0.1", env.oracle)).await.expect("oracle");
        let (proxy, redis) = tokio::join!(
            talk(ours, &bytes, &splits),
            talk(oracle, &bytes, &[])
        );
        task.abort();
        let (proxy, redis) = (sorted_confirmations(proxy), sorted_confirmations(redis));
        assert_eq!(
            proxy,
            redis,
            "conversation {:?}",
            String::from_utf8_lossy(&bytes)
        );
    });
});
