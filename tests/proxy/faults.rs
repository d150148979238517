//! Faults and lifecycle through the built proxy: upstream down or killed,
//! protocol errors, SIGTERM drain, and `portcullis check` exit codes.

use std::time::Duration;

use crate::support::*;

const USERS: &str = "[[users]]\nname = \"alice\"\nrules = \"on ~* &* +@all\"\n";

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Some(text.as_bytes().to_vec()))
}

#[tokio::test]
async fn upstream_down_answers_each_command_and_the_next_one_retries() {
    let mut redis = RedisServer::start();
    redis.kill();
    let pki = TestPki::new();
    let proxy = Proxy::start(&base_config(&pki, &redis.addr(), USERS), pki.dir());
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    alice
        .send_raw(
            &[
                encode_command(&[b"GET", b"a"]),
                encode_command(&[b"GET", b"b"]),
            ]
            .concat(),
        )
        .await;
    for _ in 0..2 {
        assert_eq!(
            alice.read_reply().await,
            Reply::Error("ERR upstream unavailable".into())
        );
    }
    redis.restart();
    assert!(alice.cmd_str(&["SET", "a", "1"]).await.is_ok());
    assert_eq!(alice.cmd_str(&["GET", "a"]).await, bulk("1"));
}

#[tokio::test]
async fn upstream_killed_mid_pipeline_errors_every_command_in_flight_then_closes() {
    let mut redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&base_config(&pki, &redis.addr(), USERS), pki.dir());
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let mut bystander = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert!(alice.cmd_str(&["SET", "k", "v"]).await.is_ok());
    let mut pipeline = encode_command(&[b"BLPOP", b"never", b"0"]);
    for _ in 0..3 {
        pipeline.extend(encode_command(&[b"GET", b"k"]));
    }
    alice.send_raw(&pipeline).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    let rest = alice.read_raw_until_closed().await;
    assert_eq!(rest, b"-ERR upstream connection lost\r\n".repeat(4));
    // Another client is only affected by the outage itself.
    redis.restart();
    let reply = bystander.cmd_str(&["PING"]).await;
    assert!(
        reply == Reply::Simple("PONG".into()) || reply.is_error(),
        "{reply:?}"
    );
    let mut fresh = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert_eq!(fresh.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
}

#[tokio::test]
async fn protocol_error_gets_redis_text_then_close_and_others_are_unaffected() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&base_config(&pki, &redis.addr(), USERS), pki.dir());
    let mut good = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    for (input, reply) in [
        (
            &b"*3000000000\r\n"[..],
            &b"-ERR Protocol error: invalid multibulk length\r\n"[..],
        ),
        (
            b"*1\r\n$-10\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$blabla\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\nfoo\r\n",
            b"-ERR Protocol error: expected '$', got 'f'\r\n",
        ),
        (
            b"SET \"unbalanced\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ] {
        let mut bad = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
        let mut sent = encode_command(&[b"ECHO", b"before"]);
        sent.extend_from_slice(input);
        bad.send_raw(&sent).await;
        let mut want = b"$6\r\nbefore\r\n".to_vec();
        want.extend_from_slice(reply);
        assert_eq!(bad.read_raw_until_closed().await, want);
        assert_eq!(
            good.cmd_str(&["ECHO", "still here"]).await,
            bulk("still here")
        );
    }
}

