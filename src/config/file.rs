//! Stage 1: the TOML text as written, key for key.
//!
//! Every struct denies unknown fields, so a misspelt key is a located error
//! rather than a silently ignored one. Nothing here has defaults or checks
//! beyond TOML types: optional keys are `Option`, and `validate` applies the
//! spec's defaults and the semantic rules.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub server: FileServer,
    pub tls: FileTls,
    pub upstream: FileUpstream,
    #[serde(default)]
    pub auth: FileAuth,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub users: Vec<FileUser>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileServer {
    pub listen: AddrList,
    pub plaintext_listen: Option<AddrList>,
    pub allow_plaintext_remote: Option<bool>,
    pub metrics_listen: Option<String>,
    pub shutdown_grace_s: Option<u64>,
    pub worker_threads: Option<u64>,
    pub allow: Option<Vec<String>>,
    pub proxy_protocol_from: Option<Vec<String>>,
}

/// `[tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTls {
    pub cert: String,
    pub key: String,
    pub client_ca: Option<String>,
    pub client_auth: Option<String>,
    pub crl: Option<Vec<String>>,
    pub min_version: Option<String>,
}

/// `[upstream]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUpstream {
    pub address: Option<String>,
    pub mode: Option<String>,
    pub pool_size: Option<usize>,
    pub pool_reply_limit: Option<usize>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<String>,
    pub connect_timeout_ms: Option<u64>,
    /// Sorted by key, so errors come out in a stable order.
    pub rename_commands: Option<BTreeMap<String, String>>,
    pub tls: Option<FileUpstreamTls>,
    pub sentinel: Option<FileSentinel>,
    pub cluster: Option<FileCluster>,
}

/// `[upstream.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUpstreamTls {
    pub ca: String,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub server_name: Option<String>,
}

/// `[upstream.sentinel]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSentinel {
    pub master: String,
    pub addresses: Vec<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<String>,
}

impl fmt::Debug for FileSentinel {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSentinel")
            .field("master", &self.master)
            .field("addresses", &self.addresses)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// `[upstream.cluster]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCluster {
    pub seeds: Vec<String>,
}

impl fmt::Debug for FileUpstream {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileUpstream")
            .field("address", &self.address)
            .field("mode", &self.mode)
            .field("pool_size", &self.pool_size)
            .field("pool_reply_limit", &self.pool_reply_limit)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("rename_commands", &self.rename_commands)
            .field("tls", &self.tls)
            .field("sentinel", &self.sentinel)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// `[auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAuth {
    pub cert_user: Option<String>,
    /// Sorted by key, so errors come out in a stable order.
    pub cert_map: Option<BTreeMap<String, String>>,
    pub acl_file: Option<String>,
    pub scripts: Option<String>,
    pub token: Option<FileToken>,
}

/// `[auth.token]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileToken {
    pub jwks: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub user_claim: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLimits {
    pub max_clients: Option<usize>,
    pub max_clients_per_ip: Option<usize>,
    pub max_bulk_len: Option<u64>,
    pub max_multibulk_len: Option<u64>,
    pub max_inline_len: Option<usize>,
    pub max_query_buffer: Option<usize>,
    pub handshake_timeout_ms: Option<u64>,
    pub idle_timeout_s: Option<u64>,
    pub rate_mode: Option<String>,
    pub rate_scope: Option<String>,
    pub conn_rate_per_ip: Option<FileRate>,
    pub auth_failures_per_ip: Option<FileRate>,
}

/// One `[[users]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUser {
    pub name: String,
    pub rules: String,
    pub max_clients: Option<u32>,
    pub rate: Option<FileRate>,
    pub allow_from: Option<Vec<String>>,
    pub auth_methods: Option<Vec<String>>,
    pub enforce: Option<bool>,
    pub filter_listings: Option<bool>,
}

/// A user's `rate = { ops_per_sec, burst }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRate {
    pub ops_per_sec: u32,
    pub burst: u32,
}

/// A listener address: one string or an array of strings.
#[derive(Debug, Default)]
pub(crate) struct AddrList(pub Vec<String>);

impl<'de> Deserialize<'de> for AddrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AddrListVisitor;

        impl<'de> Visitor<'de> for AddrListVisitor {
            type Value = AddrList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address string or an array of address strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<AddrList, E> {
                Ok(AddrList(vec![v.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AddrList, A::Error> {
                let mut out = Vec::new();
                while let Some(addr) = seq.next_element::<String>()? {
                    out.push(addr);
                }
                Ok(AddrList(out))
            }
        }

        deserializer.deserialize_any(AddrListVisitor)
    }
}

/// A string whose value never appears in an error, even a type error
/// (`password = 1234` must not echo `1234`).
pub(crate) struct Secret(pub String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        /// The type error, without the value.
        fn not_a_string<E: de::Error>() -> E {
            E::custom("invalid type: expected a string (value not shown)")
        }

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = Secret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(not_a_string())
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(not_a_string())
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(not_a_string())
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(not_a_string())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(not_a_string())
            }

            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(not_a_string())
            }
        }

        deserializer.deserialize_any(SecretVisitor)
    }
}
