//! Edge policy through the built proxy, with clients on other loopback
//! addresses (127.0.0.2, 127.0.0.3) as other machines: `server.allow` closes
//! a peer at accept before any TLS work; a user's `allow_from` and
//! `auth_methods` refuse like a wrong password and say which rule refused;
//! shadow mode forwards what the ACL would refuse to a real Redis and says so.

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::support::*;

const METRICS: &str = "metrics_listen = \"127.0.0.1:0\"";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// Reads what a refused peer gets: nothing, then the close.
async fn closed_without_a_byte(from: IpAddr, proxy: &Proxy) {
    let mut tcp = tcp_connect_from(from, proxy.tls_addr())
        .await
        .expect("the TCP connect itself is accepted");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("closed at once, not left hanging");
    // EOF (or a reset): no TLS ServerHello, no byte at all.
    assert!(matches!(read, Ok(0) | Err(_)), "{from}: {read:?}");
}

#[tokio::test]
async fn server_allow_closes_other_peers_at_accept_and_reloads() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let users = "[[users]]\nname = \"bob\"\nrules = \"on ~* &* +@all\"\n";
    let server = |allow: &str| format!("{METRICS}\nallow = {allow}");
    let proxy = Proxy::start(
        &base_config_with_server(
            &pki,
            &redis.addr(),
            &server(r#"["127.0.0.2", "127.0.0.4/31"]"#),
            users,
        ),
        pki.dir(),
    );
    // A bystander from an allowed address, connected before and used after.
    let mut bystander = resp_tls_from(ip("127.0.0.2"), proxy.tls_addr(), &pki, Some("bob")).await;
    assert!(bystander.cmd_str(&["SET", "k", "v"]).await.is_ok());
    for from in ["127.0.0.1", "127.0.0.3", "127.0.0.6"] {
        closed_without_a_byte(ip(from), &proxy).await;
    }
    for from in ["127.0.0.4", "127.0.0.5"] {
        let mut c = resp_tls_from(ip(from), proxy.tls_addr(), &pki, Some("bob")).await;
        assert_eq!(c.cmd_str(&["GET", "k"]).await.as_str(), Some("v"), "{from}");
    }
    assert_eq!(bystander.cmd_str(&["GET", "k"]).await.as_str(), Some("v"));
    let hits = scrape(&proxy, "portcullis_limit_hits_total{limit=\"allow\"}").await;
    assert!((3.0..=3.0).contains(&hits), "{hits}");
    assert!(proxy
        .wait_for_log(Duration::from_secs(5), |l| l
            .contains("not in server.allow")
            && l.contains("127.0.0.3"))
        .is_some());

    // SIGHUP with another list: new connections follow it; open ones stay.
    let text = base_config_with_server(&pki, &redis.addr(), &server(r#"["127.0.0.1"]"#), users);
    std::fs::write(proxy.config_path(), text).expect("write proxy.toml");
    proxy.sighup();
    let reloaded = proxy.wait_for_log(Duration::from_secs(10), |l| {
        l.contains("configuration reloaded")
    });
    assert!(reloaded.is_some(), "{:#?}", proxy.logs());
    closed_without_a_byte(ip("127.0.0.2"), &proxy).await;
    let mut now_allowed = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    assert_eq!(now_allowed.cmd_str(&["GET", "k"]).await.as_str(), Some("v"));
    assert_eq!(bystander.cmd_str(&["GET", "k"]).await.as_str(), Some("v"));
}

/// bob: certificate CN bob, but only by password. carol: only by certificate,
/// only from 127.0.0.2. app: a password user only from 127.0.0.2.
fn access_users() -> &'static str {
    "[[users]]\nname = \"bob\"\nrules = \"on >pw ~* &* +@all\"\nauth_methods = [\"password\"]\n\n\
     [[users]]\nname = \"carol\"\nrules = \"on >pw ~* &* +@all\"\nauth_methods = [\"cert\"]\n\
     allow_from = [\"127.0.0.2\"]\n\n\
     [[users]]\nname = \"app\"\nrules = \"on >pw ~* &* +@all\"\nallow_from = [\"127.0.0.2/32\"]\n\n\
     [[users]]\nname = \"admin\"\nrules = \"on >pw ~* &* +@all\"\n"
}

#[tokio::test]
async fn allow_from_and_auth_methods_refuse_like_a_wrong_password() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(
        &base_config_with_server(&pki, &redis.addr(), METRICS, access_users()),
        pki.dir(),
    );
    let (one, two) = (ip("127.0.0.1"), ip("127.0.0.2"));
    let noauth = Reply::Error("NOAUTH Authentication required.".into());

    // A certificate naming a password-only user leaves the connection unauthenticated.
    let mut bob = resp_tls_from(two, proxy.tls_addr(), &pki, Some("bob")).await;
    assert_eq!(bob.cmd_str(&["GET", "k"]).await, noauth);
    assert!(bob.cmd_str(&["AUTH", "bob", "pw"]).await.is_ok());
    assert_eq!(bob.cmd_str(&["ACL", "WHOAMI"]).await.as_str(), Some("bob"));

    // carol: her certificate from 127.0.0.2 only; never a password.
    let mut carol = resp_tls_from(two, proxy.tls_addr(), &pki, Some("carol")).await;
    assert_eq!(
        carol.cmd_str(&["ACL", "WHOAMI"]).await.as_str(),
        Some("carol")
    );
    let mut carol_away = resp_tls_from(one, proxy.tls_addr(), &pki, Some("carol")).await;
    assert_eq!(carol_away.cmd_str(&["GET", "k"]).await, noauth);
    let mut someone = resp_tls_from(two, proxy.tls_addr(), &pki, Some("alice")).await;
    assert_eq!(
        someone.cmd_str(&["AUTH", "carol", "pw"]).await.error(),
        Some(WRONGPASS)
    );
    assert_eq!(
        someone
            .cmd_str(&["HELLO", "3", "AUTH", "carol", "pw"])
            .await
            .error(),
        Some(WRONGPASS)
    );

    // app: its password from 127.0.0.2 only.
    assert!(someone.cmd_str(&["AUTH", "app", "pw"]).await.is_ok());
    let mut away = resp_tls_from(one, proxy.tls_addr(), &pki, Some("alice")).await;
    assert_eq!(
        away.cmd_str(&["AUTH", "app", "pw"]).await.error(),
        Some(WRONGPASS)
    );
    // The reply is the same as for a wrong password.
    assert_eq!(
        away.cmd_str(&["AUTH", "app", "nope"]).await.error(),
        Some(WRONGPASS)
    );

    // ACL LOG and the WARN lines say which rule refused; no password anywhere.
    let mut admin = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert!(admin.cmd_str(&["AUTH", "admin", "pw"]).await.is_ok());
    let log = admin.cmd_str(&["ACL", "LOG"]).await;
    let entries: Vec<String> = log
        .as_array()
        .unwrap_or_default()
        .iter()
        .map(Reply::flat_text)
        .collect();
    let with = |user: &str, rule: &str| {
        entries
            .iter()
            .filter(|e| {
                e.contains(&format!("username {user} "))
                    && e.contains(&format!("refused-by={rule}"))
            })
            .count()
    };
    assert_eq!(with("carol", "allow_from"), 1, "{entries:#?}");
    // AUTH and HELLO are two entries (their objects differ), as in Redis.
    assert_eq!(with("carol", "auth_methods"), 2, "{entries:#?}");
    assert_eq!(with("bob", "auth_methods"), 1, "{entries:#?}");
    assert_eq!(with("app", "allow_from"), 1, "{entries:#?}");
    let logs = proxy.logs().join("\n");
    for (user, rule) in [
        ("carol", "allow_from"),
        ("bob", "auth_methods"),
        ("app", "allow_from"),
    ] {
        assert!(
            proxy
                .wait_for_log(Duration::from_secs(5), |l| l
                    .contains("authentication refused")
                    && l.contains(&format!("\"{user}\""))
                    && l.contains(rule))
                .is_some(),
            "{user} {rule}: {logs}"
        );
    }
    let failures = scrape(&proxy, "portcullis_auth_failures_total").await;
    // The four AUTH/HELLO refusals (a certificate refusal, like a certificate
    // naming an `off` user, only leaves the connection unauthenticated).
    assert_eq!(failures, 4.0);
}

