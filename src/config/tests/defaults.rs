//! Defaults, accepted forms and path resolution.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::{
    CertUserField, ClientAuth, Limits, RateMode, RateSettings, TlsVersion, UpstreamAddr,
    UpstreamMode, UpstreamTarget,
};

/// `s` as a socket address (test literals only).
fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn minimal_file_gets_every_default() {
    let c = ok(MINIMAL);
    assert_eq!(c.path, PathBuf::from("/etc/portcullis/proxy.toml"));

    assert_eq!(c.server.listen, vec![sa("127.0.0.1:6380")]);
    assert!(c.server.plaintext_listen.is_empty());
    assert!(!c.server.allow_plaintext_remote);
    assert_eq!(c.server.metrics_listen, None);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.server.worker_threads, None);

    assert_eq!(c.tls.cert, PathBuf::from("/etc/portcullis/server.pem"));
    assert_eq!(c.tls.key, PathBuf::from("/etc/portcullis/server.key"));
    assert_eq!(c.tls.client_ca, None);
    assert_eq!(c.tls.client_auth, ClientAuth::None);
    assert!(c.tls.crl.is_empty());
    assert_eq!(c.tls.min_version, TlsVersion::Tls12);

    assert_eq!(
        c.upstream.target,
        UpstreamTarget::Address(UpstreamAddr::Tcp("127.0.0.1:6379".into()))
    );
    assert_eq!(c.upstream.username, None);
    assert_eq!(c.upstream.password, None);
    assert_eq!(c.upstream.connect_timeout, Duration::from_millis(1000));
    assert_eq!(c.upstream.mode, UpstreamMode::Dedicated);

    assert_eq!(c.auth.cert_user, CertUserField::Cn);
    assert!(c.auth.cert_map.is_empty());
    assert_eq!(c.auth.acl_file, None);

    let l = c.limits;
    assert_eq!(l.max_clients, 10_000);
    assert_eq!(l.max_clients_per_ip, 1_000);
    assert_eq!(l.max_bulk_len, 536_870_912);
    assert_eq!(l.max_multibulk_len, 1_048_576);
    assert_eq!(l.max_inline_len, 65_536);
    assert_eq!(l.max_query_buffer, 1_073_741_824);
    assert_eq!(l.handshake_timeout, Duration::from_millis(10_000));
    assert_eq!(l.idle_timeout, None);
    assert_eq!(l.rate_mode, RateMode::Delay);

    assert!(c.users.is_empty());
}

#[test]
fn empty_sections_get_defaults_too() {
    let c = ok(&with("[auth]\n[limits]"));
    assert_eq!(c.auth.cert_user, CertUserField::Cn);
    assert_eq!(c.limits.max_clients, Limits::default().max_clients);
}

#[test]
fn client_auth_defaults_to_required_with_a_ca() {
    let c = ok(&doc(
        SERVER,
        &format!("{TLS}\nclient_ca = \"ca.pem\""),
        UPSTREAM,
        "",
    ));
    assert_eq!(c.tls.client_auth, ClientAuth::Required);
    assert_eq!(
        c.tls.client_ca,
        Some(PathBuf::from("/etc/portcullis/ca.pem"))
    );
}

#[test]
fn tls_choices() {
    for (value, want) in [
        ("required", ClientAuth::Required),
        ("optional", ClientAuth::Optional),
        ("none", ClientAuth::None),
    ] {
        let tls = format!("{TLS}\nclient_ca = \"ca.pem\"\nclient_auth = \"{value}\"");
        assert_eq!(ok(&doc(SERVER, &tls, UPSTREAM, "")).tls.client_auth, want);
    }
    let tls = format!("{TLS}\nmin_version = \"1.3\"");
    assert_eq!(
        ok(&doc(SERVER, &tls, UPSTREAM, "")).tls.min_version,
        TlsVersion::Tls13
    );
    let tls = format!("{TLS}\nmin_version = \"1.2\"");
    assert_eq!(
        ok(&doc(SERVER, &tls, UPSTREAM, "")).tls.min_version,
        TlsVersion::Tls12
    );
}

