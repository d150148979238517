//! A cluster changing under load: 1500 slots resharded while clients write
//! and read back (no client sees an error), a graceful failover (no
//! acknowledged write lost) and a master SIGKILLed (errors only inside the
//! failover window); and redis-py's cluster client through the proxy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{client, cluster_proxy, wait_ready};
use crate::support::cluster::Cluster;
use crate::support::*;

/// What one writer saw.
struct Seen {
    acked: Vec<(String, String)>,
    errors: Vec<(Instant, String)>,
}

/// A client that writes `w<i>:<n>` = n and reads it back, until `stop`.
async fn writer(proxy: &Proxy, pki: &TestPki, i: usize, stop: Arc<AtomicBool>) -> Seen {
    let mut c = client(proxy, pki, "app").await;
    let mut seen = Seen {
        acked: Vec::new(),
        errors: Vec::new(),
    };
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (k, v) = (format!("w{i}:{}", n % 400), n.to_string());
        let set = c.try_cmd(&[b"SET", k.as_bytes(), v.as_bytes()]).await;
        match set {
            Ok(r) if r.is_ok() => seen.acked.push((k.clone(), v.clone())),
            Ok(r) => seen
                .errors
                .push((Instant::now(), format!("SET {k}: {r:?}"))),
            Err(e) => panic!("writer {i} lost its connection: {e}"),
        }
        match c.try_cmd(&[b"GET", k.as_bytes()]).await {
            Ok(r) if r.as_str() == Some(v.as_str()) => {}
            Ok(r) => seen
                .errors
                .push((Instant::now(), format!("GET {k}: {r:?}"))),
            Err(e) => panic!("writer {i} lost its connection: {e}"),
        }
        n += 1;
    }
    seen
}

