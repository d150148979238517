//! Stage 2, continued: `[auth]`, `[limits]` and `[[users]]`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::edge::{Access, AuthMethod, AuthMethods};

use super::error::ConfigError;
use super::file::{FileAuth, FileLimits, FileRate, FileUser};
use super::keys::{choice, nonzero, path_key, source_list};
use super::types::{
    AuthSettings, CertUserField, Limits, RateMode, RateScope, RateSettings, ScriptPolicy,
    TokenSettings, UserEntry,
};

/// True for a name Redis 7.0's `ACL SETUSER` accepts: no ASCII whitespace
/// (C `isspace`) and no NUL.
pub(crate) fn valid_user_name(name: &str) -> bool {
    !name
        .bytes()
        .any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | 0))
}

/// Checks a user name found at `key`; false (and an error) when it is unusable.
fn check_user_name(key: &str, name: &str, errors: &mut Vec<ConfigError>) -> bool {
    if name.is_empty() {
        errors.push(ConfigError::Empty {
            key: format!("{key}.name"),
        });
        false
    } else if !valid_user_name(name) {
        errors.push(ConfigError::BadUserName {
            key: key.to_owned(),
            name: name.to_owned(),
        });
        false
    } else {
        true
    }
}

/// `[auth]`, defaults applied.
pub(crate) fn auth(file: FileAuth, base: &Path, errors: &mut Vec<ConfigError>) -> AuthSettings {
    let cert_user = match file.cert_user.as_deref() {
        None | Some("cn") => CertUserField::Cn,
        Some("san-uri") => CertUserField::SanUri,
        Some("san-dns") => CertUserField::SanDns,
        Some("san-email") => CertUserField::SanEmail,
        Some("none") => CertUserField::None,
        Some(other) => {
            errors.push(ConfigError::BadChoice {
                key: "auth.cert_user",
                value: other.to_owned(),
                expected: r#""cn", "san-uri", "san-dns", "san-email", "none""#,
            });
            CertUserField::Cn
        }
    };

    let cert_map = file.cert_map.unwrap_or_default();
    for (field, user) in &cert_map {
        let key = format!("auth.cert_map[{field:?}]");
        if user.is_empty() {
            errors.push(ConfigError::Empty { key });
        } else if !valid_user_name(user) {
            errors.push(ConfigError::BadUserName {
                key,
                name: user.clone(),
            });
        }
    }

    let acl_file = file
        .acl_file
        .as_deref()
        .map(|p| path_key("auth.acl_file", p, base, errors));

    let scripts = choice(
        "auth.scripts",
        file.scripts.as_deref(),
        &[
            ("restricted", ScriptPolicy::Restricted),
            ("acl", ScriptPolicy::Acl),
        ],
        ScriptPolicy::Restricted,
        r#""restricted", "acl""#,
        errors,
    );

    let token = file.token.map(|t| {
        let user_claim = t.user_claim.unwrap_or_else(|| "sub".to_owned());
        if user_claim.is_empty() {
            errors.push(ConfigError::Empty {
                key: "auth.token.user_claim".to_owned(),
            });
        }
        TokenSettings {
            jwks: path_key("auth.token.jwks", &t.jwks, base, errors),
            issuer: t.issuer,
            audience: t.audience,
            user_claim,
        }
    });

    AuthSettings {
        cert_user,
        cert_map: cert_map.into_iter().collect(),
        acl_file,
        scripts,
        token,
    }
}

