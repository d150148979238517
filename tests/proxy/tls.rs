//! TLS and certificate identity through the built proxy: every rejection case
//! never reaches the command path, and certificate fields choose the user.

use std::time::Duration;

use crate::support::*;

const USERS: &str = r#"
[[users]]
name = "alice"
rules = "on ~* &* +@all"

[[users]]
name = "cache_app"
rules = "on ~* &* +@all"

[[users]]
name = "carol"
rules = "off ~* &* +@all"
"#;

/// Connects as `client` and tries one command; Ok(reply) only if TLS and the command went through.
async fn try_command(proxy: &Proxy, pki: &TestPki, client: Option<&str>) -> Result<Reply, String> {
    let stream = tls_connect(proxy.tls_addr(), pki, client)
        .await
        .map_err(|e| e.to_string())?;
    let mut conn = RespConn::new(stream);
    conn.try_send_raw(&encode_command(&[b"PING"]))
        .await
        .map_err(|e| e.to_string())?;
    conn.try_read_reply().await
}

fn start(pki: &TestPki, redis: &RedisServer, tls_extra: &str, auth: &str) -> Proxy {
    let config = base_config(pki, &redis.addr(), &format!("{auth}\n{USERS}"));
    let config = config.replace(
        "client_auth = \"required\"\n",
        &format!("client_auth = \"required\"\n{tls_extra}\n"),
    );
    Proxy::start(&config, pki.dir())
}

#[tokio::test]
async fn rejected_certificates_never_reach_the_command_path() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = start(&pki, &redis, "", "");
    assert_eq!(
        try_command(&proxy, &pki, Some("alice")).await,
        Ok(Reply::Simple("PONG".into()))
    );
    for client in [None, Some("intruder"), Some("expired")] {
        let result = try_command(&proxy, &pki, client).await;
        assert!(result.is_err(), "{client:?} got through: {result:?}");
    }
    // The server logs each failure just after the client sees it: poll briefly.
    let failures = || {
        proxy
            .logs()
            .iter()
            .filter(|l| l.contains("TLS handshake failed"))
            .count()
    };
    for _ in 0..100 {
        if failures() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failures(), 3, "{:#?}", proxy.logs());
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    let stats = direct.cmd_str(&["INFO", "stats"]).await;
    let stats = stats.as_str().unwrap_or("");
    // Upstream saw the harness's readiness PING, alice's connection (its
    // CLIENT ID, then her command) and this one; nothing from the rejected clients.
    assert!(
        stats.contains("total_connections_received:3\r\n"),
        "{stats}"
    );
    assert!(stats.contains("total_commands_processed:3\r\n"), "{stats}");
}

#[tokio::test]
async fn revoked_certificate_is_rejected_with_a_crl() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let crl = pki.write_crl("ca.crl", &["bob"]);
    let proxy = start(
        &pki,
        &redis,
        &format!("crl = [{}]", toml_str(&crl.to_string_lossy())),
        "",
    );
    assert!(try_command(&proxy, &pki, Some("bob")).await.is_err());
    assert!(try_command(&proxy, &pki, Some("alice")).await.is_ok());
}

#[tokio::test]
async fn cert_map_and_cert_user_fields_choose_the_user() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let auth = "[auth]\ncert_user = \"cn\"\ncert_map = { \"spiffe://test/ns/web/sa/cache\" = \"cache_app\", \"bob\" = \"carol\" }\n";
    let proxy = start(&pki, &redis, "", auth);
    let pong = Ok(Reply::Simple("PONG".into()));
    let noauth = Ok(Reply::Error("NOAUTH Authentication required.".into()));
    assert_eq!(try_command(&proxy, &pki, Some("spiffe")).await, pong);
    assert_eq!(try_command(&proxy, &pki, Some("alice")).await, pong);
    // bob maps to carol, who is off: unauthenticated.
    assert_eq!(try_command(&proxy, &pki, Some("bob")).await, noauth);
    let off = proxy.wait_for_log(std::time::Duration::from_secs(5), |l| {
        l.contains("user is off")
    });
    assert!(off.is_some(), "{}", proxy.logs().join("\n"));
}

#[tokio::test]
async fn san_fields_as_cert_user() {
    let redis = RedisServer::start();
    let mut pki = TestPki::new();
    let mut spec = portcullis::certgen::ClientSpec::new("not-a-user");
    spec.san_dns = vec!["cache_app"];
    spec.san_email = vec!["alice"];
    let issued = pki.authority().client(&spec).unwrap();
    pki.add_issued("sans", issued);
    for (field, ok) in [
        ("san-dns", true),
        ("san-email", true),
        ("cn", false),
        ("none", false),
        ("san-uri", false),
    ] {
        let proxy = start(
            &pki,
            &redis,
            "",
            &format!("[auth]\ncert_user = \"{field}\"\n"),
        );
        let got = try_command(&proxy, &pki, Some("sans")).await;
        assert_eq!(
            got.as_ref().map(Reply::is_error),
            Ok(!ok),
            "{field}: {got:?}"
        );
    }
}

#[tokio::test]
async fn optional_client_auth_accepts_no_certificate_but_not_a_bad_one() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let config = base_config(&pki, &redis.addr(), USERS)
        .replace("client_auth = \"required\"", "client_auth = \"optional\"");
    let proxy = Proxy::start(&config, pki.dir());
    let anonymous = try_command(&proxy, &pki, None).await;
    assert_eq!(
        anonymous,
        Ok(Reply::Error("NOAUTH Authentication required.".into()))
    );
    assert_eq!(
        try_command(&proxy, &pki, Some("alice")).await,
        Ok(Reply::Simple("PONG".into()))
    );
    assert!(try_command(&proxy, &pki, Some("intruder")).await.is_err());
}

#[tokio::test]
async fn tls13_only_refuses_tls12_clients() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = start(&pki, &redis, "min_version = \"1.3\"", "");
    let (cert, key) = pki.client("alice");
    let old = client_config(&pki.ca_pem(), Some((&cert, &key)), TLS12_ONLY);
    assert!(tls_connect_config(proxy.tls_addr(), old).await.is_err());
    let new = client_config(&pki.ca_pem(), Some((&cert, &key)), TLS13_ONLY);
    assert!(tls_connect_config(proxy.tls_addr(), new).await.is_ok());
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_at_the_deadline() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let config = base_config(
        &pki,
        &redis.addr(),
        &format!("[limits]\nhandshake_timeout_ms = 300\n{USERS}"),
    );
    let proxy = Proxy::start(&config, pki.dir());
    let mut tcp = tokio::net::TcpStream::connect(proxy.tls_addr())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "connection not closed: {read:?}"
    );
}

#[tokio::test]
async fn plaintext_listener_on_loopback_serves_without_certificates() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let users = "[[users]]\nname = \"carol\"\nrules = \"on >pw ~* &* +@all\"\n";
    let config = crate::support::base_config_with_server(
        &pki,
        &redis.addr(),
        "plaintext_listen = \"127.0.0.1:0\"",
        users,
    );
    let proxy = Proxy::start(&config, pki.dir());
    let addr = proxy
        .plaintext_addr()
        .expect("plaintext listener")
        .to_string();
    let mut conn = RespConn::connect_tcp(&addr).await.unwrap();
    assert_eq!(
        conn.cmd_str(&["GET", "a"]).await,
        Reply::Error("NOAUTH Authentication required.".into())
    );
    assert!(conn.cmd_str(&["AUTH", "carol", "pw"]).await.is_ok());
    assert_eq!(conn.cmd_str(&["GET", "a"]).await, Reply::Bulk(None));
}
