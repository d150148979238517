//! Redis as the oracle for whole conversations: the same commands, as one
//! pipelined byte stream, go to the proxy (over mTLS, in front of one
//! redis-server) and straight to a second redis-server that has the same
//! users; the reply streams are cut into frames (by the proxy's own reply
//! scanner, so pushes stay where Redis put them) and compared byte for byte.
//!
//! Each conversation starts unauthenticated on a fresh connection with empty
//! databases, and ends with `PING`, `RESET` and an `ECHO` whose reply marks
//! the end (RESET ends `CLIENT REPLY OFF`, pub/sub mode and MULTI; the PING
//! takes a `CLIENT REPLY SKIP` that would hide RESET's reply).

use std::time::Duration;

use portcullis::resp::reply::{ReplyScan, ReplyScanner};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{base_config, encode_command, resp_tls, Proxy, RedisServer, RespConn, TestPki};

/// How long a conversation may take to be answered.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One command as arguments.
pub type Command = Vec<Vec<u8>>;

/// A command from string arguments.
pub fn command(args: &[&str]) -> Command {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// A proxy and an oracle redis-server with the same users.
pub struct SameStream {
    /// The test PKI (the client certificate `bob` names no user).
    pub pki: TestPki,
    /// The proxy's upstream.
    pub upstream: RedisServer,
    /// The redis-server the proxy is compared with.
    pub oracle: RedisServer,
    /// The proxy.
    pub proxy: Proxy,
    /// The upstream's name for FLUSHALL (its redis.conf may rename it).
    flushall: String,
}

impl SameStream {
    /// Starts both sides with `users` (`(name, rules)`, rules in proxy.toml
    /// syntax; each user also gets password `pw`) and `extra` proxy.toml text.
    pub async fn start(users: &[(&str, &str)], extra: &str) -> SameStream {
        Self::start_upstream(users, extra, &[], "").await
    }

    /// Like [`SameStream::start`], the proxy's upstream started with
    /// `upstream_args` and `upstream_keys` added to proxy.toml's `[upstream]`.
    pub async fn start_upstream(
        users: &[(&str, &str)],
        extra: &str,
        upstream_args: &[&str],
        upstream_keys: &str,
    ) -> SameStream {
        Self::start_with_keys(users, extra, upstream_args, "", upstream_keys).await
    }

    /// Like [`SameStream::start_upstream`], `server_keys` added to `[server]`.
    pub async fn start_with_keys(
        users: &[(&str, &str)],
        extra: &str,
        upstream_args: &[&str],
        server_keys: &str,
        upstream_keys: &str,
    ) -> SameStream {
        let pki = TestPki::new();
        let upstream = RedisServer::start_with(upstream_args);
        let oracle = RedisServer::start();
        let mut toml = String::from(extra);
        let end_user = (END_USER, "on -@all +echo");
        let users: Vec<(&str, &str)> = users.iter().copied().chain([end_user]).collect();
        let users = users.as_slice();
        for (name, rules) in users {
            toml.push_str(&format!(
                "\n[[users]]\nname = \"{name}\"\nrules = \"{rules} >pw >end-pw\"\n"
            ));
        }
        let config = base_config(&pki, &upstream.addr(), &toml)
            .replace("[server]\n", &format!("[server]\n{server_keys}\n"))
            .replace("[upstream]\n", &format!("[upstream]\n{upstream_keys}\n"));
        let proxy = Proxy::start(&config, pki.dir());
        let mut admin = RespConn::connect_tcp(&oracle.addr()).await.expect("oracle");
        for (name, rules) in users {
            let merged = portcullis::acl::rules::merge_selector_args(
                rules.split_ascii_whitespace().chain([">pw", ">end-pw"]),
            )
            .expect("rules");
            let mut cmd: Vec<&[u8]> = vec![b"ACL", b"SETUSER", name.as_bytes(), b"reset"];
            cmd.extend(merged.iter().map(|s| s.as_bytes()));
            let reply = admin.cmd(&cmd).await;
            assert!(reply.is_ok(), "ACL SETUSER {name}: {reply:?}");
        }
        // The oracle's own admin, then `default` off like the proxy's missing default.
        let admin_user = [
            &b"ACL"[..],
            b"SETUSER",
            b"oracle-admin",
            b"on",
            b">oracle-pw",
            b"~*",
            b"&*",
            b"+@all",
        ];
        assert!(admin.cmd(&admin_user).await.is_ok());
        assert!(admin
            .cmd_str(&["ACL", "SETUSER", "default", "off"])
            .await
            .is_ok());
        let flushall = upstream_args
            .windows(3)
            .find(|w| w[0] == "--rename-command" && w[1].eq_ignore_ascii_case("flushall"))
            .map_or("FLUSHALL", |w| w[2])
            .to_string();
        SameStream {
            pki,
            upstream,
            oracle,
            proxy,
            flushall,
        }
    }

    /// Empties both sides' databases, scripts and functions.
    async fn flush(&self) {
        let mut up = RespConn::connect_tcp(&self.upstream.addr())
            .await
            .expect("upstream");
        for cmd in [
            &[self.flushall.as_str()][..],
            &["SCRIPT", "FLUSH"],
            &["FUNCTION", "FLUSH"],
        ] {
            up.cmd_str(cmd).await;
        }
        let mut oracle = RespConn::connect_tcp(&self.oracle.addr())
            .await
            .expect("oracle");
        assert!(oracle
            .cmd_str(&["AUTH", "oracle-admin", "oracle-pw"])
            .await
            .is_ok());
        for cmd in [
            &["FLUSHALL"][..],
            &["SCRIPT", "FLUSH"],
            &["FUNCTION", "FLUSH"],
        ] {
            oracle.cmd_str(cmd).await;
        }
    }

    /// The reply frames of `commands` from the proxy and from the oracle, in
    /// order, each as raw bytes (the closing [`END`]'s replies left out).
    pub async fn replies(&self, commands: &[Command]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        self.flush().await;
        let stream = pipeline(commands);
        let proxy = resp_tls(self.proxy.tls_addr(), &self.pki, Some("bob")).await;
        let oracle = TcpStream::connect(self.oracle.addr())
            .await
            .expect("oracle");
        let (p, o) = tokio::join!(
            conversation(proxy.into_inner(), &stream),
            conversation(oracle, &stream)
        );
        let show = |side: &str, r: Result<Vec<Vec<u8>>, String>| {
            r.unwrap_or_else(|e| panic!("{side}: {e}\nfor:\n{}", show_commands(commands)))
        };
        (show("proxy", p), show("redis", o))
    }

    /// The proxy's reply frames alone (where Redis is no reference).
    pub async fn proxy_replies(&self, commands: &[Command]) -> Vec<Vec<u8>> {
        self.flush().await;
        let stream = pipeline(commands);
        let proxy = resp_tls(self.proxy.tls_addr(), &self.pki, Some("bob")).await;
        conversation(proxy.into_inner(), &stream)
            .await
            .unwrap_or_else(|e| panic!("proxy: {e}\nfor:\n{}", show_commands(commands)))
    }

    /// Asserts that the proxy answers `commands` exactly as Redis does.
    pub async fn assert_same(&self, commands: &[Command]) {
        let (proxy, oracle) = self.replies(commands).await;
        if let Err(e) = compare(commands, proxy, oracle) {
            panic!("{e}");
        }
    }

    /// Like [`SameStream::assert_same`] without emptying the databases first,
    /// so many conversations may run at once (on keys of their own); the
    /// difference, if any, as text.
    pub async fn same_alongside(&self, commands: &[Command]) -> Result<(), String> {
        let stream = pipeline(commands);
        let proxy = resp_tls(self.proxy.tls_addr(), &self.pki, Some("bob")).await;
        let oracle = TcpStream::connect(self.oracle.addr())
            .await
            .map_err(|e| format!("oracle: {e}"))?;
        let (p, o) = tokio::join!(
            conversation(proxy.into_inner(), &stream),
            conversation(oracle, &stream)
        );
        let p = p.map_err(|e| format!("proxy: {e}\nfor:\n{}", show_commands(commands)))?;
        let o = o.map_err(|e| format!("redis: {e}\nfor:\n{}", show_commands(commands)))?;
        compare(commands, p, o)
    }
}

/// The proxy's and Redis's frames for `commands`, equal or the difference.
fn compare(
    commands: &[Command],
    mut proxy: Vec<Vec<u8>>,
    mut oracle: Vec<Vec<u8>>,
) -> Result<(), String> {
    unsubscribe_in_name_order(&mut proxy);
    unsubscribe_in_name_order(&mut oracle);
    if proxy == oracle {
        return Ok(());
    }
    let first = proxy
        .iter()
        .zip(&oracle)
        .position(|(p, o)| p != o)
        .unwrap_or(proxy.len().min(oracle.len()));
    Err(format!(
        "the proxy differs from Redis at reply {first} for:\n{}\nproxy:\n{}\nredis:\n{}",
        show_commands(commands),
        show_frames(&proxy),
        show_frames(&oracle)
    ))
}

/// Commands, one per line, arguments escaped.
pub fn show_commands(commands: &[Command]) -> String {
    commands
        .iter()
        .map(|c| {
            c.iter()
                .map(|a| format!("'{}'", a.escape_ascii()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Frames, one per line, escaped.
pub fn show_frames(frames: &[Vec<u8>]) -> String {
    frames
        .iter()
        .map(|f| format!("  {}", f.escape_ascii()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `HELLO` reply names the connection's id, which differs between the two
/// sides by nature: it is replaced by `ID`.
fn without_connection_id(frame: Vec<u8>) -> Vec<u8> {
    let is_hello = frame.starts_with(b"%7\r\n$6\r\nserver\r\n")
        || frame.starts_with(b"*14\r\n$6\r\nserver\r\n");
    let key = b"$2\r\nid\r\n:";
    let Some(at) = is_hello
        .then(|| frame.windows(key.len()).position(|w| w == key))
        .flatten()
    else {
        return frame;
    };
    let start = at + key.len();
    let Some(end) = frame[start..].iter().position(|&b| b == b'\r') else {
        return frame;
    };
    [&frame[..start], b"ID", &frame[start + end..]].concat()
}

/// An `UNSUBSCRIBE` without arguments confirms each channel in the order of
/// Redis's hash table, which is seeded at random per process: within each run
/// of such confirmations the channel names are put in sorted order (the
/// counts, which only depend on the position, stay).
fn unsubscribe_in_name_order(frames: &mut [Vec<u8>]) {
    // `>3` or `*3`, the kind, the channel (or null), the count.
    fn parts(frame: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
        let kind_end = frame.windows(2).skip(4).position(|w| w == b"\r\n")? + 4 + 2;
        let kind_line_end = frame[kind_end..].windows(2).position(|w| w == b"\r\n")? + kind_end + 2;
        let head = &frame[..kind_line_end];
        let kind = std::str::from_utf8(head).ok()?;
        if !(kind.ends_with("unsubscribe\r\n") || kind.ends_with("punsubscribe\r\n")) {
            return None;
        }
        let count_at = frame.iter().rposition(|&b| b == b':')?;
        Some((head, &frame[kind_line_end..count_at], &frame[count_at..]))
    }
    let mut i = 0;
    while i < frames.len() {
        let Some((head, _, _)) = parts(&frames[i]) else {
            i += 1;
            continue;
        };
        let head = head.to_vec();
        let mut j = i;
        while j < frames.len() && parts(&frames[j]).is_some_and(|(h, _, _)| h == head) {
            j += 1;
        }
        let mut names: Vec<Vec<u8>> = frames[i..j]
            .iter()
            .filter_map(|f| parts(f).map(|(_, n, _)| n.to_vec()))
            .collect();
        names.sort();
        for (frame, name) in frames[i..j].iter_mut().zip(names) {
            let count = parts(frame).map(|(_, _, c)| c.to_vec()).unwrap_or_default();
            *frame = [head.as_slice(), &name, &count].concat();
        }
        i = j;
    }
}

/// The reply of the [`END`]'s `PING` (in RESP2, RESP3 or pub/sub mode).
fn is_end_ping(frame: &[u8]) -> bool {
    frame == b"$3\r\nend\r\n" || frame.ends_with(b"$4\r\npong\r\n$3\r\nend\r\n")
}

/// The end of every conversation: `PING` (which takes a `CLIENT REPLY SKIP`
/// left at the end), `RESET` (which ends MULTI, pub/sub and `CLIENT REPLY
/// OFF`), `AUTH` as [`END_USER`], then this `ECHO`, whose reply marks the end.
/// Their replies are left out.
const END: [&[&str]; 4] = [
    &["PING", "end"],
    &["RESET"],
    &["AUTH", END_USER, "end-pw"],
    &["ECHO", "end-of-conversation-7c1f"],
];

/// A user both sides have, who may only `ECHO` (to end a conversation).
const END_USER: &str = "zz-end";

/// The reply that ends a conversation.
const END_REPLY: &[u8] = b"$24\r\nend-of-conversation-7c1f\r\n";

/// The commands and the [`END`] as one byte stream.
fn pipeline(commands: &[Command]) -> Vec<u8> {
    let mut stream = Vec::new();
    let end: Vec<Command> = END.iter().map(|c| command(c)).collect();
    for c in commands.iter().chain(&end) {
        let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        stream.extend(encode_command(&args));
    }
    stream
}

/// The last frame of a conversation the server ended by closing the connection.
pub const CLOSED: &[u8] = b"(connection closed)";

/// Writes `stream`, then reads frames until the [`END_REPLY`] (or until the
/// server closes: then [`CLOSED`] is the last frame), the [`END`]'s own
/// replies left out.
async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: S,
    stream: &[u8],
) -> Result<Vec<Vec<u8>>, String> {
    // The server may close before it read everything (a protocol error).
    let _ = conn.write_all(stream).await;
    let _ = conn.flush().await;
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut scanner = ReplyScanner::new();
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        match scanner.scan(&buf).expect("valid RESP") {
            ReplyScan::Complete { len } => {
                let frame: Vec<u8> = buf.drain(..len).collect();
                if frame == END_REPLY {
                    // Drop the AUTH's, the RESET's and the PING's replies.
                    for end in [&b"+OK\r\n"[..], b"+RESET\r\n"] {
                        if frames.last().is_some_and(|f: &Vec<u8>| f.as_slice() == end) {
                            frames.pop();
                        }
                    }
                    if frames.last().is_some_and(|f: &Vec<u8>| is_end_ping(f)) {
                        frames.pop();
                    }
                    return Ok(frames);
                }
                frames.push(without_connection_id(frame));
                continue;
            }
            ReplyScan::Incomplete => {}
        }
        let mut chunk = [0u8; 16384];
        let n = match tokio::time::timeout_at(deadline, conn.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => {
                return Err(format!(
                    "no end of the conversation within {ANSWER_TIMEOUT:?}; frames so far:\n{}\nunparsed: {}",
                    show_frames(&frames),
                    buf.escape_ascii()
                ))
            }
        };
        if n == 0 {
            frames.push(CLOSED.to_vec());
            return Ok(frames);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
