//! Redis is the oracle for key extraction: for every command and subcommand of the
//! table, generated argument lists go to a real redis-server as
//! `COMMAND GETKEYSANDFLAGS <args...>` (which runs the very code the ACL uses,
//! `getKeysFromCommandWithSpecs(GET_KEYSPEC_DEFAULT)`) and to
//! `portcullis::command::command_keys`; key names, order and flags must agree.
//!
//! How a server answer is judged:
//! - an array: ours must be exactly the same keys with the same flags;
//! - `Invalid arguments specified for command` (0 keys on a command without
//!   `no_mandatory_keys`) and `The command has no key arguments`: ours must be empty;
//! - `Invalid number of arguments specified for command`: skipped (the proxy checks
//!   arity before key extraction), but our arity check must agree;
//! - `Invalid command specified`: our `resolve` must not find the command.
//!
//! No command is skipped: `GETKEYSANDFLAGS` never runs the command it is given.
//! The only case not compared as is: a command or subcommand name with a NUL byte,
//! which Redis resolves by chance (see `Verdict::NulInName`).
//! `KEYS_VS_REDIS_SEED=<n>` replays a run; the seed is printed on failure.

use std::collections::BTreeSet;

use crate::support::words::{KEYWORDS, NUMBERS};
use crate::support::{encode_command, seed_from_env, RedisServer, Reply, RespConn, Rng};
use portcullis::command::{
    by_id, by_name, command_channels, command_keys, flags, key_flags, resolve, BeginSearch,
    ChannelRef, CommandSpec, FindKeys, KeyRef, Resolved, COMMANDS,
};
use tokio::net::TcpStream;

/// Commands sent per pipelined batch.
const BATCH: usize = 1000;

/// Plain words, the empty string and C-string oddities.
const WORDS: &[&[u8]] = &[
    b"",
    b"foo",
    b"x y",
    b"*",
    b"store\0x",
    b"GET\0",
    b"keys\0",
    b"STREAMS\0",
    b"\xff",
];

/// Full name of the top-level command of `spec` and the subcommand part, if any.
fn name_parts(spec: &CommandSpec) -> (&'static str, Option<&'static str>) {
    match spec.name.split_once('|') {
        Some((parent, sub)) => (parent, Some(sub)),
        None => (spec.name, None),
    }
}

