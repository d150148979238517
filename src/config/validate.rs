//! Stage 2: file structs -> runtime [`Config`].
//!
//! Applies the spec's defaults, resolves paths against the config file's
//! directory, resolves listener addresses, reads `upstream.password_file`,
//! and collects every semantic error instead of stopping at the first.
//! Certificates, keys and the acl file are not read here (the TLS and ACL
//! modules do that).

use std::path::Path;
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors};
use super::file::{FileConfig, FileServer, FileTls};
use super::keys::{nonzero, path_key, source_list};
use super::net;
use super::sections;
use super::types::{ClientAuth, Config, ServerSettings, TlsSettings, TlsVersion};

/// Default `server.shutdown_grace_s`.
const DEFAULT_SHUTDOWN_GRACE_S: u64 = 30;

/// Turns the parsed file into a [`Config`], or every problem found.
pub(crate) fn validate(file: FileConfig, path: &Path) -> Result<Config, ConfigErrors> {
    let base = path.parent().unwrap_or(Path::new(""));
    let mut errors = Vec::new();
    let server = server(&file.server, &mut errors);
    let tls = tls(&file.tls, base, &mut errors);
    let upstream = super::upstream::upstream(&file.upstream, base, &mut errors);
    let auth = sections::auth(file.auth, base, &mut errors);
    let limits = sections::limits(&file.limits, &mut errors);
    let users = sections::users(file.users, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Config {
        path: path.to_path_buf(),
        server,
        tls,
        upstream,
        auth,
        limits,
        users,
    })
}

fn server(file: &FileServer, errors: &mut Vec<ConfigError>) -> ServerSettings {
    const LISTEN: &str = "server.listen";
    const PLAINTEXT: &str = "server.plaintext_listen";
    const METRICS: &str = "server.metrics_listen";

    if file.listen.0.is_empty() {
        errors.push(ConfigError::Empty {
            key: LISTEN.to_owned(),
        });
    }
    let listen = net::resolve_listen_list(LISTEN, &file.listen.0, errors);

    let allow_remote = file.allow_plaintext_remote.unwrap_or(false);
    let mut plaintext_listen = Vec::new();
    for value in file.plaintext_listen.iter().flat_map(|list| list.0.iter()) {
        for addr in net::resolve_listen(PLAINTEXT, value, errors) {
            let shown = || match value.parse::<std::net::SocketAddr>() {
                Ok(_) => addr.to_string(),
                Err(_) => format!("{addr} (from {value:?})"),
            };
            if !allow_remote && !net::is_loopback(&addr) {
                errors.push(ConfigError::PlaintextRemote {
                    key: PLAINTEXT,
                    addr: shown(),
                });
            } else if addr.port() != 0 && listen.contains(&addr) {
                errors.push(ConfigError::AddressReused {
                    key: PLAINTEXT,
                    addr: shown(),
                    other: LISTEN,
                });
            }
            if !plaintext_listen.contains(&addr) {
                plaintext_listen.push(addr);
            }
        }
    }

    let metrics_listen = file.metrics_listen.as_deref().and_then(|value| {
        let addr = net::resolve_listen(METRICS, value, errors)
            .into_iter()
            .next()?;
        let other = if listen.contains(&addr) {
            Some(LISTEN)
        } else if plaintext_listen.contains(&addr) {
            Some(PLAINTEXT)
        } else {
            None
        };
        if let Some(other) = other.filter(|_| addr.port() != 0) {
            errors.push(ConfigError::AddressReused {
                key: METRICS,
                addr: addr.to_string(),
                other,
            });
        }
        Some(addr)
    });

    let worker_threads = file.worker_threads.map(|n| {
        let n = nonzero("server.worker_threads", Some(n), 1, errors);
        usize::try_from(n).unwrap_or(usize::MAX)
    });

    ServerSettings {
        listen,
        plaintext_listen,
        allow_plaintext_remote: allow_remote,
        metrics_listen,
        shutdown_grace: Duration::from_secs(
            file.shutdown_grace_s.unwrap_or(DEFAULT_SHUTDOWN_GRACE_S),
        ),
        worker_threads,
        allow: source_list("server.allow", file.allow.as_deref(), errors),
        proxy_protocol_from: source_list(
            "server.proxy_protocol_from",
            file.proxy_protocol_from.as_deref(),
            errors,
        ),
    }
}

fn tls(file: &FileTls, base: &Path, errors: &mut Vec<ConfigError>) -> TlsSettings {
    let cert = path_key("tls.cert", &file.cert, base, errors);
    let key = path_key("tls.key", &file.key, base, errors);
    let client_ca = file
        .client_ca
        .as_deref()
        .map(|ca| path_key("tls.client_ca", ca, base, errors));
    let has_ca = client_ca.is_some();

    let client_auth = match file.client_auth.as_deref() {
        None if has_ca => ClientAuth::Required,
        None | Some("none") => ClientAuth::None,
        Some(value @ ("required" | "optional")) => {
            if !has_ca {
                errors.push(ConfigError::Requires {
                    setting: format!("tls.client_auth = {value:?}"),
                    needs: "tls.client_ca",
                });
            }
            if value == "required" {
                ClientAuth::Required
            } else {
                ClientAuth::Optional
            }
        }
        Some(other) => {
            errors.push(ConfigError::BadChoice {
                key: "tls.client_auth",
                value: other.to_owned(),
                expected: r#""required", "optional", "none""#,
            });
            ClientAuth::None
        }
    };

    let crl_files = file.crl.as_deref().unwrap_or_default();
    if !crl_files.is_empty() && !has_ca {
        errors.push(ConfigError::Requires {
            setting: "tls.crl".to_owned(),
            needs: "tls.client_ca",
        });
    }
    let crl = crl_files
        .iter()
        .map(|p| path_key("tls.crl", p, base, errors))
        .collect();

    let min_version = match file.min_version.as_deref() {
        None | Some("1.2") => TlsVersion::Tls12,
        Some("1.3") => TlsVersion::Tls13,
        Some(other) => {
            errors.push(ConfigError::BadChoice {
                key: "tls.min_version",
                value: other.to_owned(),
                expected: r#""1.2", "1.3""#,
            });
            TlsVersion::Tls12
        }
    };

    TlsSettings {
        cert,
        key,
        client_ca,
        client_auth,
        crl,
        min_version,
    }
}
