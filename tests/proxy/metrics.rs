//! `/metrics` after real traffic through the built proxy: every command counted once
//! under the user it ran as and its result (forwarded, denied by reason, rate-limited,
//! answered locally), auth failures, the latency histogram (one observation per
//! forwarded command), upstream connect errors, connections accepted, and TLS handshake
//! failures; each counter moves by exactly the traffic sent. `/readyz` follows the upstream.

use crate::support::*;

const USERS: &str = "[[users]]\nname = \"alice\"\nrules = \"on ~app:* &* +@all -@dangerous\"\n\n\
                     [[users]]\nname = \"reader\"\nrules = \"on >pw ~* +@read\"\n\n\
                     [[users]]\nname = \"slow\"\nrules = \"on nopass ~* +@all\"\n\
                     rate = { ops_per_sec = 1, burst = 1 }\n";

fn commands(user: &str, result: &str) -> String {
    format!("portcullis_commands_total{{user=\"{user}\",result=\"{result}\"}}")
}

#[tokio::test]
async fn counters_move_by_exactly_the_traffic() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let server = "metrics_listen = \"127.0.0.1:0\"";
    let extra = format!("[limits]\nrate_mode = \"reject\"\n\n{USERS}");
    let config = base_config_with_server(&pki, &redis.addr(), server, &extra);
    let proxy = Proxy::start(&config, pki.dir());
    let (_, before) = http_get(proxy.metrics_addr(), "/metrics").await;
    let latency_before = metric(&before, "portcullis_command_duration_seconds_count");

    // alice: 10 forwarded, 3 key denials, 2 command denials, 1 answered locally.
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    for i in 0..10 {
        assert!(alice
            .cmd_str(&["SET", &format!("app:{i}"), "v"])
            .await
            .is_ok());
    }
    for _ in 0..3 {
        assert!(alice.cmd_str(&["GET", "other:1"]).await.is_error());
    }
    for _ in 0..2 {
        assert!(alice.cmd_str(&["FLUSHALL"]).await.is_error());
    }
    assert_eq!(
        alice.cmd_str(&["ACL", "WHOAMI"]).await.as_str(),
        Some("alice")
    );

    // bob's certificate names no user: 2 failed AUTHs before authentication, then
    // one good AUTH and a denied write as reader.
    let mut bob = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    for _ in 0..2 {
        assert!(bob.cmd_str(&["AUTH", "reader", "nope"]).await.is_error());
    }
    assert!(bob.cmd_str(&["AUTH", "reader", "pw"]).await.is_ok());
    assert!(bob.cmd_str(&["SET", "k", "v"]).await.is_error());

    // slow: a rate of 1/s with burst 1 in reject mode: one passes, the next two are refused.
    let mut slow = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    assert!(slow.cmd_str(&["AUTH", "slow", "x"]).await.is_ok());
    assert!(slow.cmd_str(&["SET", "s", "1"]).await.is_ok());
    for _ in 0..2 {
        assert_eq!(
            slow.cmd_str(&["SET", "s", "2"]).await.error(),
            Some("ERR rate limit exceeded")
        );
    }

    let (status, text) = http_get(proxy.metrics_addr(), "/metrics").await;
    assert_eq!(status, 200);
    // Listener up and upstream reachable.
    assert_eq!(
        http_get(proxy.metrics_addr(), "/readyz").await,
        (200, "ready".into())
    );
    for (sample, want) in [
        (commands("alice", "forwarded"), 10.0),
        (commands("alice", "denied_key"), 3.0),
        (commands("alice", "denied_command"), 2.0),
        (commands("alice", "local"), 1.0),
        (commands("alice", "rate_limited"), 0.0),
        // Before authentication: the two failed AUTHs; a good AUTH counts under
        // the user it authenticated as.
        (commands("", "local"), 2.0),
        (commands("reader", "local"), 1.0),
        (commands("reader", "denied_command"), 1.0),
        (commands("slow", "local"), 1.0),
        (commands("slow", "forwarded"), 1.0),
        (commands("slow", "rate_limited"), 2.0),
        ("portcullis_auth_failures_total".into(), 2.0),
        ("portcullis_connections_accepted_total".into(), 3.0),
        ("portcullis_connections_open".into(), 3.0),
        ("portcullis_upstream_connect_errors_total".into(), 0.0),
    ] {
        assert_eq!(metric(&text, &sample), want, "{sample}\n{text}");
    }
    // One latency observation per forwarded command (10 + 1), none for local answers.
    assert_eq!(
        metric(&text, "portcullis_command_duration_seconds_count") - latency_before,
        11.0,
        "{text}"
    );

    // A client of another CA fails its handshake (with TLS 1.3 the client learns it
    // at its first read).
    if let Ok(stream) = tls_connect(proxy.tls_addr(), &pki, Some("intruder")).await {
        let mut conn = RespConn::new(stream);
        let _ = conn.try_send_raw(b"PING\r\n").await;
        assert!(conn.try_read_reply().await.is_err());
    }
    let sample = "portcullis_tls_handshake_failures_total{reason=\"error\"}";
    let mut failures = 0.0;
    for _ in 0..100 {
        failures = scrape(&proxy, sample).await;
        if failures > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(failures, 1.0);
}

