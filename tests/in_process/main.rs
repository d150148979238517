//! In-process tests: the TLS handshake with rustls clients, the metrics
//! endpoint, and the connection task itself over an in-memory client.

#[path = "../support/mod.rs"]
#[allow(dead_code, unused_imports)] // each binary uses part of it
mod support;

mod conn;
mod metrics_http;
mod tls_handshake;
