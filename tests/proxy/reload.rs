//! SIGHUP reload through the built proxy, real TLS and a real redis-server: rules
//! changed under an open connection apply to its next command; a user removed loses its
//! connections (idle and subscribed ones too) while others stay; an open MULTI whose
//! rules changed is aborted at EXEC; an invalid configuration is refused whole and the
//! old one keeps working; the acl file is read again; the server certificate and client
//! CA rotate with established connections surviving and new handshakes using the new
//! chain; reloads are counted.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

const RELOADED: &str = "configuration reloaded";
const RELOAD_FAILED: &str = "configuration reload failed";
const KEY_DENIED: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

/// proxy.toml with the TLS files at `tls_dir` (server.pem, server.key, ca.pem), a
/// metrics listener, and `users`.
fn config(tls_dir: &Path, upstream: &str, users: &str) -> String {
    let path = |f: &str| toml_str(&tls_dir.join(f).to_string_lossy());
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\n\
         [tls]\ncert = {}\nkey = {}\nclient_ca = {}\n\n\
         [upstream]\naddress = {}\n\n{users}\n",
        path("server.pem"),
        path("server.key"),
        path("ca.pem"),
        toml_str(upstream),
    )
}

/// Copies `pki`'s server certificate, key and CA to `dir` (what a rotation does).
fn install_tls(pki: &TestPki, dir: &Path) {
    for (from, to) in [
        (pki.server_cert(), "server.pem"),
        (pki.server_key(), "server.key"),
        (pki.ca_pem(), "ca.pem"),
    ] {
        let tmp = dir.join(format!("{to}.tmp"));
        std::fs::copy(from, &tmp).expect("copy TLS file");
        std::fs::rename(&tmp, dir.join(to)).expect("rename TLS file");
    }
}

struct Setup {
    proxy: Proxy,
    redis: RedisServer,
    pki: TestPki,
    dir: tempfile::TempDir,
}

impl Setup {
    fn start(users: &str) -> Setup {
        let redis = RedisServer::start();
        let pki = TestPki::new();
        let dir = tempfile::tempdir().expect("tempdir");
        install_tls(&pki, dir.path());
        let proxy = Proxy::start(&config(dir.path(), &redis.addr(), users), dir.path());
        Setup {
            proxy,
            redis,
            pki,
            dir,
        }
    }

    /// Rewrites proxy.toml with `users`, sends SIGHUP and waits for the outcome line
    /// (the `n`th of its kind since start).
    fn reload(&self, users: &str, outcome: &str, n: usize) {
        let text = config(self.dir.path(), &self.redis.addr(), users);
        std::fs::write(self.proxy.config_path(), text).expect("write proxy.toml");
        self.send_hup_and_wait(outcome, n);
    }