/// Every acknowledged write's last value, read through the proxy.
async fn check_acked(proxy: &Proxy, pki: &TestPki, seen: &[Seen]) {
    let mut c = client(proxy, pki, "app").await;
    let mut last = std::collections::HashMap::new();
    for s in seen {
        for (k, v) in &s.acked {
            last.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in &last {
        assert_eq!(
            c.cmd_str(&["GET", k]).await.as_str(),
            Some(v.as_str()),
            "{k}"
        );
    }
}

fn redis_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_under_load_is_not_seen_by_clients() {
    let cluster = Cluster::start().await;
    let pki = Arc::new(TestPki::new());
    let proxy = Arc::new(cluster_proxy(&pki, &cluster, ""));
    wait_ready(&proxy).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let (proxy, pki, stop) = (Arc::clone(&proxy), Arc::clone(&pki), Arc::clone(&stop));
            tokio::spawn(async move { writer(&proxy, &pki, i, stop).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let masters = cluster.masters().await;
    let (from, to) = (&masters[0], &masters[1]);
    let (entry, from_id, to_id) = (cluster.addrs()[0].clone(), from.0.clone(), to.0.clone());
    let reshard = tokio::task::spawn_blocking(move || {
        redis_cli(&[
            "--cluster",
            "reshard",
            &entry,
            "--cluster-from",
            &from_id,
            "--cluster-to",
            &to_id,
            "--cluster-slots",
            "1500",
            "--cluster-yes",
        ])
    });
    reshard.await.expect("reshard");
    cluster.wait_ok(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in writers {
        seen.push(w.await.expect("writer"));
    }
    let errors: Vec<&String> = seen
        .iter()
        .flat_map(|s| s.errors.iter().map(|e| &e.1))
        .collect();
    assert!(errors.is_empty(), "clients saw errors: {errors:?}");
    let writes: usize = seen.iter().map(|s| s.acked.len()).sum();
    assert!(writes > 500, "only {writes} writes");
    check_acked(&proxy, &pki, &seen).await;
    let redirects = scrape(
        &proxy,
        "portcullis_upstream_redirects_total{kind=\"moved\"}",
    )
    .await
        + scrape(&proxy, "portcullis_upstream_redirects_total{kind=\"ask\"}").await;
    assert!(
        redirects > 0.0,
        "no redirect followed: did the slots move under load?"
    );
}

/// The replica of the master that owns `slot`'s address, from `CLUSTER NODES`.
async fn replica_of(cluster: &Cluster, master_id: &str) -> String {
    for _ in 0..100 {
        let mut c = RespConn::connect_tcp(&cluster.addrs()[0]).await.unwrap();
        let nodes = c.cmd_str(&["CLUSTER", "NODES"]).await;
        let text = nodes.as_str().unwrap().to_string();
        let found = text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(3) == Some(&master_id) && f[2].contains("slave"))
                .then(|| f[1].split('@').next().unwrap_or("").to_string())
        });
        if let Some(replica) = found {
            return replica;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no replica of {master_id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failovers_under_load() {
    let mut cluster = Cluster::start().await;
    let pki = Arc::new(TestPki::new());
    let proxy = Arc::new(cluster_proxy(&pki, &cluster, ""));
    wait_ready(&proxy).await;

    // Graceful: CLUSTER FAILOVER on a replica. No acknowledged write is lost.
    let stop = Arc::new(AtomicBool::new(false));
    let spawn_writers = |stop: &Arc<AtomicBool>| -> Vec<_> {
        (0..4)
            .map(|i| {
                let (proxy, pki, stop) = (Arc::clone(&proxy), Arc::clone(&pki), Arc::clone(stop));
                tokio::spawn(async move { writer(&proxy, &pki, i, stop).await })
            })
            .collect()
    };
    let writers = spawn_writers(&stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (master_id, _) = cluster.masters().await[0].clone();
    let replica = replica_of(&cluster, &master_id).await;
    let mut r = RespConn::connect_tcp(&replica).await.unwrap();
    // The replica takes over (a manual failover that timed out would leave
    // nothing tested here). Redis gives a manual failover 5 s; on a loaded
    // machine it can time out, and the operator's answer is to ask again.
    let mut attempts = 0;
    'failover: loop {
        attempts += 1;
        assert!(
            attempts <= 5,
            "the replica did not take over in {} tries",
            attempts - 1
        );
        assert!(r.cmd_str(&["CLUSTER", "FAILOVER"]).await.is_ok());
        let deadline = Instant::now() + Duration::from_secs(7);
        while Instant::now() < deadline {
            let role = r.cmd_str(&["ROLE"]).await;
            let first = role
                .as_array()
                .and_then(|a| a.first())
                .and_then(Reply::as_str);
            if first == Some("master") {
                break 'failover;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("graceful failover after {attempts} CLUSTER FAILOVER");
    cluster.wait_ok(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in writers {
        seen.push(w.await.expect("writer"));
    }
    check_acked(&proxy, &pki, &seen).await;
    let graceful_errors: usize = seen.iter().map(|s| s.errors.len()).sum();
    eprintln!("graceful failover: {graceful_errors} errors seen by clients");

    // SIGKILL of a master: errors only until the cluster has failed over.
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, victim) = cluster.masters().await[1].clone();
    let killed = Instant::now();
    cluster.node(&victim).kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Failed over: a replica took the victim's slots and every survivor says ok.
        let survivors: Vec<String> = cluster
            .addrs()
            .into_iter()
            .filter(|a| *a != victim)
            .collect();
        let mut ok = true;
        for a in &survivors {
            let mut c = RespConn::connect_tcp(a).await.unwrap();
            let info = c.cmd_str(&["CLUSTER", "INFO"]).await;
            ok &= info
                .as_str()
                .unwrap_or_default()
                .contains("cluster_state:ok");
            let slots =
                crate::support::cluster::masters_of(&c.cmd_str(&["CLUSTER", "SLOTS"]).await);
            ok &= slots.iter().all(|(_, _, m)| *m != victim);
        }
        if ok {
            break;
        }
        if Instant::now() > deadline {
            let mut c = RespConn::connect_tcp(&survivors[0]).await.unwrap();
            let nodes = c.cmd_str(&["CLUSTER", "NODES"]).await;
            let nodes = String::from_utf8_lossy(nodes.as_bytes().unwrap_or_default()).to_string();
            let logs: String = survivors
                .iter()
                .map(|a| {
                    let log = cluster.node(a).log();
                    let tail: Vec<&str> = log.lines().rev().take(25).collect();
                    format!(
                        "--- {a}\n{}\n",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    )
                })
                .collect();
            panic!("the cluster did not fail over:\n{nodes}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in writers {
        seen.push(w.await.expect("writer"));
    }
    // Errors only inside the window (kill .. cluster ok again, plus the proxy's
    // next slot-map refresh, with room for a loaded two-core machine: a 1.5 s
    // bound failed once with all cluster tests running at once).
    let late: Vec<&(Instant, String)> = seen
        .iter()
        .flat_map(|s| s.errors.iter())
        .filter(|(t, _)| *t > recovered + Duration::from_millis(3000))
        .collect();
    assert!(late.is_empty(), "errors after the failover: {late:?}");
    let window: usize = seen.iter().map(|s| s.errors.len()).sum();
    eprintln!(
        "SIGKILL: cluster ok {:?} after the kill; {window} errors inside the window",
        recovered - killed
    );
    assert!(scrape(&proxy, "portcullis_upstream_failovers_total").await >= 1.0);
}

/// redis-py's `RedisCluster` finds the one-node cluster and works through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_cluster_client_through_the_proxy() {
    let cluster = Cluster::start().await;
    let pki = TestPki::new();
    let proxy = cluster_proxy(&pki, &cluster, "");
    wait_ready(&proxy).await;
    let (cert, key) = pki.client("bob");
    let script = r#"
import sys
from redis.cluster import RedisCluster
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
# redis-py 4 (Debian 12's) runs INFO, which -@dangerous denies: the admin user.
rc = RedisCluster(host="127.0.0.1", port=port, username="admin", password="pw", ssl=True,
                  ssl_ca_certs=ca, ssl_certfile=cert, ssl_keyfile=key)
for i in range(200):
    rc.set(f"py:{i}", i)
assert [int(v) for v in rc.mget_nonatomic([f"py:{i}" for i in range(200)])] == list(range(200))
p = rc.pipeline()
for i in range(50):
    p.incr(f"py:{i}")
assert p.execute() == [i + 1 for i in range(50)]
assert rc.get("py:10") == b"11"
print("ok", len(rc.get_nodes()))
"#;
    // The first Python with redis-py: pyenv's or another `python3` on PATH may
    // lack what Debian's python3-redis installed for /usr/bin/python3.
    let python = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .args(["-c", "import redis"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or("python3");
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(proxy.tls_addr().port().to_string())
        .arg(pki.ca_pem())
        .arg(cert)
        .arg(key)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok 1",
        "redis-py (python3 -m pip install redis, or apt-get install python3-redis):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
