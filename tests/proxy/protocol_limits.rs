//! Every request-protocol limit through the built proxy, real TLS and a real redis-server:
//! the abusive connection gets the earlier command's reply, then the exact Redis error
//! text, then EOF; a well-behaved connection opened before the abuse keeps working.
//! Texts shared with Redis were checked against redis-server 7.0.15 by hand.

use std::time::Duration;

use crate::support::*;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Conn = RespConn<TlsStream<TcpStream>>;

/// `alice` (certificate user) and `pwuser` (password only); `bob`'s certificate names no user.
const USERS: &str = "[[users]]\nname = \"alice\"\nrules = \"on ~* &* +@all\"\n\n\
                     [[users]]\nname = \"pwuser\"\nrules = \"on >sesame ~* &* +@all\"\n";

/// Sent ahead of each abusive input; its reply must come out first.
fn echo_before() -> Vec<u8> {
    encode_command(&[b"ECHO", b"before"])
}

fn bulk(bytes: &[u8]) -> Reply {
    Reply::Bulk(Some(bytes.to_vec()))
}

fn protocol_error(text: &str) -> Vec<u8> {
    format!("-ERR Protocol error: {text}\r\n").into_bytes()
}

struct Setup {
    // Field order: the proxy is killed before its upstream.
    proxy: Proxy,
    redis: RedisServer,
    pki: TestPki,
}

impl Setup {
    /// redis-server plus a proxy with `limits` as the body of `[limits]`.
    fn start(limits: &str) -> Setup {
        Self::start_with(limits, "", &[])
    }

    fn start_with(limits: &str, server_extra: &str, env: &[(&str, &str)]) -> Setup {
        let redis = RedisServer::start();
        let pki = TestPki::new();
        let extra = format!("[limits]\n{limits}\n\n{USERS}");
        let config = base_config_with_server(&pki, &redis.addr(), server_extra, &extra);
        let proxy = Proxy::start_with_env(&config, pki.dir(), env);
        Setup { proxy, redis, pki }
    }

    async fn connect(&self, who: &str) -> Conn {
        resp_tls(self.proxy.tls_addr(), &self.pki, Some(who)).await
    }

    /// A connection as `who` sends ECHO before + `input` in one write, and must get the
    /// ECHO's reply (`-NOAUTH` for `bob`), then exactly `reply`, then EOF.
    async fn abuse(&self, who: &str, input: &[u8], reply: &[u8]) {
        let mut conn = self.connect(who).await;
        conn.send_raw(&[echo_before(), input.to_vec()].concat())
            .await;
        let mut want = if who == "bob" {
            b"-NOAUTH Authentication required.\r\n".to_vec()
        } else {
            b"$6\r\nbefore\r\n".to_vec()
        };
        want.extend_from_slice(reply);
        let got = conn.read_raw_until_closed().await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "input starting {:?}",
            String::from_utf8_lossy(&input[..input.len().min(40)])
        );
    }

    /// A well-behaved connection still works: an ECHO round trip, and a SET through
    /// the proxy that redis-server itself then holds.
    async fn check_bystander(&self, conn: &mut Conn, tag: &str) {
        assert_eq!(conn.cmd_str(&["ECHO", tag]).await, bulk(tag.as_bytes()));
        let key = format!("bystander:{tag}");
        assert!(conn.cmd_str(&["SET", &key, tag]).await.is_ok());
        let mut direct = RespConn::connect_tcp(&self.redis.addr()).await.unwrap();
        assert_eq!(direct.cmd_str(&["GET", &key]).await, bulk(tag.as_bytes()));
    }
}

#[tokio::test]
async fn bulk_over_max_bulk_len_is_an_invalid_bulk_length() {
    let s = Setup::start("max_bulk_len = 1000");
    let mut good = s.connect("alice").await;
    let at_limit = vec![b'x'; 1000];
    assert_eq!(good.cmd(&[b"ECHO", &at_limit]).await, bulk(&at_limit));
    s.abuse(
        "alice",
        b"*2\r\n$4\r\nECHO\r\n$1001\r\n",
        &protocol_error("invalid bulk length"),
    )
    .await;
    s.check_bystander(&mut good, "bulk").await;
}

#[tokio::test]
async fn multibulk_over_max_multibulk_len_is_an_invalid_multibulk_length() {
    let s = Setup::start("max_multibulk_len = 100");
    let mut good = s.connect("alice").await;
    let keys: Vec<String> = (0..99).map(|i| format!("nokey{i}")).collect();
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    assert_eq!(good.cmd_str(&del).await, Reply::Int(0), "100 elements pass");
    s.abuse(
        "alice",
        b"*101\r\n",
        &protocol_error("invalid multibulk length"),
    )
    .await;
    s.check_bystander(&mut good, "multibulk").await;
}

