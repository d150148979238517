//! The validated, runtime form of `proxy.toml`.
//!
//! `config::load` turns the file into these types; everything after
//! startup (listeners, TLS, connections, the ACL) reads only these.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::edge::{Access, SourceList};

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file this came from (absolute or as given).
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[tls]`.
    pub tls: TlsSettings,
    /// `[upstream]`.
    pub upstream: UpstreamSettings,
    /// `[auth]`.
    pub auth: AuthSettings,
    /// `[limits]`.
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
    /// Whether plaintext listeners may be on non-loopback addresses.
    pub allow_plaintext_remote: bool,
    /// HTTP `/metrics`, `/healthz`, `/readyz`; `None` = off. The first
    /// resolved address when the name resolves to several.
    pub metrics_listen: Option<SocketAddr>,
    /// How long in-flight replies may drain after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Tokio worker threads; `None` = one per core.
    pub worker_threads: Option<usize>,
    /// `allow`: the only source addresses that may connect; `None` = any.
    pub allow: Option<SourceList>,
    /// `proxy_protocol_from`: peers that send a PROXY protocol header first.
    pub proxy_protocol_from: Option<SourceList>,
}

/// `[tls]`. Paths are already resolved relative to the config file's directory.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA bundle for client certificates; `None` = none asked for.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is asked for / required.
    pub client_auth: ClientAuth,
    /// PEM CRLs (only ever non-empty with `client_ca`).
    pub crl: Vec<PathBuf>,
    /// Lowest accepted TLS version.
    pub min_version: TlsVersion,
}

/// Whether a client certificate is asked for and whether it is mandatory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A valid client certificate is mandatory.
    Required,
    /// A client certificate is asked for; if given it must be valid.
    Optional,
    /// No client certificate is asked for.
    None,
}

/// Lowest TLS protocol version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// `[upstream]`.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Where the data servers are.
    pub target: UpstreamTarget,
    /// Upstream `AUTH` user; `None` = password-only `AUTH` (or none).
    pub username: Option<String>,
    /// From `password` or the (trimmed of one trailing newline) contents of `password_file`.
    pub password: Option<String>,
    /// Deadline for connecting to the upstream.
    pub connect_timeout: Duration,
    /// `[upstream.tls]`: TLS to every upstream server and sentinel.
    pub tls: Option<UpstreamTlsSettings>,
    /// `rename_commands`: a command's real name (lowercase) -> the upstream's
    /// name for it (`""`: the upstream does not have it).
    pub rename_commands: std::collections::BTreeMap<String, String>,
    /// `mode` (and `pool_size`): how clients' commands travel upstream.
    pub mode: UpstreamMode,
}

/// `upstream.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamMode {
    /// `"dedicated"` (default): one upstream connection per client.
    Dedicated,
    /// `"pooled"`: clients share `pool_size` connections per upstream server,
    /// a client holding server-side state gets one of its own while it does.
    Pooled {
        /// `pool_size` (default 4).
        size: usize,
        /// `pool_reply_limit`: bytes of replies held for one client that is
        /// not reading them (default 64 MiB); over it the client is closed.
        reply_limit: usize,
    },
}

/// Where the data servers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// `address`: one standalone Redis.
    Address(UpstreamAddr),
    /// `[upstream.sentinel]`: the master the sentinels name.
    Sentinel(SentinelSettings),
    /// `[upstream.cluster]`: a Redis Cluster.
    Cluster(ClusterSettings),
}

/// `[upstream.cluster]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `seeds`: nodes asked for the slot map (with the masters already known).
    pub seeds: Vec<UpstreamAddr>,
}

/// `[upstream.sentinel]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelSettings {
    /// The master's name in the sentinels' configuration.
    pub master: String,
    /// The sentinels, `host:port`, asked in this order.
    pub addresses: Vec<String>,
    /// The sentinels' own `AUTH` user, if any.
    pub username: Option<String>,
    /// The sentinels' own `AUTH` password, if any.
    pub password: Option<String>,
}

/// `[upstream.tls]`. Paths are resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTlsSettings {
    /// CA bundle that signs the upstream servers' certificates.
    pub ca: PathBuf,
    /// Client certificate chain, for servers with `tls-auth-clients yes`.
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// The name every server's certificate is verified against (and SNI);
    /// `None`: the host part of each address.
    pub server_name: Option<String>,
}

/// Where the upstream Redis listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UpstreamAddr {
    /// `host:port`, resolved at connect time.
    Tcp(String),
    /// `unix:/path` (a relative path is already resolved against the config file's directory).
    Unix(PathBuf),
}

/// `[auth]`.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Which certificate field names the user.
    pub cert_user: CertUserField,
    /// Exact certificate field value -> user name; checked before `cert_user`.
    pub cert_map: HashMap<String, String>,
    /// Users in Redis ACL-file syntax, in addition to `[[users]]`.
    pub acl_file: Option<PathBuf>,
    /// Who may run scripts and load code (`auth.scripts`).
    pub scripts: ScriptPolicy,
    /// `[auth.token]`: JWTs as `AUTH` passwords; `None` = off.
    pub token: Option<TokenSettings>,
}

