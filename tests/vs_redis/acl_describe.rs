//! Redis is the oracle for `ACL LIST` and `ACL GETUSER`: random users from the whole
//! `ACL SETUSER` grammar (flags, passwords, key and channel patterns with permissions,
//! categories, commands, subcommands, first-args, selectors) go to a real
//! redis-server and to [`apply_rules`]; Redis's raw `ACL LIST` and `ACL GETUSER`
//! replies (RESP2 and RESP3) must equal [`list_reply`] and [`getuser_reply`].
//!
//! One known difference is normalised before comparing: Redis emits single-command rules (`+get -config|set +select|0`) in the order of
//!   its command hash table, which is seeded randomly per process. Each run of them
//!   is compared with its commands sorted (a container's own rule first, first-args
//!   in order), so the set of rules must match exactly.
//!
//! A second test asks the built proxy for `ACL LIST` / `ACL GETUSER` (RESP2 and
//! RESP3) and compares its replies with Redis's for the same users.
//!
//! `DESCRIBE_SEED=<n>` replays a run (the seed is printed); `DESCRIBE_USERS=<n>`
//! compares more users than the default.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{
    base_config, parse_reply, resp_tls, Proxy, RedisServer, Reply, RespConn, Rng, TestPki,
};
use portcullis::acl::describe::{getuser_reply, list_reply};
use portcullis::acl::rules::apply_rules;
use portcullis::acl::User;
use portcullis::command::{by_name, is_container, CATEGORIES, COMMANDS};

/// Users compared unless `DESCRIBE_USERS` says otherwise.
const USERS: usize = 3000;
/// Users created, described and deleted per pipelined round.
const BATCH: usize = 250;
/// Mismatches shown in a failure message.
const SHOWN: usize = 8;

/// Random letter case for rule keywords.
trait RandomCase {
    /// A random item of `items`, in random case.
    fn pick_case(&mut self, items: &[&str]) -> String;
    /// `s` with letters in random case, half the time.
    fn case(&mut self, s: &str) -> String;
}