#[tokio::test]
async fn lines_over_max_inline_len_are_too_big() {
    let s = Setup::start("max_inline_len = 1024");
    let mut good = s.connect("alice").await;
    let word = "w".repeat(1000);
    let inline = format!("ECHO {word}\r\n");
    good.send_raw(inline.as_bytes()).await;
    assert_eq!(good.read_reply().await, bulk(word.as_bytes()));

    let digits = "1".repeat(1100);
    let cases = [
        // An inline command that never ends.
        (
            format!("ECHO {}", "a".repeat(1100)),
            "too big inline request",
        ),
        // A `*` header line with no `\r`.
        (format!("*{digits}"), "too big mbulk count string"),
        // A `$` header line with no `\r`.
        (format!("*1\r\n${digits}"), "too big bulk count string"),
    ];
    for (input, reply) in cases {
        s.abuse("alice", input.as_bytes(), &protocol_error(reply))
            .await;
        s.check_bystander(&mut good, &reply.replace(' ', "-")).await;
    }
}

#[tokio::test]
async fn buffering_past_max_query_buffer_is_refused() {
    const LIMIT: usize = 1 << 20;
    let s = Setup::start(&format!(
        "max_query_buffer = {LIMIT}\nmax_bulk_len = {}",
        4 << 20
    ));
    let mut good = s.connect("alice").await;
    // A big argument that is not the last one is buffered whole: 512 KiB fits.
    let half = vec![b'h'; LIMIT / 2];
    assert!(good
        .cmd(&[b"MSET", b"k1", &half, b"k2", b"v"])
        .await
        .is_ok());
    assert_eq!(good.cmd_str(&["STRLEN", "k1"]).await, Reply::Int(1 << 19));

    // MSET k1 <2 MiB> k2 v: the big argument is deliberately NOT the last one, since a
    // huge final bulk may be streamed upstream as it arrives instead of buffered.
    // Exactly LIMIT + 1 bytes of the command are sent, so the proxy has read all of it
    // when it refuses (nothing unread that could turn its close into a reset).
    let mut cmd = b"*5\r\n$4\r\nMSET\r\n$2\r\nk1\r\n$2097152\r\n".to_vec();
    cmd.resize(LIMIT + 1, b'b');
    let mut bad = s.connect("alice").await;
    bad.send_raw(&[echo_before(), cmd[..LIMIT / 2].to_vec()].concat())
        .await;
    assert_eq!(bad.read_reply().await, bulk(b"before"));
    s.check_bystander(&mut good, "query-buffer-during").await;
    bad.send_raw(&cmd[LIMIT / 2..]).await;
    assert_eq!(
        bad.read_raw_until_closed().await,
        protocol_error("query buffer limit exceeded")
    );
    s.check_bystander(&mut good, "query-buffer-after").await;
    let mut direct = RespConn::connect_tcp(&s.redis.addr()).await.unwrap();
    assert_eq!(
        direct.cmd_str(&["STRLEN", "k1"]).await,
        Reply::Int(1 << 19),
        "nothing of the refused MSET reached redis"
    );
}

/// Redis's tests/unit/protocol.tcl inputs, with the default limits except a small
/// `max_inline_len` (Redis's own is 64 KiB).
#[tokio::test]
async fn redis_protocol_tcl_inputs_get_redis_errors() {
    let s = Setup::start("max_inline_len = 1024");
    let mut good = s.connect("alice").await;
    // A NUL byte hides every later newline from Redis's strchr, so the line only grows.
    let payload = [b"A".repeat(1023), b"\n".to_vec()].concat().repeat(2);
    let cases: [(Vec<u8>, &str); 9] = [
        (b"*3000000000\r\n".to_vec(), "invalid multibulk length"),
        (b"*1\r\n$-10\r\n".to_vec(), "invalid bulk length"),
        // Over the default max_bulk_len of 512 MiB.
        (b"*1\r\n$2000000000\r\n".to_vec(), "invalid bulk length"),
        (b"*1\r\n$blabla\r\n".to_vec(), "invalid bulk length"),
        (b"*1\r\nfoo\r\n".to_vec(), "expected '$', got 'f'"),
        (
            b"SET \"unbalanced\r\n".to_vec(),
            "unbalanced quotes in request",
        ),
        ([b"\0", &payload[..]].concat(), "too big inline request"),
        (
            [b"*\0", &payload[..]].concat(),
            "too big mbulk count string",
        ),
        ([b"$\0", &payload[..]].concat(), "too big inline request"),
    ];
    for (i, (input, reply)) in cases.iter().enumerate() {
        s.abuse("alice", input, &protocol_error(reply)).await;
        s.check_bystander(&mut good, &format!("tcl{i}")).await;
    }
}