    fn send_hup_and_wait(&self, outcome: &str, n: usize) {
        self.proxy.sighup();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self
            .proxy
            .logs()
            .iter()
            .filter(|l| l.contains(outcome))
            .count()
            < n
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no {outcome:?} line #{n}: {:#?}",
                self.proxy.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

const TWO_USERS: &str = "[[users]]\nname = \"alice\"\nrules = \"on ~a:* &* +@all\"\n\n\
                         [[users]]\nname = \"carol\"\nrules = \"on ~* &* +@all\"\n";

#[tokio::test]
async fn rules_change_under_an_open_connection_and_removed_users_lose_theirs() {
    let s = Setup::start(TWO_USERS);
    let addr = s.proxy.tls_addr();
    let mut alice = resp_tls(addr, &s.pki, Some("alice")).await;
    let mut carol_idle = resp_tls(addr, &s.pki, Some("carol")).await;
    let mut carol_sub = resp_tls(addr, &s.pki, Some("carol")).await;
    assert!(alice.cmd_str(&["SET", "a:1", "x"]).await.is_ok());
    assert_eq!(
        alice.cmd_str(&["SET", "b:1", "x"]).await.error(),
        Some(KEY_DENIED)
    );
    assert!(carol_idle.cmd_str(&["PING"]).await.as_str() == Some("PONG"));
    let subscribed = carol_sub.cmd_str(&["SUBSCRIBE", "news"]).await;
    assert!(subscribed.as_array().is_some(), "{subscribed:?}");

    // alice may now write b:* only; carol is gone.
    s.reload(
        "[[users]]\nname = \"alice\"\nrules = \"on ~b:* &* +@all\"\n",
        RELOADED,
        1,
    );
    assert!(alice.cmd_str(&["SET", "b:1", "y"]).await.is_ok());
    assert_eq!(
        alice.cmd_str(&["GET", "a:1"]).await.error(),
        Some(KEY_DENIED)
    );
    // Closed without a command from them (Redis's ACL DELUSER), and without a reply.
    assert!(carol_idle.read_raw_until_closed().await.is_empty());
    assert!(carol_sub.read_raw_until_closed().await.is_empty());
    let closed = s
        .proxy
        .logs()
        .into_iter()
        .filter(|l| l.contains("connection closed by a configuration reload"))
        .collect::<Vec<_>>();
    assert_eq!(closed.len(), 2, "{closed:#?}");
    assert!(closed.iter().all(|l| l.contains("\"user\":\"carol\"")));
    // A new connection with carol's certificate names no user any more.
    let mut carol_new = resp_tls(addr, &s.pki, Some("carol")).await;
    assert_eq!(
        carol_new.cmd_str(&["PING"]).await.error(),
        Some("NOAUTH Authentication required.")
    );

    // A transaction queued under the old rules is aborted at EXEC if they change.
    assert!(alice.cmd_str(&["MULTI"]).await.is_ok());
    assert_eq!(
        alice.cmd_str(&["SET", "b:2", "z"]).await.as_str(),
        Some("QUEUED")
    );
    s.reload(
        "[[users]]\nname = \"alice\"\nrules = \"on ~b:* ~c:* &* +@all\"\n",
        RELOADED,
        2,
    );
    assert_eq!(
        alice.cmd_str(&["EXEC"]).await.error(),
        Some("EXECABORT Transaction discarded because of previous errors.")
    );
    assert!(alice.cmd_str(&["SET", "c:1", "ok"]).await.is_ok());
    let mut direct = RespConn::connect_tcp(&s.redis.addr()).await.expect("redis");
    assert!(direct.cmd_str(&["GET", "b:2"]).await.is_null());
    assert_eq!(direct.cmd_str(&["GET", "b:1"]).await.as_str(), Some("y"));

    let ok = scrape(&s.proxy, "portcullis_config_reloads_total{result=\"ok\"}").await;
    assert_eq!(ok, 2.0);
}

#[tokio::test]
async fn an_invalid_reload_changes_nothing() {
    let s = Setup::start(TWO_USERS);
    let addr = s.proxy.tls_addr();
    let mut alice = resp_tls(addr, &s.pki, Some("alice")).await;

    // A bad rule: the whole file is refused, and so is a missing certificate.
    s.reload(
        "[[users]]\nname = \"alice\"\nrules = \"on ~* +nosuchcommand\"\n",
        RELOAD_FAILED,
        1,
    );
    let failed = s
        .proxy
        .wait_for_log(Duration::from_secs(5), |l| l.contains(RELOAD_FAILED))
        .expect("failure line");
    assert!(failed.contains("nosuchcommand"), "{failed}");
    std::fs::remove_file(s.dir.path().join("server.key")).expect("remove key");
    s.reload(TWO_USERS, RELOAD_FAILED, 2);

    // The running configuration is untouched: old rules, old users, old certificates.
    assert_eq!(
        alice.cmd_str(&["SET", "b:1", "x"]).await.error(),
        Some(KEY_DENIED)
    );
    assert!(alice.cmd_str(&["SET", "a:1", "x"]).await.is_ok());
    let mut carol = resp_tls(addr, &s.pki, Some("carol")).await;
    assert_eq!(carol.cmd_str(&["PING"]).await.as_str(), Some("PONG"));
    // Two failed reloads by SIGHUP; the key's removal may add one of its own
    // (a watched file changed).
    let failed = scrape(
        &s.proxy,
        "portcullis_config_reloads_total{result=\"failed\"}",
    )
    .await;
    assert!((2.0..=3.0).contains(&failed), "{failed}");
    assert_eq!(
        scrape(&s.proxy, "portcullis_config_reloads_total{result=\"ok\"}").await,
        0.0
    );
}

#[tokio::test]
async fn certificates_rotate_without_dropping_connections() {
    let s = Setup::start(TWO_USERS);
    let addr = s.proxy.tls_addr();
    let mut old = resp_tls(addr, &s.pki, Some("alice")).await;
    assert!(old.cmd_str(&["SET", "a:1", "before"]).await.is_ok());

    // A new CA, server certificate and client certificates.
    let next = TestPki::new();
    install_tls(&next, s.dir.path());
    s.send_hup_and_wait(RELOADED, 1);

    // The established session goes on.
    assert_eq!(old.cmd_str(&["GET", "a:1"]).await.as_str(), Some("before"));
    // New handshakes use the new chain: the new client gets in as alice...
    let mut fresh = resp_tls(addr, &next, Some("alice")).await;
    assert!(fresh.cmd_str(&["SET", "a:2", "after"]).await.is_ok());
    // ...and a client of the old CA no longer does (it cannot verify the new
    // server certificate, and its own certificate is not trusted any more).
    assert!(tls_connect(addr, &s.pki, Some("alice")).await.is_err());
    let trusts_new_presents_old = {
        let (cert, key) = s.pki.client("alice");
        let config = client_config(&next.ca_pem(), Some((&cert, &key)), ALL_VERSIONS);
        match tls_connect_config(addr, config).await {
            Err(_) => true,
            // TLS 1.3: the server's refusal arrives with the first read.
            Ok(stream) => RespConn::new(stream).try_read_reply().await.is_err(),
        }
    };
    assert!(trusts_new_presents_old, "old client certificate accepted");
    let expiry = scrape(
        &s.proxy,
        "portcullis_certificate_expiry_timestamp_seconds{cert=\"server\"}",
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        expiry > now,
        "server certificate expiry {expiry} not after {now}"
    );
}

#[tokio::test]
async fn the_acl_file_is_read_again() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    install_tls(&pki, dir.path());
    let acl = dir.path().join("users.acl");
    std::fs::write(&acl, "user dave on nopass ~x:* +@all\n").expect("acl file");
    let users = format!("[auth]\nacl_file = {}\n", toml_str(&acl.to_string_lossy()));
    let proxy = Proxy::start(&config(dir.path(), &redis.addr(), &users), dir.path());
    // bob's certificate names no user: AUTH as dave.
    let mut dave = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    assert!(dave.cmd_str(&["AUTH", "dave", "any"]).await.is_ok());
    assert_eq!(
        dave.cmd_str(&["SET", "y:1", "v"]).await.error(),
        Some(KEY_DENIED)
    );

    std::fs::write(&acl, "user dave on nopass ~y:* +@all\n").expect("acl file");
    let s = Setup {
        proxy,
        redis,
        pki,
        dir,
    };
    s.send_hup_and_wait(RELOADED, 1);
    assert!(dave.cmd_str(&["SET", "y:1", "v"]).await.is_ok());
    assert_eq!(
        dave.cmd_str(&["SET", "x:1", "v"]).await.error(),
        Some(KEY_DENIED)
    );
}

/// True when a client of `pki` (as alice) gets PONG from `addr`.
async fn serves(addr: std::net::SocketAddr, pki: &TestPki) -> bool {
    let mut c = resp_tls(addr, pki, Some("alice")).await;
    c.cmd_str(&["PING"]).await.as_str() == Some("PONG")
}

/// Counts the log lines holding `what`.
fn count_lines(proxy: &Proxy, what: &str) -> usize {
    proxy.logs().iter().filter(|l| l.contains(what)).count()
}

/// Waits (up to 10 s) for the `n`th line holding `what`; how long it took.
fn wait_line(proxy: &Proxy, what: &str, n: usize) -> Duration {
    let start = std::time::Instant::now();
    while count_lines(proxy, what) < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {what:?} line #{n}: {:#?}",
            proxy.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[tokio::test]
async fn watched_certificate_files_reload_without_a_signal() {
    let s = Setup::start(TWO_USERS);
    let addr = s.proxy.tls_addr();
    let mut old = resp_tls(addr, &s.pki, Some("alice")).await;
    assert!(old.cmd_str(&["SET", "a:1", "before"]).await.is_ok());

    // Written in place (no rename, no signal).
    let next = TestPki::new();
    for (from, to) in [
        (next.server_cert(), "server.pem"),
        (next.server_key(), "server.key"),
        (next.ca_pem(), "ca.pem"),
    ] {
        std::fs::write(s.dir.path().join(to), std::fs::read(from).expect("read")).expect("write");
    }
    let took = wait_line(&s.proxy, RELOADED, 1);
    eprintln!("in place: reloaded {took:?} after the last write");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let mut fresh = resp_tls(addr, &next, Some("alice")).await;
    assert!(fresh.cmd_str(&["SET", "a:2", "after"]).await.is_ok());
    assert!(tls_connect(addr, &s.pki, Some("alice")).await.is_err());
    assert_eq!(old.cmd_str(&["GET", "a:1"]).await.as_str(), Some("before"));

    // Replaced by rename, as cert-manager and `mv` do.
    let third = TestPki::new();
    install_tls(&third, s.dir.path());
    let took = wait_line(&s.proxy, RELOADED, 2);
    eprintln!("by rename: reloaded {took:?} after the last rename");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(serves(addr, &third).await);

    // Half-written: the reload fails and the running chain stays; the next
    // change (the whole file) goes in.
    let key = std::fs::read(third.server_key()).expect("key");
    let failed_before = count_lines(&s.proxy, RELOAD_FAILED);
    std::fs::write(s.dir.path().join("server.key"), &key[..key.len() / 2]).expect("half");
    wait_line(&s.proxy, RELOAD_FAILED, failed_before + 1);
    assert!(serves(addr, &third).await);
    std::fs::write(s.dir.path().join("server.key"), &key).expect("whole");
    wait_line(&s.proxy, RELOADED, 3);
    assert!(serves(addr, &third).await);
    assert_eq!(old.cmd_str(&["GET", "a:2"]).await.as_str(), Some("after"));
    assert_eq!(count_lines(&s.proxy, "SIGHUP"), 0);
}