#[tokio::test]
async fn upstream_connect_errors_are_counted() {
    let pki = TestPki::new();
    // A port nothing listens on: bind, note, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let server = "metrics_listen = \"127.0.0.1:0\"";
    let users = "[[users]]\nname = \"alice\"\nrules = \"on ~* &* +@all\"\n";
    let config = base_config_with_server(&pki, &dead.to_string(), server, users);
    let proxy = Proxy::start(&config, pki.dir());
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    for _ in 0..3 {
        assert_eq!(
            alice.cmd_str(&["GET", "k"]).await.error(),
            Some("ERR upstream unavailable")
        );
    }
    let errors = scrape(&proxy, "portcullis_upstream_connect_errors_total").await;
    assert_eq!(errors, 3.0);
    // Alive but not ready: the upstream cannot be reached.
    let addr = proxy.metrics_addr();
    assert_eq!(http_get(addr, "/healthz").await, (200, "ok".into()));
    assert_eq!(http_get(addr, "/readyz").await, (503, "not ready".into()));
    // Not forwarded: answered by the proxy.
    assert_eq!(scrape(&proxy, &commands("alice", "local")).await, 3.0);
}

/// Commands read in one batch count under the user each one ran as: an AUTH
/// in the middle of a pipeline moves the ones after it to the new user.
#[tokio::test]
async fn a_pipeline_across_auth_counts_each_command_under_its_user() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let server = "metrics_listen = \"127.0.0.1:0\"";
    let proxy = Proxy::start(
        &base_config_with_server(&pki, &redis.addr(), server, USERS),
        pki.dir(),
    );
    let mut bob = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    let mut batch = Vec::new();
    for cmd in [
        &["GET", "k"][..],
        &["AUTH", "reader", "pw"],
        &["GET", "k"],
        &["GET", "k"],
        &["SET", "k", "v"],
        &["AUTH", "reader", "wrong"],
        &["GET", "k"],
    ] {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        batch.extend(encode_command(&args));
    }
    bob.send_raw(&batch).await;
    for _ in 0..7 {
        bob.read_reply().await;
    }
    // HELLO AUTH first in a batch, then RESET back to no user.
    let mut carol = resp_tls(proxy.tls_addr(), &pki, Some("carol")).await;
    let mut batch = Vec::new();
    for cmd in [
        &["HELLO", "2", "AUTH", "reader", "pw"][..],
        &["GET", "k"],
        &["RESET"],
        &["GET", "k"],
    ] {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        batch.extend(encode_command(&args));
    }
    carol.send_raw(&batch).await;
    for _ in 0..4 {
        carol.read_reply().await;
    }
    let (_, text) = http_get(proxy.metrics_addr(), "/metrics").await;
    for (sample, want) in [
        (commands("", "local"), 2.0),
        (commands("reader", "local"), 2.0),
        // bob: three GETs; carol: HELLO (forwarded), GET and RESET (run as reader).
        (commands("reader", "forwarded"), 6.0),
        (commands("reader", "denied_command"), 1.0),
    ] {
        assert_eq!(metric(&text, &sample), want, "{sample}\n{text}");
    }
    assert_eq!(metric(&text, &commands("", "forwarded")), 0.0, "{text}");
}