/// `s` with each ASCII letter in a random case.
fn random_case(rng: &mut Rng, s: &str) -> Vec<u8> {
    s.bytes()
        .map(|b| {
            if rng.chance(50) {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect()
}

/// True for commands whose keys depend on the arguments (keyword, keynum, unknown,
/// incomplete, variable-flags or open-ended specs, or a getkeys proc): they get
/// many more cases.
fn interesting(spec: &CommandSpec) -> bool {
    let odd_flags = key_flags::INCOMPLETE | key_flags::VARIABLE_FLAGS | key_flags::NOT_KEY;
    spec.has_flag(flags::MOVABLEKEYS)
        || spec.key_specs.iter().any(|k| {
            k.flags & odd_flags != 0
                || !matches!(k.begin, BeginSearch::Index(_))
                || !matches!(
                    k.find,
                    FindKeys::Range {
                        lastkey: 0,
                        keystep: 1,
                        limit: 0
                    }
                )
        })
}

/// One random argument list for `spec`, command name(s) included.
fn gen_case(rng: &mut Rng, spec: &CommandSpec, keywords: &[String]) -> Vec<Vec<u8>> {
    let (parent, sub) = name_parts(spec);
    let mut argv = vec![random_case(rng, parent)];
    if let Some(sub) = sub {
        argv.push(random_case(rng, sub));
    }
    let arity = spec.arity.unsigned_abs() as usize;
    let argc = if spec.arity > 0 {
        match rng.below(20) {
            0 => arity.saturating_sub(1),
            1 => arity + 1,
            _ => arity,
        }
    } else {
        let extra = match rng.below(20) {
            0..=9 => rng.below(4),
            10..=16 => rng.below(8),
            _ => rng.below(16),
        };
        arity + extra
    };
    // `COMMAND GETKEYSANDFLAGS` needs at least one argument after the command name
    // (a lone name cannot have keys anyway).
    let argc = argc.max(2);
    while argv.len() < argc {
        let pos = argv.len();
        let arg = match rng.below(100) {
            0..=29 => format!("k{pos}").into_bytes(),
            30..=51 => rng.pick(NUMBERS).as_bytes().to_vec(),
            52..=84 => {
                let word = keywords[rng.below(keywords.len())].clone();
                random_case(rng, &word)
            }
            85..=89 => Vec::new(),
            _ => rng.pick(WORDS).to_vec(),
        };
        argv.push(arg);
    }
    argv
}

/// Key names with their flag names (`["RW", "access"]`), in order.
type KeyList = Vec<(Vec<u8>, Vec<String>)>;

/// The server's `GETKEYSANDFLAGS` answer, reduced to what we compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Oracle {
    /// Keys with their flag names, in order.
    Keys(KeyList),
    /// `Invalid arguments specified for command`.
    InvalidArguments,
    /// `The command has no key arguments`.
    NoKeyArguments,
    /// `Invalid number of arguments specified for command`.
    WrongArity,
    /// `Invalid command specified`.
    InvalidCommand,
}

fn oracle(reply: &Reply) -> Result<Oracle, String> {
    if let Some(e) = reply.error() {
        return Ok(if e.contains("Invalid arguments specified for command") {
            Oracle::InvalidArguments
        } else if e.contains("The command has no key arguments") {
            Oracle::NoKeyArguments
        } else if e.contains("Invalid number of arguments specified for command") {
            Oracle::WrongArity
        } else if e.contains("Invalid command specified") {
            Oracle::InvalidCommand
        } else {
            return Err(format!("unexpected error {e:?}"));
        });
    }
    let items = reply.as_array().ok_or(format!("not an array: {reply:?}"))?;
    let mut keys = Vec::new();
    for item in items {
        let pair = item.as_array().ok_or(format!("bad pair {item:?}"))?;
        let (Some(name), Some(flags)) = (pair.first().and_then(Reply::as_bytes), pair.get(1))
        else {
            return Err(format!("bad pair {item:?}"));
        };
        let flags = flags.as_array().ok_or(format!("bad flags {item:?}"))?;
        let flags = flags
            .iter()
            .map(|f| {
                f.as_str()
                    .map(str::to_string)
                    .ok_or(format!("bad flag {f:?}"))
            })
            .collect::<Result<_, _>>()?;
        keys.push((name.to_vec(), flags));
    }
    Ok(Oracle::Keys(keys))
}

/// Flag names of `bits` in `COMMAND`'s order.
fn flag_names(bits: u16) -> Vec<String> {
    (0..key_flags::NAMES.len())
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| key_flags::NAMES[i].to_string())
        .collect()
}

/// A label for counting the kinds of server answers.
fn outcome_kind(o: &Oracle) -> &'static str {
    match o {
        Oracle::Keys(keys) if keys.is_empty() => "empty array",
        Oracle::Keys(keys) if keys.iter().any(|(_, f)| f.is_empty()) => "keys, some flags 0",
        Oracle::Keys(_) => "keys",
        Oracle::InvalidArguments => "invalid arguments",
        Oracle::NoKeyArguments => "no key arguments",
        Oracle::WrongArity => "wrong arity",
        Oracle::InvalidCommand => "invalid command",
    }
}

/// `name[flags]` for each key, or the error, for messages and pinned expectations.
fn render(o: &Oracle) -> String {
    match o {
        Oracle::Keys(keys) if keys.is_empty() => "(none)".into(),
        Oracle::Keys(keys) => keys
            .iter()
            .map(|(name, flags)| format!("{}[{}]", name.escape_ascii(), flags.join(" ")))
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("<{other:?}>"),
    }
}

/// What we make of `argv`: the resolved command and its keys as the server prints them.
///
/// With `cut_at_nul`, the names are first cut at their first NUL byte, which is
/// what Redis's lookup may (or may not) do; see [`Verdict::NulInName`].
fn ours(argv: &[Vec<u8>], cut_at_nul: bool) -> (Resolved, KeyList) {
    let name = |a: &Vec<u8>| -> Vec<u8> {
        match a.iter().position(|&b| b == 0) {
            Some(nul) if cut_at_nul => a[..nul].to_vec(),
            _ => a.clone(),
        }
    };
    let (argv0, argv1) = (name(&argv[0]), argv.get(1).map(name));
    let resolved = resolve(&argv0, argv1.as_deref());
    let mut out: Vec<KeyRef> = Vec::new();
    if let Resolved::Found(spec) = resolved {
        command_keys(spec, argv, &mut out);
    }
    let keys = out
        .iter()
        .map(|k| (argv[k.index].clone(), flag_names(k.flags)))
        .collect();
    (resolved, keys)
}

