//! `filter_listings` against Redis as the oracle: for generated users and a
//! generated keyspace, the keys KEYS, SCAN (COUNT, MATCH, TYPE) and
//! RANDOMKEY show through the proxy are exactly those for which Redis's own
//! `ACL DRYRUN <user> GET <key>` says OK, among what Redis lists itself; SCAN
//! cursors are Redis's. Standalone (dedicated and pooled) and cluster.

use std::collections::BTreeSet;

use crate::support::cluster::Cluster;
use crate::support::*;

const PATTERNS: [&str; 8] = ["a:*", "b:*", "*:1*", "c:?", "{x}*", "*", "a:1?", "zz*"];
const PERMS: [&str; 4] = ["~", "%R~", "%W~", "%RW~"];
const USERS: usize = 8;

/// ACL rules for a generated user (without its password).
fn rules(rng: &mut Rng) -> String {
    let mut r = String::from("on +@all");
    for _ in 0..rng.below(3) {
        let pattern = rng.pick(&PATTERNS);
        r.push_str(&format!(" {}{pattern}", rng.pick(&PERMS)));
        if pattern == "*" {
            break; // Redis refuses any pattern after `*`
        }
    }
    if rng.chance(20) {
        r.push_str(" -get");
    }
    if rng.chance(25) {
        r.push_str(&format!(
            " ({}{} +get)",
            rng.pick(&PERMS),
            rng.pick(&PATTERNS)
        ));
    }
    r
}

/// 240 keys of four types over the patterns' prefixes.
fn keyspace() -> Vec<(String, &'static str)> {
    let mut keys = Vec::new();
    for (i, prefix) in ["a:", "b:", "c:", "{x}", "d:"]
        .iter()
        .cycle()
        .take(240)
        .enumerate()
    {
        let ty = ["string", "hash", "list", "set"][i % 4];
        keys.push((format!("{prefix}{i}"), ty));
    }
    keys
}

async fn fill<S>(c: &mut RespConn<S>, keys: &[(String, &str)])
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for (k, ty) in keys {
        let reply = match *ty {
            "string" => c.cmd_str(&["SET", k, "v"]).await,
            "hash" => c.cmd_str(&["HSET", k, "f", "v"]).await,
            "list" => c.cmd_str(&["RPUSH", k, "v"]).await,
            _ => c.cmd_str(&["SADD", k, "v"]).await,
        };
        assert!(!reply.is_error(), "{k}: {reply:?}");
    }
}

fn names(reply: &Reply) -> BTreeSet<String> {
    reply
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            r.as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .collect()
}

/// Every page of a SCAN with `options`: (cursors, keys).
async fn scan_all<S>(c: &mut RespConn<S>, options: &[String]) -> (Vec<String>, BTreeSet<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut cursor = "0".to_string();
    let (mut cursors, mut keys) = (Vec::new(), BTreeSet::new());
    loop {
        let mut args = vec!["SCAN".to_string(), cursor.clone()];
        args.extend(options.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let page = c.cmd_str(&args).await;
        let parts = page.as_array().unwrap_or_else(|| panic!("SCAN: {page:?}"));
        cursor = parts[0].as_str().expect("cursor").to_string();
        keys.extend(names(&parts[1]));
        cursors.push(cursor.clone());
        if cursor == "0" {
            return (cursors, keys);
        }
    }
}

/// The keys `user` may read, by Redis's `ACL DRYRUN` on `oracle` (where
/// the user is defined with the same rules).
async fn readable<S>(
    oracle: &mut RespConn<S>,
    user: &str,
    keys: &[(String, &str)],
) -> BTreeSet<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut out = BTreeSet::new();
    for (k, _) in keys {
        if oracle
            .cmd_str(&["ACL", "DRYRUN", user, "GET", k])
            .await
            .is_ok()
        {
            out.insert(k.clone());
        }
    }
    out
}

