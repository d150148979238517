//! Smoke tests of the harness in `tests/support/` itself: redis-server, the reply
//! parser, the proxy binary and `gen-certs`.

use std::time::Duration;

use portcullis::config::{ClientAuth, TlsSettings, TlsVersion};
use portcullis::tls::{load_server_config, PeerIdentity};

use crate::support::{Reply, RespConn, TestPki};

#[tokio::test]
async fn redis_server_answers_over_tcp_and_unix() {
    let mut redis = crate::support::RedisServer::start();
    let mut conn = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    assert_eq!(conn.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
    assert!(conn.cmd_str(&["SET", "k", "v"]).await.is_ok());
    assert_eq!(conn.cmd_str(&["GET", "k"]).await.as_str(), Some("v"));
    redis.kill();
    assert!(conn.try_read_reply().await.is_err());
    redis.restart();
    let mut conn = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    assert_eq!(conn.cmd_str(&["GET", "k"]).await, Reply::Bulk(None));

    let mut unix = crate::support::RedisServer::start_unix_with(&["--requirepass", "pw"]);
    assert_eq!(
        unix.upstream_address(),
        format!("unix:{}", unix.unix_path().display())
    );
    let mut conn = RespConn::connect_unix(unix.unix_path()).await.unwrap();
    let denied = conn.cmd_str(&["GET", "k"]).await;
    assert!(denied.error().unwrap().starts_with("NOAUTH"), "{denied:?}");
    assert!(conn.cmd_str(&["AUTH", "pw"]).await.is_ok());
    let hello = conn.cmd_str(&["HELLO", "3"]).await;
    assert!(matches!(hello, Reply::Map(_)), "{hello:?}");
    assert_eq!(conn.cmd_str(&["GET", "missing"]).await, Reply::Null);
    unix.restart();
    let mut conn = RespConn::connect_unix(unix.unix_path()).await.unwrap();
    assert!(conn.cmd_str(&["AUTH", "pw"]).await.is_ok());
}

#[test]
fn reply_parser_reads_resp2_and_resp3() {
    let cases: Vec<(&[u8], Reply)> = vec![
        (b"+OK\r\n", Reply::Simple("OK".into())),
        (b"-ERR x\r\n", Reply::Error("ERR x".into())),
        (b":-3\r\n", Reply::Int(-3)),
        (b"$-1\r\n", Reply::Bulk(None)),
        (b"$3\r\na\r\n\r\n", Reply::Bulk(Some(b"a\r\n".to_vec()))),
        (b"*-1\r\n", Reply::Array(None)),
        (b"_\r\n", Reply::Null),
        (b"#t\r\n", Reply::Bool(true)),
        (b",1.5\r\n", Reply::Double("1.5".into())),
        (b"=7\r\ntxt:abc\r\n", Reply::Bulk(Some(b"abc".to_vec()))),
        (
            b"%1\r\n+a\r\n:1\r\n",
            Reply::Map(vec![(Reply::Simple("a".into()), Reply::Int(1))]),
        ),
        (
            b">2\r\n+message\r\n$1\r\nx\r\n",
            Reply::Push(vec![
                Reply::Simple("message".into()),
                Reply::Bulk(Some(b"x".to_vec())),
            ]),
        ),
    ];
    for (bytes, want) in cases {
        let (got, used) = crate::support::parse_reply(bytes).unwrap().unwrap();
        assert_eq!(got, want);
        assert_eq!(used, bytes.len());
        assert_eq!(
            crate::support::parse_reply(&bytes[..bytes.len() - 1]).unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn proxy_runs_the_binary() {
    let pki = TestPki::new();
    let redis = crate::support::RedisServer::start();
    let work = tempfile::tempdir().unwrap();
    let users = "[[users]]\nname = \"alice\"\nrules = \"on nopass ~* &* +@all\"\n";
    let toml = crate::support::base_config_with_server(
        &pki,
        &redis.addr(),
        "plaintext_listen = \"127.0.0.1:0\"\nshutdown_grace_s = 2",
        users,
    );
    let mut proxy = crate::support::Proxy::start(&toml, work.path());
    assert!(proxy.plaintext_addr().is_some());

    let mut alice = crate::support::resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert!(alice.cmd_str(&["SET", "via-proxy", "1"]).await.is_ok());
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    assert_eq!(
        direct.cmd_str(&["GET", "via-proxy"]).await.as_str(),
        Some("1")
    );
    drop(alice);

    proxy.sigterm();
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("proxy exits on SIGTERM");
    assert!(
        status.success(),
        "{status}; logs:\n{}",
        proxy.logs().join("\n")
    );
    assert!(!proxy.json_logs().is_empty());
}

#[test]
fn gen_certs_writes_a_usable_pki() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("certs");
    let output = crate::support::run_cli(&[
        "gen-certs",
        "--out",
        out.to_str().unwrap(),
        "--client",
        "alice",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in [
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "alice.pem",
        "alice.key",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let s = TlsSettings {
        cert: out.join("server.pem"),
        key: out.join("server.key"),
        client_ca: Some(out.join("ca.pem")),
        client_auth: ClientAuth::Required,
        crl: Vec::new(),
        min_version: TlsVersion::Tls12,
    };
    load_server_config(&s).unwrap();
    let alice = std::fs::read(out.join("alice.pem")).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&alice).unwrap();
    let der: rustls::pki_types::CertificateDer = der;
    assert_eq!(
        PeerIdentity::from_der(&der).unwrap().cn.as_deref(),
        Some("alice")
    );
}
