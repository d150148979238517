//! Random ACL rule lists and commands for the differential tests against Redis
//! (shared by `tests/acl_vs_redis.rs` and `examples/acl_diff.rs`).
//!
//! Rule lists come from the whole `ACL SETUSER` grammar, valid and invalid; commands
//! cover the whole command table plus templates for the tricky key-spec commands.
//! Everything is ASCII, so that the texts Redis echoes back can be compared as bytes.

use portcullis::command::{BeginSearch, CommandSpec, CATEGORIES, COMMANDS};

// Loaded by path (not through `support`) because examples/acl_diff.rs includes
// this file too; in the test crate `support` loads the same file again.
#[allow(clippy::duplicate_mod)]
#[path = "../../support/rng.rs"]
mod rng;
pub use rng::Rng;
#[allow(clippy::duplicate_mod)]
#[path = "../../support/words.rs"]
mod words;
pub use words::{KEYWORDS, NUMBERS};

/// A random item of `items`, in a random case.
pub fn pick_case(rng: &mut Rng, items: &[&str]) -> String {
    let s = rng.pick(items);
    random_case(rng, s)
}

/// `s` with each ASCII letter in a random case (half the time left as is).
pub fn random_case(rng: &mut Rng, s: &str) -> String {
    if rng.chance(50) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if rng.chance(50) {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Pools shared by rules and commands, so that patterns and arguments meet.

/// Key glob patterns, the reference's edge cases included.
pub const KEY_PATTERNS: &[&str] = &[
    "k*",
    "k1",
    "k?",
    "key:*",
    "key:[0-9]",
    "foo",
    "foo*",
    "*:1",
    "[a-c]*",
    "[^k]*",
    "*",
    "?",
    "k\\*",
    "x\\",
    "[a-]",
    "[",
    "k[12",
    "[^",
    "\\[*",
    "*a*b*",
    "user:{1}*",
    "*1",
    "k[!]?",
    "",
    "[z-a]*",
    "[]",
    "[^]",
    "*[",
    "a*",
    "**k",
    "k**1",
];
/// Key-like arguments: some match the patterns above, some do not.
pub const KEYS: &[&str] = &[
    "k",
    "k1",
    "k2",
    "k12",
    "kx",
    "key:1",
    "key:x",
    "key:",
    "foo",
    "foo:1",
    "a",
    "b1",
    "c:1",
    "",
    "*",
    "k*",
    "x\\",
    "]",
    "^",
    "[",
    "[x",
    "ab",
    "aXb",
    "-",
    "user:{1}:a",
    "1",
    "k!",
    "zz",
    "a:1",
    "b",
    "`",
    "k\\*",
];
/// Channel glob patterns.
pub const CHANNEL_PATTERNS: &[&str] = &[
    "ch*",
    "ch1",
    "news.*",
    "n[ae]ws",
    "*",
    "",
    "?",
    "ch\\*",
    "ch[",
    "news.[0-9]",
    "c?",
];
/// Channel arguments (also used as PSUBSCRIBE patterns, compared literally).
pub const CHANNELS: &[&str] = &[
    "ch1",
    "ch2",
    "ch*",
    "news.1",
    "news.*",
    "naws",
    "other",
    "",
    "*",
    "ch\\*",
    "?",
    "c",
    "ch[",
    "n[ae]ws",
    "news.[0-9]",
    "ch",
];
/// Non-container commands used with the deprecated first-arg rules.
const FIRSTARG_COMMANDS: &[&str] = &[
    "select",
    "debug",
    "get",
    "set",
    "ping",
    "echo",
    "publish",
    "sort",
    "eval",
    "subscribe",
    "psubscribe",
    "del",
    "swapdb",
    "flushall",
    "auth",
    "hello",
    "bitfield",
    "migrate",
];
/// First arguments for those rules and for commands.
pub const FIRST_ARGS: &[&str] = &[
    "0", "1", "object", "OBJECT", "k1", "ch1", "x", "sleep", "*", "Sleep", "ch*", "foo",
];
/// Passwords (cleartext).
const PASSWORDS: &[&str] = &["p1", "p2", "secret", "x", "P1", "\u{e9}t\u{e9}"];

fn key(rng: &mut Rng) -> String {
    if rng.chance(75) {
        return rng.pick(KEYS).to_string();
    }
    random_text(rng, b"k1a:xy*?[]^\\-{}", 6)
}

fn key_pattern(rng: &mut Rng) -> String {
    if rng.chance(80) {
        return rng.pick(KEY_PATTERNS).to_string();
    }
    random_text(rng, b"k1a:x*?[]^\\-", 5)
}

fn channel(rng: &mut Rng) -> String {
    if rng.chance(85) {
        return rng.pick(CHANNELS).to_string();
    }
    random_text(rng, b"ch1.*?[]", 5)
}

fn channel_pattern(rng: &mut Rng) -> String {
    if rng.chance(85) {
        return rng.pick(CHANNEL_PATTERNS).to_string();
    }
    random_text(rng, b"ch1.*?[]", 5)
}

/// Up to `max` bytes drawn from `alphabet`.
fn random_text(rng: &mut Rng, alphabet: &[u8], max: usize) -> String {
    let len = rng.below(max + 1);
    (0..len).map(|_| rng.pick(alphabet) as char).collect()
}

fn sha256_hex(text: &str) -> String {
    portcullis::acl::user::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------
// Rules.

/// One element of a rule list.
#[derive(Debug, Clone)]
pub enum Tok {
    /// A rule without whitespace (possibly a whole `(...)` or a fragment of one).
    Plain(String),
    /// A selector written `(` + parts joined by single spaces + `)`.
    Selector(Vec<String>),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Plain(s) => s.clone(),
            Tok::Selector(parts) => format!("({})", parts.join(" ")),
        }
    }
}

/// The rule string given to `apply_rules`: the tokens joined by whitespace.
pub fn rule_string(rng: &mut Rng, toks: &[Tok]) -> String {
    let mut out = String::new();
    for (i, t) in toks.iter().enumerate() {
        if i > 0 || rng.chance(5) {
            out.push_str(match rng.below(20) {
                0 => "  ",
                1 => "\t",
                _ => " ",
            });
        }
        out.push_str(&t.text());
    }
    out
}

/// Redis's `ACLMergeSelectorArguments` (a new `(` restarts an open selector), used
/// only to decide whether a selector may be sent to Redis as one argument.
fn redis_merge(args: &[&str]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for a in args {
        if a.starts_with('(') && !a.ends_with(')') {
            open = Some(a.to_string());
            continue;
        }
        if let Some(sel) = open.as_mut() {
            sel.push(' ');
            sel.push_str(a);
            if a.ends_with(')') {
                out.push(open.take()?);
            }
            continue;
        }
        out.push(a.to_string());
    }
    open.is_none().then_some(out)
}

/// The `ACL SETUSER` arguments for `toks`: what the proxy's whitespace split gives,
/// except that a selector is sometimes sent as one argument, when Redis would merge
/// its pieces into exactly that argument anyway (no selector open before it, and
/// its pieces close exactly at its end).
pub fn redis_args(rng: &mut Rng, toks: &[Tok]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in toks {
        let text = t.text();
        let pieces: Vec<&str> = text.split_ascii_whitespace().collect();
        let whole = matches!(t, Tok::Selector(_))
            && rng.chance(50)
            && redis_merge(&out.iter().map(String::as_str).collect::<Vec<_>>()).is_some()
            && redis_merge(&pieces).is_some_and(|m| m == [text.as_str()]);
        if whole {
            out.push(text);
        } else {
            out.extend(pieces.iter().map(|p| p.to_string()));
        }
    }
    out
}

/// A random command or subcommand name for `+cmd`/`-cmd`.
fn command_name(rng: &mut Rng) -> String {
    rng.pick(&COMMANDS[..]).name.to_string()
}

/// A key-pattern rule (`~`, `%R~`, ...), `valid` or not.
fn key_rule(rng: &mut Rng, valid: bool) -> String {
    let pat = key_pattern(rng);
    match rng.below(if valid { 14 } else { 22 }) {
        0 => "allkeys".into(),
        1 => "~*".into(),
        2 => "resetkeys".into(),
        3..=5 => format!("~{pat}"),
        6 | 7 => format!("%R~{pat}"),
        8 | 9 => format!("%W~{pat}"),
        10 => format!("%{}~{pat}", rng.pick(&["RW", "WR", "rw", "Rw", "wR"])),
        11 => rng.pick(&["%R", "%W", "%RW", "%r", "%wr"]).to_string(),
        12 => format!("%R~{pat}*"),
        13 => "%RW~*".into(),
        14 => format!("%~{pat}"),
        15 => "%".into(),
        16 => format!("%{}~{pat}", rng.pick(&["RR", "X", "WW", "RWR", "R W"])),
        17 => format!("~{pat}\u{b}x"),
        18 => "~**".into(),
        19 => format!("%RX~{pat}"),
        _ => format!("~{pat}"),
    }
}

fn channel_rule(rng: &mut Rng, valid: bool) -> String {
    match rng.below(if valid { 6 } else { 7 }) {
        0 => "allchannels".into(),
        1 => "&*".into(),
        2 => "resetchannels".into(),
        6 => format!("&{}\u{b}", channel_pattern(rng)),
        _ => format!("&{}", channel_pattern(rng)),
    }
}

fn command_rule(rng: &mut Rng, valid: bool) -> String {
    let sign = if rng.chance(60) { "+" } else { "-" };
    match rng.below(if valid { 20 } else { 30 }) {
        0..=6 => {
            let name = command_name(rng);
            format!("{sign}{}", random_case(rng, &name))
        }
        7..=10 => format!("{sign}@{}", pick_case(rng, &CATEGORIES)),
        11 => pick_case(rng, &["+@all", "-@all", "allcommands", "nocommands"]),
        12..=14 => {
            let cmd = pick_case(rng, FIRSTARG_COMMANDS);
            format!("+{cmd}|{}", rng.pick(FIRST_ARGS))
        }
        15..=17 => {
            // A real subcommand of a container, `+` or `-`.
            let subs: Vec<&CommandSpec> = COMMANDS.iter().filter(|c| c.parent.is_some()).collect();
            {
                let name = rng.pick(&subs).name;
                format!("{sign}{}", random_case(rng, name))
            }
        }
        18 => format!(
            "{sign}{}",
            rng.pick(&["get", "set", "config", "client|id", "select"])
        ),
        19 => format!(
            "+@{}",
            rng.pick(&["read", "write", "keyspace", "pubsub", "dangerous"])
        ),
        20 => format!("{sign}nosuchcommand"),
        21 => format!(
            "{sign}@{}",
            rng.pick(&["nosuch", "", "al", "alll", "READ "])
        ),
        22 => format!("-{}|{}", rng.pick(FIRSTARG_COMMANDS), rng.pick(FIRST_ARGS)),
        23 => format!("+{}|x", rng.pick(&["config|get", "client|id", "acl|cat"])),
        24 => format!("{sign}{}|", rng.pick(&["debug", "select", "config", "get"])),
        25 => format!(
            "{sign}{}",
            rng.pick(&["get|a|b", "config||get", "|get", "||", "config|nope"])
        ),
        26 => sign.to_string(),
        27 => format!("{sign}config|{}", rng.pick(&["get", "GET", "nosuch", ""])),
        28 => pick_case(rng, &["+@ALL", "-@All", "AllCommands", "NOCOMMANDS"]),
        _ => format!("{sign}{}x", command_name(rng)),
    }
}

/// A rule valid inside a selector (`valid`), or possibly not.
fn selector_rule(rng: &mut Rng, valid: bool) -> String {
    match rng.below(if valid { 100 } else { 115 }) {
        0..=34 => key_rule(rng, valid),
        35..=49 => channel_rule(rng, valid),
        50..=94 => command_rule(rng, valid),
        95..=99 => {
            // Quoting inside a selector (sdssplitargs).
            let inner = match rng.below(3) {
                0 => key_rule(rng, true),
                1 => command_rule(rng, true),
                _ => channel_rule(rng, true),
            };
            match rng.below(4) {
                0 => format!("'{inner}'"),
                1 => format!("\"{}\"", inner.replace('\\', "\\\\")),
                2 => "\"~k\\x31\"".into(),
                _ => "\"%R~a\\\\\"".into(),
            }
        }
        100 => "\"~a b\"".into(),
        101 => "\"~a".into(),
        102 => "\"~a\"b".into(),
        103 => "'+get".into(),
        104 => pick_case(rng, &["on", "off", "nopass", "reset", "clearselectors"]),
        105 => format!(">{}", rng.pick(PASSWORDS)),
        106 => "(~k)".into(),
        107 => "(~k".into(),
        108 => "bogus".into(),
        _ => user_only_or_bogus(rng),
    }
}

fn user_only_or_bogus(rng: &mut Rng) -> String {
    rng.pick(&[
        "bogus",
        "resetpass",
        "sanitize-payload",
        "skip-sanitize-payload",
        "#abc",
        "on",
        "ON",
        "~",
        "&",
        ")",
        "x(",
    ])
    .to_string()
}

/// One token of a rule list.
fn user_tok(rng: &mut Rng, valid: bool, passwords: &mut Vec<String>) -> Tok {
    let plain = |s: String| Tok::Plain(s);
    match rng.below(if valid { 100 } else { 125 }) {
        0..=5 => plain(pick_case(
            rng,
            &[
                "on",
                "off",
                "nopass",
                "resetpass",
                "sanitize-payload",
                "skip-sanitize-payload",
            ],
        )),
        6 => plain(if rng.chance(30) {
            random_case(rng, "reset")
        } else {
            "on".into()
        }),
        7..=9 => {
            let pw = rng.pick(PASSWORDS).to_string();
            passwords.push(pw.clone());
            plain(format!(">{pw}"))
        }
        10 => {
            let pw = rng.pick(PASSWORDS).to_string();
            passwords.push(pw.clone());
            plain(format!("#{}", sha256_hex(&pw)))
        }
        11 if valid && passwords.is_empty() => plain("nopass".into()),
        11 => {
            // Remove a password we added (or, when invalid, maybe one we did not).
            let pw = if valid || rng.chance(50) {
                let i = rng.below(passwords.len().max(1));
                passwords.get(i).cloned().unwrap_or_else(|| "p1".into())
            } else {
                rng.pick(PASSWORDS).to_string()
            };
            if rng.chance(50) {
                plain(format!("<{pw}"))
            } else {
                plain(format!("!{}", sha256_hex(&pw)))
            }
        }
        12..=36 => plain(key_rule(rng, valid)),
        37..=46 => plain(channel_rule(rng, valid)),
        47..=84 => plain(command_rule(rng, valid)),
        85..=96 => {
            let n = rng.below(5);
            let parts: Vec<String> = (0..n).map(|_| selector_rule(rng, valid)).collect();
            if parts.is_empty() && rng.chance(50) {
                plain("()".into())
            } else {
                Tok::Selector(parts)
            }
        }
        97..=99 => plain(random_case(rng, "clearselectors")),
        // Invalid from here on.
        100..=104 => plain(user_only_or_bogus(rng)),
        105 => plain(format!("#{}", sha256_hex("x").to_uppercase())),
        106 => plain(format!("#{}", &sha256_hex("x")[1..])),
        107 => plain(format!("#{}0", sha256_hex("x"))),
        108 => plain(format!("!{}g", &sha256_hex("x")[1..])),
        109 => plain(format!("<{}", rng.pick(PASSWORDS))),
        110 => plain(format!("({}", selector_rule(rng, true))),
        111 => plain(format!("{})", selector_rule(rng, true))),
        112 => plain("(".into()),
        113 => plain(")".into()),
        114 => plain("( ) ".into()),
        115 => plain("(on)".into()),
        116 => plain(format!("(({}))", selector_rule(rng, true))),
        117 => plain(format!("({}", key_rule(rng, true))),
        118 => plain(pick_case(rng, &["allkeys", "allchannels", "nocommands"])),
        119 => plain("~*".into()),
        120 => plain("&*".into()),
        121 => plain(format!(
            "{}{}",
            rng.pick(&["+", "-", "~", "&", "%R~"]),
            "\u{e9}"
        )),
        _ => plain(pick_case(
            rng,
            &["allkeysx", "onn", "no pass", "+@all-", "(x"],
        )),
    }
}

/// A random rule list: `valid` draws only from rules that are valid on their own
/// (the list can still fail, e.g. `~x` after `allkeys`).
pub fn rule_list(rng: &mut Rng, valid: bool) -> Vec<Tok> {
    let n = match rng.below(10) {
        0 => 0,
        1..=6 => 1 + rng.below(6),
        _ => 4 + rng.below(12),
    };
    let mut passwords = Vec::new();
    (0..n)
        .map(|_| user_tok(rng, valid, &mut passwords))
        .collect()
}

/// Rules that open up a fresh user, so that decisions get past the command bit
/// often enough to reach keys and channels: `+@all`, a few categories, some key and
/// channel patterns, or nothing.
pub fn grant_prefix(rng: &mut Rng) -> Vec<Tok> {
    let mut out = Vec::new();
    match rng.below(10) {
        0..=3 => out.push(Tok::Plain(pick_case(rng, &["+@all", "allcommands"]))),
        4..=6 => {
            for _ in 0..1 + rng.below(4) {
                let cat = rng.pick(&CATEGORIES);
                out.push(Tok::Plain(format!("+@{cat}")));
            }
        }
        _ => {}
    }
    if rng.chance(60) {
        for _ in 0..1 + rng.below(3) {
            out.push(Tok::Plain(format!(
                "%{}~{}",
                rng.pick(&["R", "W", "RW"]),
                key_pattern(rng)
            )));
        }
    }
    if rng.chance(50) {
        for _ in 0..1 + rng.below(3) {
            out.push(Tok::Plain(format!("&{}", channel_pattern(rng))));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Commands.

/// The argument of some command (anything goes).
fn any_arg(rng: &mut Rng, spec_keywords: &[&str]) -> String {
    match rng.below(100) {
        0..=39 => key(rng),
        40..=52 => rng.pick(NUMBERS).to_string(),
        53..=62 if !spec_keywords.is_empty() => pick_case(rng, spec_keywords),
        53..=72 => pick_case(rng, KEYWORDS),
        73..=84 => channel(rng),
        85..=92 => rng.pick(FIRST_ARGS).to_string(),
        _ => random_text(rng, b"abcxyz0123 ", 4),
    }
}

/// Keywords of `spec`'s keyword begin-searches.
fn spec_keywords(spec: &CommandSpec) -> Vec<&'static str> {
    spec.key_specs
        .iter()
        .filter_map(|k| match k.begin {
            BeginSearch::Keyword { keyword, .. } => Some(keyword),
            _ => None,
        })
        .collect()
}

/// A random entry of the command table with arguments around its arity.
fn table_command(rng: &mut Rng) -> Vec<String> {
    let spec = rng.pick(&COMMANDS[..]);
    let mut argv: Vec<String> = match spec.name.split_once('|') {
        Some((parent, sub)) => vec![random_case(rng, parent), random_case(rng, sub)],
        None => vec![random_case(rng, spec.name)],
    };
    let arity = spec.arity.unsigned_abs() as usize;
    let argc = if spec.arity > 0 {
        match rng.below(20) {
            0 => arity.saturating_sub(1),
            1 => arity + 1,
            _ => arity,
        }
    } else {
        match rng.below(20) {
            0 => arity.saturating_sub(1),
            1..=10 => arity + rng.below(4),
            _ => arity + rng.below(10),
        }
    };
    let kws = spec_keywords(&spec);
    while argv.len() < argc {
        argv.push(any_arg(rng, &kws));
    }
    argv
}

fn numkeys(rng: &mut Rng, n: usize) -> String {
    if rng.chance(80) {
        n.to_string()
    } else {
        rng.pick(NUMBERS).to_string()
    }
}

fn keys(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n).map(|_| key(rng)).collect()
}

/// A command from the templates of the reference's tricky cases.
fn template_command(rng: &mut Rng) -> Vec<String> {
    let s = |x: &str| x.to_string();
    let mut v: Vec<String> = Vec::new();
    match rng.below(20) {
        0 | 1 => {
            // SORT key [BY p] [LIMIT o c] [GET p]... [ASC|DESC] [ALPHA] [STORE dst]...
            v.push(pick_case(rng, &["sort", "sort", "sort", "sort_ro"]));
            v.push(key(rng));
            for _ in 0..rng.below(6) {
                match rng.below(6) {
                    0 => v.extend([random_case(rng, "by"), key(rng)]),
                    1 => v.extend([s("LIMIT"), s("0"), s("1")]),
                    2 => v.extend([random_case(rng, "get"), key(rng)]),
                    3 => v.push(s(rng.pick(&["ASC", "DESC", "ALPHA"]))),
                    4 => v.push(random_case(rng, "store")),
                    _ => v.extend([random_case(rng, "store"), key(rng)]),
                }
            }
        }
        2 | 3 => {
            let cmd = rng.pick(&[
                "eval",
                "evalsha",
                "eval_ro",
                "evalsha_ro",
                "fcall",
                "fcall_ro",
            ]);
            v.push(random_case(rng, cmd));
            v.push(s("return 1"));
            let n = rng.below(4);
            v.push(numkeys(rng, n));
            v.extend(keys(rng, n));
            for _ in 0..rng.below(3) {
                v.push(key(rng));
            }
        }
        4 | 5 => {
            let n = rng.below(4);
            match rng.below(6) {
                0 => {
                    v.push(s(rng.pick(&["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"])));
                    v.push(key(rng));
                }
                1 => v.push(s(rng.pick(&["ZUNION", "ZINTER", "ZDIFF"]))),
                2 => v.push(s(rng.pick(&["ZINTERCARD", "SINTERCARD"]))),
                3 => v.push(s(rng.pick(&["LMPOP", "ZMPOP"]))),
                4 => v.extend([s(rng.pick(&["BLMPOP", "BZMPOP"])), s("0")]),
                _ => v.push(s("ZUNIONSTORE")),
            }
            v.push(numkeys(rng, n));
            v.extend(keys(rng, n));
            for _ in 0..rng.below(3) {
                v.push(if rng.chance(50) {
                    key(rng)
                } else {
                    s(rng.pick(&["LEFT", "MIN", "WEIGHTS", "1", "LIMIT"]))
                });
            }
        }
        6 => {
            v.extend([s("MIGRATE"), s("host"), s("6379")]);
            v.push(if rng.chance(50) { s("") } else { key(rng) });
            v.extend([s("0"), s("100")]);
            for _ in 0..rng.below(3) {
                v.push(s(rng.pick(&["COPY", "REPLACE", "AUTH", "pw", "AUTH2"])));
            }
            if rng.chance(70) {
                v.push(random_case(rng, "keys"));
                let n = rng.below(4);
                v.extend(keys(rng, n));
            }
        }
        7 | 8 => {
            if rng.chance(50) {
                v.push(random_case(rng, "xread"));
            } else {
                v.extend([random_case(rng, "xreadgroup"), s("GROUP"), s("g"), s("c")]);
            }
            for _ in 0..rng.below(3) {
                v.extend(match rng.below(3) {
                    0 => vec![s("COUNT"), s("1")],
                    1 => vec![s("BLOCK"), s("0")],
                    _ => vec![s("NOACK")],
                });
            }
            v.push(random_case(rng, "streams"));
            let n = rng.below(5);
            v.extend(keys(rng, n));
            for _ in 0..rng.below(5) {
                v.push(if rng.chance(50) { s("$") } else { key(rng) });
            }
        }
        9 => {
            if rng.chance(50) {
                v.extend([s("GEORADIUS"), key(rng), s("0"), s("0")]);
            } else {
                v.extend([s("GEORADIUSBYMEMBER"), key(rng), s("m")]);
            }
            v.extend([s("1"), s("km")]);
            for _ in 0..rng.below(4) {
                match rng.below(4) {
                    0 => v.push(s("WITHDIST")),
                    1 => v.extend([random_case(rng, "store"), key(rng)]),
                    2 => v.extend([random_case(rng, "storedist"), key(rng)]),
                    _ => v.push(random_case(rng, "store")),
                }
            }
        }
        10 => {
            v.extend([random_case(rng, "set"), key(rng), s("v")]);
            for _ in 0..rng.below(4) {
                v.push(pick_case(rng, &["GET", "NX", "XX", "EX", "10", "KEEPTTL"]));
            }
        }
        11 => {
            v.push(pick_case(
                rng,
                &["bitfield", "bitfield", "bitfield", "bitfield_ro"],
            ));
            v.push(key(rng));
            for _ in 0..rng.below(4) {
                match rng.below(5) {
                    0 => v.extend([s("GET"), s("u8"), s("0")]),
                    1 => v.extend([s("SET"), s("u8"), s("0"), s("1")]),
                    2 => v.extend([s("INCRBY"), s("u8"), s("0"), s("1")]),
                    3 => v.extend([s("OVERFLOW"), s("SAT")]),
                    _ => v.push(pick_case(rng, &["get", "overflow", "x"])),
                }
            }
        }
        12..=14 => {
            let cmd = rng.pick(&[
                "publish",
                "spublish",
                "subscribe",
                "ssubscribe",
                "psubscribe",
                "unsubscribe",
                "punsubscribe",
                "sunsubscribe",
            ]);
            v.push(random_case(rng, cmd));
            let n = if cmd.ends_with("publish") {
                2
            } else {
                rng.below(4)
            };
            for _ in 0..n {
                v.push(if rng.chance(40) {
                    channel_pattern(rng)
                } else {
                    channel(rng)
                });
            }
        }
        15 => {
            // First-arg rules.
            v.push(pick_case(rng, FIRSTARG_COMMANDS));
            for _ in 0..rng.below(3) {
                v.push(rng.pick(FIRST_ARGS).to_string());
            }
        }
        16 => {
            v.push(pick_case(rng, &["auth", "hello", "quit", "reset"]));
            for _ in 0..rng.below(3) {
                v.push(rng.pick(&["3", "u", "pw", "AUTH"]).to_string());
            }
        }
        17 => {
            // Unknown commands and subcommands, containers alone.
            match rng.below(6) {
                0 => v.push(s("nosuchcommand")),
                1 => v.push(s("config|get")),
                2 => v.extend([s("config"), s("nosuch")]),
                3 => v.push(pick_case(rng, &["config", "client", "acl", "object"])),
                4 => v.extend([s("CLIENT"), s("")]),
                _ => v.push(s("")),
            }
            for _ in 0..rng.below(3) {
                v.push(key(rng));
            }
        }
        _ => {
            // Multi-key commands with odd counts.
            let cmd = rng.pick(&[
                "mset",
                "msetnx",
                "del",
                "exists",
                "watch",
                "rename",
                "copy",
                "lmove",
                "smove",
                "pfcount",
                "pfmerge",
                "sinterstore",
                "lcs",
                "touch",
                "unlink",
                "mget",
                "getex",
                "object",
                "memory",
                "xinfo",
                "xgroup",
                "blpop",
            ]);
            v.push(random_case(rng, cmd));
            if matches!(cmd, "object" | "memory" | "xinfo" | "xgroup") {
                v.push(s(rng.pick(&[
                    "ENCODING", "USAGE", "STREAM", "CREATE", "FREQ", "HELP",
                ])));
            }
            for _ in 0..rng.below(6) {
                v.push(if rng.chance(85) {
                    key(rng)
                } else {
                    any_arg(rng, &[])
                });
            }
        }
    }
    v
}

/// A random command line (command name first) for `ACL DRYRUN`.
pub fn command(rng: &mut Rng) -> Vec<Vec<u8>> {
    let argv = if rng.chance(55) {
        table_command(rng)
    } else {
        template_command(rng)
    };
    let mut argv: Vec<Vec<u8>> = argv.into_iter().map(String::into_bytes).collect();
    // Now and then an argument with bytes Redis treats specially when it echoes one
    // back (`%s` stops at NUL; CR/LF become spaces in errors). Never in a command
    // name: Redis's lookup of a name with a NUL depends on its hash seed.
    if argv.len() > 2 && rng.chance(4) {
        let i = 2 + rng.below(argv.len() - 2);
        argv[i] = rng.pick(ODD_BYTES).to_vec();
    } else if rng.chance(1) {
        argv[0] = rng.pick(ODD_NAMES).to_vec();
    }
    argv
}

/// Arguments with NUL, CR/LF and non-ASCII bytes.
const ODD_BYTES: &[&[u8]] = &[
    b"k1\0x", b"k\0", b"\0", b"k\r\nx", b"\xff", b"k\xe9", b"ch1\0", b"\r\n", b"k*\0",
];
/// Unknown command names with such bytes (the part before a NUL is no command).
const ODD_NAMES: &[&[u8]] = &[b"zz\0get", b"no\r\nsuch", b"x\xffy", b"\xe9", b"\r"];
