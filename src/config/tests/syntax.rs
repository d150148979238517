//! TOML syntax and type errors: `FILE:LINE:COL: message`, one line each.

use super::*;

/// The error lines for `text` read as `conf/p.toml` (a relative path, as given).
fn located(text: &str) -> Vec<String> {
    match parse(text, Path::new("conf/p.toml")) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// The single located error for `text`.
fn one(text: &str) -> String {
    let all = located(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    let line = all.into_iter().next().unwrap_or_default();
    assert!(!line.contains('\n'), "{line:?}");
    line
}

#[test]
fn unknown_top_level_key_points_at_the_key() {
    let text = format!("bogus = 1\n{MINIMAL}");
    let e = one(&text);
    assert!(
        e.starts_with("conf/p.toml:1:1: unknown field `bogus`, expected one of `server`"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_section_points_at_the_key() {
    let text = doc(&format!("{SERVER}\n  lisen = 1"), TLS, UPSTREAM, "");
    let e = one(&text);
    assert!(
        e.starts_with("conf/p.toml:3:3: unknown field `lisen`, expected one of `listen`"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_every_section() {
    let cases = [
        (
            doc(SERVER, &format!("{TLS}\ncerts = 1"), UPSTREAM, ""),
            "certs",
        ),
        (
            doc(SERVER, TLS, &format!("{UPSTREAM}\nadress = 1"), ""),
            "adress",
        ),
        (with("[auth]\ncert_users = 1"), "cert_users"),
        (with("[limits]\nmax_client = 1"), "max_client"),
    ];
    for (text, key) in cases {
        let e = one(&text);
        let line = text.lines().position(|l| l.starts_with(key)).unwrap_or(0) + 1;
        assert!(
            e.starts_with(&format!("conf/p.toml:{line}:1: unknown field `{key}`")),
            "{e}"
        );
    }
}

#[test]
fn unknown_key_in_users_points_at_the_key() {
    let text = with("[[users]]\nname = \"a\"\nrules = \"on\"\n max_client = 3");
    let e = one(&text);
    let line = text.lines().count();
    assert!(
        e.starts_with(&format!(
            "conf/p.toml:{line}:2: unknown field `max_client`, expected one of `name`, `rules`"
        )),
        "{e}"
    );
}

#[test]
fn unknown_key_in_rate_points_at_the_key() {
    let text = with("[[users]]\nname = \"a\"\nrules = \"on\"\nrate = { ops_per_sec = 1, x = 3 }");
    let e = one(&text);
    let line = text.lines().count();
    assert_eq!(
        e,
        format!("conf/p.toml:{line}:27: unknown field `x`, expected `ops_per_sec` or `burst`")
    );
}

#[test]
fn missing_required_keys() {
    for (text, field) in [
        (doc("", TLS, UPSTREAM, ""), "listen"),
        (doc(SERVER, "key = \"k\"", UPSTREAM, ""), "cert"),
        (doc(SERVER, "cert = \"c\"", UPSTREAM, ""), "key"),
        (with("[[users]]\nrules = \"on\""), "name"),
        (with("[[users]]\nname = \"a\""), "rules"),
        (
            with("[[users]]\nname = \"a\"\nrules = \"on\"\nrate = { burst = 1 }"),
            "ops_per_sec",
        ),
    ] {
        let e = one(&text);
        assert!(e.starts_with("conf/p.toml:"), "{e}");
        assert!(e.ends_with(&format!(": missing field `{field}`")), "{e}");
    }
}

/// `address` is no longer required by the file's shape (a Sentinel or Cluster
/// table may stand instead): its absence is a sentence naming the choice.
#[test]
fn an_upstream_needs_exactly_one_target() {
    let e = located(&doc(SERVER, TLS, "connect_timeout_ms = 5", ""));
    assert_eq!(
        e,
        ["upstream: set exactly one of address, [upstream.sentinel] and [upstream.cluster]"]
    );
    let both = "address = \"127.0.0.1:1\"\n[upstream.sentinel]\nmaster = \"m\"\naddresses = [\"127.0.0.1:2\"]";
    assert_eq!(
        located(&doc(SERVER, TLS, both, "")),
        ["upstream: set exactly one of address, [upstream.sentinel] and [upstream.cluster]"]
    );
}

#[test]
fn missing_required_sections() {
    let no_tls = format!("[server]\n{SERVER}\n[upstream]\n{UPSTREAM}\n");
    assert_eq!(one(&no_tls), "conf/p.toml:1:1: missing field `tls`");
    let no_upstream = format!("[server]\n{SERVER}\n[tls]\n{TLS}\n");
    assert_eq!(
        one(&no_upstream),
        "conf/p.toml:1:1: missing field `upstream`"
    );
    assert_eq!(one(""), "conf/p.toml:1:1: missing field `server`");
}

#[test]
fn wrong_types() {
    let e = one(&doc("listen = 5", TLS, UPSTREAM, ""));
    assert_eq!(
        e,
        "conf/p.toml:2:10: invalid type: integer `5`, expected an address string or an array of address strings"
    );
    let e = one(&doc(r#"listen = ["127.0.0.1:1", 5]"#, TLS, UPSTREAM, ""));
    assert_eq!(
        e,
        "conf/p.toml:2:26: invalid type: integer `5`, expected a string"
    );
    let e = one(&doc(
        &format!("{SERVER}\nshutdown_grace_s = \"x\""),
        TLS,
        UPSTREAM,
        "",
    ));
    assert_eq!(
        e,
        "conf/p.toml:3:20: invalid type: string \"x\", expected u64"
    );
    let e = one(&doc(
        &format!("{SERVER}\nallow_plaintext_remote = 1"),
        TLS,
        UPSTREAM,
        "",
    ));
    assert!(
        e.starts_with("conf/p.toml:3:26: invalid type: integer `1`"),
        "{e}"
    );
    let e = one(&with("[tls.x]"));
    assert!(e.contains("unknown field `x`"), "{e}");
}

#[test]
fn out_of_range_numbers() {
    let e = one(&doc(
        &format!("{SERVER}\nshutdown_grace_s = -1"),
        TLS,
        UPSTREAM,
        "",
    ));
    assert_eq!(
        e,
        "conf/p.toml:3:20: invalid value: integer `-1`, expected u64"
    );
    let text = with("[[users]]\nname = \"a\"\nrules = \"on\"\nmax_clients = 5000000000");
    let e = one(&text);
    assert!(
        e.ends_with(":15: invalid value: integer `5000000000`, expected u32"),
        "{e}"
    );
    let e = one(&with("[limits]\nmax_bulk_len = -5"));
    assert!(e.contains("invalid value: integer `-5`"), "{e}");
}

#[test]
fn toml_syntax_errors_are_one_line() {
    assert_eq!(
        one("[server\nlisten = 1"),
        "conf/p.toml:1:8: invalid table header; expected `.`, `]`"
    );
    let e = one("x = \"unterminated\n");
    assert!(e.starts_with("conf/p.toml:1:"), "{e}");
    let e = one(&with("[limits]\nmax_clients = 1\nmax_clients = 2"));
    assert!(e.contains("duplicate key `max_clients`"), "{e}");
}

#[test]
fn file_name_is_shown_as_given() {
    let e = match parse("nonsense", Path::new("/abs/dir/proxy.toml")) {
        Ok(_) => panic!("accepted nonsense"),
        Err(errors) => errors.to_string(),
    };
    assert!(e.starts_with("/abs/dir/proxy.toml:1:"), "{e}");
}

#[test]
fn password_type_errors_do_not_show_the_value() {
    for value in [
        "84217",
        "84217.5",
        "true",
        "[84217]",
        "{ p = 84217 }",
        "1984-02-17",
    ] {
        let text = doc(SERVER, TLS, &format!("{UPSTREAM}\npassword = {value}"), "");
        let e = one(&text);
        assert!(!e.contains("84217") && !e.contains("1984"), "{e}");
        assert!(e.starts_with("conf/p.toml:10:12: invalid type"), "{e}");
    }
}