impl RandomCase for Rng {
    /// A random item of `items`, in random case.
    fn pick_case(&mut self, items: &[&str]) -> String {
        let s = self.pick(items);
        self.case(s)
    }
    /// `s` with letters in random case, half the time.
    fn case(&mut self, s: &str) -> String {
        if self.chance(50) {
            return s.to_string();
        }
        s.chars()
            .map(|c| {
                if self.chance(50) {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }
}

fn seed() -> u64 {
    let seed = match std::env::var("DESCRIBE_SEED") {
        Ok(s) => s.parse().expect("DESCRIBE_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    eprintln!("acl_describe_vs_redis seed: DESCRIBE_SEED={seed}");
    seed
}

// ---------------------------------------------------------------------------
// Rule generation (ASCII, no parentheses or spaces inside patterns).

const KEY_PATTERNS: &[&str] = &[
    "k*",
    "foo",
    "a?b",
    "[a-c]*",
    "x\\",
    "*",
    "",
    "user:{1}*",
    "[^k]",
    "k\\*",
    "b",
];
const CHANNEL_PATTERNS: &[&str] = &["news.*", "ch1", "c?", "*", "", "[ab]", "x\\"];
const PASSWORDS: &[&str] = &["pw", "secret", "a", "", "p:w"];
const FIRST_ARGS: &[&str] = &["0", "1", "get", "GET", "x", "object", "a-b"];

/// Per-selector state the generator keeps so that most rule lists are valid.
#[derive(Default)]
struct Scope {
    all_keys: bool,
    all_channels: bool,
}

/// What Redis's user flags say about payload sanitizing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PayloadFlag {
    Unset,
    Sanitize,
    Skip,
}

/// One selector-level rule (sometimes two, e.g. `resetkeys ~x`).
fn selector_rule(rng: &mut Rng, scope: &mut Scope, commands_only: bool) -> Vec<String> {
    let mut out = Vec::new();
    let kind = if commands_only { 5 } else { rng.below(10) };
    match kind {
        0 | 1 => {
            if scope.all_keys {
                out.push(rng.case("resetkeys"));
                scope.all_keys = false;
            }
            match rng.below(12) {
                0 => {
                    out.push(if rng.chance(50) {
                        "~*".into()
                    } else {
                        rng.case("allkeys")
                    });
                    scope.all_keys = true;
                }
                1 => {
                    out.push(rng.case("resetkeys"));
                }
                2 => out.push(rng.pick_case(&["%R", "%RW", "%W"])),
                _ => {
                    let perms = rng.pick(&["~", "%R~", "%W~", "%RW~", "%WR~", "%r~", "%w~"]);
                    out.push(format!("{perms}{}", rng.pick(KEY_PATTERNS)));
                }
            }
        }
        2 => {
            if scope.all_channels {
                out.push(rng.case("resetchannels"));
                scope.all_channels = false;
            }
            match rng.below(8) {
                0 => {
                    out.push(if rng.chance(50) {
                        "&*".into()
                    } else {
                        rng.case("allchannels")
                    });
                    scope.all_channels = true;
                }
                1 => out.push(rng.case("resetchannels")),
                _ => out.push(format!("&{}", rng.pick(CHANNEL_PATTERNS))),
            }
        }
        _ => out.push(command_rule(rng)),
    }
    out
}

/// A command rule: categories, commands, subcommands, first-args, all/none.
fn command_rule(rng: &mut Rng) -> String {
    let sign = if rng.chance(50) { "+" } else { "-" };
    match rng.below(20) {
        0 => rng.pick_case(&["+@all", "-@all", "allcommands", "nocommands"]),
        1..=6 => format!("{sign}@{}", rng.pick_case(&CATEGORIES)),
        7..=8 => {
            // A first-arg on a plain top-level command.
            let plain: Vec<&str> = COMMANDS
                .iter()
                .filter(|c| c.parent.is_none() && !is_container(c))
                .map(|c| c.name)
                .collect();
            let cmd = rng.pick(&plain);
            format!("+{}|{}", rng.case(cmd), rng.pick(FIRST_ARGS))
        }
        9..=11 => {
            // A container or one of its subcommands.
            let tree: Vec<&str> = COMMANDS
                .iter()
                .filter(|c| c.parent.is_some() || is_container(c))
                .map(|c| c.name)
                .collect();
            format!("{sign}{}", rng.pick_case(&tree))
        }
        _ => format!("{sign}{}", {
            let cmd = COMMANDS[rng.below(COMMANDS.len())].name;
            rng.case(cmd)
        }),
    }
}

/// A `(...)` selector as one argument (parts sometimes quoted).
fn selector(rng: &mut Rng) -> String {
    let mut scope = Scope::default();
    let commands_only = rng.chance(30);
    let mut parts = Vec::new();
    for _ in 0..rng.below(9) {
        for p in selector_rule(rng, &mut scope, commands_only) {
            let quotable = !p.contains(['\\', '"', '\'']);
            parts.push(match rng.below(20) {
                0 if quotable => format!("\"{p}\""),
                1 if quotable => format!("'{p}'"),
                _ => p,
            });
        }
    }
    format!("({})", parts.join(" "))
}

/// A random rule list (as `ACL SETUSER` arguments) and the sanitize flag Redis will show.
fn user_rules(rng: &mut Rng) -> (Vec<String>, PayloadFlag) {
    let mut out = Vec::new();
    let mut scope = Scope::default();
    let mut sanitize = PayloadFlag::Unset;
    let mut passwords: Vec<&str> = Vec::new();
    let commands_heavy = rng.chance(40);
    if commands_heavy && rng.chance(60) {
        out.push(rng.pick(&["+@all", "-@all", "allcommands"]).to_string());
    }
    let n = if commands_heavy {
        5 + rng.below(40)
    } else {
        rng.below(16)
    };
    for _ in 0..n {
        if commands_heavy && rng.chance(85) {
            out.push(command_rule(rng));
            continue;
        }
        match rng.below(30) {
            0 => out.push(rng.pick_case(&["on", "off"])),
            1 => {
                out.push(rng.pick_case(&["nopass", "resetpass"]));
                passwords.clear();
            }
            2..=3 => {
                let pw = rng.pick(PASSWORDS);
                out.push(format!(">{pw}"));
                passwords.push(pw);
            }
            4 => {
                let hex: String = (0..64).map(|_| rng.pick(&["0", "7", "a", "f"])).collect();
                out.push(format!("#{hex}"));
            }
            5 if !passwords.is_empty() => {
                let pw = passwords.remove(rng.below(passwords.len()));
                passwords.retain(|p| *p != pw);
                out.push(format!("<{pw}"));
            }
            6 => {
                let s = rng.pick(&["sanitize-payload", "skip-sanitize-payload"]);
                sanitize = if s == "sanitize-payload" {
                    PayloadFlag::Sanitize
                } else {
                    PayloadFlag::Skip
                };
                out.push(rng.case(s));
            }
            7 if rng.chance(30) => {
                out.push(rng.case("reset"));
                sanitize = PayloadFlag::Sanitize;
                scope = Scope::default();
                passwords.clear();
            }
            8 => out.push(rng.case("clearselectors")),
            9..=13 => out.push(selector(rng)),
            _ => out.extend(selector_rule(rng, &mut scope, false)),
        }
    }
    (out, sanitize)
}

/// Hand-picked users: (rules, sanitize).
fn fixed_users() -> Vec<(Vec<String>, PayloadFlag)> {
    [
        "on nopass ~* &* +@all",
        "",
        "+@all -get +get",
        "+@all -@all +get",
        "+select|0 +select|1 +select|GET",
        "+@all -select +select|0",
        "+@all +select|0",
        "+config -config|get",
        "-@all +config|get +config|set",
        "%RW~* %R %W~x %R~x",
        "+@read -@write +@write -@read",
        "+@all -@dangerous -@admin +info",
        "-@all +@fast +@slow -@connection",
        "on >a >b <a #0000000000000000000000000000000000000000000000000000000000000000",
        "(+get ~x &y) () (%R~q* +@read -get allchannels) clearselectors (~a)",
        "skip-sanitize-payload allkeys allchannels",
    ]
    .iter()
    .map(|r| {
        let args: Vec<String> = r
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        (args, PayloadFlag::Unset)
    })
    .collect()
}

/// A fresh name: bytewise order is what `ACL LIST` sorts by.
fn user_name(rng: &mut Rng, taken: &mut HashSet<String>) -> String {
    const ALPHABET: &[u8] = b"abAB09_-:.z";
    loop {
        let len = 1 + rng.below(6);
        let name: String = (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len())] as char)
            .collect();
        if name != "default" && taken.insert(name.clone()) {
            return name;
        }
    }
}

// ---------------------------------------------------------------------------
// A blocking, pipelining connection returning raw replies.

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn connect(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn pipeline(&mut self, cmds: &[Vec<String>]) -> Vec<Vec<u8>> {
        let mut wire = Vec::new();
        for argv in cmds {
            let args: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
            wire.extend_from_slice(&crate::support::encode_command(&args));
        }
        self.stream.write_all(&wire).expect("write to redis");
        let mut out = Vec::with_capacity(cmds.len());
        while out.len() < cmds.len() {
            match parse_reply(&self.buf).expect("well-formed reply") {
                Some((_, used)) => out.push(self.buf.drain(..used).collect()),
                None => {
                    let mut chunk = [0u8; 64 * 1024];
                    let n = self.stream.read(&mut chunk).expect("read from redis");
                    assert!(n > 0, "redis closed the connection");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Normalisation of the two known differences.

/// A run of single-command rules with each command's group sorted by name.
fn canon_run(run: &[&str]) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in run {
        let base = t[1..].split('|').next().unwrap_or_default();
        groups.entry(base).or_default().push(t);
    }
    let mut out = Vec::new();
    for (base, mut toks) in groups {
        if by_name(base.as_bytes()).is_some_and(is_container) {
            // The container's own rule first, then its subcommands (hash order in Redis).
            toks.sort_by_key(|t| (t.contains('|'), t.to_string()));
        }
        out.extend(toks.iter().map(|t| t.to_string()));
    }
    out
}

/// Command rules (or a whole description, selectors included) with every run of
/// single-command rules in a canonical order; same length as `text`.
fn canon_rules(text: &str) -> String {
    let canon_segment = |seg: &str| -> String {
        let toks: Vec<&str> = seg.split(' ').collect();
        let is_cmd =
            |t: &str| (t.starts_with('+') || t.starts_with('-')) && !t[1..].starts_with('@');
        let mut out = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            if is_cmd(toks[i]) {
                let end = (i..toks.len())
                    .find(|&j| !is_cmd(toks[j]))
                    .unwrap_or(toks.len());
                out.extend(canon_run(&toks[i..end]));
                i = end;
            } else {
                out.push(toks[i].to_string());
                i += 1;
            }
        }
        out.join(" ")
    };
    let mut parts = text.split(" (");
    let mut out = canon_segment(parts.next().unwrap_or_default());
    for sel in parts {
        let inner = sel.strip_suffix(')').unwrap_or(sel);
        out.push_str(" (");
        out.push_str(&canon_segment(inner));
        out.push(')');
    }
    out
}

/// `ACL GETUSER` raw bytes with each `commands` value canonical.
fn canon_getuser(raw: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b"$8\r\ncommands\r\n$";
    let mut out = raw.to_vec();
    let mut from = 0;
    while let Some(pos) = out[from..].windows(KEY.len()).position(|w| w == KEY) {
        let len_at = from + pos + KEY.len();
        let crlf = len_at
            + out[len_at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("len");
        let len: usize = std::str::from_utf8(&out[len_at..crlf])
            .unwrap()
            .parse()
            .unwrap();
        let text = String::from_utf8_lossy(&out[crlf + 2..crlf + 2 + len]).into_owned();
        let canon = canon_rules(&text);
        assert_eq!(canon.len(), len, "canonical form keeps the length");
        out[crlf + 2..crlf + 2 + len].copy_from_slice(canon.as_bytes());
        from = crlf + 2 + len;
    }
    out
}

/// `ACL LIST` raw bytes as lines, canonical, with `sanitize-payload` dropped for `drop`.
fn canon_list(raw: &[u8], drop: &HashSet<String>) -> Vec<String> {
    let (reply, _) = parse_reply(raw).expect("parse").expect("complete");
    let items = reply.as_array().expect("ACL LIST is an array");
    items
        .iter()
        .map(|line| {
            let line = line.as_str().expect("ASCII line").to_string();
            let name = line.split(' ').nth(1).unwrap_or_default().to_string();
            let line = if drop.contains(&name) {
                line.replacen(" sanitize-payload ", " ", 1)
            } else {
                line
            };
            canon_rules(&line)
        })
        .collect()
}

// ---------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    users: usize,
    refused: usize,
    exact_getuser: usize,
    sanitize_gap: usize,
    mismatches: Vec<String>,
}

impl Stats {
    fn mismatch(&mut self, what: String) {
        if self.mismatches.len() < SHOWN {
            self.mismatches.push(what);
        }
    }
}

fn run_batch(
    users: &[(String, Vec<String>, PayloadFlag)],
    resp2: &mut Conn,
    resp3: &mut Conn,
    stats: &mut Stats,
    failed: &mut usize,
) {
    let setuser: Vec<Vec<String>> = users
        .iter()
        .map(|(name, rules, _)| {
            let mut argv = vec!["ACL".to_string(), "SETUSER".into(), name.clone()];
            argv.extend(rules.iter().cloned());
            argv
        })
        .collect();
    let getuser: Vec<Vec<String>> = users
        .iter()
        .map(|(name, _, _)| vec!["ACL".into(), "GETUSER".into(), name.clone()])
        .collect();
    let set_replies = resp2.pipeline(&setuser);
    let get2 = resp2.pipeline(&getuser);
    let get3 = resp3.pipeline(&getuser);
    let list = resp2
        .pipeline(&[vec!["ACL".into(), "LIST".into()]])
        .remove(0);

    let mut ours: Vec<User> = Vec::new();
    let mut default = User::new("default");
    apply_rules(&mut default, "on nopass ~* &* +@all").expect("default user");
    ours.push(default);
    let drop = HashSet::new();
    for (i, (name, rules, _sanitize)) in users.iter().enumerate() {
        stats.users += 1;
        let mut user = User::new(name);
        let applied = apply_rules(&mut user, &rules.join(" "));
        let redis_ok = set_replies[i] == b"+OK\r\n";
        if applied.is_ok() != redis_ok {
            *failed += 1;
            stats.mismatch(format!(
                "SETUSER {name} {rules:?}: redis {:?}, ours {applied:?}",
                String::from_utf8_lossy(&set_replies[i])
            ));
            continue;
        }
        if !redis_ok {
            stats.refused += 1;
        }
        let target = redis_ok.then_some(&user);
        for (resp3, redis) in [(false, &get2[i]), (true, &get3[i])] {
            let mine = getuser_reply(target, resp3);
            if &mine == redis {
                stats.exact_getuser += 1;
                continue;
            }
            if canon_getuser(redis) != canon_getuser(&mine) {
                *failed += 1;
                stats.mismatch(format!(
                    "GETUSER (resp3 {resp3}) {name} {rules:?}:\n redis {:?}\n ours  {:?}",
                    String::from_utf8_lossy(redis),
                    String::from_utf8_lossy(&mine)
                ));
            }
        }
        if redis_ok {
            ours.push(user);
        }
    }
    let theirs = canon_list(&list, &drop);
    let mine = canon_list(&list_reply(ours.iter()), &HashSet::new());
    if theirs != mine {
        *failed += 1;
        let diff: Vec<String> = theirs
            .iter()
            .zip(mine.iter())
            .filter(|(a, b)| a != b)
            .take(3)
            .map(|(a, b)| format!(" redis {a}\n ours  {b}"))
            .collect();
        stats.mismatch(format!(
            "ACL LIST ({} vs {} lines):\n{}",
            theirs.len(),
            mine.len(),
            diff.join("\n")
        ));
    }
    let mut del = vec!["ACL".to_string(), "DELUSER".into()];
    del.extend(users.iter().map(|(n, _, _)| n.clone()));
    resp2.pipeline(&[del]);
}

#[test]
fn acl_list_and_getuser_match_redis() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let redis = RedisServer::start();
    let mut resp2 = Conn::connect(&redis.addr());
    let mut resp3 = Conn::connect(&redis.addr());
    resp3.pipeline(&[vec!["HELLO".into(), "3".into()]]);
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut failed = 0;

    let mut pending: Vec<(Vec<String>, PayloadFlag)> = fixed_users();
    let total = std::env::var("DESCRIBE_USERS")
        .map(|n| n.parse().expect("DESCRIBE_USERS must be a number"))
        .unwrap_or(USERS);
    while pending.len() < total {
        pending.push(user_rules(&mut rng));
    }
    for chunk in pending.chunks(BATCH) {
        let mut taken = HashSet::new();
        let batch: Vec<(String, Vec<String>, PayloadFlag)> = chunk
            .iter()
            .map(|(rules, s)| (user_name(&mut rng, &mut taken), rules.clone(), *s))
            .collect();
        run_batch(&batch, &mut resp2, &mut resp3, &mut stats, &mut failed);
    }
    eprintln!(
        "{} users ({} refused by both) in {:.1?}: {} of {} GETUSER replies byte-exact, \
         {} users needed the sanitize-payload allowance, {failed} mismatches",
        stats.users,
        stats.refused,
        started.elapsed(),
        stats.exact_getuser,
        2 * stats.users,
        stats.sanitize_gap,
    );
    assert!(
        failed == 0,
        "DESCRIBE_SEED={seed}: {failed} mismatches, first ones:\n{}",
        stats.mismatches.join("\n")
    );
}

/// `reply` with every bulk string's single-command runs in canonical order.
fn canon_parsed(reply: Reply) -> Reply {
    match reply {
        Reply::Bulk(Some(b)) => match String::from_utf8(b) {
            Ok(text) => Reply::Bulk(Some(canon_rules(&text).into_bytes())),
            Err(e) => Reply::Bulk(Some(e.into_bytes())),
        },
        Reply::Array(Some(items)) => {
            Reply::Array(Some(items.into_iter().map(canon_parsed).collect()))
        }
        Reply::Map(pairs) => Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (canon_parsed(k), canon_parsed(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Users configured in the proxy and created in Redis (no `reset`, so no
/// `sanitize-payload` flag on either side).
const PROXY_USERS: [(&str, &str); 4] = [
    ("admin", "on >pw ~* &* +@all"),
    (
        "app",
        "on >pw >pw2 %R~cache:* ~data:* %W~log:* &news:* +@read -get +select|0 +config|get (~other:* +set -@all +@hash) ()",
    ),
    ("Zed", "off skip-sanitize-payload allchannels +@all -@dangerous -flushall"),
    ("b.1", "on nopass +@read +@write -@keyspace +del (%R~x +@all -debug)"),
];

#[tokio::test]
async fn proxy_answers_acl_list_and_getuser_like_redis() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let users: String = PROXY_USERS
        .iter()
        .chain(&[("default", "on nopass ~* &* +@all")])
        .map(|(n, r)| format!("[[users]]\nname = \"{n}\"\nrules = \"{r}\"\n"))
        .collect();
    let proxy = Proxy::start(&base_config(&pki, &redis.addr(), &users), pki.dir());

    let mut direct = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    for (name, rules) in PROXY_USERS {
        let merged =
            portcullis::acl::rules::merge_selector_args(rules.split_ascii_whitespace()).unwrap();
        let mut cmd: Vec<&[u8]> = vec![b"ACL", b"SETUSER", name.as_bytes()];
        cmd.extend(merged.iter().map(|s| s.as_bytes()));
        assert!(direct.cmd(&cmd).await.is_ok(), "{name}");
    }
    let mut via = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    assert!(via.cmd_str(&["AUTH", "admin", "pw"]).await.is_ok());
    let asks: &[&[&str]] = &[
        &["ACL", "LIST"],
        &["acl", "getuser", "app"],
        &["ACL", "GETUSER", "Zed"],
        &["ACL", "GETUSER", "b.1"],
        &["ACL", "GETUSER", "default"],
        &["ACL", "GETUSER", "nobody"],
        &["ACL", "GETUSER", "APP"],
    ];
    for resp3 in [false, true] {
        if resp3 {
            assert!(!via.cmd_str(&["HELLO", "3"]).await.is_error());
            assert!(!direct.cmd_str(&["HELLO", "3"]).await.is_error());
        }
        for ask in asks {
            let theirs = canon_parsed(direct.cmd_str(ask).await);
            let ours = canon_parsed(via.cmd_str(ask).await);
            assert_eq!(ours, theirs, "{ask:?} (resp3 {resp3})");
        }
    }
}
