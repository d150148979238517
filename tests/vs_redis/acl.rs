//! Redis is the oracle for the ACL rule language and the ACL decision.
//!
//! 1. Rule parsing: random rule lists from the whole `ACL SETUSER` grammar (valid and
//!    invalid tokens, selectors, quoting, patterns with `*?[]\^`) go to a real
//!    redis-server as `ACL SETUSER u<n> <rules...>` and to `apply_rules`: Redis says OK
//!    exactly when we do, and on error our `RulesError` text is Redis's minus `ERR `.
//!    The users are then probed with a few `ACL DRYRUN`s.
//! 2. Decisions: users from valid rule lists (`reset` first), each asked many random
//!    commands over the whole command table and the tricky key-spec commands; Redis's
//!    raw `ACL DRYRUN` reply must equal `dryrun_reply` byte for byte.
//!
//! `ACL_VS_REDIS_SEED=<n>` replays a run (the seed is printed on failure);
//! `examples/acl_diff.rs` runs the same generator for longer.

#[path = "acl/gen.rs"]
#[allow(dead_code)]
mod gen;
#[path = "acl/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::time::Instant;

use crate::support::RedisServer;
use gen::Rng;
use harness::{Conn, Stats};

/// The reference's edge cases, each a rule string and commands to ask about.
fn edge_cases() -> Vec<(String, Vec<Vec<Vec<u8>>>)> {
    let c =
        |args: &[&str]| -> Vec<Vec<u8>> { args.iter().map(|a| a.as_bytes().to_vec()).collect() };
    let many_a = "a".repeat(1200);
    let pat_1100 = format!("~{}", "a*".repeat(1100));
    let pat_900 = format!("~{}", "a*".repeat(900));
    let keys_cmds = vec![
        c(&["get", ""]),
        c(&["get", "a"]),
        c(&["get", "ab"]),
        c(&["get", "x\\"]),
        c(&["get", "]"]),
        c(&["get", "-"]),
        c(&["get", "^"]),
        c(&["get", "*"]),
        c(&["set", "a", "v"]),
        c(&["set", "a", "v", "get"]),
        c(&["exists", ""]),
        c(&["get", &many_a]),
    ];
    let mut cases = vec![
        ("+@all %R~*".to_string(), keys_cmds.clone()),
        ("+@all %RW~*".to_string(), keys_cmds.clone()),
        ("+@all %W~*".to_string(), keys_cmds.clone()),
        ("+@all %R".to_string(), keys_cmds.clone()),
        ("+@all ~[abc".to_string(), keys_cmds.clone()),
        ("+@all ~x\\".to_string(), keys_cmds.clone()),
        ("+@all ~[a-]".to_string(), keys_cmds.clone()),
        ("+@all ~[ ~[^".to_string(), keys_cmds.clone()),
        ("+@all ~*[ ~[]".to_string(), keys_cmds.clone()),
        (format!("+@all {pat_1100}"), keys_cmds.clone()),
        (format!("+@all {pat_900}"), keys_cmds.clone()),
    ];
    let numkeys = vec![
        c(&["zunionstore", "forbidden", "0", "x"]),
        c(&["zunionstore", "x", "5", "r1"]),
        c(&["zunionstore", "r1", "1", "r2"]),
        c(&["zunionstore", "r1", "1", "forbidden"]),
        c(&["zunionstore", "forbidden", "1", "r1"]),
        c(&["eval", "s", "01", "k"]),
        c(&["eval", "s", "01", "r1"]),
        c(&["eval", "s", "0", "k"]),
        c(&["eval", "s", "1", "k"]),
        c(&["eval", "s", "1", "r1"]),
        c(&["eval", "s", "+1", "k"]),
        c(&["eval", "s", "-1", "k"]),
        c(&["eval", "s", "2", "r1"]),
        c(&["eval_ro", "s", "1", "r1"]),
        c(&["eval_ro", "s", "1", "w1"]),
        c(&["fcall", "f", "1", "w1"]),
        c(&["zinter", "2", "r1", "k"]),
        c(&["zinter", "2", "r1", "k", "WEIGHTS", "1", "2"]),
        c(&["lmpop", "1", "k", "LEFT"]),
        c(&["lmpop", "01", "k", "LEFT"]),
        c(&["blmpop", "0", "2", "r1", "w1", "LEFT"]),
        c(&["sintercard", "1", "k", "LIMIT", "1"]),
        c(&["migrate", "h", "1", "", "0", "1", "KEYS", "k", "r1"]),
        c(&["migrate", "h", "1", "k", "0", "1", "KEYS", "k", "r1"]),
        c(&["migrate", "h", "1", "k", "0", "1"]),
        c(&["migrate", "h", "1", "", "0", "1", "keys", "rw1"]),
        c(&[
            "migrate", "h", "1", "", "0", "1", "AUTH", "keys", "KEYS", "rw1",
        ]),
        c(&["xread", "STREAMS", "r1", "k", "0"]),
        c(&["xread", "STREAMS", "r1", "k", "0", "0"]),
        c(&["xread", "STREAMS", "k", "0"]),
        c(&["xread", "COUNT", "1", "STREAMS", "r1", "0"]),
        c(&["xreadgroup", "GROUP", "g", "c", "STREAMS", "r1", "0"]),
        c(&["xreadgroup", "GROUP", "g", "c", "STREAMS", "k", "0"]),
        c(&["xreadgroup", "GROUP", "g", "c", "STREAMS", "r1", "k", "0"]),
        c(&[
            "georadius",
            "r1",
            "0",
            "0",
            "1",
            "km",
            "STORE",
            "w1",
            "STORE",
            "k",
        ]),
        c(&[
            "georadius",
            "r1",
            "0",
            "0",
            "1",
            "km",
            "STORE",
            "k",
            "STORE",
            "w1",
        ]),
        c(&[
            "georadius",
            "r1",
            "0",
            "0",
            "1",
            "km",
            "STOREDIST",
            "w1",
            "STORE",
            "k",
        ]),
        c(&["georadiusbymember", "r1", "m", "1", "km", "STORE", "w1"]),
        c(&["sort", "r1", "STORE", "w1"]),
        c(&["sort", "r1", "STORE", "k"]),
        c(&["sort", "r1", "STORE", "k", "STORE", "w1"]),
        c(&["sort", "r1", "GET", "STORE", "STORE", "w1"]),
        c(&["sort", "r1", "LIMIT", "STORE", "k", "STORE", "w1"]),
        c(&["sort", "r1", "BY", "k", "GET", "k"]),
        c(&["sort", "w1"]),
        c(&["sort_ro", "r1", "STORE", "k"]),
        c(&["set", "w1", "v"]),
        c(&["set", "rw1", "v", "GET"]),
        c(&["set", "w1", "v", "get"]),
        c(&["set", "w1", "v", "EX", "1", "GET"]),
        c(&["bitfield", "r1", "GET", "u8", "0"]),
        c(&["bitfield", "r1", "GET", "u8", "0", "OVERFLOW", "SAT"]),
        c(&["bitfield", "r1", "SET", "u8", "0", "1"]),
        c(&["bitfield", "w1", "SET", "u8", "0", "1"]),
        c(&["bitfield", "rw1", "INCRBY", "u8", "0", "1"]),
        c(&["bitfield", "r1", "GET", "u8"]),
        c(&["bitfield_ro", "r1", "GET", "u8", "0"]),
        c(&["del", "w1"]),
        c(&["del", "r1"]),
        c(&["pfcount", "r1"]),
        c(&["exists", "w1", "r1"]),
        c(&["lmove", "r1", "w1", "LEFT", "RIGHT"]),
        c(&["lmove", "rw1", "w1", "LEFT", "RIGHT"]),
        c(&["copy", "r1", "w1"]),
    ];
    cases.push(("+@all %R~r* %W~w* ~rw*".to_string(), numkeys.clone()));
    cases.push(("+@all %R~r* %W~w* ~rw* ~k".to_string(), numkeys.clone()));
    cases.push(("+@all (%R~r*) (%W~w*)".to_string(), numkeys.clone()));
    cases.push(("-@all +@read %R~r* (+@write %W~w*)".to_string(), numkeys));
    let pubsub = vec![
        c(&["publish", "foo", "m"]),
        c(&["publish", "foo:1", "m"]),
        c(&["publish", "bar", "m"]),
        c(&["spublish", "foo", "m"]),
        c(&["subscribe", "foo", "foo:1"]),
        c(&["subscribe", "foo:1", "bar"]),
        c(&["ssubscribe", "bar"]),
        c(&["psubscribe", "foo*"]),
        c(&["psubscribe", "foo:*"]),
        c(&["psubscribe", "foo*", "bar"]),
        c(&["psubscribe", "bar", "foo*"]),
        c(&["unsubscribe", "bar"]),
        c(&["punsubscribe", "bar"]),
        c(&["sunsubscribe", "bar"]),
    ];
    cases.push(("+@all &foo*".to_string(), pubsub.clone()));
    cases.push(("+@all resetchannels".to_string(), pubsub.clone()));
    cases.push(("+@all allchannels".to_string(), pubsub.clone()));
    cases.push(("+@all &bar (+@all &foo*)".to_string(), pubsub));
    let firstargs = vec![
        c(&["select", "0"]),
        c(&["select", "1"]),
        c(&["SELECT", "0"]),
        c(&["debug", "object", "k"]),
        c(&["debug", "OBJECT", "k"]),
        c(&["debug", "sleep", "0"]),
        c(&["get", "k"]),
        c(&["get", "x"]),
        c(&["config", "get", "x"]),
        c(&["config", "set", "x", "y"]),
        c(&["config", "resetstat"]),
        c(&["client", "id"]),
        c(&["client", "kill", "x"]),
        c(&["auth", "x"]),
        c(&["hello"]),
        c(&["quit"]),
        c(&["reset"]),
        c(&["acl", "dryrun", "u", "get", "k"]),
        c(&["config"]),
        c(&["config", "nosuch"]),
        c(&["nosuch"]),
        c(&["get"]),
        c(&["get", "k", "k"]),
    ];
    for rules in [
        "+select|0 +debug|object ~*",
        "+select|0 +select ~*",
        "+select +select|0 ~*",
        "+select|0 -select ~*",
        "+get|k ~*",
        "+@all -debug ~*",
        "-debug +@all ~*",
        "+config -config|set ~*",
        "+config -config|set +config ~*",
        "+@all -config ~*",
        "+@all -@dangerous ~*",
        "-@all ~*",
        "+client|id +config|get ~*",
        "(+select|0 ~*) (+debug|object ~*)",
        "+@connection ~*",
    ] {
        cases.push((rules.to_string(), firstargs.clone()));
    }
    // Which denial wins across selectors: channel > key > command, then the later argument.
    let precedence = vec![
        c(&["mget", "a", "b", "c"]),
        c(&["mset", "a", "1", "b", "2"]),
        c(&["publish", "x", "m"]),
        c(&["get", "a"]),
        c(&["set", "c", "v"]),
        c(&["subscribe", "y", "x"]),
    ];
    for rules in [
        "(+mget ~a) (+mget ~b)",
        "(+mget ~b) (+mget ~a)",
        "+mget ~c (+mget ~a)",
        "+get (+mget ~a ~b) (+publish &y)",
        "+@all ~a &y (+@all ~b &x)",
        "+@all (+get ~a)",
        "+set ~c (+get ~a)",
        "(+subscribe &x) (+subscribe &y)",
    ] {
        cases.push((rules.to_string(), precedence.clone()));
    }
    cases
}