/// `[auth.token]`. The JWKS file is read (and checked) with the users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The JWKS file (resolved path).
    pub jwks: PathBuf,
    /// `iss` a token must carry; `None` = not checked.
    pub issuer: Option<String>,
    /// A value `aud` must hold; `None` = not checked.
    pub audience: Option<String>,
    /// The claim that must equal the `AUTH` user name (default `sub`).
    pub user_claim: String,
}

/// `auth.scripts`: who may run scripts (`EVAL`, `FCALL`, ...) and load code
/// (`SCRIPT LOAD`, `FUNCTION LOAD`/`RESTORE`). A script's inner calls run
/// upstream as the proxy's user, unchecked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScriptPolicy {
    /// `"restricted"` (default): only users one of whose selectors allows every
    /// command, key and channel; others get the NOPERM command denial.
    #[default]
    Restricted,
    /// `"acl"`: wherever the ACL allows them (the operator vouches for every script).
    Acl,
}

/// Which certificate field names the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUserField {
    /// `"cn"`: the subject common name.
    Cn,
    /// `"san-uri"`: a URI subject alternative name.
    SanUri,
    /// `"san-dns"`: a DNS subject alternative name.
    SanDns,
    /// `"san-email"`: an email subject alternative name.
    SanEmail,
    /// `"none"`: certificates name no user (only `cert_map` applies).
    None,
}

/// `[limits]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// All client connections together.
    pub max_clients: usize,
    /// Client connections from one IP address.
    pub max_clients_per_ip: usize,
    /// Bytes in one bulk string.
    pub max_bulk_len: u64,
    /// Elements in one command array.
    pub max_multibulk_len: u64,
    /// Bytes in one inline command line.
    pub max_inline_len: usize,
    /// Bytes buffered from one client.
    pub max_query_buffer: usize,
    /// TCP accept -> TLS handshake done.
    pub handshake_timeout: Duration,
    /// `None` when `idle_timeout_s = 0`.
    pub idle_timeout: Option<Duration>,
    /// What happens to a command over its user's rate.
    pub rate_mode: RateMode,
    /// Where users' rate budgets live: this process, or the upstream Redis.
    pub rate_scope: RateScope,
    /// New connections from one IP address; over it a connection is closed
    /// before its TLS handshake. `None` = off (`ops_per_sec = 0`).
    pub conn_rate_per_ip: Option<RateSettings>,
    /// Failed `AUTH`/`HELLO AUTH` from one IP address; over it the failing
    /// connection waits (is not read, gets no reply) until a token is due.
    /// `None` = off (`ops_per_sec = 0`).
    pub auth_failures_per_ip: Option<RateSettings>,
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
            rate_scope: RateScope::Local,
            conn_rate_per_ip: Some(RateSettings {
                ops_per_sec: 1_000,
                burst: 2_000,
            }),
            auth_failures_per_ip: Some(RateSettings {
                ops_per_sec: 10,
                burst: 100,
            }),
        }
    }
}

/// What happens to a command over its user's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateMode {
    /// Stop reading the client until tokens return.
    Delay,
    /// Answer `-ERR rate limit exceeded`, do not forward.
    Reject,
}

/// One `[[users]]` entry, rules not yet parsed (the ACL module parses them).
#[derive(Debug, Clone)]
pub struct UserEntry {
    /// User name (no whitespace or NUL, unique among `[[users]]`).
    pub name: String,
    /// Redis 7.0 `ACL SETUSER` rules, unparsed.
    pub rules: String,
    /// This user's connections at once; `None` = no cap.
    pub max_clients: Option<u32>,
    /// Shared rate for all of this user's connections; `None` = unlimited.
    pub rate: Option<RateSettings>,
    /// `allow_from` and `auth_methods`.
    pub access: Access,
    /// `enforce`: false = shadow mode (denials logged and counted, the
    /// command forwarded anyway).
    pub enforce: bool,
    /// `filter_listings`: KEYS, SCAN and RANDOMKEY show only readable keys.
    pub filter_listings: bool,
}

/// `limits.rate_scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    /// `"local"` (default): each proxy process keeps its own budgets.
    Local,
    /// `"shared"`: the budgets live in the upstream Redis, shared by every
    /// proxy process in front of it.
    Shared,
}

/// A user's `rate = { ops_per_sec, burst }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    /// Sustained commands per second (at least 1).
    pub ops_per_sec: u32,
    /// Commands allowed at once above the sustained rate (at least 1).
    pub burst: u32,
}

impl Config {
    /// Every TLS and JWKS file the configuration names (the files whose
    /// change triggers a reload): the server's certificate, key, client CA
    /// and CRLs, the upstream TLS files, and the token keys.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let tls = &self.tls;
        let mut files = vec![tls.cert.clone(), tls.key.clone()];
        files.extend(tls.client_ca.iter().cloned());
        files.extend(tls.crl.iter().cloned());
        if let Some(up) = &self.upstream.tls {
            files.push(up.ca.clone());
            files.extend(up.cert.iter().cloned());
            files.extend(up.key.iter().cloned());
        }
        files.extend(self.auth.token.iter().map(|t| t.jwks.clone()));
        files
    }
}
