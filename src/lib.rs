//! portcullis: TLS, mutual-TLS identity and Redis 7.0 ACLs in front of any Redis.
//!
//! The data path, in the order bytes travel:
//! - [`server`]: listeners, accept, connection caps, shutdown.
//! - [`tls`]: rustls server configuration and client-certificate identity.
//! - [`edge`]: source-address rules and who may become which user, how.
//! - [`conn`]: the per-client task: read -> scan -> policy -> forward, reply slots.
//! - [`resp`]: the client-side request scanner and the upstream-side reply scanner.
//! - [`acl`]: users, rules, authentication (and, later, the full Redis 7.0 ACL).
//! - [`upstream`]: connecting to the upstream Redis (TLS, AUTH, Sentinel), the
//!   connection pool of pooled mode, renamed commands.
//! - [`config`]: `proxy.toml` -> validated configuration.
//! - [`limits`]: connection caps, rate gates, limit-hit reporting.
//! - [`metrics`]: Prometheus metrics and the `/metrics` endpoint.
#![forbid(unsafe_code)]

pub mod acl;
mod bufio;
pub mod certgen;
pub mod command;
pub mod config;
pub mod conn;
pub mod edge;
pub mod limits;
pub mod logsafe;
pub mod metrics;
pub mod resp;
pub mod server;
pub mod tls;
pub mod upstream;
