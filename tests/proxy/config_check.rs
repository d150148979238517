//! `config::load` from real files: the shipped `proxy.toml`, a missing file,
//! and a config directory with relative paths and a password file.

use std::path::{Path, PathBuf};

use portcullis::config::{self, ClientAuth, ConfigError, UpstreamAddr, UpstreamTarget};

#[test]
fn shipped_proxy_toml_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml");
    let config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let dir = path.parent().unwrap_or(Path::new(""));
    assert_eq!(config.tls.cert, dir.join("certs/server.pem"));
    assert_eq!(config.tls.client_ca, Some(dir.join("certs/ca.pem")));
    assert_eq!(config.tls.client_auth, ClientAuth::Required);
    assert_eq!(config.users.len(), 1);
    assert_eq!(config.users[0].name, "app");
}

#[test]
fn missing_file_is_one_read_error() {
    let path = Path::new("/nonexistent/portcullis/proxy.toml");
    let errors = match config::load(path) {
        Ok(_) => panic!("loaded a file that does not exist"),
        Err(errors) => errors,
    };
    assert_eq!(errors.len(), 1);
    assert!(matches!(errors.0[0], ConfigError::Read { .. }));
    let line = errors.to_string();
    assert!(
        line.starts_with("cannot read /nonexistent/portcullis/proxy.toml: "),
        "{line}"
    );
}

#[test]
fn config_directory_is_the_base_for_relative_paths() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sub = dir.path().join("etc");
    std::fs::create_dir(&sub).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(sub.join("redis.pass"), "s3cret\r\n").unwrap_or_else(|e| panic!("{e}"));
    let text = r#"
[server]
listen = ["127.0.0.1:0"]

[tls]
cert = "tls/server.pem"
key = "tls/server.key"

[upstream]
address = "unix:run/redis.sock"
username = "proxy"
password_file = "redis.pass"
"#;
    let path = sub.join("proxy.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.path, path);
    assert_eq!(config.tls.cert, sub.join("tls/server.pem"));
    assert_eq!(
        config.upstream.target,
        UpstreamTarget::Address(UpstreamAddr::Unix(sub.join("run/redis.sock")))
    );
    assert_eq!(config.upstream.password.as_deref(), Some("s3cret"));
    assert_eq!(config.tls.crl, Vec::<PathBuf>::new());
}

#[test]
fn syntax_errors_name_the_file_as_given() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:6380\"\nport = 1\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let line = match config::load(&path) {
        Ok(_) => panic!("accepted an unknown key"),
        Err(errors) => errors.to_string(),
    };
    assert!(
        line.starts_with(&format!("{}:3:1: unknown field `port`", path.display())),
        "{line}"
    );
}
