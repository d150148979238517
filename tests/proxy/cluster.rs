//! Redis Cluster upstream (issue 15), against a real 3-master/3-replica
//! cluster: routing checked on the owning node, split commands against Redis,
//! transactions, keyless commands, pub/sub, the CLUSTER replies; and faults
//! (resharding and failover under load) in `cluster_faults`.

use std::time::Duration;

use crate::support::cluster::{masters_of, Cluster};
use crate::support::*;

const USERS: &str = "[[users]]\nname = \"app\"\nrules = \"on >pw ~* &* +@all -@dangerous\"\n\n\
                     [[users]]\nname = \"admin\"\nrules = \"on >pw ~* &* +@all\"\n\n\
                     [[users]]\nname = \"tenant\"\nrules = \"on >pw ~t:* &* +@all -@dangerous\"\n";

/// A proxy in front of `cluster` (its first two nodes as seeds).
pub fn cluster_proxy(pki: &TestPki, cluster: &Cluster, upstream_extra: &str) -> Proxy {
    let seeds = cluster.addrs()[..2]
        .iter()
        .map(|a| toml_str(a))
        .collect::<Vec<_>>()
        .join(", ");
    let config = base_config_with_server(
        pki,
        "127.0.0.1:1",
        "metrics_listen = \"127.0.0.1:0\"",
        USERS,
    )
    .replace(
        "address = \"127.0.0.1:1\"\n",
        &format!("{upstream_extra}\n[upstream.cluster]\nseeds = [{seeds}]\n"),
    );
    Proxy::start(&config, pki.dir())
}

/// A client through the proxy, authenticated as `user`.
pub async fn client(proxy: &Proxy, pki: &TestPki, user: &str) -> crate::support::twin::ProxySide {
    let mut c = resp_tls(proxy.tls_addr(), pki, Some("bob")).await;
    assert!(c.cmd_str(&["AUTH", user, "pw"]).await.is_ok());
    c
}

/// Waits until the proxy says the cluster is ready.
pub async fn wait_ready(proxy: &Proxy) {
    for _ in 0..100 {
        if http_get(proxy.metrics_addr(), "/readyz").await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the proxy never became ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_go_to_the_master_of_their_slot() {
    let cluster = Cluster::start().await;
    let pki = TestPki::new();
    let proxy = cluster_proxy(&pki, &cluster, "");
    wait_ready(&proxy).await;
    let mut c = client(&proxy, &pki, "app").await;
    let keys: Vec<String> = (0..2000).map(|i| format!("key:{i}")).collect();
    // Pipelined: replies come back in order although three masters answer.
    let mut wire = Vec::new();
    for k in &keys {
        wire.extend(encode_command(&[b"SET", k.as_bytes(), k.as_bytes()]));
    }
    c.send_raw(&wire).await;
    for k in &keys {
        assert!(c.read_reply().await.is_ok(), "{k}");
    }
    let mut wire = Vec::new();
    for k in &keys {
        wire.extend(encode_command(&[b"GET", k.as_bytes()]));
    }
    c.send_raw(&wire).await;
    for k in &keys {
        assert_eq!(c.read_reply().await.as_str(), Some(k.as_str()));
    }
    // Each key is on the master that owns its slot, and only there.
    let mut conns = Vec::new();
    for (_, addr) in cluster.masters().await {
        conns.push((addr.clone(), RespConn::connect_tcp(&addr).await.unwrap()));
    }
    let mut owner = RespConn::connect_tcp(&cluster.addrs()[0]).await.unwrap();
    let slots = masters_of(&owner.cmd_str(&["CLUSTER", "SLOTS"]).await);
    for k in keys.iter().step_by(37) {
        let slot = owner
            .cmd_str(&["CLUSTER", "KEYSLOT", k])
            .await
            .as_int()
            .unwrap() as u16;
        let (_, _, master) = slots
            .iter()
            .find(|(s, e, _)| (*s..=*e).contains(&slot))
            .unwrap();
        for (addr, conn) in &mut conns {
            let got = conn.cmd_str(&["GET", k]).await;
            if addr == master {
                assert_eq!(got.as_str(), Some(k.as_str()));
            } else {
                assert!(
                    got.error().is_some_and(|e| e.starts_with("MOVED")),
                    "{got:?}"
                );
            }
        }
    }
}