/// How a case that agrees with the server was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Compared and equal.
    Compared,
    /// The server refused the arity (so did we): nothing to compare.
    WrongArity,
    /// Compared and equal, after cutting the command names at a NUL byte: Redis's
    /// command dicts hash the whole name but compare it with `strcasecmp`, so
    /// `CONFIG GET\0` finds `config|get` only when both hash to the same bucket,
    /// which depends on the per-process hash seed (seen about once in 12 server
    /// starts). We resolve such names as unknown.
    NulInName,
}

/// Compares one case with the server's answer.
fn check(argv: &[Vec<u8>], reply: &Reply) -> Result<Verdict, String> {
    check_oracle(argv, oracle(reply)?)
}

/// [`check`] on an already reduced answer.
fn check_oracle(argv: &[Vec<u8>], want: Oracle) -> Result<Verdict, String> {
    let (mut resolved, mut got) = ours(argv, false);
    let mut verdict = Verdict::Compared;
    if !matches!(resolved, Resolved::Found(_))
        && want != Oracle::InvalidCommand
        && argv.iter().take(2).any(|a| a.contains(&0))
    {
        (resolved, got) = ours(argv, true);
        verdict = Verdict::NulInName;
    }
    let spec = match resolved {
        Resolved::Found(spec) => spec,
        _ if want == Oracle::InvalidCommand => return Ok(Verdict::Compared),
        other => {
            return Err(format!(
                "we resolve {other:?}, server says {}",
                render(&want)
            ))
        }
    };
    let ok = match &want {
        Oracle::Keys(keys) => *keys == got,
        Oracle::InvalidArguments => got.is_empty() && !spec.has_flag(flags::NO_MANDATORY_KEYS),
        Oracle::NoKeyArguments => got.is_empty(),
        Oracle::WrongArity => {
            return if spec.arity_ok(argv.len()) {
                Err(format!("server says wrong arity, {} accepts it", spec.name))
            } else {
                Ok(Verdict::WrongArity)
            }
        }
        Oracle::InvalidCommand => false,
    };
    if !spec.arity_ok(argv.len()) && want != Oracle::NoKeyArguments {
        return Err(format!("server accepted arity, {} does not", spec.name));
    }
    if ok {
        Ok(verdict)
    } else {
        Err(format!(
            "server {} / ours {}",
            render(&want),
            render(&Oracle::Keys(got))
        ))
    }
}

/// Sends every case as `COMMAND GETKEYSANDFLAGS` in one write, then reads the replies.
async fn ask(conn: &mut RespConn<TcpStream>, cases: &[Vec<Vec<u8>>]) -> Vec<Reply> {
    let mut wire = Vec::new();
    for argv in cases {
        let mut full: Vec<&[u8]> = vec![b"COMMAND", b"GETKEYSANDFLAGS"];
        full.extend(argv.iter().map(Vec::as_slice));
        wire.extend_from_slice(&encode_command(&full));
    }
    conn.send_raw(&wire).await;
    let mut replies = Vec::with_capacity(cases.len());
    for _ in cases {
        replies.push(conn.read_reply().await);
    }
    replies
}

/// Tokens (`"token"` fields) anywhere in a `COMMAND DOCS` reply subtree.
fn collect_tokens(reply: &Reply, out: &mut BTreeSet<String>) {
    if let Some(items) = reply.as_array() {
        for (i, item) in items.iter().enumerate() {
            if item.as_str() == Some("token") {
                if let Some(t) = items.get(i + 1).and_then(Reply::as_str) {
                    out.insert(t.to_string());
                }
            }
            collect_tokens(item, out);
        }
    }
}

