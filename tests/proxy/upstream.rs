//! The upstream hop: TLS to a TLS-only redis-server with a PKI of its own
//! (verification failures never fall back to plaintext), and a redis-server
//! whose commands are renamed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis::certgen::{Authority, ClientSpec};

use crate::support::*;

const USERS: &str = "[[users]]\nname = \"admin\"\nrules = \"on >pw ~* &* +@all\"\n\n\
                     [[users]]\nname = \"app\"\nrules = \"on >pw ~* &* +@all -@dangerous\"\n";

/// The upstream's own PKI: a CA, a server certificate for localhost and
/// 127.0.0.1, and a client certificate for the proxy; plus a foreign CA.
struct UpstreamPki {
    dir: tempfile::TempDir,
}

impl UpstreamPki {
    fn new() -> UpstreamPki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::new("upstream CA").unwrap();
        let foreign = Authority::new("foreign CA").unwrap();
        let server = ca.server(&["localhost", "127.0.0.1"]).unwrap();
        let client = ca.client(&ClientSpec::new("proxy")).unwrap();
        for (name, text) in [
            ("ca.pem", ca.cert_pem()),
            ("foreign-ca.pem", foreign.cert_pem()),
            ("server.pem", server.cert_pem),
            ("server.key", server.key_pem),
            ("proxy.pem", client.cert_pem),
            ("proxy.key", client.key_pem),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        UpstreamPki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn p(path: &Path) -> String {
    toml_str(&path.to_string_lossy())
}

/// A TLS-only redis-server that wants client certificates.
fn tls_redis(upki: &UpstreamPki) -> RedisServer {
    let (cert, key, ca) = (
        upki.path("server.pem"),
        upki.path("server.key"),
        upki.path("ca.pem"),
    );
    RedisServer::start_tls(&[
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-ca-cert-file",
        ca.to_str().unwrap(),
        "--tls-auth-clients",
        "yes",
    ])
}

/// A connection straight to the TLS redis-server, for looking at what it did.
async fn direct(redis: &RedisServer, upki: &UpstreamPki) -> RespConn<impl AsyncReadWrite> {
    let config = client_config(
        &upki.path("ca.pem"),
        Some((&upki.path("proxy.pem"), &upki.path("proxy.key"))),
        ALL_VERSIONS,
    );
    let addr = redis.addr().parse().unwrap();
    RespConn::new(tls_connect_config(addr, Arc::clone(&config)).await.unwrap())
}

/// What the helpers' streams have in common.
pub trait AsyncReadWrite: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> AsyncReadWrite for T {}

fn commands_processed(info: &Reply) -> u64 {
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_commands_processed")
}

#[tokio::test]
async fn tls_to_the_upstream_and_every_verification_failure() {
    let pki = TestPki::new();
    let upki = UpstreamPki::new();
    let redis = tls_redis(&upki);
    let good = format!(
        "[upstream.tls]\nca = {}\ncert = {}\nkey = {}\n",
        p(&upki.path("ca.pem")),
        p(&upki.path("proxy.pem")),
        p(&upki.path("proxy.key"))
    );
    let cases = [
        ("verified", good.clone(), None),
        (
            "foreign CA",
            good.replace("ca.pem", "foreign-ca.pem"),
            Some("UnknownIssuer"),
        ),
        (
            "wrong name",
            format!("{good}server_name = \"db.other.example\"\n"),
            Some("not valid for name"),
        ),
        (
            "no client certificate",
            format!("[upstream.tls]\nca = {}\n", p(&upki.path("ca.pem"))),
            Some("CertificateRequired"),
        ),
    ];
    let mut check = direct(&redis, &upki).await;
    for (what, tls, failure) in cases {
        let address = format!("address = {}\n", toml_str(&redis.addr()));
        let server = "metrics_listen = \"127.0.0.1:0\"";
        let config = base_config_with_server(&pki, &redis.addr(), server, USERS)
            .replace(&address, &format!("{address}{tls}\n"));
        let dir = tempfile::tempdir().unwrap();
        let proxy = Proxy::start(&config, dir.path());
        let before = commands_processed(&check.cmd_str(&["INFO", "stats"]).await);
        let mut c = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
        assert!(c.cmd_str(&["AUTH", "admin", "pw"]).await.is_ok());
        let reply = c.cmd_str(&["SET", "tls:k", what]).await;
        let after = commands_processed(&check.cmd_str(&["INFO", "stats"]).await);
        match failure {
            None => {
                assert!(reply.is_ok(), "{what}: {reply:?}");
                let got = check.cmd_str(&["GET", "tls:k"]).await;
                assert_eq!(got.as_str(), Some(what));
                // The client certificate's expiry is exported like the server's.
                let sample =
                    "portcullis_certificate_expiry_timestamp_seconds{cert=\"upstream_client\"}";
                let expiry = scrape(&proxy, sample).await;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                assert!(expiry > now, "{expiry}");
            }
            Some(reason) => {
                assert_eq!(reply.error(), Some("ERR upstream unavailable"), "{what}");
                // Nothing reached the server but our own INFO.
                assert_eq!(after, before + 1, "{what}: the upstream ran something");
                let line = proxy.wait_for_log(std::time::Duration::from_secs(5), |l| {
                    l.contains("upstream unavailable") && l.contains(reason)
                });
                assert!(
                    line.is_some(),
                    "{what}: no WARN naming {reason}:\n{}",
                    proxy.logs().join("\n")
                );
            }
        }
    }
}

/// The upstream's redis.conf renames CONFIG and FLUSHALL and removes SHUTDOWN.
const RENAMED: [&str; 9] = [
    "--rename-command",
    "FLUSHALL",
    "MGMT_FLUSH_8831",
    "--rename-command",
    "CONFIG",
    "MGMT_CONFIG_2219",
    "--rename-command",
    "SHUTDOWN",
    "",
];

const RENAMES: &str = "rename_commands = { FLUSHALL = \"MGMT_FLUSH_8831\", CONFIG = \"MGMT_CONFIG_2219\", shutdown = \"\" }";

#[tokio::test]
async fn renamed_commands_keep_their_real_names() {
    let users = [
        ("admin", "on ~* &* +@all"),
        ("app", "on ~* &* +@all -@dangerous"),
    ];
    // The same conversation to a plain Redis and through the proxy to a renamed one.
    let twin = SameStream::start_upstream(&users, "", &RENAMED, RENAMES).await;
    let conversation: Vec<Command> = vec![
        command(&["AUTH", "admin", "pw"]),
        command(&["SET", "a", "1"]),
        command(&["CONFIG", "GET", "maxmemory"]),
        command(&["config", "set", "maxmemory-policy", "noeviction"]),
        command(&["CONFIG", "GET", "maxmemory-policy"]),
        command(&["MULTI"]),
        command(&["CONFIG", "GET", "maxmemory"]),
        command(&["FLUSHALL"]),
        command(&["SET", "b", "2"]),
        command(&["EXEC"]),
        command(&["DBSIZE"]),
        command(&["FLUSHALL", "ASYNC"]),
        command(&["DBSIZE"]),
        command(&["AUTH", "app", "pw"]),
        command(&["FLUSHALL"]),
        command(&["CONFIG", "GET", "port"]),
        command(&["ACL", "DRYRUN", "app", "FLUSHALL"]),
    ];
    twin.assert_same(&conversation).await;

    let proxy = &twin.proxy;
    let mut admin = resp_tls(proxy.tls_addr(), &twin.pki, Some("bob")).await;
    assert!(admin.cmd_str(&["AUTH", "admin", "pw"]).await.is_ok());
    // A command the upstream does not have: Redis's unknown-command text, never sent.
    assert_eq!(
        admin.cmd_str(&["SHUTDOWN", "NOSAVE"]).await.error(),
        Some("ERR unknown command 'SHUTDOWN', with args beginning with: 'NOSAVE' ")
    );
    // Inline commands are renamed too.
    admin.send_raw(b"config get maxmemory\r\n").await;
    let reply = admin.read_reply().await;
    assert_eq!(reply.as_array().map(<[Reply]>::len), Some(2), "{reply:?}");
    // The upstream is still up, and its renamed names are what it ran.
    let mut direct = RespConn::connect_tcp(&twin.upstream.addr()).await.unwrap();
    assert_eq!(direct.cmd_str(&["PING"]).await.as_str(), Some("PONG"));
    assert!(
        direct.cmd_str(&["FLUSHALL"]).await.is_error(),
        "the upstream is renamed"
    );
    // (Redis counts a renamed command under its real name.)
    let stats = direct.cmd_str(&["INFO", "commandstats"]).await;
    let stats = String::from_utf8_lossy(stats.as_bytes().unwrap()).into_owned();
    assert!(stats.contains("cmdstat_flushall:"), "{stats}");
    assert!(!stats.contains("cmdstat_shutdown"), "{stats}");
    // Denials and logs name the real command.
    let mut app = resp_tls(proxy.tls_addr(), &twin.pki, Some("bob")).await;
    assert!(app.cmd_str(&["AUTH", "app", "pw"]).await.is_ok());
    assert_eq!(
        app.cmd_str(&["CONFIG", "GET", "port"]).await.error(),
        Some("NOPERM this user has no permissions to run the 'config|get' command")
    );
    let line = proxy.wait_for_log(std::time::Duration::from_secs(5), |l| {
        l.contains("ACL denied") && l.contains("config|get")
    });
    assert!(line.is_some());
}

#[test]
fn check_refuses_bad_renames() {
    let pki = TestPki::new();
    for (rename, says) in [
        ("{ CONFIG = \" \" }", "is not a command name"),
        ("{ CONFIG = \"A B\" }", "is not a command name"),
        ("{ NOSUCH = \"X\" }", "not a Redis command"),
        ("{ \"CONFIG|GET\" = \"X\" }", "not a Redis command"),
        (
            "{ CONFIG = \"X\", FLUSHALL = \"x\" }",
            "renamed to \"x\" already",
        ),
    ] {
        let config = base_config(&pki, "127.0.0.1:1", USERS).replace(
            "[upstream]\n",
            &format!("[upstream]\nrename_commands = {rename}\n"),
        );
        let path = pki.dir().join("renames.toml");
        std::fs::write(&path, config).unwrap();
        let out = run_cli(&["check", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(64), "{rename}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("upstream.rename_commands") && err.contains(says),
            "{rename}: {err}"
        );
    }
}
