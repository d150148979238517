//! The differential runs against a live redis-server (shared by
//! `tests/acl_vs_redis.rs` and `examples/acl_diff.rs`): a blocking, pipelining RESP
//! connection that returns raw reply bytes, and the two comparisons.
//!
//! - [`rules_run`]: `ACL SETUSER u<n> <rules...>` vs `apply_rules` (OK ⇔ Ok, error text
//!   equal), new and existing users, then a few `ACL DRYRUN`s per resulting user.
//! - [`dryrun_run`]: users made of valid rule lists (`reset` first), then many
//!   `ACL DRYRUN`s each, Redis's raw reply vs `dryrun_reply`, byte for byte.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use portcullis::acl::check::{dryrun_reply, CheckScratch};
use portcullis::acl::rules::apply_rules;
use portcullis::acl::User;

use super::gen::{self, Rng, Tok};

/// Commands per pipelined write.
const BATCH: usize = 1000;
/// Mismatches kept for the report.
const KEEP: usize = 25;

/// A blocking RESP connection that hands back each reply's raw bytes.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends every command in one write, then reads one raw reply per command.
    pub fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> io::Result<Vec<Vec<u8>>> {
        let mut wire = Vec::new();
        for argv in cmds {
            wire.extend_from_slice(format!("*{}\r\n", argv.len()).as_bytes());
            for a in argv {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
        }
        self.stream.write_all(&wire)?;
        let mut out = Vec::with_capacity(cmds.len());
        for _ in cmds {
            out.push(self.read_raw()?);
        }
        Ok(out)
    }

    /// One reply's bytes, header to final CRLF.
    fn read_raw(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = reply_end(&self.buf, 0) {
                return Ok(self.buf.drain(..end).collect());
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Where the reply starting at `pos` ends, if it is complete.
fn reply_end(buf: &[u8], pos: usize) -> Option<usize> {
    let line_end = pos + buf.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
    let after = line_end + 2;
    let header = std::str::from_utf8(buf.get(pos + 1..line_end)?).ok();
    match buf.get(pos)? {
        b'$' => {
            let len: i64 = header?.parse().ok()?;
            if len < 0 {
                return Some(after);
            }
            let end = after + len as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' => {
            let n: i64 = header?.parse().ok()?;
            let mut at = after;
            for _ in 0..n.max(0) {
                at = reply_end(buf, at)?;
            }
            Some(at)
        }
        _ => Some(after),
    }
}

/// Arguments shown with escapes, quoted.
pub fn show_args<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.as_ref().escape_ascii()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts and the first mismatches of a run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Cases compared.
    pub cases: usize,
    /// How the cases went (`setuser ok`, `dryrun +OK`, ...).
    pub kinds: BTreeMap<String, usize>,
    /// Number of mismatches.
    pub mismatches: usize,
    /// The first [`KEEP`] mismatches, described.
    pub shown: Vec<String>,
}

impl Stats {
    fn count(&mut self, kind: &str) {
        *self.kinds.entry(kind.to_string()).or_default() += 1;
    }

    fn mismatch(&mut self, what: String) {
        self.mismatches += 1;
        if self.shown.len() < KEEP {
            self.shown.push(what);
        }
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: Stats) {
        self.cases += other.cases;
        for (k, v) in other.kinds {
            *self.kinds.entry(k).or_default() += v;
        }
        self.mismatches += other.mismatches;
        for s in other.shown {
            if self.shown.len() < KEEP {
                self.shown.push(s);
            }
        }
    }

    /// One line per kind.
    pub fn summary(&self) -> String {
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "{} cases, {} mismatches ({})",
            self.cases,
            self.mismatches,
            kinds.join(", ")
        )
    }
}

/// Our answer to `ACL SETUSER`, as Redis would write it.
fn our_setuser_reply(result: &Result<(), portcullis::acl::RulesError>) -> Vec<u8> {
    match result {
        Ok(()) => b"+OK\r\n".to_vec(),
        Err(e) => format!("-ERR {e}\r\n").into_bytes(),
    }
}

/// A user whose state we model: its name, our `User`, and the `ACL SETUSER`
/// argument lists that made it (for reproductions).
pub struct Modeled {
    pub name: String,
    pub user: User,
    pub history: Vec<Vec<String>>,
}

/// One pending `ACL SETUSER`: target (index into users, or a new one), rule string, args.
struct Pending {
    user: usize,
    rules: String,
    args: Vec<String>,
}

/// Sends the pending SETUSERs in one pipeline, compares, and updates the models of
/// users Redis and we both changed. A user we disagree on is marked `tainted`.
fn setuser_batch(
    conn: &mut Conn,
    users: &mut [Modeled],
    tainted: &mut [bool],
    batch: &[Pending],
    stats: &mut Stats,
) -> io::Result<()> {
    let cmds: Vec<Vec<Vec<u8>>> = batch
        .iter()
        .map(|p| {
            let mut argv = vec![b"ACL".to_vec(), b"SETUSER".to_vec()];
            argv.push(users[p.user].name.clone().into_bytes());
            argv.extend(p.args.iter().map(|a| a.clone().into_bytes()));
            argv
        })
        .collect();
    let replies = conn.pipeline(&cmds)?;
    for (p, redis) in batch.iter().zip(replies) {
        if tainted[p.user] {
            // We already disagree on this user: its later rules prove nothing.
            stats.count("setuser skipped (user differs)");
            continue;
        }
        stats.cases += 1;
        let m = &mut users[p.user];
        let mut ours = m.user.clone();
        let result = apply_rules(&mut ours, &p.rules);
        let expected = our_setuser_reply(&result);
        stats.count(if redis == b"+OK\r\n" {
            "setuser ok"
        } else {
            "setuser error"
        });
        if redis != expected {
            tainted[p.user] = true;
            stats.mismatch(format!(
                "ACL SETUSER {} {}\n  (after {} earlier SETUSERs; apply_rules({:?}))\n  redis: {}\n  ours:  {}",
                m.name,
                show_args(&p.args),
                m.history.len(),
                p.rules,
                redis.escape_ascii(),
                expected.escape_ascii()
            ));
            continue;
        }
        // On an error both sides leave the user unchanged (all or nothing).
        if result.is_ok() {
            m.user = ours;
            m.history.push(p.args.clone());
        } else if ours != m.user {
            tainted[p.user] = true;
            stats.mismatch(format!(
                "apply_rules({:?}) failed but changed the user",
                p.rules
            ));
        }
    }
    Ok(())
}

/// Where the proxy's check (`CheckScratch::default`) differs from Redis's
/// (`redis_exact`), the only allowed difference is the interface's hardening:
/// Redis allowed the command and the proxy denied one of the keys Redis's key
/// specs miss (`acl_keys` minus `command_keys`). `None` when that holds.
fn not_only_stricter(argv: &[Vec<u8>], redis: &[u8], proxy: &[u8]) -> Option<String> {
    use portcullis::command::{acl_keys, command_keys, resolve, Resolved};
    if redis != b"+OK\r\n" || !proxy.ends_with(b"' key\r\n") {
        return Some("only a key denial where Redis allowed may differ".into());
    }
    let Resolved::Found(cmd) = resolve(&argv[0], argv.get(1).map(Vec::as_slice)) else {
        return Some("unknown command".into());
    };
    let (mut redis_keys, mut proxy_keys) = (Vec::new(), Vec::new());
    command_keys(cmd, argv, &mut redis_keys);
    acl_keys(cmd, argv, &mut proxy_keys);
    let extra: Vec<&[u8]> = proxy_keys
        .iter()
        .filter(|k| !redis_keys.contains(k))
        .map(|k| argv[k.index].as_slice())
        .collect();
    let denied = extra.iter().any(|key| {
        let mut text = b"This user has no permissions to access the '".to_vec();
        text.extend_from_slice(portcullis::resp::encode::c_str(key));
        text.extend_from_slice(b"' key\r\n");
        proxy.ends_with(&text)
    });
    (!denied).then(|| "the denied key is not one Redis's key specs miss".into())
}

/// Sends `ACL DRYRUN <user> <argv...>` for each case and compares the raw replies.
fn dryrun_batch(
    conn: &mut Conn,
    users: &[Modeled],
    cases: &[(usize, Vec<Vec<u8>>)],
    stats: &mut Stats,
) -> io::Result<()> {
    let cmds: Vec<Vec<Vec<u8>>> = cases
        .iter()
        .map(|(u, argv)| {
            let mut full = vec![b"ACL".to_vec(), b"DRYRUN".to_vec()];
            full.push(users[*u].name.clone().into_bytes());
            full.extend(argv.iter().cloned());
            full
        })
        .collect();
    let replies = conn.pipeline(&cmds)?;
    let mut scratch = CheckScratch::redis_exact();
    let mut proxy_scratch = CheckScratch::default();
    for ((u, argv), redis) in cases.iter().zip(replies) {
        stats.cases += 1;
        let m = &users[*u];
        let ours = dryrun_reply(&m.user, argv, &mut scratch);
        let proxy = dryrun_reply(&m.user, argv, &mut proxy_scratch);
        if proxy != ours {
            stats.count("dryrun stricter than redis");
            if let Some(why) = not_only_stricter(argv, &ours, &proxy) {
                stats.mismatch(format!(
                    "ACL DRYRUN {} {}\n  as redis: {}\n  proxy:    {}\n  {why}",
                    m.name,
                    show_args(argv),
                    ours.escape_ascii(),
                    proxy.escape_ascii()
                ));
            }
        }
        stats.count(match redis.first() {
            Some(b'+') => "dryrun +OK",
            Some(b'$') if redis.ends_with(b"command\r\n") => "dryrun denied command",
            Some(b'$') if redis.ends_with(b"key\r\n") => "dryrun denied key",
            Some(b'$') => "dryrun denied channel",
            Some(b'-') if redis.starts_with(b"-ERR wrong number") => "dryrun -ERR arity",
            Some(b'-') => "dryrun -ERR other",
            _ => "dryrun ?",
        });
        if redis != ours {
            let history: Vec<String> = m
                .history
                .iter()
                .map(|h| format!("ACL SETUSER {} {}", m.name, show_args(h)))
                .collect();
            stats.mismatch(format!(
                "{}\n  ACL DRYRUN {} {}\n  redis: {}\n  ours:  {}",
                history.join("\n  "),
                m.name,
                show_args(argv),
                redis.escape_ascii(),
                ours.escape_ascii()
            ));
        }
    }
    Ok(())
}

/// Test 1: `cases` random rule lists from the whole grammar, on new users named
/// `<prefix><n>` or on earlier ones; then `probes` DRYRUNs per user we agree on.
pub fn rules_run(
    conn: &mut Conn,
    rng: &mut Rng,
    prefix: &str,
    cases: usize,
    probes: usize,
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut users: Vec<Modeled> = Vec::new();
    let mut tainted: Vec<bool> = Vec::new();
    let mut done = 0;
    while done < cases {
        let n = BATCH.min(cases - done);
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            let user = if users.is_empty() || rng.chance(75) {
                let name = format!("{prefix}{}", users.len());
                users.push(Modeled {
                    user: User::new(&name),
                    name,
                    history: Vec::new(),
                });
                tainted.push(false);
                users.len() - 1
            } else {
                rng.below(users.len())
            };
            let valid = rng.chance(40);
            let toks = gen::rule_list(rng, valid);
            let rules = gen::rule_string(rng, &toks);
            let args = gen::redis_args(rng, &toks);
            batch.push(Pending { user, rules, args });
        }
        // SETUSERs on one user depend on each other: apply them in order.
        setuser_batch(conn, &mut users, &mut tainted, &batch, &mut stats)?;
        done += n;
    }
    // Users whose every SETUSER failed do not exist in Redis.
    let good: Vec<usize> = (0..users.len())
        .filter(|&i| !tainted[i] && !users[i].history.is_empty())
        .collect();
    let mut cases = Vec::new();
    for &u in &good {
        for _ in 0..probes {
            cases.push((u, gen::command(rng)));
        }
    }
    for chunk in cases.chunks(BATCH) {
        dryrun_batch(conn, &users, chunk, &mut stats)?;
    }
    Ok(stats)
}

