//! Unit tests for `config::parse` / `config::load`.

use std::path::Path;

use super::{parse, Config, ConfigErrors};

/// The smallest valid file.
const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:6380"

[tls]
cert = "server.pem"
key = "server.key"

[upstream]
address = "127.0.0.1:6379"
"#;

/// Parses `text` as `/etc/portcullis/proxy.toml`; panics on errors.
fn ok(text: &str) -> Config {
    match parse(text, Path::new("/etc/portcullis/proxy.toml")) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    }
}

/// Parses `text` and returns every error line; panics when it is valid.
fn errs(text: &str) -> Vec<String> {
    match parse(text, Path::new("/etc/portcullis/proxy.toml")) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(ConfigErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// The single error for `text`.
fn err(text: &str) -> String {
    let all = errs(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap_or_default()
}

/// MINIMAL with `extra` appended (extra may add keys to a new section).
fn with(extra: &str) -> String {
    format!("{MINIMAL}\n{extra}\n")
}

/// `[server]` body of MINIMAL.
const SERVER: &str = r#"listen = "127.0.0.1:6380""#;
/// `[tls]` body of MINIMAL.
const TLS: &str = "cert = \"server.pem\"\nkey = \"server.key\"";
/// `[upstream]` body of MINIMAL.
const UPSTREAM: &str = r#"address = "127.0.0.1:6379""#;

/// A file from the bodies of its three required sections plus `rest`.
fn doc(server: &str, tls: &str, upstream: &str, rest: &str) -> String {
    format!("[server]\n{server}\n\n[tls]\n{tls}\n\n[upstream]\n{upstream}\n\n{rest}\n")
}

mod defaults;
mod semantic;
mod syntax;
