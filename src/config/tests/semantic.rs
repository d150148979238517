//! Semantic errors: a sentence naming the key; all of them collected.

use super::*;

/// MINIMAL with `line` added to `[server]`.
fn server_with(line: &str) -> String {
    doc(&format!("{SERVER}\n{line}"), TLS, UPSTREAM, "")
}

/// MINIMAL with `line` added to `[tls]`.
fn tls_with(line: &str) -> String {
    doc(SERVER, &format!("{TLS}\n{line}"), UPSTREAM, "")
}

/// MINIMAL with `line` added to `[upstream]`.
fn upstream_with(line: &str) -> String {
    doc(SERVER, TLS, &format!("{UPSTREAM}\n{line}"), "")
}

#[test]
fn bad_listen_addresses() {
    assert_eq!(
        err(&doc(r#"listen = "foo""#, TLS, UPSTREAM, "")),
        r#"server.listen: "foo" is not a valid address (expected host:port)"#
    );
    assert_eq!(
        err(&doc(
            r#"listen = ["127.0.0.1:1", "1.2.3.4"]"#,
            TLS,
            UPSTREAM,
            ""
        )),
        r#"server.listen: "1.2.3.4" is not a valid address (expected host:port)"#
    );
    assert_eq!(
        err(&doc("listen = []", TLS, UPSTREAM, "")),
        "server.listen: must not be empty"
    );
    assert_eq!(
        err(&server_with(r#"metrics_listen = "127.0.0.1""#)),
        r#"server.metrics_listen: "127.0.0.1" is not a valid address (expected host:port)"#
    );
    assert_eq!(
        err(&server_with(r#"plaintext_listen = ":80""#)),
        r#"server.plaintext_listen: ":80" is not a valid address (expected host:port)"#
    );
}

#[test]
fn unresolvable_listen_host() {
    let e = err(&doc(
        r#"listen = "no-such-host.invalid:6380""#,
        TLS,
        UPSTREAM,
        "",
    ));
    assert!(
        e.starts_with(r#"server.listen: cannot resolve "no-such-host.invalid:6380": "#),
        "{e}"
    );
}

#[test]
fn plaintext_remote_refused() {
    assert_eq!(
        err(&server_with(r#"plaintext_listen = "0.0.0.0:6381""#)),
        "server.plaintext_listen: 0.0.0.0:6381 is not a loopback address; \
         set server.allow_plaintext_remote = true to allow plaintext from other hosts"
    );
    let all = errs(&server_with(
        r#"plaintext_listen = ["127.0.0.1:6381", "10.1.2.3:6381", "[::]:6381"]"#,
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[0].starts_with("server.plaintext_listen: 10.1.2.3:6381 is not a loopback"));
    assert!(all[1].starts_with("server.plaintext_listen: [::]:6381 is not a loopback"));
    let e = err(&server_with(
        "plaintext_listen = \"0.0.0.0:6381\"\nallow_plaintext_remote = false",
    ));
    assert!(e.contains("is not a loopback address"), "{e}");
}

#[test]
fn one_address_for_two_listeners() {
    assert_eq!(
        err(&server_with(r#"plaintext_listen = "127.0.0.1:6380""#)),
        "server.plaintext_listen: 127.0.0.1:6380 is already used by server.listen"
    );
    assert_eq!(
        err(&server_with(
            "plaintext_listen = \"127.0.0.1:6381\"\nmetrics_listen = \"127.0.0.1:6381\""
        )),
        "server.metrics_listen: 127.0.0.1:6381 is already used by server.plaintext_listen"
    );
}

#[test]
fn worker_threads_zero() {
    assert_eq!(
        err(&server_with("worker_threads = 0")),
        "server.worker_threads: must be at least 1, got 0"
    );
}

#[test]
fn client_auth_without_ca() {
    assert_eq!(
        err(&tls_with(r#"client_auth = "required""#)),
        r#"tls.client_auth = "required" needs tls.client_ca"#
    );
    assert_eq!(
        err(&tls_with(r#"client_auth = "optional""#)),
        r#"tls.client_auth = "optional" needs tls.client_ca"#
    );
    assert_eq!(
        err(&tls_with(r#"crl = ["ca.crl"]"#)),
        "tls.crl needs tls.client_ca"
    );
}

#[test]
fn bad_tls_choices_and_paths() {
    assert_eq!(
        err(&tls_with(r#"client_auth = "yes""#)),
        r#"tls.client_auth: "yes" is not one of "required", "optional", "none""#
    );
    assert_eq!(
        err(&tls_with(r#"min_version = "1.1""#)),
        r#"tls.min_version: "1.1" is not one of "1.2", "1.3""#
    );
    assert_eq!(
        err(&doc(SERVER, "cert = \"\"\nkey = \"k\"", UPSTREAM, "")),
        "tls.cert: must not be empty"
    );
}

#[test]
fn bad_upstream_addresses() {
    for address in ["foo", "unix:", "redis:0", "::1:6379", "redis:port", ""] {
        assert_eq!(
            err(&doc(SERVER, TLS, &format!("address = \"{address}\""), "")),
            format!(
                "upstream.address: {address:?} is not a valid address (expected host:port or unix:/path)"
            )
        );
    }
}

#[test]
fn upstream_credentials() {
    assert_eq!(
        err(&upstream_with("password = \"a\"\npassword_file = \"pw\"")),
        "upstream: set either password or password_file, not both"
    );
    assert_eq!(
        err(&upstream_with("password = \"\"")),
        "upstream.password: must not be empty"
    );
    assert_eq!(
        err(&upstream_with("username = \"proxy\"")),
        "upstream.username needs upstream.password or upstream.password_file"
    );
    assert_eq!(
        err(&upstream_with("connect_timeout_ms = 0")),
        "upstream.connect_timeout_ms: must be at least 1, got 0"
    );
}

#[test]
fn upstream_mode_keys() {
    assert_eq!(
        err(&upstream_with("mode = \"shared\"")),
        r#"upstream.mode: "shared" is not one of "dedicated", "pooled""#
    );
    assert_eq!(
        err(&upstream_with("pool_size = 2")),
        "upstream.pool_size needs upstream.mode = \"pooled\""
    );
    assert_eq!(
        err(&upstream_with("mode = \"dedicated\"\npool_reply_limit = 9")),
        "upstream.pool_reply_limit needs upstream.mode = \"pooled\""
    );
    assert_eq!(
        err(&upstream_with("mode = \"pooled\"\npool_size = 0")),
        "upstream.pool_size: must be at least 1, got 0"
    );
}

#[test]
fn password_never_in_errors() {
    let text = doc(
        "listen = \"bad\"",
        TLS,
        "address = \"x\"\nusername = \"u\"\npassword = \"hunter2\"\npassword_file = \"f\"",
        "[[users]]\nname = \"a b\"\nrules = \"on >hunter2\"",
    );
    let all = errs(&text).join("\n");
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn password_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("proxy.toml");
    for (contents, want) in [
        ("pw\n", "pw"),
        ("pw\r\n", "pw"),
        ("pw", "pw"),
        ("pw\n\n", "pw\n"),
        (" p w \n", " p w "),
    ] {
        std::fs::write(dir.path().join("pw.txt"), contents).unwrap_or_else(|e| panic!("{e}"));
        let text = upstream_with("username = \"u\"\npassword_file = \"pw.txt\"");
        let c = parse(&text, &config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.upstream.password.as_deref(), Some(want), "{contents:?}");
    }
}

#[test]
fn password_file_problems() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("proxy.toml");
    let text = upstream_with("password_file = \"missing.txt\"");
    let e = match parse(&text, &config) {
        Ok(_) => panic!("accepted a missing password file"),
        Err(e) => e.to_string(),
    };
    let path = dir.path().join("missing.txt");
    let want = format!("upstream.password_file: cannot read {}: ", path.display());
    assert!(e.starts_with(&want), "{e}");

    std::fs::write(dir.path().join("empty.txt"), "\n").unwrap_or_else(|e| panic!("{e}"));
    let text = upstream_with("password_file = \"empty.txt\"");
    let e = match parse(&text, &config) {
        Ok(_) => panic!("accepted an empty password file"),
        Err(e) => e.to_string(),
    };
    let path = dir.path().join("empty.txt");
    assert_eq!(
        e,
        format!("upstream.password_file: {} is empty", path.display())
    );
}

#[test]
fn zero_limits() {
    for key in [
        "max_clients",
        "max_clients_per_ip",
        "max_bulk_len",
        "max_multibulk_len",
        "max_inline_len",
        "max_query_buffer",
        "handshake_timeout_ms",
    ] {
        assert_eq!(
            err(&with(&format!("[limits]\n{key} = 0"))),
            format!("limits.{key}: must be at least 1, got 0")
        );
    }
    assert_eq!(
        err(&with("[limits]\nrate_mode = \"drop\"")),
        r#"limits.rate_mode: "drop" is not one of "delay", "reject""#
    );
}

#[test]
fn bad_auth_values() {
    assert_eq!(
        err(&with("[auth]\ncert_user = \"CN\"")),
        r#"auth.cert_user: "CN" is not one of "cn", "san-uri", "san-dns", "san-email", "none""#
    );
    assert_eq!(
        err(&with("[auth]\ncert_map = { \"x\" = \"a b\" }")),
        r#"auth.cert_map["x"]: user name "a b" can't contain spaces or null characters"#
    );
    assert_eq!(
        err(&with("[auth]\ncert_map = { \"x\" = \"\" }")),
        r#"auth.cert_map["x"]: must not be empty"#
    );
    assert_eq!(
        err(&with("[auth]\nacl_file = \"\"")),
        "auth.acl_file: must not be empty"
    );
}

#[test]
fn bad_user_names() {
    for (toml_name, shown) in [
        (r#""a b""#, r#""a b""#),
        (r#""a\tb""#, r#""a\tb""#),
        (r#""a\u0000b""#, r#""a\0b""#),
        (r#""ab\n""#, r#""ab\n""#),
    ] {
        assert_eq!(
            err(&with(&format!(
                "[[users]]\nname = {toml_name}\nrules = \"on\""
            ))),
            format!("users[0]: user name {shown} can't contain spaces or null characters")
        );
    }
    assert_eq!(
        err(&with("[[users]]\nname = \"\"\nrules = \"on\"")),
        "users[0].name: must not be empty"
    );
}

#[test]
fn duplicate_and_bad_user_limits() {
    let users = "[[users]]\nname = \"x\"\nrules = \"on\"\n\
                 [[users]]\nname = \"y\"\nrules = \"on\"\nmax_clients = 0\n\
                 [[users]]\nname = \"x\"\nrules = \"off\"\nrate = { ops_per_sec = 0, burst = 0 }";
    assert_eq!(
        errs(&with(users)),
        vec![
            "users[1].max_clients: must be at least 1, got 0",
            r#"users[2]: duplicate user name "x""#,
            "users[2].rate.ops_per_sec: must be at least 1, got 0",
            "users[2].rate.burst: must be at least 1, got 0",
        ]
    );
}

#[test]
fn every_error_is_collected_in_file_order() {
    let text = doc(
        "listen = \"foo\"\nplaintext_listen = \"0.0.0.0:1\"",
        "cert = \"c\"\nkey = \"k\"\nclient_auth = \"required\"\nmin_version = \"9\"",
        "address = \"nope\"\npassword = \"p\"\npassword_file = \"f\"",
        "[limits]\nmax_clients = 0\n[[users]]\nname = \"a\"\nrules = \"on\"\n\
         [[users]]\nname = \"a\"\nrules = \"on\"",
    );
    let all = errs(&text);
    let keys: Vec<&str> = all
        .iter()
        .map(|e| e.split([':', ' ']).next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        vec![
            "server.listen",
            "server.plaintext_listen",
            "tls.client_auth",
            "tls.min_version",
            "upstream.address",
            "upstream",
            "limits.max_clients",
            "users[1]",
        ],
        "{all:#?}"
    );
    let joined = match parse(&text, Path::new("p.toml")) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert_eq!(joined, all.join("\n"));
}

#[test]
fn edge_lists_and_user_access() {
    assert_eq!(
        errs(&server_with(
            r#"allow = ["10.0.0.0/8", "10.0.0.0/33", "db.example"]"#
        )),
        [
            r#"server.allow: "10.0.0.0/33" is not a CIDR network or an IP address (10.0.5.0/24, 2001:db8::/32, 127.0.0.1)"#,
            r#"server.allow: "db.example" is not a CIDR network or an IP address (10.0.5.0/24, 2001:db8::/32, 127.0.0.1)"#,
        ]
    );
    assert_eq!(
        err(&server_with("allow = []")),
        "server.allow: must not be empty"
    );
    let user = |line: &str| with(&format!("[[users]]\nname = \"u\"\nrules = \"on\"\n{line}"));
    assert_eq!(
        err(&user(r#"auth_methods = ["cert", "kerberos"]"#)),
        r#"users[0].auth_methods: "kerberos" is not one of "cert", "password", "token""#
    );
    assert_eq!(
        err(&user("auth_methods = []")),
        "users[0].auth_methods: must not be empty"
    );
    assert_eq!(
        err(&user(r#"allow_from = ["fe80::/129"]"#)),
        r#"users[0].allow_from: "fe80::/129" is not a CIDR network or an IP address (10.0.5.0/24, 2001:db8::/32, 127.0.0.1)"#
    );
    assert_eq!(
        err(&user("enforce = \"no\"")).split(':').next(),
        Some("/etc/portcullis/proxy.toml")
    );
    let config = ok(&user(
        "allow_from = [\"10.0.5.0/24\", \"::1\"]\nauth_methods = [\"cert\"]\nenforce = false",
    ));
    let u = &config.users[0];
    assert!(!u.enforce);
    let access = &u.access;
    assert!(access
        .allow_from
        .as_ref()
        .is_some_and(|l| l.contains("10.0.5.9".parse().unwrap())));
    assert!(access.methods.contains(crate::edge::AuthMethod::Cert));
    assert!(!access.methods.contains(crate::edge::AuthMethod::Password));
    let config = ok(&server_with(r#"allow = ["127.0.0.1"]"#));
    assert!(config.server.allow.is_some());
    assert!(ok(MINIMAL).server.allow.is_none() && ok(MINIMAL).users.is_empty());
}

#[test]
fn token_settings() {
    let config = ok(&with(
        "[auth.token]\njwks = \"keys/jwks.json\"\nissuer = \"https://idp\"",
    ));
    let token = config.auth.token.expect("token settings");
    assert_eq!(token.jwks, Path::new("/etc/portcullis/keys/jwks.json"));
    assert_eq!(token.issuer.as_deref(), Some("https://idp"));
    assert_eq!(token.audience, None);
    assert_eq!(token.user_claim, "sub");
    assert!(ok(MINIMAL).auth.token.is_none());
    assert_eq!(
        err(&with("[auth.token]\njwks = \"\"\nuser_claim = \"email\"")),
        "auth.token.jwks: must not be empty"
    );
    assert_eq!(
        err(&with("[auth.token]\njwks = \"j.json\"\nuser_claim = \"\"")),
        "auth.token.user_claim: must not be empty"
    );
    assert!(err(&with(
        "[auth.token]\njwks = \"j.json\"\nalgorithms = [\"HS256\"]"
    ))
    .contains("unknown field"));
}