/// Keywords to draw from for each top-level command: its documented tokens, its
/// key-spec keywords and [`KEYWORDS`].
async fn keywords_by_command(
    conn: &mut RespConn<TcpStream>,
) -> std::collections::HashMap<String, Vec<String>> {
    let docs = conn.cmd(&[b"COMMAND", b"DOCS"]).await;
    let items = docs.as_array().expect("COMMAND DOCS array").to_vec();
    let mut map = std::collections::HashMap::new();
    for pair in items.chunks(2) {
        let (Some(name), Some(doc)) = (pair[0].as_str(), pair.get(1)) else {
            continue;
        };
        let mut tokens: BTreeSet<String> = KEYWORDS.iter().map(|s| s.to_string()).collect();
        collect_tokens(doc, &mut tokens);
        map.insert(name.to_ascii_lowercase(), tokens.into_iter().collect());
    }
    for spec in &COMMANDS {
        let entry: &mut Vec<String> = map
            .entry(name_parts(spec).0.to_string())
            .or_insert_with(|| KEYWORDS.iter().map(|s| s.to_string()).collect());
        for k in spec.key_specs {
            if let BeginSearch::Keyword { keyword, .. } = k.begin {
                entry.push(keyword.to_ascii_uppercase());
            }
        }
    }
    map
}

fn seed() -> u64 {
    seed_from_env("KEYS_VS_REDIS_SEED")
}

/// Cases per command: many where the keys depend on the arguments.
fn budget(spec: &CommandSpec) -> usize {
    if interesting(spec) {
        4000
    } else if !spec.key_specs.is_empty() {
        200
    } else {
        20
    }
}

