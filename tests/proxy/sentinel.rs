//! Sentinel: a master, a replica and three sentinels (`down-after-milliseconds
//! 1000`). The master is SIGKILLed under a steady write load through the proxy;
//! every write acknowledged after the failover is on the new master, the old
//! master coming back as a replica never gets a write, and a proxy started
//! while every sentinel is down says so and recovers when one comes up.

use std::time::{Duration, Instant};

use crate::support::sentinel::{Sentinel, SentinelGroup, MASTER_NAME};
use crate::support::*;

const USERS: &str = "[[users]]\nname = \"app\"\nrules = \"on >pw ~* &* +@all\"\n";

fn config(pki: &TestPki, sentinels: &[String], server: &str) -> String {
    let list = sentinels
        .iter()
        .map(|a| toml_str(a))
        .collect::<Vec<_>>()
        .join(", ");
    let upstream = format!(
        "connect_timeout_ms = 500\n[upstream.sentinel]\nmaster = \"{MASTER_NAME}\"\naddresses = [{list}]\n"
    );
    base_config_with_server(pki, "127.0.0.1:1", server, USERS)
        .replace("address = \"127.0.0.1:1\"\n", &upstream)
}

/// A client that writes `key:<n>` = n in order, reconnecting after any error;
/// every write it got `+OK` for, with the time of the `+OK`.
async fn writer(proxy: std::net::SocketAddr, pki: &TestPki, until: Instant) -> Vec<(u64, Instant)> {
    writer_on(proxy, pki, "key", until).await.0
}

