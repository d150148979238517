//! The built `portcullis` binary driven from outside, over real TLS, in front of
//! real redis-servers: commands, ACL, limits, faults, reload, metrics, TLS,
//! configuration checks and the hardening of issue 11.

#[path = "../support/mod.rs"]
#[allow(dead_code, unused_imports)] // each binary uses part of it
mod support;

mod acl;
mod caps;
mod cluster;
mod cluster_faults;
mod commands;
mod config_check;
mod edge;
mod examples;
mod faults;
mod hardening;
mod listings;
mod metrics;
mod pooled;
mod protocol_limits;
mod proxy_protocol;
mod rate;
mod reload;
mod sentinel;
mod status;
mod stream;
mod tls;
mod tokens;
mod upstream;
