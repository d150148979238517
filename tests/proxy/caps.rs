//! Every connection cap and connection-level limit through the built proxy, real TLS and a
//! real redis-server: the abusive connection gets exactly `-ERR max number of clients
//! reached` (where a reply is possible), then EOF; a well-behaved connection opened before
//! the abuse keeps working; `portcullis_limit_hits_total{limit}` moves by exactly the hits.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Conn = RespConn<TlsStream<TcpStream>>;

const MAX_CLIENTS: &[u8] = b"-ERR max number of clients reached\r\n";
/// The tests' usual address, and a second "machine" (Linux routes all of 127/8).
const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// `alice` and `carol` are certificate users; `bob`'s certificate names no user.
const USERS: &str = "[[users]]\nname = \"alice\"\nrules = \"on ~* &* +@all\"\n\n\
                     [[users]]\nname = \"carol\"\nrules = \"on ~* &* +@all\"\n";

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Some(text.as_bytes().to_vec()))
}

struct Setup {
    // Field order: the proxy is killed before its upstream.
    proxy: Proxy,
    redis: RedisServer,
    pki: TestPki,
}

impl Setup {
    /// redis-server plus a proxy with a metrics listener, `limits` as the body of
    /// `[limits]`, then `users`.
    fn start(limits: &str, users: &str) -> Setup {
        let redis = RedisServer::start();
        let pki = TestPki::new();
        let extra = format!("[limits]\n{limits}\n\n{users}");
        let server = "metrics_listen = \"127.0.0.1:0\"";
        let config = base_config_with_server(&pki, &redis.addr(), server, &extra);
        let proxy = Proxy::start(&config, pki.dir());
        Setup { proxy, redis, pki }
    }

    async fn connect(&self, who: &str) -> Conn {
        self.connect_from(HOME, who).await
    }

    async fn connect_from(&self, from: IpAddr, who: &str) -> Conn {
        resp_tls_from(from, self.proxy.tls_addr(), &self.pki, Some(who)).await
    }

    /// `portcullis_limit_hits_total{limit="<limit>"}`.
    async fn hits(&self, limit: &str) -> u64 {
        let sample = format!("portcullis_limit_hits_total{{limit=\"{limit}\"}}");
        scrape(&self.proxy, &sample).await as u64
    }

    /// A well-behaved connection still works: an ECHO round trip, and a SET through
    /// the proxy that redis-server itself then holds.
    async fn check_works(&self, conn: &mut Conn, tag: &str) {
        assert_eq!(conn.cmd_str(&["ECHO", tag]).await, bulk(tag));
        let key = format!("caps:{tag}");
        assert!(conn.cmd_str(&["SET", &key, tag]).await.is_ok());
        let mut direct = RespConn::connect_tcp(&self.redis.addr()).await.unwrap();
        assert_eq!(direct.cmd_str(&["GET", &key]).await, bulk(tag));
    }