/// [`writer`] on keys `prefix:<n>`; also how many times its connection closed.
async fn writer_on(
    proxy: std::net::SocketAddr,
    pki: &TestPki,
    prefix: &str,
    until: Instant,
) -> (Vec<(u64, Instant)>, usize) {
    let mut acked = Vec::new();
    let mut n = 0u64;
    let mut closed = 0;
    let mut conn = None;
    while Instant::now() < until {
        if conn.is_none() {
            let mut c = resp_tls(proxy, pki, Some("bob")).await;
            if c.cmd_str(&["AUTH", "app", "pw"]).await.is_ok() {
                conn = Some(c);
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let value = n.to_string();
        match c
            .try_cmd(&[b"SET", format!("{prefix}:{n}").as_bytes(), value.as_bytes()])
            .await
        {
            Ok(reply) if reply.is_ok() => {
                acked.push((n, Instant::now()));
                n += 1;
            }
            // An error reply (upstream lost or unavailable) closes or keeps the
            // connection; either way the same write is tried again.
            Ok(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                conn = None;
                closed += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    (acked, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_under_write_load_and_the_old_master_back_as_a_replica() {
    let mut group = SentinelGroup::start().await;
    let pki = std::sync::Arc::new(TestPki::new());
    let server = "metrics_listen = \"127.0.0.1:0\"";
    let proxy = Proxy::start(&config(&pki, &group.addresses(), server), pki.dir());
    let addr = proxy.tls_addr();
    assert_eq!(http_get(proxy.metrics_addr(), "/readyz").await.0, 200);

    let start = Instant::now();
    let load = tokio::spawn({
        let pki = std::sync::Arc::clone(&pki);
        async move { writer(addr, &pki, start + Duration::from_secs(12)).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A write the old master acknowledged just before it died may reach the
    // client just after (its reply was already in the kernel's socket
    // buffer), and asynchronous replication may have lost it, as with Redis
    // itself. Nothing else can acknowledge a write until the replica is
    // promoted, seconds later: writes acknowledged more than 200 ms after the
    // kill must all be on the new master.
    group.master.kill();
    let killed = Instant::now();
    let surely_new = killed + Duration::from_millis(200);
    assert!(
        group
            .wait_master(group.replica.port, Duration::from_secs(15))
            .await,
        "the sentinels did not fail over"
    );
    let acked = load.await.unwrap();
    let before = acked.iter().filter(|(_, t)| *t < killed).count();
    let first_after = acked
        .iter()
        .find(|(_, t)| *t > killed)
        .map(|(_, t)| *t - killed);
    let first_after = first_after.expect("no write succeeded after the failover");
    eprintln!(
        "{before} writes before the kill; first write through the proxy {first_after:?} after it; {} in all",
        acked.len()
    );
    // Every write acknowledged after the kill (and its last replies) is on the new master.
    let mut new_master = RespConn::connect_tcp(&group.replica.addr()).await.unwrap();
    for (n, _) in acked.iter().filter(|(_, t)| *t > surely_new) {
        let got = new_master.cmd_str(&["GET", &format!("key:{n}")]).await;
        assert_eq!(got.as_str(), Some(n.to_string().as_str()), "key:{n}");
    }
    let (_, metrics) = http_get(proxy.metrics_addr(), "/metrics").await;
    assert!(
        metric(&metrics, "portcullis_upstream_failovers_total") >= 1.0,
        "{metrics}"
    );

    // The old master comes back; the sentinels make it a replica of the new one.
    group.master.restart();
    let old = group.master.addr();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut c = RespConn::connect_tcp(&old).await.unwrap();
        let role = c.cmd_str(&["ROLE"]).await;
        if role
            .as_array()
            .and_then(|r| r[0].as_bytes().map(<[u8]>::to_vec))
            == Some(b"slave".to_vec())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old master never became a replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // More writes through the proxy: all acknowledged, none on a connection to the old master.
    let more = writer(addr, &pki, Instant::now() + Duration::from_secs(2)).await;
    assert!(!more.is_empty());
    let mut probe = RespConn::connect_tcp(&old).await.unwrap();
    let list = probe.cmd_str(&["CLIENT", "LIST"]).await;
    let list = String::from_utf8_lossy(list.as_bytes().unwrap()).into_owned();
    let normal: Vec<&str> = list
        .lines()
        .filter(|l| l.contains(" flags=N ") && !l.contains("cmd=client|list"))
        .filter(|l| !l.contains(" name=sentinel-"))
        .collect();
    assert!(normal.is_empty(), "clients on the old master: {normal:?}");
}

/// Pooled mode: the shared connections move to the new master and the
/// clients on them stay connected; a pinned client is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_the_pool_and_keeps_its_clients() {
    let mut group = SentinelGroup::start().await;
    let pki = std::sync::Arc::new(TestPki::new());
    let server = "metrics_listen = \"127.0.0.1:0\"";
    let pooled = config(&pki, &group.addresses(), server).replace(
        "connect_timeout_ms",
        "mode = \"pooled\"\npool_size = 2\nconnect_timeout_ms",
    );
    let proxy = Proxy::start(&pooled, pki.dir());
    let addr = proxy.tls_addr();
    let start = Instant::now();
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let pki = std::sync::Arc::clone(&pki);
            tokio::spawn(async move {
                let prefix = format!("w{i}");
                writer_on(addr, &pki, &prefix, start + Duration::from_secs(10)).await
            })
        })
        .collect();
    let mut subscriber = resp_tls(addr, &pki, Some("bob")).await;
    assert!(subscriber.cmd_str(&["AUTH", "app", "pw"]).await.is_ok());
    subscriber.cmd_str(&["SUBSCRIBE", "news"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    group.master.kill();
    // Replies the old master sent just before it died may still be on their way.
    let killed = Instant::now() + Duration::from_millis(50);
    assert!(
        group
            .wait_master(group.replica.port, Duration::from_secs(15))
            .await,
        "the sentinels did not fail over"
    );
    let mut new_master = RespConn::connect_tcp(&group.replica.addr()).await.unwrap();
    for (i, w) in writers.into_iter().enumerate() {
        let (acked, closed) = w.await.unwrap();
        assert_eq!(closed, 0, "writer {i} lost its connection");
        let after: Vec<_> = acked.iter().filter(|(_, t)| *t > killed).collect();
        assert!(
            !after.is_empty(),
            "writer {i}: nothing acknowledged after the kill"
        );
        for (n, _) in after {
            let got = new_master.cmd_str(&["GET", &format!("w{i}:{n}")]).await;
            assert_eq!(got.as_str(), Some(n.to_string().as_str()), "w{i}:{n}");
        }
    }
    let closed = subscriber.read_raw_until_closed().await;
    assert!(closed.is_empty(), "{:?}", String::from_utf8_lossy(&closed));
    let sample = "portcullis_upstream_connections{kind=\"pooled\"}";
    assert_eq!(scrape(&proxy, sample).await, 2.0);
}

#[tokio::test]
async fn every_sentinel_down_at_start_then_one_comes_up() {
    let master = RedisServer::start();
    let pki = TestPki::new();
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let server = "metrics_listen = \"127.0.0.1:0\"";
    let proxy = Proxy::start(&config(&pki, &addresses, server), pki.dir());
    let mut c = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    assert!(c.cmd_str(&["AUTH", "app", "pw"]).await.is_ok());
    let started = Instant::now();
    assert_eq!(
        c.cmd_str(&["SET", "k", "v"]).await.error(),
        Some("ERR upstream unavailable")
    );
    // After connect_timeout_ms (500), not at once and not hanging.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(http_get(proxy.metrics_addr(), "/readyz").await.0, 503);
    assert!(proxy
        .wait_for_log(Duration::from_secs(5), |l| l
            .contains("no upstream master known"))
        .is_some());
    // One sentinel comes up.
    let _sentinel = Sentinel::start_on(ports[1], master.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if c.cmd_str(&["SET", "k", "v"]).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after a sentinel came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http_get(proxy.metrics_addr(), "/readyz").await.0, 200);
    let mut direct = RespConn::connect_tcp(&master.addr()).await.unwrap();
    assert_eq!(direct.cmd_str(&["GET", "k"]).await.as_str(), Some("v"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
