//! Redis Cluster upstream (issue 15).

use std::time::Duration;

use crate::support::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_starts_a_cluster() {
    let cluster = Cluster::start().await;
    assert_eq!(cluster.masters().await.len(), 3);
    cluster.wait_ok(Duration::from_secs(5)).await;
}