#[test]
fn every_server_key() {
    let server = r#"listen = ["127.0.0.1:6380", "[::1]:6390", "127.0.0.1:6380"]
plaintext_listen = "127.0.0.1:6381"
metrics_listen = "127.0.0.1:9121"
shutdown_grace_s = 0
worker_threads = 3"#;
    let c = ok(&doc(server, TLS, UPSTREAM, ""));
    // Repeats are dropped, order kept.
    assert_eq!(
        c.server.listen,
        vec![sa("127.0.0.1:6380"), sa("[::1]:6390")]
    );
    assert_eq!(c.server.plaintext_listen, vec![sa("127.0.0.1:6381")]);
    assert_eq!(c.server.metrics_listen, Some(sa("127.0.0.1:9121")));
    assert_eq!(c.server.shutdown_grace, Duration::ZERO);
    assert_eq!(c.server.worker_threads, Some(3));
}

#[test]
fn listen_as_list_and_port_zero() {
    let c = ok(&doc(r#"listen = ["0.0.0.0:0"]"#, TLS, UPSTREAM, ""));
    assert_eq!(c.server.listen, vec![sa("0.0.0.0:0")]);
}

#[test]
fn listen_host_names_resolve_to_all_addresses() {
    let c = ok(&doc(r#"listen = "localhost:6380""#, TLS, UPSTREAM, ""));
    assert!(!c.server.listen.is_empty());
    assert!(c.server.listen.iter().all(|a| a.port() == 6380));
    assert!(c.server.listen.iter().all(|a| a.ip().is_loopback()));
    let c = ok(&doc(
        &format!("{SERVER}\nplaintext_listen = \"localhost:6381\""),
        TLS,
        UPSTREAM,
        "",
    ));
    assert!(c.server.plaintext_listen.iter().all(|a| a.port() == 6381));
}

#[test]
fn plaintext_remote_allowed_with_flag() {
    let server = format!(
        "{SERVER}\nplaintext_listen = [\"0.0.0.0:6381\", \"[::1]:6382\"]\nallow_plaintext_remote = true"
    );
    let c = ok(&doc(&server, TLS, UPSTREAM, ""));
    assert!(c.server.allow_plaintext_remote);
    assert_eq!(
        c.server.plaintext_listen,
        vec![sa("0.0.0.0:6381"), sa("[::1]:6382")]
    );
}

#[test]
fn plaintext_on_loopback_needs_no_flag() {
    let server = format!("{SERVER}\nplaintext_listen = [\"127.0.0.2:6381\", \"[::1]:6381\"]");
    let c = ok(&doc(&server, TLS, UPSTREAM, ""));
    assert_eq!(c.server.plaintext_listen.len(), 2);
}

#[test]
fn upstream_forms() {
    for (address, want) in [
        (
            "redis.internal:6379",
            UpstreamAddr::Tcp("redis.internal:6379".into()),
        ),
        ("[::1]:6379", UpstreamAddr::Tcp("[::1]:6379".into())),
        (
            "unix:/run/redis.sock",
            UpstreamAddr::Unix("/run/redis.sock".into()),
        ),
        (
            "unix:redis.sock",
            UpstreamAddr::Unix("/etc/portcullis/redis.sock".into()),
        ),
    ] {
        let c = ok(&doc(SERVER, TLS, &format!("address = \"{address}\""), ""));
        assert_eq!(
            c.upstream.target,
            UpstreamTarget::Address(want),
            "{address}"
        );
    }
}

#[test]
fn every_upstream_key() {
    let upstream = format!(
        "{UPSTREAM}\nusername = \"proxy\"\npassword = \"s3cret\"\nconnect_timeout_ms = 250"
    );
    let c = ok(&doc(SERVER, TLS, &upstream, ""));
    assert_eq!(c.upstream.username.as_deref(), Some("proxy"));
    assert_eq!(c.upstream.password.as_deref(), Some("s3cret"));
    assert_eq!(c.upstream.connect_timeout, Duration::from_millis(250));

    let pooled = format!("{UPSTREAM}\nmode = \"pooled\"");
    let c = ok(&doc(SERVER, TLS, &pooled, ""));
    assert_eq!(
        c.upstream.mode,
        UpstreamMode::Pooled {
            size: 4,
            reply_limit: 64 << 20
        }
    );
    let sized = format!("{pooled}\npool_size = 2\npool_reply_limit = 1000");
    let c = ok(&doc(SERVER, TLS, &sized, ""));
    assert_eq!(
        c.upstream.mode,
        UpstreamMode::Pooled {
            size: 2,
            reply_limit: 1000
        }
    );
}

#[test]
fn relative_paths_resolve_against_the_config_dir() {
    let tls = r#"cert = "certs/server.pem"
key = "/abs/server.key"
client_ca = "../ca.pem"
crl = ["a.crl", "/b.crl"]"#;
    let c = ok(&doc(
        SERVER,
        tls,
        UPSTREAM,
        "[auth]\nacl_file = \"users.acl\"",
    ));
    assert_eq!(
        c.tls.cert,
        PathBuf::from("/etc/portcullis/certs/server.pem")
    );
    assert_eq!(c.tls.key, PathBuf::from("/abs/server.key"));
    assert_eq!(
        c.tls.client_ca,
        Some(PathBuf::from("/etc/portcullis/../ca.pem"))
    );
    assert_eq!(
        c.tls.crl,
        vec![
            PathBuf::from("/etc/portcullis/a.crl"),
            PathBuf::from("/b.crl")
        ]
    );
    assert_eq!(
        c.auth.acl_file,
        Some(PathBuf::from("/etc/portcullis/users.acl"))
    );
}

#[test]
fn file_without_directory_keeps_paths_relative_to_cwd() {
    let c = parse(MINIMAL, Path::new("proxy.toml"));
    let c = c.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.tls.cert, PathBuf::from("server.pem"));
    assert_eq!(c.path, PathBuf::from("proxy.toml"));
}

#[test]
fn every_auth_key() {
    for (value, want) in [
        ("cn", CertUserField::Cn),
        ("san-uri", CertUserField::SanUri),
        ("san-dns", CertUserField::SanDns),
        ("san-email", CertUserField::SanEmail),
        ("none", CertUserField::None),
    ] {
        let c = ok(&with(&format!("[auth]\ncert_user = \"{value}\"")));
        assert_eq!(c.auth.cert_user, want);
    }
    let c = ok(&with(
        "[auth]\ncert_map = { \"spiffe://prod/ns/web/sa/cache\" = \"cache_app\" }",
    ));
    assert_eq!(
        c.auth
            .cert_map
            .get("spiffe://prod/ns/web/sa/cache")
            .map(String::as_str),
        Some("cache_app")
    );
    let c = ok(&with(
        "[auth.cert_map]\n\"CN One\" = \"one\"\ntwo = \"two\"",
    ));
    assert_eq!(c.auth.cert_map.len(), 2);
}

#[test]
fn every_limits_key() {
    let limits = "[limits]
max_clients = 1
max_clients_per_ip = 2
max_bulk_len = 3
max_multibulk_len = 4
max_inline_len = 5
max_query_buffer = 6
handshake_timeout_ms = 7
idle_timeout_s = 8
rate_mode = \"reject\"";
    let l = ok(&with(limits)).limits;
    assert_eq!(
        (
            l.max_clients,
            l.max_clients_per_ip,
            l.max_bulk_len,
            l.max_multibulk_len
        ),
        (1, 2, 3, 4)
    );
    assert_eq!((l.max_inline_len, l.max_query_buffer), (5, 6));
    assert_eq!(l.handshake_timeout, Duration::from_millis(7));
    assert_eq!(l.idle_timeout, Some(Duration::from_secs(8)));
    assert_eq!(l.rate_mode, RateMode::Reject);
}

#[test]
fn idle_timeout_zero_means_never() {
    let l = ok(&with("[limits]\nidle_timeout_s = 0\nrate_mode = \"delay\"")).limits;
    assert_eq!(l.idle_timeout, None);
    assert_eq!(l.rate_mode, RateMode::Delay);
}

#[test]
fn users_in_file_order() {
    let users = r#"[[users]]
name = "cache_app"
rules = "on #abc ~cache:* &cache:* +@all -@dangerous"
max_clients = 100
rate = { ops_per_sec = 5000, burst = 500 }

[[users]]
name = "default"
rules = "on nopass ~* +@all"
"#;
    let c = ok(&with(users));
    assert_eq!(c.users.len(), 2);
    assert_eq!(c.users[0].name, "cache_app");
    assert_eq!(
        c.users[0].rules,
        "on #abc ~cache:* &cache:* +@all -@dangerous"
    );
    assert_eq!(c.users[0].max_clients, Some(100));
    assert_eq!(
        c.users[0].rate,
        Some(RateSettings {
            ops_per_sec: 5000,
            burst: 500
        })
    );
    assert_eq!(c.users[1].name, "default");
    assert_eq!(c.users[1].max_clients, None);
    assert_eq!(c.users[1].rate, None);
}

#[test]
fn user_names_may_hold_unicode_and_punctuation() {
    let c = ok(&with(
        "[[users]]\nname = \"ünï:côde-1\u{a0}x\"\nrules = \"\"",
    ));
    assert_eq!(c.users[0].name, "ünï:côde-1\u{a0}x");
}

#[test]
fn shipped_proxy_toml_is_valid() {
    let text = include_str!("../../../proxy.toml");
    let c = parse(text, Path::new("proxy.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.server.listen, vec![sa("127.0.0.1:6380")]);
    assert_eq!(c.tls.cert, PathBuf::from("certs/server.pem"));
    assert_eq!(c.tls.key, PathBuf::from("certs/server.key"));
    assert_eq!(c.tls.client_ca, Some(PathBuf::from("certs/ca.pem")));
    assert_eq!(c.tls.client_auth, ClientAuth::Required);
    assert_eq!(
        c.upstream.target,
        UpstreamTarget::Address(UpstreamAddr::Tcp("127.0.0.1:6379".into()))
    );
    assert_eq!(c.auth.cert_user, CertUserField::Cn);
    assert_eq!(c.users.len(), 1);
    assert_eq!(c.users[0].name, "app");
    assert_eq!(c.users[0].rules, "on ~* &* +@all");
}

#[test]
fn watched_files_are_every_tls_and_jwks_file() {
    let config = ok(&doc(
        SERVER,
        "cert = \"s.pem\"\nkey = \"s.key\"\nclient_ca = \"ca.pem\"\ncrl = [\"a.crl\", \"b.crl\"]",
        "address = \"127.0.0.1:6379\"\n[upstream.tls]\nca = \"up-ca.pem\"\ncert = \"up.pem\"\nkey = \"up.key\"",
        "[auth.token]\njwks = \"jwks.json\"",
    ));
    let names: Vec<String> = config
        .watched_files()
        .iter()
        .map(|p| {
            p.strip_prefix("/etc/portcullis")
                .expect("resolved")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "s.pem",
            "s.key",
            "ca.pem",
            "a.crl",
            "b.crl",
            "up-ca.pem",
            "up.pem",
            "up.key",
            "jwks.json"
        ]
    );
    assert_eq!(ok(MINIMAL).watched_files().len(), 2);
}