#[tokio::test]
async fn unauthenticated_clients_get_redis_pre_auth_limits() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&base_config(&pki, &redis.addr(), USERS), pki.dir());
    let mut bob = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    bob.send_raw(b"*11\r\n").await;
    assert_eq!(
        bob.read_raw_until_closed().await,
        b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    let mut bob = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    bob.send_raw(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n").await;
    assert_eq!(
        bob.read_raw_until_closed().await,
        b"-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    // Authenticated by certificate: the same input is fine.
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let args: Vec<Vec<u8>> = (0..11).map(|i| format!("k{i}").into_bytes()).collect();
    let mut cmd: Vec<&[u8]> = vec![b"DEL"];
    cmd.extend(args.iter().map(Vec::as_slice));
    assert_eq!(alice.cmd(&cmd).await, Reply::Int(0));
}

#[tokio::test]
async fn sigterm_drains_in_flight_commands_and_exits_zero() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let config = crate::support::base_config_with_server(
        &pki,
        &redis.addr(),
        "shutdown_grace_s = 10",
        USERS,
    );
    let mut proxy = Proxy::start(&config, pki.dir());
    let mut blocked = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let mut idle = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert!(idle.cmd_str(&["SET", "x", "1"]).await.is_ok());
    blocked.send(&[b"BLPOP", b"nothing", b"1"]).await;
    blocked.send(&[b"GET", b"x"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.sigterm();
    assert_eq!(blocked.read_reply().await, Reply::Array(None));
    assert_eq!(blocked.read_reply().await, bulk("1"));
    assert_eq!(idle.read_raw_until_closed().await, b"");
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("proxy did not exit");
    assert_eq!(status.code(), Some(0));
    assert!(tokio::net::TcpStream::connect(proxy.tls_addr())
        .await
        .is_err());
}

#[tokio::test]
async fn sigterm_past_the_grace_answers_blocked_commands_with_an_error() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let server = "shutdown_grace_s = 1\nmetrics_listen = \"127.0.0.1:0\"";
    let config = crate::support::base_config_with_server(&pki, &redis.addr(), server, USERS);
    let mut proxy = Proxy::start(&config, pki.dir());
    let metrics = proxy.metrics_addr();
    assert_eq!(crate::support::http_get(metrics, "/readyz").await.0, 200);
    let mut blocked = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    blocked.send(&[b"BLPOP", b"nothing", b"0"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.sigterm();
    // Unready from the start of the drain, while the BLPOP still holds the process.
    let mut status = 0;
    for _ in 0..40 {
        status = crate::support::http_get(metrics, "/readyz").await.0;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, 503);
    assert_eq!(
        blocked.read_raw_until_closed().await,
        b"-ERR proxy shutting down\r\n"
    );
    assert_eq!(
        proxy
            .wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn check_exit_codes_and_messages() {
    let pki = TestPki::new();
    let dir = pki.dir();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let good = write("good.toml", &base_config(&pki, "127.0.0.1:1", USERS));
    let out = run_cli(&["check", "--config", &good]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cases = [
        (
            "syntax.toml",
            "[server]\nlisten = \n".to_string(),
            "syntax.toml:2:",
        ),
        (
            "unknown.toml",
            base_config(&pki, "127.0.0.1:1", "[limits]\nmax_clientz = 3\n"),
            "unknown.toml:",
        ),
        (
            "nocert.toml",
            base_config(&pki, "127.0.0.1:1", USERS).replace("server.pem", "missing.pem"),
            "missing.pem",
        ),
        (
            "plain.toml",
            crate::support::base_config_with_server(
                &pki,
                "127.0.0.1:1",
                "plaintext_listen = \"0.0.0.0:0\"",
                USERS,
            ),
            "allow_plaintext_remote",
        ),
        (
            "rule.toml",
            base_config(
                &pki,
                "127.0.0.1:1",
                "[[users]]\nname = \"x\"\nrules = \"on bogus\"\n",
            ),
            "Error in ACL SETUSER modifier 'bogus': Syntax error",
        ),
    ];
    for (name, text, needle) in cases {
        let path = write(name, &text);
        let out = run_cli(&["check", "--config", &path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{name}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{name}: {stderr:?} lacks {needle:?}"
        );
    }
    // `run` refuses the same bad file with the same code and starts nothing.
    let out = run_cli(&["run", "--config", &dir.join("rule.toml").to_string_lossy()]);
    assert_eq!(out.status.code(), Some(64));
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_make_the_proxy_buffer_its_replies() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&base_config(&pki, &redis.addr(), USERS), pki.dir());
    let mut writer = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let value = vec![b'v'; 1024 * 1024];
    assert!(writer.cmd(&[b"SET", b"big", &value]).await.is_ok());
    let before = proc_status_kib(proxy.pid(), "VmRSS");
    // 300 GETs of 1 MiB = 300 MiB of replies that the client never reads.
    let mut slow = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let pipeline = encode_command(&[b"GET", b"big"]).repeat(300);
    slow.send_raw(&pipeline).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = proc_status_kib(proxy.pid(), "VmRSS");
    assert!(
        after < before + 32 * 1024,
        "proxy RSS grew from {before} KiB to {after} KiB while a client did not read"
    );
    // Others proceed meanwhile.
    let mut other = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert_eq!(
        other.cmd_str(&["STRLEN", "big"]).await,
        Reply::Int(1024 * 1024)
    );
    // The slow client still gets every reply, in full, once it reads.
    for _ in 0..300 {
        assert_eq!(
            slow.read_reply().await.as_bytes().map(<[u8]>::len),
            Some(1024 * 1024)
        );
    }
}
