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

/// The same commands through the proxy (cluster) and on a standalone Redis:
/// the split commands' replies must be equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_commands_answer_like_one_redis() {
    let cluster = Cluster::start().await;
    let pki = TestPki::new();
    let proxy = cluster_proxy(&pki, &cluster, "");
    wait_ready(&proxy).await;
    let oracle = RedisServer::start();
    let mut direct = RespConn::connect_tcp(&oracle.addr()).await.unwrap();
    let mut c = client(&proxy, &pki, "app").await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    println!("seed {seed}");
    let mut rng = Rng::new(seed);
    let key = |rng: &mut Rng| match rng.below(4) {
        0 => format!("{{tag}}k{}", rng.below(20)),
        _ => format!("k{}", rng.below(60)),
    };
    for round in 0..400 {
        let n = 1 + rng.below(8);
        let keys: Vec<String> = (0..n).map(|_| key(&mut rng)).collect();
        let mut cmd: Vec<String> = Vec::new();
        match rng.below(7) {
            0 | 1 => {
                cmd.push("MSET".into());
                for k in &keys {
                    cmd.push(k.clone());
                    cmd.push(format!("v{round}"));
                }
            }
            2 => cmd.push("MGET".into()),
            3 => cmd.push("DEL".into()),
            4 => cmd.push("EXISTS".into()),
            5 => cmd.push("TOUCH".into()),
            _ => cmd.push("UNLINK".into()),
        }
        if cmd.len() == 1 {
            cmd.extend(keys.iter().cloned());
        }
        if rng.chance(10) {
            // A key of another type: MGET answers nil for it, the rest as usual.
            let l = key(&mut rng);
            let push = ["LPUSH", l.as_str(), "x"];
            assert_eq!(c.cmd_str(&push).await, direct.cmd_str(&push).await);
        }
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let proxied = c.cmd_str(&args).await;
        let expected = direct.cmd_str(&args).await;
        assert_eq!(proxied, expected, "seed {seed}, round {round}: {args:?}");
    }
    // Commands that cannot be split refuse keys in several slots, as Redis Cluster does.
    let refused = c.cmd_str(&["RENAME", "k1", "k2"]).await;
    assert_eq!(
        refused.error(),
        Some("CROSSSLOT Keys in request don't hash to the same slot")
    );
    assert!(
        c.cmd_str(&["RENAME", "{a}1", "{a}2"]).await.is_error(),
        "no such key"
    );
    c.cmd_str(&["SET", "{a}1", "x"]).await;
    assert!(c.cmd_str(&["RENAME", "{a}1", "{a}2"]).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_run_on_their_slots_master() {
    let cluster = Cluster::start().await;
    let pki = TestPki::new();
    let proxy = cluster_proxy(&pki, &cluster, "");
    wait_ready(&proxy).await;
    let mut a = client(&proxy, &pki, "app").await;
    let mut b = client(&proxy, &pki, "app").await;
    // Keys with one hash tag: one slot.
    assert!(a.cmd_str(&["MULTI"]).await.is_ok());
    assert_eq!(
        a.cmd_str(&["SET", "{u1}.a", "1"]).await.as_str(),
        Some("QUEUED")
    );
    assert_eq!(
        a.cmd_str(&["INCR", "{u1}.b"]).await.as_str(),
        Some("QUEUED")
    );
    assert_eq!(a.cmd_str(&["PING"]).await.as_str(), Some("QUEUED"));
    let exec = a.cmd_str(&["EXEC"]).await;
    assert_eq!(
        exec,
        Reply::Array(Some(vec![
            Reply::Simple("OK".into()),
            Reply::Int(1),
            Reply::Simple("PONG".into())
        ]))
    );
    // Another slot inside: CROSSSLOT, then EXECABORT; nothing ran.
    a.cmd_str(&["MULTI"]).await;
    a.cmd_str(&["SET", "{u1}.a", "2"]).await;
    let refused = a.cmd_str(&["SET", "{u2}.a", "2"]).await;
    assert_eq!(
        refused.error(),
        Some("CROSSSLOT Keys in request don't hash to the same slot")
    );
    let aborted = a.cmd_str(&["EXEC"]).await;
    assert!(
        aborted.error().is_some_and(|e| e.starts_with("EXECABORT")),
        "{aborted:?}"
    );
    assert_eq!(b.cmd_str(&["GET", "{u1}.a"]).await.as_str(), Some("1"));
    // DISCARD, nested MULTI, WATCH inside MULTI: Redis's replies.
    a.cmd_str(&["MULTI"]).await;
    let nested = a.cmd_str(&["MULTI"]).await;
    assert_eq!(nested.error(), Some("ERR MULTI calls can not be nested"));
    let watch = a.cmd_str(&["WATCH", "x"]).await;
    assert_eq!(watch.error(), Some("ERR WATCH inside MULTI is not allowed"));
    assert!(a.cmd_str(&["DISCARD"]).await.is_ok());
    assert_eq!(
        a.cmd_str(&["EXEC"]).await.error(),
        Some("ERR EXEC without MULTI")
    );
    // WATCH: another client's write aborts the transaction.
    assert!(a.cmd_str(&["WATCH", "{u1}.a"]).await.is_ok());
    b.cmd_str(&["SET", "{u1}.a", "theirs"]).await;
    a.cmd_str(&["MULTI"]).await;
    a.cmd_str(&["SET", "{u1}.a", "mine"]).await;
    assert!(a.cmd_str(&["EXEC"]).await.is_null());
    assert_eq!(b.cmd_str(&["GET", "{u1}.a"]).await.as_str(), Some("theirs"));
    // Without a write in between it commits; keys of other slots meanwhile
    // still work outside the transaction.
    a.cmd_str(&["WATCH", "{u1}.a"]).await;
    assert!(a.cmd_str(&["SET", "{u9}.z", "1"]).await.is_ok());
    a.cmd_str(&["MULTI"]).await;
    a.cmd_str(&["SET", "{u1}.a", "mine"]).await;
    assert_eq!(
        a.cmd_str(&["EXEC"]).await.as_array().map(<[Reply]>::len),
        Some(1)
    );
    assert_eq!(b.cmd_str(&["GET", "{u1}.a"]).await.as_str(), Some("mine"));
    // The ACL decides on the client's command before any routing or splitting.
    let mut t = client(&proxy, &pki, "tenant").await;
    t.cmd_str(&["MSET", "t:a", "1", "t:b", "2"]).await;
    let both = t.cmd_str(&["MGET", "t:a", "t:b"]).await;
    assert_eq!(both.as_array().map(<[Reply]>::len), Some(2));
    let denied = t.cmd_str(&["MGET", "t:a", "{u1}.a"]).await;
    assert!(
        denied.error().is_some_and(|e| e.starts_with("NOPERM")),
        "{denied:?}"
    );
    // SELECT of another database is refused as in Redis Cluster.
    let select = a.cmd_str(&["SELECT", "1"]).await;
    assert_eq!(
        select.error(),
        Some("ERR SELECT is not allowed in cluster mode")
    );
    assert!(a.cmd_str(&["SELECT", "0"]).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_commands_cover_every_master() {
    let cluster = Cluster::start().await;
    let pki = TestPki::new();
    let proxy = cluster_proxy(&pki, &cluster, "");
    wait_ready(&proxy).await;
    let mut c = client(&proxy, &pki, "admin").await;
    let mut wire = Vec::new();
    for i in 0..500 {
        let k = format!("s:{i}");
        wire.extend(encode_command(&[b"SET", k.as_bytes(), b"v"]));
    }
    c.send_raw(&wire).await;
    for _ in 0..500 {
        assert!(c.read_reply().await.is_ok());
    }
    assert_eq!(c.cmd_str(&["DBSIZE"]).await.as_int(), Some(500));
    let keys = c.cmd_str(&["KEYS", "s:*"]).await;
    let mut keys: Vec<String> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    keys.sort();
    let mut expected: Vec<String> = (0..500).map(|i| format!("s:{i}")).collect();
    expected.sort();
    assert_eq!(keys, expected);
    // A full SCAN iteration returns every key (a key at most a few times).
    let mut cursor = "0".to_string();
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    loop {
        let page = c.cmd_str(&["SCAN", &cursor, "COUNT", "50"]).await;
        let page = page.as_array().unwrap();
        cursor = page[0].as_str().unwrap().to_string();
        for k in page[1].as_array().unwrap() {
            seen.insert(k.as_str().unwrap().to_string());
        }
        pages += 1;
        if cursor == "0" {
            break;
        }
        assert!(pages < 1000, "SCAN never ended");
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), expected);
    let bad = c.cmd_str(&["SCAN", "notacursor"]).await;
    assert_eq!(bad.error(), Some("ERR invalid cursor"));
    // Every master: FLUSHALL empties all of them, SCRIPT LOAD loads everywhere.
    let sha = c.cmd_str(&["SCRIPT", "LOAD", "return 1"]).await;
    let sha = sha.as_str().unwrap().to_string();
    for (_, addr) in cluster.masters().await {
        let mut m = RespConn::connect_tcp(&addr).await.unwrap();
        let exists = m.cmd_str(&["SCRIPT", "EXISTS", &sha]).await;
        assert_eq!(exists, Reply::Array(Some(vec![Reply::Int(1)])), "{addr}");
    }
    assert!(c.cmd_str(&["FLUSHALL"]).await.is_ok());
    assert_eq!(c.cmd_str(&["DBSIZE"]).await.as_int(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_blocking_and_cluster_queries() {
    let cluster = Cluster::start().await;
    let pki = TestPki::new();
    let proxy = cluster_proxy(&pki, &cluster, "");
    wait_ready(&proxy).await;
    let mut sub = client(&proxy, &pki, "app").await;
    let mut other = client(&proxy, &pki, "app").await;
    sub.send(&[b"SUBSCRIBE", b"news"]).await;
    sub.read_reply().await;
    // Published on any node, broadcast by the cluster.
    let mut node = RespConn::connect_tcp(&cluster.addrs()[5]).await.unwrap();
    node.cmd_str(&["PUBLISH", "news", "from-a-node"]).await;
    other
        .cmd_str(&["PUBLISH", "news", "through-the-proxy"])
        .await;
    for text in ["from-a-node", "through-the-proxy"] {
        let m = sub.read_reply().await;
        assert_eq!(m.as_array().unwrap()[2].as_str(), Some(text));
    }
    // Sharded pub/sub follows the channel's slot.
    let mut ssub = client(&proxy, &pki, "app").await;
    let confirm = ssub.cmd_str(&["SSUBSCRIBE", "shard-news"]).await;
    assert_eq!(confirm.as_array().map(<[Reply]>::len), Some(3));
    assert_eq!(
        other
            .cmd_str(&["SPUBLISH", "shard-news", "s1"])
            .await
            .as_int(),
        Some(1)
    );
    let m = ssub.read_reply().await;
    assert_eq!(m.as_array().unwrap()[2].as_str(), Some("s1"));
    // A blocked client does not hold up the others; it is answered when pushed to.
    let mut blocked = client(&proxy, &pki, "app").await;
    blocked.send(&[b"BLPOP", b"queue", b"0"]).await;
    for i in 0..20 {
        let k = format!("other:{i}");
        assert!(other.cmd_str(&["SET", &k, "v"]).await.is_ok());
    }
    other.cmd_str(&["RPUSH", "queue", "job"]).await;
    let popped = blocked.read_reply().await;
    assert_eq!(popped.as_array().unwrap()[1].as_str(), Some("job"));
    assert!(blocked.cmd_str(&["SET", "after", "x"]).await.is_ok());
    // The proxy is a one-node cluster at the address the client used.
    let slots = other.cmd_str(&["CLUSTER", "SLOTS"]).await;
    let addr = proxy.tls_addr().to_string();
    assert_eq!(masters_of(&slots), vec![(0, 16383, addr.clone())]);
    let info = other.cmd_str(&["CLUSTER", "INFO"]).await;
    assert!(info.as_str().unwrap().starts_with("cluster_state:ok\r\n"));
    assert_eq!(
        other.cmd_str(&["CLUSTER", "KEYSLOT", "foo"]).await.as_int(),
        Some(12182)
    );
    let nodes = other.cmd_str(&["CLUSTER", "NODES"]).await;
    assert!(nodes
        .as_str()
        .unwrap()
        .contains(&format!("{addr}@0 myself,master")));
    // RESP3: replies from every master in RESP3, splits included.
    let hello = other.cmd_str(&["HELLO", "3"]).await;
    assert!(matches!(hello, Reply::Map(_)), "{hello:?}");
    assert_eq!(other.cmd_str(&["GET", "nothing-here"]).await, Reply::Null);
    let mget = other
        .cmd_str(&["MGET", "other:1", "nothing", "other:2"])
        .await;
    assert_eq!(
        mget,
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"v".to_vec())),
            Reply::Null,
            Reply::Bulk(Some(b"v".to_vec()))
        ]))
    );
    other.cmd_str(&["HSET", "h", "f", "v"]).await;
    assert!(matches!(
        other.cmd_str(&["HGETALL", "h"]).await,
        Reply::Map(_)
    ));
    // Tracking cannot span masters: refused with a reason.
    let tracking = other.cmd_str(&["CLIENT", "TRACKING", "ON"]).await;
    assert!(
        tracking.error().is_some_and(|e| e.contains("TRACKING")),
        "{tracking:?}"
    );
}