    /// Connects as `who` from `from` until a place is free (closing a connection gives
    /// its place back asynchronously). Each refused try must get exactly the error, then
    /// EOF, with nothing sent; returns the connection and how many tries were refused.
    async fn connect_when_free(&self, from: IpAddr, who: &str) -> (Conn, u64) {
        for refused in 0..100 {
            let mut conn = self.connect_from(from, who).await;
            let mut early = conn.read_raw_for(Duration::from_millis(300)).await;
            if early.is_empty() {
                return (conn, refused);
            }
            early.extend(conn.read_raw_until_closed().await);
            assert_eq!(String::from_utf8_lossy(&early), as_text(MAX_CLIENTS));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no place for {who} from {from} after 100 tries");
    }
}

fn as_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The connection gets exactly the max-clients error, then EOF.
async fn assert_refused(conn: &mut Conn) {
    assert_eq!(
        as_text(&conn.read_raw_until_closed().await),
        as_text(MAX_CLIENTS)
    );
}

#[tokio::test]
async fn max_clients_refuses_connections_over_the_global_cap() {
    let s = Setup::start("max_clients = 3", USERS);
    let mut open = Vec::new();
    for i in 0..3 {
        let mut conn = s.connect("alice").await;
        s.check_works(&mut conn, &format!("global{i}")).await;
        open.push(conn);
    }
    let mut fourth = s.connect("alice").await;
    assert_refused(&mut fourth).await;
    // The cap is global: another address and another user are refused too.
    let mut other = s.connect_from(OTHER, "carol").await;
    assert_refused(&mut other).await;
    assert_eq!(s.hits("max_clients").await, 2);
    for (i, conn) in open.iter_mut().enumerate() {
        s.check_works(conn, &format!("global{i}-after")).await;
    }

    // One leaves: its place comes back.
    let mut leaving = open.pop().unwrap();
    assert!(leaving.cmd_str(&["QUIT"]).await.is_ok());
    assert!(leaving.read_raw_until_closed().await.is_empty());
    let (mut again, refused) = s.connect_when_free(OTHER, "carol").await;
    s.check_works(&mut again, "global-again").await;
    s.check_works(&mut open[0], "global0-end").await;
    assert_eq!(s.hits("max_clients").await, 2 + refused);
    assert_eq!(s.hits("max_clients_per_ip").await, 0);
}

#[tokio::test]
async fn max_clients_per_ip_counts_connections_still_handshaking() {
    let s = Setup::start(
        "max_clients_per_ip = 3\nhandshake_timeout_ms = 30000",
        USERS,
    );
    let addr = s.proxy.tls_addr();
    let mut good = s.connect_from(HOME, "alice").await;
    s.check_works(&mut good, "perip-before").await;
    // Two TCP connections that never start TLS hold the other two places: the cap is
    // counted from TCP accept, before any handshake is spent. (The proxy accepts in
    // order, so they are admitted before the TLS client below.)
    let raw1 = tcp_connect_from(HOME, addr).await.unwrap();
    let raw2 = tcp_connect_from(HOME, addr).await.unwrap();

    let mut refused = s.connect_from(HOME, "alice").await;
    assert_refused(&mut refused).await;
    // Per address, not global: another address is served.
    let mut other = s.connect_from(OTHER, "alice").await;
    s.check_works(&mut other, "perip-other").await;
    s.check_works(&mut good, "perip-during").await;
    assert_eq!(s.hits("max_clients_per_ip").await, 1);
    assert_eq!(s.hits("max_clients").await, 0);
    assert_eq!(s.hits("handshake_timeout").await, 0);

    drop((raw1, raw2));
    let (mut again, retries) = s.connect_when_free(HOME, "alice").await;
    s.check_works(&mut again, "perip-again").await;
    s.check_works(&mut good, "perip-after").await;
    assert_eq!(s.hits("max_clients_per_ip").await, 1 + retries);
}

#[tokio::test]
async fn a_certificate_users_max_clients_is_checked_at_connect() {
    let users = "[[users]]\nname = \"alice\"\nrules = \"on ~* &* +@all\"\nmax_clients = 2\n\n\
                 [[users]]\nname = \"carol\"\nrules = \"on ~* &* +@all\"\n";
    let s = Setup::start("", users);
    let mut carol = s.connect("carol").await;
    s.check_works(&mut carol, "user-carol").await;
    let mut a1 = s.connect("alice").await;
    let mut a2 = s.connect("alice").await;
    s.check_works(&mut a1, "user-a1").await;
    s.check_works(&mut a2, "user-a2").await;

    let mut a3 = s.connect("alice").await;
    assert_refused(&mut a3).await;
    assert_eq!(s.hits("user_max_clients").await, 1);
    let mut carol2 = s.connect("carol").await;
    s.check_works(&mut carol2, "user-carol2").await;
    s.check_works(&mut carol, "user-carol-after").await;
    s.check_works(&mut a1, "user-a1-after").await;

    drop(a2);
    let (mut again, refused) = s.connect_when_free(HOME, "alice").await;
    s.check_works(&mut again, "user-again").await;
    assert_eq!(s.hits("user_max_clients").await, 1 + refused);
    assert_eq!(s.hits("max_clients").await, 0);
}

#[tokio::test]
async fn a_password_users_max_clients_is_checked_at_auth_and_hello() {
    let users = format!(
        "{USERS}\n[[users]]\nname = \"u\"\nrules = \"on >pw ~* &* +@all\"\nmax_clients = 1\n"
    );
    let s = Setup::start("", &users);
    // `bob`'s certificate names no user: every connection starts unauthenticated.
    let mut a = s.connect("bob").await;
    assert_eq!(
        a.cmd_str(&["AUTH", "u", "pw"]).await,
        Reply::Simple("OK".into())
    );
    s.check_works(&mut a, "auth-a").await;

    // Like Redis when maxclients is reached, the connection is closed right after the
    // error: the pipelined commands behind the AUTH are never answered.
    let mut b = s.connect("bob").await;
    let pipeline = [
        encode_command(&[b"AUTH", b"u", b"pw"]),
        encode_command(&[b"PING"]),
        encode_command(&[b"SET", b"caps:auth-b", b"leaked"]),
    ]
    .concat();
    b.send_raw(&pipeline).await;
    assert_refused(&mut b).await;

    let mut c = s.connect("bob").await;
    let pipeline = [
        encode_command(&[b"HELLO", b"3", b"AUTH", b"u", b"pw"]),
        encode_command(&[b"PING"]),
    ]
    .concat();
    c.send_raw(&pipeline).await;
    assert_refused(&mut c).await;

    assert_eq!(s.hits("user_max_clients").await, 2);
    s.check_works(&mut a, "auth-a-after").await;
    let mut direct = RespConn::connect_tcp(&s.redis.addr()).await.unwrap();
    assert_eq!(
        direct.cmd_str(&["EXISTS", "caps:auth-b"]).await,
        Reply::Int(0)
    );

    // A leaves: its place comes back (asynchronously; a refused try closes the connection).
    assert!(a.cmd_str(&["QUIT"]).await.is_ok());
    assert!(a.read_raw_until_closed().await.is_empty());
    let mut refused = 0;
    let mut again = loop {
        let mut conn = s.connect("bob").await;
        conn.send(&[b"AUTH", b"u", b"pw"]).await;
        match conn.read_reply().await {
            Reply::Simple(ok) if ok == "OK" => break conn,
            other => {
                assert_eq!(other.error(), Some("ERR max number of clients reached"));
                assert!(conn.read_raw_until_closed().await.is_empty());
                refused += 1;
                assert!(refused < 100, "u's place never came back");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    s.check_works(&mut again, "auth-again").await;
    assert_eq!(s.hits("user_max_clients").await, 2 + refused);
}

#[tokio::test]
async fn conn_rate_per_ip_closes_new_connections_at_accept() {
    let s = Setup::start("conn_rate_per_ip = { ops_per_sec = 1, burst = 3 }", USERS);
    let addr = s.proxy.tls_addr();
    // The burst: three quick handshakes (commands come after the fourth try, so the
    // one-per-second refill has no time to matter).
    let mut good = s.connect_from(HOME, "alice").await;
    let mut second = s.connect_from(HOME, "alice").await;
    let mut third = s.connect_from(HOME, "carol").await;
    // The fourth is closed at accept: no handshake, so no reply is possible.
    let fourth = tls_connect(addr, &s.pki, Some("alice")).await;
    assert!(
        fourth.is_err(),
        "fourth connection within the burst window was served"
    );

    s.check_works(&mut good, "rate-good").await;
    s.check_works(&mut second, "rate-second").await;
    s.check_works(&mut third, "rate-third").await;
    let mut other = s.connect_from(OTHER, "alice").await;
    s.check_works(&mut other, "rate-other").await;
    assert_eq!(s.hits("conn_rate_per_ip").await, 1);
    assert_eq!(s.hits("max_clients_per_ip").await, 0);
}

#[tokio::test]
async fn handshake_timeout_closes_a_silent_connection() {
    let s = Setup::start("handshake_timeout_ms = 300", USERS);
    let addr = s.proxy.tls_addr();
    let mut good = s.connect("alice").await;
    s.check_works(&mut good, "hs-before").await;

    let start = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Meanwhile a TLS client is served.
    let mut during = s.connect("carol").await;
    s.check_works(&mut during, "hs-during").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("silent connection still open after 5 s");
    let elapsed = start.elapsed();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the proxy sent bytes to a client that never said hello: {read:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}"
    );

    s.check_works(&mut good, "hs-after").await;
    assert_eq!(s.hits("handshake_timeout").await, 1);
}

#[tokio::test]
async fn a_flood_of_refusals_is_counted_exactly_and_its_warn_lines_are_rate_limited() {
    let s = Setup::start("max_clients_per_ip = 1", USERS);
    let addr = s.proxy.tls_addr();
    let mut held = s.connect("alice").await;
    s.check_works(&mut held, "flood-before").await;

    let (cert, key) = s.pki.client("alice");
    let config = client_config(&s.pki.ca_pem(), Some((&cert, &key)), ALL_VERSIONS);
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let config = config.clone();
        flood.spawn(async move {
            match tls_connect_config(addr, config).await {
                Ok(tls) => RespConn::new(tls).read_raw_until_closed().await,
                // Past the refusal-handshake budget a refused connection is just closed.
                Err(_) => Vec::new(),
            }
        });
    }
    while let Some(got) = flood.join_next().await {
        let got = got.unwrap();
        assert!(got.is_empty() || got == MAX_CLIENTS, "{:?}", as_text(&got));
    }
    assert_eq!(s.hits("max_clients_per_ip").await, 200);
    s.check_works(&mut held, "flood-during").await;

    // After the line budget refills a little, the next refusal's line says how many
    // lines were dropped.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut late = s.connect("alice").await;
    assert_refused(&mut late).await;
    assert_eq!(s.hits("max_clients_per_ip").await, 201);
    let is_cap_line = |v: &serde_json::Value| {
        v["fields"]["message"] == "limit reached" && v["fields"]["limit"] == "max_clients_per_ip"
    };
    // Every hit is either a line or counted in a later line's `suppressed`; the late
    // refusal got a line, so the sum is exact once its line is in.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (lines, suppressed) = loop {
        let lines: Vec<_> = s
            .proxy
            .json_logs()
            .into_iter()
            .filter(is_cap_line)
            .collect();
        let suppressed: u64 = lines
            .iter()
            .map(|v| {
                v["fields"]["suppressed"]
                    .as_u64()
                    .expect("suppressed field")
            })
            .sum();
        if lines.len() as u64 + suppressed >= 201 || Instant::now() > deadline {
            break (lines, suppressed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lines.len() as u64 + suppressed, 201, "{lines:?}");
    assert!(lines.len() <= 40, "{} WARN lines for 201 hits", lines.len());
    assert!(suppressed > 0, "no line reported suppressed lines");
    s.check_works(&mut held, "flood-after").await;
}