/// `[limits]`, defaults from [`Limits::default`].
pub(crate) fn limits(file: &FileLimits, errors: &mut Vec<ConfigError>) -> Limits {
    let d = Limits::default();
    let handshake_ms = u64::try_from(d.handshake_timeout.as_millis()).unwrap_or(u64::MAX);
    let rate_mode = choice(
        "limits.rate_mode",
        file.rate_mode.as_deref(),
        &[("delay", RateMode::Delay), ("reject", RateMode::Reject)],
        d.rate_mode,
        r#""delay", "reject""#,
        errors,
    );
    let rate_scope = choice(
        "limits.rate_scope",
        file.rate_scope.as_deref(),
        &[("local", RateScope::Local), ("shared", RateScope::Shared)],
        d.rate_scope,
        r#""local", "shared""#,
        errors,
    );
    Limits {
        rate_scope,
        max_clients: nonzero(
            "limits.max_clients",
            file.max_clients,
            d.max_clients,
            errors,
        ),
        max_clients_per_ip: nonzero(
            "limits.max_clients_per_ip",
            file.max_clients_per_ip,
            d.max_clients_per_ip,
            errors,
        ),
        max_bulk_len: nonzero(
            "limits.max_bulk_len",
            file.max_bulk_len,
            d.max_bulk_len,
            errors,
        ),
        max_multibulk_len: nonzero(
            "limits.max_multibulk_len",
            file.max_multibulk_len,
            d.max_multibulk_len,
            errors,
        ),
        max_inline_len: nonzero(
            "limits.max_inline_len",
            file.max_inline_len,
            d.max_inline_len,
            errors,
        ),
        max_query_buffer: nonzero(
            "limits.max_query_buffer",
            file.max_query_buffer,
            d.max_query_buffer,
            errors,
        ),
        handshake_timeout: Duration::from_millis(nonzero(
            "limits.handshake_timeout_ms",
            file.handshake_timeout_ms,
            handshake_ms,
            errors,
        )),
        idle_timeout: match file.idle_timeout_s {
            None => d.idle_timeout,
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
        },
        rate_mode,
        conn_rate_per_ip: ip_rate(
            "limits.conn_rate_per_ip",
            file.conn_rate_per_ip.as_ref(),
            d.conn_rate_per_ip,
            errors,
        ),
        auth_failures_per_ip: ip_rate(
            "limits.auth_failures_per_ip",
            file.auth_failures_per_ip.as_ref(),
            d.auth_failures_per_ip,
            errors,
        ),
    }
}

/// A per-IP rate: `ops_per_sec = 0` turns it off; `burst` must be at least 1.
fn ip_rate(
    key: &str,
    file: Option<&FileRate>,
    default: Option<RateSettings>,
    errors: &mut Vec<ConfigError>,
) -> Option<RateSettings> {
    let Some(rate) = file else {
        return default;
    };
    if rate.ops_per_sec == 0 {
        return None;
    }
    Some(RateSettings {
        ops_per_sec: rate.ops_per_sec,
        burst: nonzero(&format!("{key}.burst"), Some(rate.burst), 1, errors),
    })
}

/// A user's `auth_methods`: at least one of `cert`, `password`, `token`.
fn auth_methods(key: &str, names: &[String], errors: &mut Vec<ConfigError>) -> AuthMethods {
    if names.is_empty() {
        errors.push(ConfigError::Empty {
            key: key.to_owned(),
        });
    }
    names.iter().fold(AuthMethods::NONE, |set, name| {
        match AuthMethod::from_name(name) {
            Some(m) => set.with(m),
            None => {
                errors.push(ConfigError::BadEntry {
                    key: key.to_owned(),
                    value: name.clone(),
                    expected: r#"one of "cert", "password", "token""#,
                });
                set
            }
        }
    })
}

/// `[[users]]` in file order.
pub(crate) fn users(file: Vec<FileUser>, errors: &mut Vec<ConfigError>) -> Vec<UserEntry> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(file.len());
    for (index, user) in file.into_iter().enumerate() {
        let key = format!("users[{index}]");
        if check_user_name(&key, &user.name, errors) && !seen.insert(user.name.clone()) {
            errors.push(ConfigError::DuplicateUser {
                index,
                name: user.name.clone(),
            });
        }
        let max_clients = user
            .max_clients
            .map(|n| nonzero(&format!("{key}.max_clients"), Some(n), 1, errors));
        let rate = user.rate.map(|rate| RateSettings {
            ops_per_sec: nonzero(
                &format!("{key}.rate.ops_per_sec"),
                Some(rate.ops_per_sec),
                1,
                errors,
            ),
            burst: nonzero(&format!("{key}.rate.burst"), Some(rate.burst), 1, errors),
        });
        let allow_from = source_list(
            &format!("{key}.allow_from"),
            user.allow_from.as_deref(),
            errors,
        );
        let methods = user
            .auth_methods
            .as_deref()
            .map_or(AuthMethods::ALL, |names| {
                auth_methods(&format!("{key}.auth_methods"), names, errors)
            });
        out.push(UserEntry {
            name: user.name,
            rules: user.rules,
            max_clients,
            rate,
            access: Access {
                allow_from,
                methods,
            },
            enforce: user.enforce.unwrap_or(true),
            filter_listings: user.filter_listings.unwrap_or(false),
        });
    }
    out
}