/// Test 2: `users` users from valid rule lists (`reset` first; sometimes a second
/// list on top), each asked `per_user` random `ACL DRYRUN`s.
pub fn dryrun_run(
    conn: &mut Conn,
    rng: &mut Rng,
    prefix: &str,
    users: usize,
    per_user: usize,
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let group = (BATCH / per_user.max(1)).clamp(1, 200);
    let mut made = 0;
    while made < users {
        let n = group.min(users - made);
        let mut models: Vec<Modeled> = Vec::with_capacity(n);
        let mut tainted = vec![false; n];
        let mut batch = Vec::new();
        for i in 0..n {
            let name = format!("{prefix}{}", made + i);
            models.push(Modeled {
                user: User::new(&name),
                name,
                history: Vec::new(),
            });
            for round in 0..if rng.chance(20) { 2 } else { 1 } {
                let (rules, args) = valid_rules(rng, &models[i].user, round == 0);
                batch.push(Pending {
                    user: i,
                    rules,
                    args,
                });
            }
        }
        setuser_batch(conn, &mut models, &mut tainted, &batch, &mut stats)?;
        let mut cases = Vec::new();
        for (u, t) in tainted.iter().enumerate() {
            if !t && !models[u].history.is_empty() {
                for _ in 0..per_user {
                    cases.push((u, gen::command(rng)));
                }
            }
        }
        for chunk in cases.chunks(BATCH) {
            dryrun_batch(conn, &models, chunk, &mut stats)?;
        }
        made += n;
    }
    Ok(stats)
}

