//! Integration-test harness: real redis-server, real TLS, certificates made at test time.
//!
//! - [`RedisServer`]: a `redis-server` child on a free loopback port or a unix socket.
//! - [`TestPki`]: CA, server and client certificates in a tempdir.
//! - [`Proxy`]: the built `portcullis` binary with a proxy.toml; [`run_cli`] for one-shot
//!   commands; [`base_config`] for the usual proxy.toml.
//! - [`tls_connect`], [`RespConn`], [`Reply`]: the client side.
//!
//! Each test binary uses a different part (its `mod support` allows dead code).

pub mod client;
pub mod cluster;
pub mod pki;
pub mod proxy;
pub mod redis;
pub mod resp;
pub mod rng;
pub mod same_stream;
pub mod sentinel;
pub mod twin;
pub mod words;

pub use client::{
    client_config, resp_tls, resp_tls_from, tcp_connect_from, tls_connect, tls_connect_config,
    ALL_VERSIONS, TLS12_ONLY, TLS13_ONLY,
};
pub use pki::TestPki;
pub use proxy::{
    base_config, base_config_with_server, http_get, metric, proc_status_kib, run_cli, scrape,
    toml_str, Proxy,
};
pub use redis::RedisServer;
pub use resp::{encode_command, parse_reply, Reply, RespConn};
pub use rng::{seed_from_env, Rng};
pub use same_stream::{command, Command, SameStream};
pub use twin::Twin;
