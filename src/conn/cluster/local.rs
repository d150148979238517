//! The `CLUSTER` replies of a one-node cluster whose node is the address the
//! client connected to, so a cluster-aware client sends everything to the
//! proxy; and `CLUSTER INFO` from what the proxy knows of the real cluster.

use std::net::SocketAddr;

use sha2::{Digest, Sha256};

use super::route::ClusterQuery;
use crate::resp::encode;

/// The reply to `query` for a client connected to `local`; `healthy`: the
/// real cluster said `cluster_state:ok` and every slot has a master.
pub fn answer(query: ClusterQuery, local: SocketAddr, healthy: bool) -> Vec<u8> {
    let ip = local.ip().to_string();
    let port = local.port();
    let id = node_id(local);
    let mut out = Vec::new();
    match query {
        ClusterQuery::Slots => {
            out.extend_from_slice(b"*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n");
            encode::bulk(&mut out, ip.as_bytes());
            out.extend_from_slice(format!(":{port}\r\n").as_bytes());
            encode::bulk(&mut out, id.as_bytes());
            out.extend_from_slice(b"*0\r\n");
        }
        ClusterQuery::Shards => {
            out.extend_from_slice(
                b"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n*14\r\n",
            );
            let port = port.to_string();
            for (k, v) in [
                ("id", id.as_str()),
                ("port", port.as_str()),
                ("ip", ip.as_str()),
                ("endpoint", ip.as_str()),
                ("role", "master"),
                ("replication-offset", "0"),
                ("health", if healthy { "online" } else { "fail" }),
            ] {
                encode::bulk(&mut out, k.as_bytes());
                if k == "port" || k == "replication-offset" {
                    out.extend_from_slice(format!(":{v}\r\n").as_bytes());
                } else {
                    encode::bulk(&mut out, v.as_bytes());
                }
            }
        }
        ClusterQuery::Nodes => {
            let line = format!("{id} {ip}:{port}@0 myself,master - 0 0 1 connected 0-16383\n");
            encode::bulk(&mut out, line.as_bytes());
        }
        ClusterQuery::Info => {
            let state = if healthy { "ok" } else { "fail" };
            let slots_ok = if healthy { 16384 } else { 0 };
            let text = format!(
                "cluster_state:{state}\r\ncluster_slots_assigned:16384\r\n\
                 cluster_slots_ok:{slots_ok}\r\ncluster_slots_pfail:0\r\n\
                 cluster_slots_fail:{}\r\ncluster_known_nodes:1\r\ncluster_size:1\r\n\
                 cluster_current_epoch:1\r\ncluster_my_epoch:1\r\n\
                 cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
                 total_cluster_links_buffer_limit_exceeded:0\r\n",
                16384 - slots_ok
            );
            encode::bulk(&mut out, text.as_bytes());
        }
        ClusterQuery::MyId => encode::bulk(&mut out, id.as_bytes()),
    }
    out
}

/// A stable 40-hex-digit node id for the proxy's address.
fn node_id(local: SocketAddr) -> String {
    let digest = Sha256::digest(format!("portcullis {local}").as_bytes());
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::value::Value;

    #[test]
    fn a_one_node_cluster_at_the_clients_address() {
        let local: SocketAddr = "127.0.0.1:6380".parse().unwrap();
        let slots = answer(ClusterQuery::Slots, local, true);
        let map = crate::upstream::cluster::SlotMap::from_slots(&slots, "x:1").unwrap();
        assert!(map.complete());
        assert_eq!(map.masters().len(), 1);
        assert_eq!(
            map.masters()[0].addr,
            crate::config::UpstreamAddr::Tcp("127.0.0.1:6380".into())
        );
        let shards = answer(ClusterQuery::Shards, local, true);
        let from_shards = crate::upstream::cluster::SlotMap::from_shards(&shards, "x:1", false);
        assert_eq!(from_shards, Some(map));
        let nodes = answer(ClusterQuery::Nodes, local, true);
        let text = Value::of(&nodes).unwrap().text().unwrap().to_vec();
        assert!(text.ends_with(b"127.0.0.1:6380@0 myself,master - 0 0 1 connected 0-16383\n"));
        let info = answer(ClusterQuery::Info, local, false);
        let text = Value::of(&info).unwrap().text().unwrap().to_vec();
        assert!(text.starts_with(b"cluster_state:fail\r\n"));
        let id = answer(ClusterQuery::MyId, local, true);
        assert_eq!(id.len(), 40 + 7);
    }
}