/// Rule lists in test 1.
const RULE_CASES: usize = 5000;
/// DRYRUN probes per test-1 user.
const RULE_PROBES: usize = 3;
/// Users in test 2.
const DRYRUN_USERS: usize = 3000;
/// Commands per test-2 user.
const DRYRUN_PER_USER: usize = 15;

fn seed() -> u64 {
    match std::env::var("ACL_VS_REDIS_SEED") {
        Ok(s) => s.parse().expect("ACL_VS_REDIS_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

fn verdict(name: &str, seed: u64, stats: &Stats, started: Instant) {
    eprintln!(
        "{name}: {} in {:.1?} (ACL_VS_REDIS_SEED={seed})",
        stats.summary(),
        started.elapsed()
    );
    assert!(
        stats.mismatches == 0,
        "ACL_VS_REDIS_SEED={seed}: {name}: {} mismatches, first ones:\n{}",
        stats.mismatches,
        stats.shown.join("\n\n")
    );
}

#[test]
fn rule_parsing_matches_acl_setuser() {
    let seed = seed();
    let started = Instant::now();
    let redis = RedisServer::start();
    let mut conn = Conn::connect(&redis.addr()).expect("connect to redis");
    let mut rng = Rng::new(seed);
    let stats =
        harness::rules_run(&mut conn, &mut rng, "u", RULE_CASES, RULE_PROBES).expect("redis I/O");
    verdict("rules", seed, &stats, started);
    let ok = stats.kinds.get("setuser ok").copied().unwrap_or(0);
    let err = stats.kinds.get("setuser error").copied().unwrap_or(0);
    assert!(
        ok > RULE_CASES / 5 && err > RULE_CASES / 5,
        "{}",
        stats.summary()
    );
}

#[test]
fn decisions_match_acl_dryrun() {
    let seed = seed() ^ 0x5DEE_CE66_D1CE_4E5B;
    let started = Instant::now();
    let redis = RedisServer::start();
    let mut conn = Conn::connect(&redis.addr()).expect("connect to redis");
    let mut rng = Rng::new(seed);
    let stats = harness::dryrun_run(&mut conn, &mut rng, "d", DRYRUN_USERS, DRYRUN_PER_USER)
        .expect("redis I/O");
    verdict("dryrun", seed, &stats, started);
    for kind in [
        "dryrun +OK",
        "dryrun denied command",
        "dryrun denied key",
        "dryrun denied channel",
        "dryrun -ERR arity",
        "dryrun -ERR other",
    ] {
        assert!(
            stats.kinds.get(kind).copied().unwrap_or(0) >= 50,
            "too few '{kind}': {}",
            stats.summary()
        );
    }
}

#[test]
fn reference_edge_cases_match_redis() {
    let started = Instant::now();
    let redis = RedisServer::start();
    let mut conn = Conn::connect(&redis.addr()).expect("connect to redis");
    let stats = harness::fixed_run(&mut conn, "e", &edge_cases()).expect("redis I/O");
    verdict("edge cases", 0, &stats, started);
    assert_eq!(
        stats.kinds.get("setuser error"),
        None,
        "{}",
        stats.summary()
    );
}