#[tokio::test]
async fn negative_multibulk_length_is_ignored_like_redis() {
    let s = Setup::start("");
    let mut good = s.connect("alice").await;
    let mut conn = s.connect("alice").await;
    let after = encode_command(&[b"ECHO", b"after"]);
    conn.send_raw(&[echo_before(), b"*-10\r\n".to_vec(), after].concat())
        .await;
    assert_eq!(conn.read_reply().await, bulk(b"before"));
    assert_eq!(conn.read_reply().await, bulk(b"after"), "no reply for *-10");
    assert!(
        conn.cmd_str(&["SET", "neg", "1"]).await.is_ok(),
        "still open"
    );
    assert_eq!(conn.read_raw_for(Duration::from_millis(100)).await, b"");
    s.check_bystander(&mut good, "negative").await;
}

#[tokio::test]
async fn unauthenticated_clients_get_pre_auth_limits_until_auth() {
    let s = Setup::start("");
    let mut good = s.connect("alice").await;
    s.abuse(
        "bob",
        b"*11\r\n",
        &protocol_error("unauthenticated multibulk length"),
    )
    .await;
    s.check_bystander(&mut good, "unauth-multibulk").await;
    s.abuse(
        "bob",
        b"*2\r\n$4\r\nECHO\r\n$16385\r\n",
        &protocol_error("unauthenticated bulk length"),
    )
    .await;
    s.check_bystander(&mut good, "unauth-bulk").await;

    // At the pre-auth limits, then past them once logged in by password.
    let keys: Vec<String> = (0..10).map(|i| format!("nokey{i}")).collect();
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    let noauth = Reply::Error("NOAUTH Authentication required.".into());
    let mut bob = s.connect("bob").await;
    assert_eq!(bob.cmd_str(&del[..10]).await, noauth);
    let at_limit = vec![b'x'; 16384];
    assert_eq!(bob.cmd(&[b"ECHO", &at_limit]).await, noauth);
    assert!(bob.cmd_str(&["AUTH", "pwuser", "sesame"]).await.is_ok());
    assert_eq!(bob.cmd_str(&del).await, Reply::Int(0), "11 elements");
    let big = vec![b'y'; 16385];
    assert_eq!(bob.cmd(&[b"ECHO", &big]).await, bulk(&big));
    assert!(bob.cmd(&[b"SET", b"bobbig", &big]).await.is_ok());
    let mut direct = RespConn::connect_tcp(&s.redis.addr()).await.unwrap();
    assert_eq!(
        direct.cmd_str(&["STRLEN", "bobbig"]).await,
        Reply::Int(16385)
    );
}

/// Memory grows with bytes received, never with a declared length: 200 clients each
/// declare a 400 MB bulk (under the default 512 MiB max_bulk_len) and then hold.
#[tokio::test]
async fn declared_huge_bulks_do_not_reserve_memory() {
    const HOGS: usize = 200;
    // Few worker threads and malloc arenas, so VmSize measures the proxy's buffers
    // rather than per-thread arena reservations (64 MiB each).
    let s = Setup::start_with("", "worker_threads = 2", &[("MALLOC_ARENA_MAX", "2")]);
    let mut good = s.connect("alice").await;
    s.check_bystander(&mut good, "memory-before").await;
    let pid = s.proxy.pid();
    let (rss0, vm0) = (
        proc_status_kib(pid, "VmRSS"),
        proc_status_kib(pid, "VmSize"),
    );

    let header = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$400000000\r\nabcdefgh";
    let mut hogs = Vec::with_capacity(HOGS);
    for _ in 0..HOGS {
        let mut hog = s.connect("alice").await;
        hog.send_raw(&[echo_before(), header.to_vec()].concat())
            .await;
        hogs.push(hog);
    }
    for hog in &mut hogs {
        assert_eq!(hog.read_reply().await, bulk(b"before"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss1, vm1) = (
        proc_status_kib(pid, "VmRSS"),
        proc_status_kib(pid, "VmSize"),
    );
    eprintln!("proxy VmRSS {rss0} -> {rss1} KiB, VmSize {vm0} -> {vm1} KiB with {HOGS} hogs");
    assert!(
        rss1 < rss0 + 64 * 1024,
        "VmRSS grew from {rss0} to {rss1} KiB for {HOGS} declared 400 MB bulks"
    );
    // Less than even one declared bulk: no connection reserved its declared length.
    assert!(
        vm1 < vm0 + 256 * 1024,
        "VmSize grew from {vm0} to {vm1} KiB for {HOGS} declared 400 MB bulks"
    );
    s.check_bystander(&mut good, "memory-during").await;
    let quiet = hogs[0].read_raw_for(Duration::from_millis(100)).await;
    assert_eq!(quiet, b"", "an incomplete command got a reply");
    drop(hogs);
    s.check_bystander(&mut good, "memory-after").await;
    let mut direct = RespConn::connect_tcp(&s.redis.addr()).await.unwrap();
    assert_eq!(direct.cmd_str(&["EXISTS", "k"]).await, Reply::Int(0));
}
