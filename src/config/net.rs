//! Address checks for `validate`: listener addresses are resolved now (a
//! listener binds at startup), the upstream address only has its form checked
//! (it is resolved at every connect).

use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;

use super::error::ConfigError;
use super::keys::resolve_path;
use super::types::UpstreamAddr;

/// Splits `host:port` into its parts when it has that form: a non-empty
/// host (bracketed if it is an IPv6 literal) and a decimal port.
fn split_host_port(value: &str) -> Option<(&str, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = port.parse::<u16>().ok()?;
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok())
    } else {
        !host.is_empty() && !host.contains(':') && !host.chars().any(char::is_whitespace)
    };
    host_ok.then_some((host, port))
}

/// Resolves one listener address; every resolved address is returned.
pub(crate) fn resolve_listen(
    key: &'static str,
    value: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<SocketAddr> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return vec![addr];
    }
    if split_host_port(value).is_none() {
        errors.push(ConfigError::BadAddress {
            key,
            value: value.to_owned(),
            expected: "host:port",
        });
        return Vec::new();
    }
    match value.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                errors.push(ConfigError::Unresolvable {
                    key,
                    value: value.to_owned(),
                    reason: "no addresses".to_owned(),
                });
            }
            addrs
        }
        Err(err) => {
            errors.push(ConfigError::Unresolvable {
                key,
                value: value.to_owned(),
                reason: err.to_string(),
            });
            Vec::new()
        }
    }
}

/// Resolves a list of listener addresses, dropping repeats (keeping order).
pub(crate) fn resolve_listen_list(
    key: &'static str,
    values: &[String],
    errors: &mut Vec<ConfigError>,
) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for value in values {
        for addr in resolve_listen(key, value, errors) {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}

/// True when only this host can reach `addr`.
pub(crate) fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Checks that `value` has the form `host:port` (port not 0), without resolving it.
pub(crate) fn host_port(key: &'static str, value: &str, errors: &mut Vec<ConfigError>) {
    if !matches!(split_host_port(value), Some((_, port)) if port != 0) {
        errors.push(ConfigError::BadAddress {
            key,
            value: value.to_owned(),
            expected: "host:port",
        });
    }
}

/// Checks the form of `upstream.address` without resolving it.
pub(crate) fn upstream_addr(
    value: &str,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<UpstreamAddr> {
    const KEY: &str = "upstream.address";
    if let Some(path) = value.strip_prefix("unix:") {
        if path.is_empty() {
            errors.push(ConfigError::BadAddress {
                key: KEY,
                value: value.to_owned(),
                expected: "host:port or unix:/path",
            });
            return None;
        }
        return Some(UpstreamAddr::Unix(resolve_path(base, path)));
    }
    match split_host_port(value) {
        Some((_, port)) if port != 0 => Some(UpstreamAddr::Tcp(value.to_owned())),
        _ => {
            errors.push(ConfigError::BadAddress {
                key: KEY,
                value: value.to_owned(),
                expected: "host:port or unix:/path",
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("localhost:6379"), Some(("localhost", 6379)));
        assert_eq!(split_host_port("10.0.0.1:0"), Some(("10.0.0.1", 0)));
        assert_eq!(split_host_port("[::1]:6379"), Some(("[::1]", 6379)));
        for bad in [
            "foo",
            ":6379",
            "foo:",
            "foo:bar",
            "foo:+1",
            "foo:70000",
            "::1:6379",
            "[::1:6379",
            "[nope]:1",
            "a b:1",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad}");
        }
    }
}