/// A valid rule list (we accept it on `user`; Redis is still the judge), with
/// `reset` in front when `reset`.
fn valid_rules(rng: &mut Rng, user: &User, reset: bool) -> (String, Vec<String>) {
    for attempt in 0.. {
        let mut toks = Vec::new();
        if reset {
            toks.push(Tok::Plain("reset".into()));
            toks.extend(gen::grant_prefix(rng));
        }
        toks.extend(gen::rule_list(rng, true));
        let rules = gen::rule_string(rng, &toks);
        let mut probe = user.clone();
        if apply_rules(&mut probe, &rules).is_ok() || attempt == 20 {
            let args = gen::redis_args(rng, &toks);
            return (rules, args);
        }
    }
    unreachable!()
}

/// Fixed cases: for each rule string (split on whitespace, as the proxy does), a new
/// user `<prefix><n>` and the given commands.
pub fn fixed_run(
    conn: &mut Conn,
    prefix: &str,
    cases: &[(String, Vec<Vec<Vec<u8>>>)],
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut users = Vec::new();
    let mut batch = Vec::new();
    for (i, (rules, _)) in cases.iter().enumerate() {
        let name = format!("{prefix}{i}");
        users.push(Modeled {
            user: User::new(&name),
            name,
            history: Vec::new(),
        });
        batch.push(Pending {
            user: i,
            rules: rules.clone(),
            args: rules.split_ascii_whitespace().map(str::to_string).collect(),
        });
    }
    let mut tainted = vec![false; users.len()];
    setuser_batch(conn, &mut users, &mut tainted, &batch, &mut stats)?;
    let mut dry = Vec::new();
    for (i, (_, cmds)) in cases.iter().enumerate() {
        if !tainted[i] && !users[i].history.is_empty() {
            dry.extend(cmds.iter().map(|c| (i, c.clone())));
        }
    }
    for chunk in dry.chunks(BATCH) {
        dryrun_batch(conn, &users, chunk, &mut stats)?;
    }
    Ok(stats)
}
