//! `[upstream]` and its tables: where the data servers are (one address, or
//! the master Sentinel names), credentials, TLS, renamed commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::file::{FileSentinel, FileUpstream, FileUpstreamTls, Secret};
use super::keys::{nonzero, path_key};
use super::net;
use super::types::{
    ClusterSettings, SentinelSettings, UpstreamAddr, UpstreamMode, UpstreamSettings,
    UpstreamTarget, UpstreamTlsSettings,
};

/// Default `upstream.connect_timeout_ms`.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1000;

/// `[upstream]`, every problem added to `errors`.
pub(crate) fn upstream(
    file: &FileUpstream,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> UpstreamSettings {
    let target = target(file, base, errors);
    let (username, password) = credentials(
        "upstream",
        file.username.as_deref(),
        file.password.as_ref(),
        file.password_file.as_deref(),
        base,
        errors,
    );
    let timeout_ms = nonzero(
        "upstream.connect_timeout_ms",
        file.connect_timeout_ms,
        DEFAULT_CONNECT_TIMEOUT_MS,
        errors,
    );
    UpstreamSettings {
        target,
        username,
        password,
        connect_timeout: Duration::from_millis(timeout_ms),
        tls: file.tls.as_ref().map(|t| tls(t, base, errors)),
        rename_commands: renames(file.rename_commands.as_ref(), errors),
        mode: mode(file, errors),
    }
}

/// Default `upstream.pool_size`.
const DEFAULT_POOL_SIZE: usize = 4;
/// Default `upstream.pool_reply_limit`.
const DEFAULT_POOL_REPLY_LIMIT: usize = 64 << 20;

/// `mode`, `pool_size` and `pool_reply_limit` (the last two only with
/// `mode = "pooled"`, which a cluster upstream always is).
fn mode(file: &FileUpstream, errors: &mut Vec<ConfigError>) -> UpstreamMode {
    let size = nonzero(
        "upstream.pool_size",
        file.pool_size,
        DEFAULT_POOL_SIZE,
        errors,
    );
    let reply_limit = nonzero(
        "upstream.pool_reply_limit",
        file.pool_reply_limit,
        DEFAULT_POOL_REPLY_LIMIT,
        errors,
    );
    let cluster = file.cluster.is_some();
    match file.mode.as_deref() {
        // A cluster is served over pooled connections (one pool per master).
        None | Some("pooled") if cluster => UpstreamMode::Pooled { size, reply_limit },
        Some("dedicated") if cluster => {
            errors.push(ConfigError::Invalid {
                key: "upstream.mode".into(),
                reason: "a cluster upstream is served in pooled mode (one pool per master)".into(),
            });
            UpstreamMode::Pooled { size, reply_limit }
        }
        None | Some("dedicated") => {
            for (set, key) in [
                (file.pool_size.is_some(), "upstream.pool_size"),
                (file.pool_reply_limit.is_some(), "upstream.pool_reply_limit"),
            ] {
                if set {
                    errors.push(ConfigError::Requires {
                        setting: key.into(),
                        needs: "upstream.mode = \"pooled\"",
                    });
                }
            }
            UpstreamMode::Dedicated
        }
        Some("pooled") => UpstreamMode::Pooled { size, reply_limit },
        Some(other) => {
            errors.push(ConfigError::BadChoice {
                key: "upstream.mode",
                value: other.to_owned(),
                expected: r#""dedicated", "pooled""#,
            });
            UpstreamMode::Dedicated
        }
    }
}

/// Exactly one of `address`, `[upstream.sentinel]`, `[upstream.cluster]`.
fn target(file: &FileUpstream, base: &Path, errors: &mut Vec<ConfigError>) -> UpstreamTarget {
    let placeholder = UpstreamTarget::Address(UpstreamAddr::Tcp(String::new()));
    let given = [
        file.address.is_some(),
        file.sentinel.is_some(),
        file.cluster.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() != 1 {
        errors.push(ConfigError::Invalid {
            key: "upstream".into(),
            reason: "set exactly one of address, [upstream.sentinel] and [upstream.cluster]".into(),
        });
        return placeholder;
    }
    if let Some(address) = &file.address {
        return net::upstream_addr(address, base, errors)
            .map(UpstreamTarget::Address)
            .unwrap_or(placeholder);
    }
    if let Some(sentinel) = &file.sentinel {
        return UpstreamTarget::Sentinel(sentinel_settings(sentinel, base, errors));
    }
    let Some(cluster) = &file.cluster else {
        return placeholder;
    };
    if cluster.seeds.is_empty() {
        errors.push(ConfigError::Empty {
            key: "upstream.cluster.seeds".into(),
        });
    }
    for seed in &cluster.seeds {
        net::host_port("upstream.cluster.seeds", seed, errors);
    }
    UpstreamTarget::Cluster(ClusterSettings {
        seeds: cluster
            .seeds
            .iter()
            .map(|s| UpstreamAddr::Tcp(s.clone()))
            .collect(),
    })
}

fn sentinel_settings(
    file: &FileSentinel,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> SentinelSettings {
    if file.master.is_empty() {
        errors.push(ConfigError::Empty {
            key: "upstream.sentinel.master".into(),
        });
    }
    if file.addresses.is_empty() {
        errors.push(ConfigError::Empty {
            key: "upstream.sentinel.addresses".into(),
        });
    }
    for address in &file.addresses {
        net::host_port("upstream.sentinel.addresses", address, errors);
    }
    let (username, password) = credentials(
        "upstream.sentinel",
        file.username.as_deref(),
        file.password.as_ref(),
        file.password_file.as_deref(),
        base,
        errors,
    );
    SentinelSettings {
        master: file.master.clone(),
        addresses: file.addresses.clone(),
        username,
        password,
    }
}

fn tls(file: &FileUpstreamTls, base: &Path, errors: &mut Vec<ConfigError>) -> UpstreamTlsSettings {
    let path = |key: &str, value: &Option<String>, errors: &mut Vec<ConfigError>| {
        value.as_deref().map(|v| path_key(key, v, base, errors))
    };
    let cert = path("upstream.tls.cert", &file.cert, errors);
    let key = path("upstream.tls.key", &file.key, errors);
    match (&cert, &key) {
        (Some(_), None) => errors.push(ConfigError::Requires {
            setting: "upstream.tls.cert".into(),
            needs: "upstream.tls.key",
        }),
        (None, Some(_)) => errors.push(ConfigError::Requires {
            setting: "upstream.tls.key".into(),
            needs: "upstream.tls.cert",
        }),
        _ => {}
    }
    if file.server_name.as_deref() == Some("") {
        errors.push(ConfigError::Empty {
            key: "upstream.tls.server_name".into(),
        });
    }
    UpstreamTlsSettings {
        ca: path_key("upstream.tls.ca", &file.ca, base, errors),
        cert,
        key,
        server_name: file.server_name.clone(),
    }
}

/// `rename_commands`: each key a top-level command of the table, each value
/// `""` (the upstream does not have it) or a name without whitespace or NUL,
/// no two commands renamed to the same name.
fn renames(
    file: Option<&BTreeMap<String, String>>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    for (name, to) in file.into_iter().flatten() {
        let key = format!("upstream.rename_commands.{name}");
        let known = crate::command::by_name(name.as_bytes()).filter(|c| c.parent.is_none());
        let Some(cmd) = known else {
            errors.push(ConfigError::Invalid {
                key,
                reason: "not a Redis command (only commands, not subcommands, can be renamed)"
                    .into(),
            });
            continue;
        };
        if !to.is_empty()
            && (to.trim().is_empty() || to.chars().any(|c| c.is_whitespace() || c == '\0'))
        {
            errors.push(ConfigError::Invalid {
                key,
                reason: format!("{to:?} is not a command name (use \"\" for a command the upstream does not have)"),
            });
            continue;
        }
        if !to.is_empty() {
            if let Some(first) = targets.insert(to.to_ascii_lowercase(), cmd.name.to_string()) {
                errors.push(ConfigError::Invalid {
                    key,
                    reason: format!("{first} is renamed to {to:?} already"),
                });
                continue;
            }
        }
        if out.insert(cmd.name.to_string(), to.clone()).is_some() {
            errors.push(ConfigError::Invalid {
                key,
                reason: "renamed twice (names are not case-sensitive)".into(),
            });
        }
    }
    out
}

/// `username` and `password`/`password_file` of a section: both password
/// forms is an error, a username needs a password, empty values are errors.
fn credentials(
    section: &'static str,
    username: Option<&str>,
    password: Option<&Secret>,
    password_file: Option<&str>,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> (Option<String>, Option<String>) {
    if username == Some("") {
        errors.push(ConfigError::Empty {
            key: format!("{section}.username"),
        });
    }
    let password = match (password, password_file) {
        (Some(_), Some(_)) => {
            errors.push(ConfigError::PasswordTwice { section });
            None
        }
        (Some(Secret(password)), None) => {
            if password.is_empty() {
                errors.push(ConfigError::Empty {
                    key: format!("{section}.password"),
                });
            }
            Some(password.clone())
        }
        (None, Some(file)) => {
            let path = path_key(&format!("{section}.password_file"), file, base, errors);
            if file.is_empty() {
                None
            } else {
                read_password_file(section, path, errors)
            }
        }
        (None, None) => {
            if username.is_some() {
                errors.push(ConfigError::Requires {
                    setting: format!("{section}.username"),
                    needs: if section == "upstream" {
                        "upstream.password or upstream.password_file"
                    } else {
                        "upstream.sentinel.password or upstream.sentinel.password_file"
                    },
                });
            }
            None
        }
    };
    (username.map(str::to_owned), password)
}

/// Reads a password file: the whole file minus one trailing newline.
fn read_password_file(
    section: &'static str,
    path: PathBuf,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    match std::fs::read_to_string(&path) {
        Ok(mut text) => {
            if text.ends_with("\r\n") {
                text.truncate(text.len() - 2);
            } else if text.ends_with('\n') {
                text.truncate(text.len() - 1);
            }
            if text.is_empty() {
                errors.push(ConfigError::PasswordFileEmpty { section, path });
                return None;
            }
            Some(text)
        }
        Err(source) => {
            errors.push(ConfigError::PasswordFile {
                section,
                path,
                source,
            });
            None
        }
    }
}
