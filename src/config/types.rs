//! The validated, runtime form of `proxy.toml`.
//!
//! `config::load` turns the file into these types; everything after
//! startup (listeners, TLS, connections, the ACL) reads only these.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file this came from (absolute or as given).
    pub path: PathBuf,
    pub server: ServerSettings,
    pub tls: TlsSettings,
    pub upstream: UpstreamSettings,
    pub auth: AuthSettings,
    pub limits: Limits,
    /// `[[users]]` entries in file order (the acl file's users are added by the ACL module).
    pub users: Vec<UserEntry>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// TLS listeners (resolved addresses; port 0 allowed, the bound port is logged).
    pub listen: Vec<SocketAddr>,
    /// Plaintext listeners (already checked against `allow_plaintext_remote`).
    pub plaintext_listen: Vec<SocketAddr>,
    pub allow_plaintext_remote: bool,
    pub metrics_listen: Option<SocketAddr>,
    pub shutdown_grace: Duration,
    /// Tokio worker threads; `None` = one per core.
    pub worker_threads: Option<usize>,
}

/// `[tls]`. Paths are already resolved relative to the config file's directory.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub crl: Vec<PathBuf>,
    pub min_version: TlsVersion,
}

/// Whether a client certificate is asked for and whether it is mandatory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Required,
    Optional,
    None,
}

/// Lowest TLS protocol version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// `[upstream]`.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub address: UpstreamAddr,
    pub username: Option<String>,
    /// From `password` or the (trimmed of one trailing newline) contents of `password_file`.
    pub password: Option<String>,
    pub connect_timeout: Duration,
}

/// Where the upstream Redis listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    /// `host:port`, resolved at connect time.
    Tcp(String),
    /// `unix:/path`.
    Unix(PathBuf),
}

/// `[auth]`.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub cert_user: CertUserField,
    /// Exact certificate field value -> user name; checked before `cert_user`.
    pub cert_map: HashMap<String, String>,
    pub acl_file: Option<PathBuf>,
}

/// Which certificate field names the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUserField {
    Cn,
    SanUri,
    SanDns,
    SanEmail,
    None,
}

/// `[limits]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_clients: usize,
    pub max_clients_per_ip: usize,
    pub max_bulk_len: u64,
    pub max_multibulk_len: u64,
    pub max_inline_len: usize,
    pub max_query_buffer: usize,
    pub handshake_timeout: Duration,
    /// `None` when `idle_timeout_s = 0`.
    pub idle_timeout: Option<Duration>,
    pub rate_mode: RateMode,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 10_000,
            max_clients_per_ip: 1_000,
            max_bulk_len: 536_870_912,
            max_multibulk_len: 1_048_576,
            max_inline_len: 65_536,
            max_query_buffer: 1_073_741_824,
            handshake_timeout: Duration::from_millis(10_000),
            idle_timeout: None,
            rate_mode: RateMode::Delay,
        }
    }
}

/// What happens to a command over its user's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateMode {
    Delay,
    Reject,
}

/// One `[[users]]` entry, rules not yet parsed (the ACL module parses them).
#[derive(Debug, Clone)]
pub struct UserEntry {
    pub name: String,
    pub rules: String,
    pub max_clients: Option<u32>,
    pub rate: Option<RateSettings>,
}

/// A user's `rate = { ops_per_sec, burst }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    pub ops_per_sec: u32,
    pub burst: u32,
}
