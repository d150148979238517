//! A Redis Cluster on loopback: three masters and three replicas
//! (`--cluster-enabled yes`, joined by `redis-cli --cluster create
//! --cluster-replicas 1`), each node a [`RedisServer`] of its own.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use super::redis::RedisServer;
use super::resp::{Reply, RespConn};

/// Six nodes; which are masters changes with failovers.
pub struct Cluster {
    /// Every node, in the order they were created (the first three started as masters).
    pub nodes: Vec<RedisServer>,
}

/// A port that is free, and whose cluster bus port (+10000) is free too.
fn free_port_pair() -> u16 {
    loop {
        let Ok(a) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = a.local_addr().map(|a| a.port()) else {
            continue;
        };
        if port == 6379 || port > 55_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl Cluster {
    /// Starts six nodes and joins them; waits until every node says `cluster_state:ok`.
    pub async fn start() -> Cluster {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_port_pair().to_string();
            nodes.push(RedisServer::start_on_port(
                &port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-config-file",
                    "nodes.conf",
                    // Replicas in sync at once, not after Redis's 5 s wait for more.
                    "--repl-diskless-sync-delay",
                    "0",
                ],
            ));
        }
        let addrs: Vec<String> = nodes.iter().map(RedisServer::addr).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster { nodes };
        cluster.wait_ok(Duration::from_secs(30)).await;
        cluster.wait_replicas_synced(Duration::from_secs(30)).await;
        cluster
    }

    /// Waits until every replica's link to its master is up (its first sync
    /// done): a replica that never synced neither takes part in a manual
    /// failover nor fails over on its own (its data is "too old").
    pub async fn wait_replicas_synced(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let mut synced = true;
            for node in &self.nodes {
                let Ok(mut c) = RespConn::connect_tcp(&node.addr()).await else {
                    continue;
                };
                let info = c.cmd_str(&["INFO", "replication"]).await;
                let text = info.as_str().unwrap_or_default().to_string();
                if text.contains("role:slave") {
                    synced &= text.contains("master_link_status:up");
                }
            }
            if synced {
                return;
            }
            assert!(Instant::now() < deadline, "the replicas did not sync");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every node's address.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::addr).collect()
    }

    /// Waits until every running node reports `cluster_state:ok` and they all agree
    /// on the slot owners.
    pub async fn wait_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let mut ok = true;
            let mut views = Vec::new();
            for node in &self.nodes {
                let Ok(mut c) = RespConn::connect_tcp(&node.addr()).await else {
                    continue;
                };
                let info = c.cmd_str(&["CLUSTER", "INFO"]).await;
                let text = info.as_str().unwrap_or_default().to_string();
                ok &= text.contains("cluster_state:ok");
                views.push(masters_of(&c.cmd_str(&["CLUSTER", "SLOTS"]).await));
            }
            views.dedup();
            if ok && views.len() == 1 {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not settle");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The address of the master that owns `slot` now, as node `via` sees it.
    pub async fn owner(&self, slot: u16, via: usize) -> String {
        let mut c = RespConn::connect_tcp(&self.nodes[via].addr())
            .await
            .expect("node");
        let slots = c.cmd_str(&["CLUSTER", "SLOTS"]).await;
        for (start, end, master) in masters_of(&slots) {
            if (start..=end).contains(&slot) {
                return master;
            }
        }
        panic!("no owner for slot {slot}");
    }

    /// The node IDs and addresses of the masters that own slots now.
    pub async fn masters(&self) -> Vec<(String, String)> {
        let mut c = RespConn::connect_tcp(&self.nodes[0].addr())
            .await
            .expect("node");
        let nodes = c.cmd_str(&["CLUSTER", "NODES"]).await;
        let text = nodes.as_str().unwrap_or_default().to_string();
        text.lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                let id = f.next()?.to_string();
                let addr = f.next()?.split('@').next()?.to_string();
                let flags = f.next()?;
                let master = flags.split(',').any(|x| x == "master");
                // Fields 4-8: master id, ping, pong, epoch, link; slots follow.
                let owns_slots = f.nth(5).is_some();
                (master && owns_slots && !flags.contains("fail")).then_some((id, addr))
            })
            .collect()
    }

    /// The node at `addr`.
    pub fn node(&mut self, addr: &str) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.addr() == addr)
            .expect("a node at that address")
    }
}

/// `(first slot, last slot, master address)` of a `CLUSTER SLOTS` reply, sorted.
pub fn masters_of(slots: &Reply) -> Vec<(u16, u16, String)> {
    let mut out: Vec<(u16, u16, String)> = slots
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(|range| {
            let r = range.as_array()?;
            let start = u16::try_from(r.first()?.as_int()?).ok()?;
            let end = u16::try_from(r.get(1)?.as_int()?).ok()?;
            let master = r.get(2)?.as_array()?;
            let host = master.first()?.as_str()?;
            let port = master.get(1)?.as_int()?;
            Some((start, end, format!("{host}:{port}")))
        })
        .collect();
    out.sort();
    out
}
