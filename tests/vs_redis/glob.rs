//! Redis is the oracle for the glob matcher: generated patterns go to a real redis-server
//! (Debian 7.0.15) as `KEYS <pattern>` over a scratch database of generated keys, and as
//! `%R~<pattern>` rules checked with `ACL DRYRUN u GET <key>`; the keys Redis accepts must
//! be exactly the keys [`portcullis::acl::glob::matches`] accepts.
//!
//! Runs are seeded; set `GLOB_SEED=<n>` to replay the seed a failure prints.

use std::collections::BTreeSet;

use crate::support::{RedisServer, Reply, RespConn, Rng};
use portcullis::acl::glob::matches;
use tokio::net::TcpStream;

/// Random patterns compared through `KEYS`.
const KEYS_PATTERNS: usize = 10_000;
/// Random patterns compared through `ACL DRYRUN` (each against every key).
const DRYRUN_PATTERNS: usize = 400;
/// Commands sent before reading their replies.
const BATCH: usize = 200;
/// Mismatches shown in a failure message.
const SHOWN: usize = 10;

/// Random byte strings for patterns and keys.
trait RandomBytes {
    /// Up to `max_len` bytes drawn from `alphabet`.
    fn bytes(&mut self, alphabet: &[u8], max_len: usize) -> Vec<u8>;
}