/// `[[users]]` for the generated users (password `pw`, `filter_listings`),
/// and the same users defined on `oracle` for `ACL DRYRUN`.
async fn users<S>(oracle: &mut RespConn<S>, seed: u64) -> (String, Vec<(String, String)>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut rng = Rng::new(seed);
    let mut toml = String::new();
    let mut made = Vec::new();
    for i in 0..USERS {
        let (name, r) = (format!("u{i}"), rules(&mut rng));
        toml.push_str(&format!(
            "[[users]]\nname = \"{name}\"\nrules = \"{r} >pw\"\nfilter_listings = true\n\n"
        ));
        let mut args = vec!["ACL", "SETUSER", &name, "reset"];
        args.extend(r.split(' '));
        assert!(oracle.cmd_str(&args).await.is_ok(), "{r}");
        made.push((name, r));
    }
    toml.push_str("[[users]]\nname = \"all\"\nrules = \"on >pw ~* &* +@all\"\n");
    (toml, made)
}

/// Standalone Redis, dedicated or pooled: KEYS, SCAN with options, RANDOMKEY.
async fn standalone(pooled: bool) {
    let seed = seed_from_env("LISTINGS_SEED");
    println!("seed {seed}");
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.expect("redis");
    let keys = keyspace();
    fill(&mut direct, &keys).await;
    let (toml, made) = users(&mut direct, seed).await;
    let upstream = if pooled {
        "mode = \"pooled\"\npool_size = 2\n"
    } else {
        ""
    };
    let config = base_config(&pki, &redis.addr(), &toml)
        .replace("[upstream]\n", &format!("[upstream]\n{upstream}"));
    let proxy = Proxy::start(&config, pki.dir());
    let mut rng = Rng::new(seed ^ 0x5eed);
    for (user, r) in &made {
        let expected = readable(&mut direct, user, &keys).await;
        let mut c = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
        assert!(c.cmd_str(&["AUTH", user, "pw"]).await.is_ok());
        let all = names(&c.cmd_str(&["KEYS", "*"]).await);
        assert_eq!(all, expected, "KEYS * for {user} ({r}), seed {seed}");
        let pattern = rng.pick(&PATTERNS);
        let matched: BTreeSet<String> = names(&direct.cmd_str(&["KEYS", pattern]).await)
            .intersection(&expected)
            .cloned()
            .collect();
        assert_eq!(
            names(&c.cmd_str(&["KEYS", pattern]).await),
            matched,
            "KEYS {pattern}"
        );
        for _ in 0..3 {
            let mut options = vec!["COUNT".to_string(), (1 + rng.below(40)).to_string()];
            if rng.chance(50) {
                options.extend(["MATCH".to_string(), rng.pick(&PATTERNS).to_string()]);
            }
            if rng.chance(40) {
                options.extend([
                    "TYPE".to_string(),
                    rng.pick(&["string", "hash", "list", "set"]).to_string(),
                ]);
            }
            let (their_cursors, theirs) = scan_all(&mut direct, &options).await;
            let (our_cursors, ours) = scan_all(&mut c, &options).await;
            assert_eq!(our_cursors, their_cursors, "SCAN cursors {options:?}");
            let want: BTreeSet<String> = theirs.intersection(&expected).cloned().collect();
            assert_eq!(ours, want, "SCAN {options:?} for {user} ({r}), seed {seed}");
        }
        for _ in 0..10 {
            let key = c.cmd_str(&["RANDOMKEY"]).await;
            if let Some(k) = key.as_bytes() {
                let k = String::from_utf8_lossy(k).into_owned();
                assert!(expected.contains(&k), "RANDOMKEY {k} for {user} ({r})");
            } else {
                assert!(key.is_null(), "{key:?}");
            }
        }
        // Inside MULTI they are refused, and EXEC aborts.
        assert!(c.cmd_str(&["MULTI"]).await.is_ok());
        let refused = c.cmd_str(&["KEYS", "*"]).await;
        assert!(
            refused
                .error()
                .is_some_and(|e| e.contains("filter_listings")),
            "{refused:?}"
        );
        assert!(c
            .cmd_str(&["EXEC"])
            .await
            .error()
            .is_some_and(|e| e.starts_with("EXECABORT")));
    }
    // A user without filter_listings sees everything.
    let mut all = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert!(all.cmd_str(&["AUTH", "all", "pw"]).await.is_ok());
    assert_eq!(names(&all.cmd_str(&["KEYS", "*"]).await).len(), keys.len());
}

