//! Pooled mode (`upstream.mode = "pooled"`): many clients over a few shared
//! upstream connections, each compared with a direct connection to Redis.
//!
//! - `many_clients`: 240 clients with generated pipelines through a pool of
//!   2, every reply stream equal to Redis's, the upstream's connection count
//!   bounded by the pool and the pinned clients.
//! - `pinning`: MULTI, WATCH, BLPOP, SUBSCRIBE, SELECT, HELLO 3 and CLIENT
//!   SETNAME beside other clients, interleaved the same way on both sides;
//!   the return to the pool.
//! - `faults`: a slow reader beside fast clients, the upstream killed and
//!   restarted under load.

#[path = "pooled/faults.rs"]
mod faults;
#[path = "pooled/many_clients.rs"]
mod many_clients;
#[path = "pooled/pinning.rs"]
mod pinning;

use std::time::Duration;

use crate::support::*;

/// The user every pooled test runs as: its own keys (`c*`), no `@dangerous`.
const APP: (&str, &str) = ("app", "on ~c* &* +@all -@dangerous");

/// A proxy in pooled mode (`pool_size = size`, `extra_upstream` more keys)
/// with a metrics listener, beside its oracle.
async fn pooled(size: usize, extra_upstream: &str) -> SameStream {
    SameStream::start_with_keys(
        &[APP],
        "",
        &[],
        "metrics_listen = \"127.0.0.1:0\"",
        &format!("mode = \"pooled\"\npool_size = {size}\n{extra_upstream}"),
    )
    .await
}

/// `portcullis_upstream_connections{kind}` now.
async fn upstream_connections(ss: &SameStream, kind: &str) -> f64 {
    let sample = format!("portcullis_upstream_connections{{kind=\"{kind}\"}}");
    scrape(&ss.proxy, &sample).await
}

/// Waits up to `limit` for `portcullis_upstream_connections{kind}` to be
/// `want`; the last value seen.
async fn wait_connections(ss: &SameStream, kind: &str, want: f64, limit: Duration) -> f64 {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = upstream_connections(ss, kind).await;
        if now == want || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `connected_clients` of the redis-server at `addr` (the asking connection
/// not counted).
async fn connected_clients(addr: &str) -> u64 {
    let mut c = RespConn::connect_tcp(addr).await.expect("upstream");
    let info = c.cmd_str(&["INFO", "clients"]).await;
    let text = String::from_utf8_lossy(info.as_bytes().expect("INFO")).into_owned();
    let n: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("connected_clients");
    n - 1
}

/// In dedicated mode each client's own connection counts as `dedicated`,
/// from its first forwarded command until it closes.
#[tokio::test]
async fn dedicated_connections_are_counted_too() {
    let ss =
        SameStream::start_with_keys(&[APP], "", &[], "metrics_listen = \"127.0.0.1:0\"", "").await;
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        let mut twin = Twin::connect(&ss, name, "app").await;
        twin.cmd(&["GET", "c:x"]).await;
        clients.push(twin);
    }
    assert_eq!(upstream_connections(&ss, "dedicated").await, 3.0);
    assert_eq!(upstream_connections(&ss, "pooled").await, 0.0);
    drop(clients);
    let left = wait_connections(&ss, "dedicated", 0.0, Duration::from_secs(5)).await;
    assert_eq!(left, 0.0);
}