impl RandomBytes for Rng {
    fn bytes(&mut self, alphabet: &[u8], max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

/// The seed from `GLOB_SEED`, or a fresh one.
fn seed() -> u64 {
    let seed = match std::env::var("GLOB_SEED") {
        Ok(s) => s.parse().expect("GLOB_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    eprintln!("glob_vs_redis seed: GLOB_SEED={seed}");
    seed | 1
}

/// Bytes shown with escapes, long runs abbreviated.
fn show(bytes: &[u8]) -> String {
    let text: String = bytes.escape_ascii().to_string();
    if text.len() > 80 {
        format!("{}…({} bytes)", &text[..60], bytes.len())
    } else {
        format!("\"{text}\"")
    }
}

/// Key bytes: glob metacharacters, a few letters, NUL and high bytes (both signs as `char`).
const KEY_ALPHABET: &[u8] = b"ab*?[]^-\\z\0\x7f\x80\xe9\xff:";
/// Pattern bytes, biased to metacharacters.
const PATTERN_ALPHABET: &[u8] = b"***??[[[]]^^--\\\\ab`z\0\x7f\x80\xe9\xff";

/// The keyspace: hand-picked edge cases plus `generated` random keys.
fn make_keys(rng: &mut Rng, generated: usize) -> Vec<Vec<u8>> {
    let mut keys: BTreeSet<Vec<u8>> = [
        &b""[..],
        b"a",
        b"b",
        b"ab",
        b"abc",
        b"*",
        b"?",
        b"[",
        b"]",
        b"\\",
        b"x\\",
        b"^",
        b"-",
        b"_",
        b"`",
        b"[a]",
        b"a]",
        b"\0",
        b"a\0b",
        b"\x7f",
        b"\x80",
        b"\xe9",
        b"\xff",
        b"cache:users",
        b"user:42:profile",
    ]
    .iter()
    .map(|k| k.to_vec())
    .collect();
    for n in [999, 1000, 1001, 1002, 1200] {
        keys.insert(vec![b'a'; n]);
    }
    while keys.len() < generated + 30 {
        keys.insert(rng.bytes(KEY_ALPHABET, 8));
    }
    keys.into_iter().collect()
}

/// Hand-picked patterns: the reference's edge cases and `*` chains around the nesting limit.
fn edge_patterns() -> Vec<Vec<u8>> {
    let mut patterns: Vec<Vec<u8>> = [
        &b""[..],
        b"*",
        b"**",
        b"?",
        b"[abc",
        b"[",
        b"[^",
        b"[]",
        b"[^]",
        b"[a-]",
        b"[a-]x",
        b"[z-a]",
        b"*[",
        b"x\\",
        b"\\",
        b"[\\",
        b"[\\]]",
        b"[\x80-\xff]",
        b"[\x00-\xff]",
        b"[a-\xff]",
        b"[\x7f-\x80]",
        b"[^\x80-\xff]",
        b"a*",
        b"cache:*",
        b"user:*:profile",
        b"a*b*c*d",
    ]
    .iter()
    .map(|p| p.to_vec())
    .collect();
    for n in [900, 999, 1000, 1001, 1002, 1003, 1100] {
        patterns.push(b"a*".repeat(n));
        patterns.push(b"*a".repeat(n));
        patterns.push(b"?*".repeat(n));
        patterns.push([b"*a".repeat(n), b"*".repeat(5)].concat());
    }
    patterns.push(b"*".repeat(5000));
    patterns.push([&b"a"[..], &b"*".repeat(3000)].concat());
    patterns
}

/// Random patterns of length 0..=12.
fn random_patterns(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| rng.bytes(PATTERN_ALPHABET, 12)).collect()
}

/// Sends `commands` pipelined in batches and returns their replies in order.
async fn pipeline(conn: &mut RespConn<TcpStream>, commands: &[Vec<Vec<u8>>]) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(commands.len());
    for batch in commands.chunks(BATCH) {
        for args in batch {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            conn.send(&args).await;
        }
        for _ in batch {
            replies.push(conn.read_reply().await);
        }
    }
    replies
}

/// A connection to `redis` using database 9, filled with `keys`.
async fn scratch_db(redis: &RedisServer, keys: &[Vec<u8>]) -> RespConn<TcpStream> {
    let mut conn = RespConn::connect_tcp(&redis.addr()).await.expect("connect");
    assert!(conn.cmd(&[b"SELECT", b"9"]).await.is_ok());
    assert!(conn.cmd(&[b"FLUSHDB"]).await.is_ok());
    let sets: Vec<Vec<Vec<u8>>> = keys
        .iter()
        .map(|k| vec![b"SET".to_vec(), k.clone(), b"1".to_vec()])
        .collect();
    for reply in pipeline(&mut conn, &sets).await {
        assert!(reply.is_ok(), "SET failed: {reply:?}");
    }
    let size = conn.cmd(&[b"DBSIZE"]).await.as_int();
    assert_eq!(size, Some(keys.len() as i64));
    conn
}

/// Redis 7.0 `KEYS` answers a pattern that is exactly `*` without matching (it lists every
/// key, the empty one too); any other pattern goes through `stringmatchlen`.
fn keys_expected(pattern: &[u8], keys: &[Vec<u8>]) -> BTreeSet<Vec<u8>> {
    keys.iter()
        .filter(|k| pattern == b"*" || matches(pattern, k))
        .cloned()
        .collect()
}

#[tokio::test]
async fn keys_agrees_with_redis() {
    let seed = seed();
    let mut rng = Rng(seed);
    let redis = RedisServer::start_with(&["--save", "", "--appendonly", "no"]);
    let keys = make_keys(&mut rng, 220);
    let mut conn = scratch_db(&redis, &keys).await;

    let mut patterns = edge_patterns();
    patterns.extend(random_patterns(&mut rng, KEYS_PATTERNS));
    let commands: Vec<Vec<Vec<u8>>> = patterns
        .iter()
        .map(|p| vec![b"KEYS".to_vec(), p.clone()])
        .collect();
    let replies = pipeline(&mut conn, &commands).await;

    let (mut mismatches, mut matched) = (Vec::new(), 0usize);
    for (pattern, reply) in patterns.iter().zip(&replies) {
        let items = reply
            .as_array()
            .unwrap_or_else(|| panic!("KEYS: {reply:?}"));
        let redis_set: BTreeSet<Vec<u8>> = items
            .iter()
            .map(|k| k.as_bytes().expect("KEYS item").to_vec())
            .collect();
        let ours = keys_expected(pattern, &keys);
        matched += ours.len();
        if redis_set != ours {
            let only_redis: Vec<String> = redis_set.difference(&ours).map(|k| show(k)).collect();
            let only_ours: Vec<String> = ours.difference(&redis_set).map(|k| show(k)).collect();
            mismatches.push(format!(
                "pattern {}: only Redis {only_redis:?}, only ours {only_ours:?}",
                show(pattern)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "GLOB_SEED={seed}: {} of {} patterns differ over {} keys:\n{}",
        mismatches.len(),
        patterns.len(),
        keys.len(),
        mismatches[..mismatches.len().min(SHOWN)].join("\n")
    );
    eprintln!(
        "KEYS: {} patterns x {} keys agree with Redis ({matched} matches)",
        patterns.len(),
        keys.len()
    );
}

/// The one `KEYS` special case the comparison above relies on.
#[tokio::test]
async fn keys_star_alone_lists_the_empty_key() {
    let redis = RedisServer::start();
    let keys = vec![b"".to_vec(), b"k".to_vec()];
    let mut conn = scratch_db(&redis, &keys).await;
    let star = conn.cmd(&[b"KEYS", b"*"]).await;
    assert_eq!(star.as_array().map(<[Reply]>::len), Some(2), "{star:?}");
    let stars = conn.cmd(&[b"KEYS", b"**"]).await;
    let stars = stars.as_array().expect("KEYS ** array");
    assert_eq!(stars.len(), 1);
    assert_eq!(stars[0].as_bytes(), Some(&b"k"[..]));
    assert!(!matches(b"*", b"") && !matches(b"**", b""));
}

/// Whether `ACL SETUSER` refuses `pattern` (C `isspace` bytes and NUL). Such rules are not
/// sent: the error echoes the pattern, and the harness reads error lines only as UTF-8.
fn refused_by_acl(pattern: &[u8]) -> bool {
    pattern.iter().any(|b| b" \t\n\x0b\x0c\r\0".contains(b))
}

#[tokio::test]
async fn acl_dryrun_agrees_with_redis() {
    let seed = seed();
    let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
    let redis = RedisServer::start_with(&["--save", "", "--appendonly", "no"]);
    let keys = make_keys(&mut rng, 60);
    let mut conn = RespConn::connect_tcp(&redis.addr()).await.expect("connect");

    let mut patterns = edge_patterns();
    patterns.extend(random_patterns(&mut rng, DRYRUN_PATTERNS));
    let refused_rule: &[&[u8]] = &[b"ACL", b"SETUSER", b"u", b"%R~a\0b"];
    assert!(conn.cmd(refused_rule).await.is_error(), "NUL in a pattern");
    let (mut checked, mut skipped) = (0usize, 0usize);
    let mut mismatches = Vec::new();
    for pattern in &patterns {
        if refused_by_acl(pattern) {
            skipped += 1;
            continue;
        }
        let rule = [&b"%R~"[..], pattern].concat();
        let setuser: &[&[u8]] = &[
            b"ACL", b"SETUSER", b"u", b"reset", b"on", b"nopass", &rule, b"+get",
        ];
        let reply = conn.cmd(setuser).await;
        assert!(
            reply.is_ok(),
            "ACL SETUSER u ... %R~{}: {reply:?}",
            show(pattern)
        );
        let commands: Vec<Vec<Vec<u8>>> = keys
            .iter()
            .map(|k| {
                let args: [&[u8]; 5] = [b"ACL", b"DRYRUN", b"u", b"GET", k];
                args.iter().map(|a| a.to_vec()).collect()
            })
            .collect();
        for (key, reply) in keys.iter().zip(pipeline(&mut conn, &commands).await) {
            // Redis formats the denial with `%s`, so the key stops at its first NUL.
            let shown = key.split(|&b| b == 0).next().unwrap_or_default();
            let denial = [
                &b"This user has no permissions to access the '"[..],
                shown,
                b"' key",
            ];
            let redis_allows = match &reply {
                r if r.is_ok() => true,
                r if r.as_bytes() == Some(&denial.concat()[..]) => false,
                other => panic!("ACL DRYRUN u GET {}: {other:?}", show(key)),
            };
            checked += 1;
            if redis_allows != matches(pattern, key) {
                mismatches.push(format!(
                    "%R~{} with key {}: Redis allows={redis_allows}",
                    show(pattern),
                    show(key)
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "GLOB_SEED={seed}: {} of {checked} DRYRUN checks differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(SHOWN)].join("\n")
    );
    assert!(skipped < patterns.len() / 2, "{skipped} patterns skipped");
    eprintln!(
        "DRYRUN: {checked} checks agree ({} patterns, {skipped} skipped)",
        patterns.len()
    );
}