#[tokio::test]
async fn dedicated_listings_equal_acl_dryrun() {
    standalone(false).await;
}

#[tokio::test]
async fn pooled_listings_equal_acl_dryrun() {
    standalone(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_listings_equal_acl_dryrun() {
    let seed = seed_from_env("LISTINGS_SEED");
    println!("seed {seed}");
    let cluster = Cluster::start().await;
    let pki = TestPki::new();
    let seeds = cluster.addrs();
    let mut oracle = RespConn::connect_tcp(&seeds[0]).await.expect("node");
    let (toml, made) = users(&mut oracle, seed).await;
    let config = base_config(&pki, "127.0.0.1:1", &toml).replace(
        "address = \"127.0.0.1:1\"\n",
        &format!("[upstream.cluster]\nseeds = [{}]\n", toml_str(&seeds[0])),
    );
    let proxy = Proxy::start(&config, pki.dir());
    let keys = keyspace();
    let mut admin = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    for _ in 0..100 {
        if admin.cmd_str(&["AUTH", "all", "pw"]).await.is_ok()
            && admin.cmd_str(&["SET", "probe", "1"]).await.is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(admin.cmd_str(&["DEL", "probe"]).await.as_int().is_some());
    fill(&mut admin, &keys).await;
    assert_eq!(
        names(&admin.cmd_str(&["KEYS", "*"]).await).len(),
        keys.len()
    );
    for (user, r) in &made {
        let expected = readable(&mut oracle, user, &keys).await;
        let mut c = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
        assert!(c.cmd_str(&["AUTH", user, "pw"]).await.is_ok());
        assert_eq!(
            names(&c.cmd_str(&["KEYS", "*"]).await),
            expected,
            "KEYS for {user} ({r})"
        );
        let (_, scanned) = scan_all(&mut c, &["COUNT".to_string(), "7".to_string()]).await;
        assert_eq!(scanned, expected, "SCAN for {user} ({r}), seed {seed}");
        let key = c.cmd_str(&["RANDOMKEY"]).await;
        if let Some(k) = key.as_bytes() {
            assert!(
                expected.contains(&*String::from_utf8_lossy(k)),
                "RANDOMKEY for {user}"
            );
        }
    }
}

/// Replies far larger than the streaming threshold (64 KiB): filtered as
/// they stream, in dedicated and pooled mode.
async fn large(pooled: bool) {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.expect("redis");
    let mut batch = Vec::new();
    for i in 0..4000 {
        let key = format!("{}:{i}:{}", ["a", "b"][i % 2], "x".repeat(40));
        batch.extend(encode_command(&[b"SET", key.as_bytes(), b"v"]));
    }
    direct.send_raw(&batch).await;
    for _ in 0..4000 {
        assert!(direct.read_reply().await.is_ok());
    }
    let users =
        "[[users]]\nname = \"lister\"\nrules = \"on >pw ~a:* +@all\"\nfilter_listings = true\n";
    let upstream = if pooled {
        "mode = \"pooled\"\npool_size = 2\n"
    } else {
        ""
    };
    let config = base_config(&pki, &redis.addr(), users)
        .replace("[upstream]\n", &format!("[upstream]\n{upstream}"));
    let proxy = Proxy::start(&config, pki.dir());
    let mut c = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert!(c.cmd_str(&["AUTH", "lister", "pw"]).await.is_ok());
    let expected = names(&direct.cmd_str(&["KEYS", "a:*"]).await);
    assert_eq!(expected.len(), 2000);
    assert_eq!(names(&c.cmd_str(&["KEYS", "*"]).await), expected);
    let options = ["COUNT".to_string(), "3000".to_string()];
    let (theirs, _) = scan_all(&mut direct, &options).await;
    let (ours, keys) = scan_all(&mut c, &options).await;
    assert_eq!(ours, theirs);
    assert_eq!(keys, expected);
    // The connection is still in step afterwards.
    assert_eq!(c.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
}

#[tokio::test]
async fn large_listings_are_filtered_as_they_stream() {
    large(false).await;
    large(true).await;
}