#[tokio::test]
async fn shadow_mode_forwards_denials_to_redis_and_counts_them() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let users = "[[users]]\nname = \"bob\"\nrules = \"on ~app:* &app:* +@all -flushall\"\nenforce = false\n\n\
                 [[users]]\nname = \"carol\"\nrules = \"on ~app:* +@all\"\n";
    let proxy = Proxy::start(
        &base_config_with_server(&pki, &redis.addr(), METRICS, users),
        pki.dir(),
    );
    let mut bob = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    // Outside bob's keys: forwarded, so Redis holds it.
    assert!(bob.cmd_str(&["SET", "other:k", "v"]).await.is_ok());
    assert_eq!(
        bob.cmd_str(&["PUBLISH", "other:c", "m"]).await,
        Reply::Int(0)
    );
    assert!(bob.cmd_str(&["SET", "app:k", "w"]).await.is_ok());
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.expect("redis");
    assert_eq!(
        direct.cmd_str(&["GET", "other:k"]).await.as_str(),
        Some("v")
    );
    // A command its rules refuse: forwarded too (Redis answers it).
    assert!(bob.cmd_str(&["FLUSHALL"]).await.is_ok());
    assert_eq!(direct.cmd_str(&["DBSIZE"]).await, Reply::Int(0));
    // Authentication and arity are still the proxy's.
    assert_eq!(
        bob.cmd_str(&["GET"]).await.error(),
        Some("ERR wrong number of arguments for 'get' command")
    );
    // An enforcing user beside it is refused as usual.
    let mut carol = resp_tls(proxy.tls_addr(), &pki, Some("carol")).await;
    assert_eq!(
        carol.cmd_str(&["SET", "other:k", "v"]).await.error(),
        Some("NOPERM this user has no permissions to access one of the keys used as arguments")
    );
    for (result, n) in [
        ("shadow_denied_key", 1.0),
        ("shadow_denied_channel", 1.0),
        ("shadow_denied_command", 1.0),
        ("denied_key", 0.0),
    ] {
        let got = scrape(
            &proxy,
            &format!("portcullis_commands_total{{user=\"bob\",result=\"{result}\"}}"),
        )
        .await;
        assert_eq!(got, n, "{result}");
    }
    proxy.wait_for_log(Duration::from_secs(5), |_| {
        proxy
            .logs()
            .iter()
            .filter(|l| l.contains("\"shadow\":true"))
            .count()
            >= 3
    });
    let shadow: Vec<String> = proxy
        .logs()
        .into_iter()
        .filter(|l| l.contains("ACL denied") && l.contains("\"shadow\":true"))
        .collect();
    assert_eq!(shadow.len(), 3, "{shadow:#?}");
    // Only real refusals are in ACL LOG (carol's).
    let mut admin = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    let log = admin.cmd_str(&["ACL", "LOG"]).await;
    let entries = log.as_array().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{log:?}");
    assert!(
        entries[0].flat_text().contains("username carol "),
        "{log:?}"
    );
}