#[tokio::test]
async fn random_arguments_match_getkeysandflags() {
    let seed = seed();
    let redis = RedisServer::start();
    let mut conn = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    let keywords = keywords_by_command(&mut conn).await;
    let started = std::time::Instant::now();
    let mut rng = Rng(seed);
    let mut cases = Vec::new();
    for spec in &COMMANDS {
        let words = &keywords[name_parts(spec).0];
        for _ in 0..budget(spec) {
            cases.push(gen_case(&mut rng, spec, words));
        }
    }
    let (mut compared, mut skipped, mut failures) = (0usize, 0usize, Vec::new());
    let mut nul_names = 0usize;
    let mut outcomes = std::collections::BTreeMap::new();
    for batch in cases.chunks(BATCH) {
        let replies = ask(&mut conn, batch).await;
        for (argv, reply) in batch.iter().zip(&replies) {
            let want = match oracle(reply) {
                Ok(want) => want,
                Err(e) => {
                    failures.push(format!("{:?}: {e}", show(argv)));
                    continue;
                }
            };
            *outcomes.entry(outcome_kind(&want)).or_insert(0usize) += 1;
            match check_oracle(argv, want) {
                Ok(Verdict::Compared) => compared += 1,
                Ok(Verdict::WrongArity) => skipped += 1,
                Ok(Verdict::NulInName) => nul_names += 1,
                Err(e) => failures.push(format!("{:?}: {e}", show(argv))),
            }
        }
    }
    eprintln!(
        "keys_vs_redis: seed {seed}: {compared} cases compared, {skipped} skipped for arity, \
         {nul_names} for a NUL in a name the server resolved, \
         {} commands, {:?}; server answers: {outcomes:?}",
        COMMANDS.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "seed {seed} (KEYS_VS_REDIS_SEED): {} mismatches, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
    assert!(compared > 150_000, "only {compared} cases compared");
}

/// Arguments as text for messages.
fn show(argv: &[Vec<u8>]) -> Vec<String> {
    argv.iter().map(|a| a.escape_ascii().to_string()).collect()
}

/// `"a b \"\" c"` as arguments; `""` is the empty argument.
fn words(line: &str) -> Vec<Vec<u8>> {
    line.split(' ')
        .map(|w| {
            if w == "\"\"" {
                Vec::new()
            } else {
                w.as_bytes().to_vec()
            }
        })
        .collect()
}

/// The reference's edge cases, pinned to what the server answers (so the
/// expectations document Redis 7.0.15) and compared with ours.
#[tokio::test]
async fn edge_cases_match_getkeysandflags() {
    let rw = "RW access update";
    let cases: Vec<(Vec<Vec<u8>>, String)> = vec![
        // numkeys: strict string2ll in the spec, atoi in genericGetKeys (flags 0).
        (words("EVAL s 0"), "(none)".into()),
        (words("EVAL s 1 k"), format!("k[{rw}]")),
        (words("EVAL s 01 k"), "k[]".into()),
        (words("EVAL s +1 k"), "k[]".into()),
        (words("EVAL s 1x k"), "k[]".into()),
        (
            vec![
                b"EVAL".to_vec(),
                b"s".to_vec(),
                b" 1".to_vec(),
                b"k".to_vec(),
            ],
            "k[]".into(),
        ),
        (words("EVAL s 2 k"), "(none)".into()),
        (words("EVAL s -1 k"), "(none)".into()),
        (words("EVAL s 4294967297 k"), format!("k[{rw}]")),
        (words("EVAL_RO s 1 k"), "k[RO access]".into()),
        (words("FCALL f 01 k"), "k[]".into()),
        (words("ZUNIONSTORE x 5 r1"), "<InvalidArguments>".into()),
        (
            words("ZUNIONSTORE forbidden 0 x"),
            "<InvalidArguments>".into(),
        ),
        (words("ZUNIONSTORE d 01 a"), "a[] d[]".into()),
        (
            words("ZUNIONSTORE d 2 a b WEIGHTS 1 2"),
            "d[OW update] a[RO access] b[RO access]".into(),
        ),
        (words("SINTERCARD 0 a"), "<InvalidArguments>".into()),
        (words("LMPOP 01 a LEFT"), "a[]".into()),
        (
            words("BLMPOP 0 2 a b LEFT"),
            "a[RW access delete] b[RW access delete]".into(),
        ),
        // MIGRATE: KEYS is an INCOMPLETE spec, so migrateGetKeys decides.
        (words("MIGRATE h 1 k 0 5"), "k[RW access delete]".into()),
        (
            words("MIGRATE h 1 \"\" 0 5 KEYS a b"),
            "a[RW access delete] b[RW access delete]".into(),
        ),
        (
            words("MIGRATE h 1 k 0 5 KEYS a b"),
            "<InvalidArguments>".into(),
        ),
        (
            words("MIGRATE h 1 \"\" 0 5 AUTH KEYS KEYS a"),
            "a[RW access delete]".into(),
        ),
        (
            words("MIGRATE h 1 \"\" 0 5 COPY REPLACE AUTH2 u KEYS KEYS a"),
            "a[RW access delete]".into(),
        ),
        (
            words("MIGRATE h 1 \"\" 0 5 KEYS"),
            "[RW access delete]".into(),
        ),
        // XREAD: `limit 2` halves what follows STREAMS.
        (words("XREAD STREAMS a b 1"), "a[RO access]".into()),
        (
            words("XREAD STREAMS a b c d e"),
            "a[RO access] b[RO access]".into(),
        ),
        (words("XREAD COUNT STREAMS a"), "<InvalidArguments>".into()),
        (words("XREAD COUNT 1 STREAMS"), "<InvalidArguments>".into()),
        (
            words("XREADGROUP GROUP streams c STREAMS s 0"),
            "s[RO access]".into(),
        ),
        (
            vec![
                b"XREAD".to_vec(),
                b"STREAMS\0x".to_vec(),
                b"a".to_vec(),
                b"1".to_vec(),
            ],
            "a[RO access]".into(),
        ),
        // GEORADIUS: the first STORE / STOREDIST from argument 6 (5 for BYMEMBER).
        (
            words("GEORADIUS k 0 0 1 m STORE a STORE b"),
            "k[RO access] a[OW update]".into(),
        ),
        (
            words("GEORADIUS k 0 0 1 m STOREDIST a STORE b"),
            "k[RO access] b[OW update] a[OW update]".into(),
        ),
        (words("GEORADIUS k 0 0 1 STORE a"), "k[RO access]".into()),
        (
            words("GEORADIUSBYMEMBER k m 1 km STORE a"),
            "k[RO access] a[OW update]".into(),
        ),
        // SORT: the last STORE, skipping LIMIT x2, GET x1, BY x1.
        (words("SORT k"), "k[RO access]".into()),
        (words("SORT k STORE d"), "k[RO access] d[OW update]".into()),
        (
            words("SORT k STORE a STORE b"),
            "k[RO access] b[OW update]".into(),
        ),
        (
            words("SORT k LIMIT 0 STORE STORE d"),
            "k[RO access] d[OW update]".into(),
        ),
        (words("SORT k BY STORE GET STORE"), "k[RO access]".into()),
        (words("SORT k STORE"), "k[RO access]".into()),
        (
            words("SORT k STORE STORE x"),
            "k[RO access] x[OW update]".into(),
        ),
        (words("SORT_RO k BY x"), "k[RO access]".into()),
        // SET: GET anywhere from argument 3.
        (words("SET k v"), "k[OW update]".into()),
        (words("SET k v GET"), format!("k[{rw}]")),
        (words("SET k v nx gEt"), format!("k[{rw}]")),
        (words("SET k GET"), "k[OW update]".into()),
        (words("SET k v EX 10"), "k[OW update]".into()),
        // BITFIELD: read-only only with complete GET / OVERFLOW operations.
        (words("BITFIELD k"), "k[RO access]".into()),
        (words("BITFIELD k GET u8 0"), "k[RO access]".into()),
        (
            words("BITFIELD k GET u8 0 OVERFLOW SAT GET i4 1"),
            "k[RO access]".into(),
        ),
        (words("BITFIELD k SET u8 0 1"), format!("k[{rw}]")),
        (words("BITFIELD k GET u8"), format!("k[{rw}]")),
        (words("BITFIELD k OVERFLOW"), format!("k[{rw}]")),
        (
            words("BITFIELD k INCRBY u8 0 1 GET u8 0"),
            format!("k[{rw}]"),
        ),
        // No keys at all, and NOT_KEY-only specs.
        (words("PING x"), "<NoKeyArguments>".into()),
        (words("SPUBLISH c m"), "<NoKeyArguments>".into()),
        (words("CONFIG GET x"), "<NoKeyArguments>".into()),
    ];
    let redis = RedisServer::start();
    let mut conn = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    let argvs: Vec<Vec<Vec<u8>>> = cases.iter().map(|(a, _)| a.clone()).collect();
    let replies = ask(&mut conn, &argvs).await;
    let mut failures = Vec::new();
    for ((argv, pinned), reply) in cases.iter().zip(&replies) {
        let server = oracle(reply).map(|o| render(&o));
        if server.as_deref() != Ok(pinned.as_str()) {
            failures.push(format!(
                "{:?}: server {server:?}, pinned {pinned}",
                show(argv)
            ));
        }
        if let Err(e) = check(argv, reply) {
            failures.push(format!("{:?}: {e}", show(argv)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every command with a getkeys proc has key specs (`command_keys` relies on it to
/// return early for spec-less commands).
#[test]
fn getkeys_proc_commands_have_key_specs() {
    for name in [
        "set",
        "bitfield",
        "sort",
        "sort_ro",
        "migrate",
        "georadius",
        "georadiusbymember",
        "xread",
        "xreadgroup",
        "zunionstore",
        "zinterstore",
        "zdiffstore",
        "eval",
        "evalsha",
        "eval_ro",
        "evalsha_ro",
        "fcall",
        "fcall_ro",
        "blmpop",
        "bzmpop",
        "zunion",
        "zinter",
        "zdiff",
        "sintercard",
        "zintercard",
        "lmpop",
        "zmpop",
    ] {
        let spec = by_name(name.as_bytes()).unwrap_or_else(|| panic!("{name} not in table"));
        assert!(!spec.key_specs.is_empty(), "{name} has no key specs");
        assert_eq!(by_id(spec.id), Some(spec));
    }
}

#[test]
fn channels_of_pubsub_commands() {
    let channels = |line: &str| -> Vec<(usize, bool)> {
        let argv = words(line);
        let Resolved::Found(spec) = resolve(&argv[0], argv.get(1).map(Vec::as_slice)) else {
            panic!("{line}: not found");
        };
        let mut out: Vec<ChannelRef> = vec![ChannelRef {
            index: 9,
            pattern: true,
        }];
        command_channels(spec, &argv, &mut out);
        out.iter().map(|c| (c.index, c.pattern)).collect()
    };
    assert_eq!(channels("PUBLISH c m"), [(1, false)]);
    assert_eq!(channels("spublish c m"), [(1, false)]);
    assert_eq!(channels("SUBSCRIBE a b"), [(1, false), (2, false)]);
    assert_eq!(channels("SSUBSCRIBE a"), [(1, false)]);
    assert_eq!(channels("PSUBSCRIBE a* b?"), [(1, true), (2, true)]);
    for line in [
        "UNSUBSCRIBE a",
        "PUNSUBSCRIBE a*",
        "SUNSUBSCRIBE a",
        "PUBSUB CHANNELS a*",
        "GET k",
    ] {
        assert_eq!(channels(line), [], "{line}");
    }
}
