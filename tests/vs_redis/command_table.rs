//! The committed command table against the redis-server it was generated from: regenerated
//! byte for byte, category membership against `ACL CAT`, counts against the reference
//! (`redis-acl-7.0.md` §2), and the generator's refusal of names it cannot represent.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::time::Duration;

#[path = "../../tools/command_table/mod.rs"]
mod gen;

use crate::support::RedisServer;
use gen::{GenError, Value};
use portcullis::command::{by_name, flags, key_flags, BeginSearch, FindKeys, KeySpec};
use portcullis::command::{CommandSpec, CATEGORIES, COMMANDS, REDIS_VERSION};

const TABLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/command/table.rs");

/// `ACL CAT <c>` counts on redis-server 7.0.15 (reference §2), subcommands included.
const CATEGORY_COUNTS: [(&str, usize); 21] = [
    ("keyspace", 34),
    ("read", 87),
    ("write", 108),
    ("set", 19),
    ("sortedset", 37),
    ("list", 24),
    ("hash", 16),
    ("string", 22),
    ("bitmap", 7),
    ("hyperloglog", 5),
    ("geo", 10),
    ("stream", 23),
    ("pubsub", 13),
    ("admin", 65),
    ("fast", 99),
    ("slow", 267),
    ("blocking", 10),
    ("dangerous", 75),
    ("connection", 35),
    ("transaction", 5),
    ("scripting", 21),
];

fn connect(redis: &RedisServer) -> TcpStream {
    let stream = TcpStream::connect(redis.addr()).expect("connect to redis-server");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

fn query(stream: &mut TcpStream, args: &[&str]) -> (Value, Vec<u8>) {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    gen::query(stream, &args).expect("query redis-server")
}

/// The full names in an array-of-strings reply.
fn name_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("array reply")
        .iter()
        .map(|v| v.as_text().expect("name").to_ascii_lowercase())
        .collect()
}

fn table_names(filter: impl Fn(&CommandSpec) -> bool) -> BTreeSet<String> {
    COMMANDS
        .iter()
        .filter(|c| filter(c))
        .map(|c| c.name.to_owned())
        .collect()
}

#[test]
fn table_is_exactly_what_the_server_generates() {
    let redis = RedisServer::start();
    let mut stream = connect(&redis);
    let (info, _) = query(&mut stream, &["INFO", "server"]);
    let version = gen::redis_version(info.as_text().expect("INFO text")).expect("redis_version");
    assert_eq!(
        version, REDIS_VERSION,
        "table generated from another redis version"
    );
    let (_, reply) = query(&mut stream, &["COMMAND"]);
    let generated = gen::generate(&reply, version).expect("generate");
    let committed = std::fs::read_to_string(TABLE).expect("read table.rs");
    if generated != committed {
        let first = generated
            .lines()
            .zip(committed.lines())
            .position(|(g, c)| g != c)
            .unwrap_or_else(|| generated.lines().count().min(committed.lines().count()));
        panic!(
            "src/command/table.rs differs from the generator's output from line {}:\n  \
             committed: {:?}\n  generated: {:?}\nregenerate with \
             `cargo run --example gen_command_table -- HOST:PORT`",
            first + 1,
            committed.lines().nth(first),
            generated.lines().nth(first),
        );
    }
}

#[test]
fn names_and_categories_match_the_live_server() {
    let redis = RedisServer::start();
    let mut stream = connect(&redis);
    let (count, _) = query(&mut stream, &["COMMAND", "COUNT"]);
    let top_level = COMMANDS.iter().filter(|c| c.parent.is_none()).count();
    assert_eq!(
        count.as_int(),
        i64::try_from(top_level).ok(),
        "COMMAND COUNT"
    );
    let (list, _) = query(&mut stream, &["COMMAND", "LIST"]);
    assert_eq!(name_set(&list), table_names(|_| true), "COMMAND LIST");
    for (index, category) in CATEGORIES.iter().enumerate() {
        let (members, _) = query(&mut stream, &["ACL", "CAT", category]);
        let server = name_set(&members);
        let table = table_names(|c| c.in_category(index));
        assert_eq!(server, table, "ACL CAT {category}");
    }
    let (cats, _) = query(&mut stream, &["ACL", "CAT"]);
    let server: Vec<String> = cats
        .as_array()
        .expect("ACL CAT")
        .iter()
        .map(|v| v.as_text().expect("category").to_owned())
        .collect();
    assert_eq!(server, CATEGORIES, "ACL CAT order");
}

#[test]
fn counts_match_the_reference() {
    assert_eq!(COMMANDS.iter().filter(|c| c.parent.is_none()).count(), 240);
    assert_eq!(COMMANDS.len(), 366);
    let containers = table_names(|c| !c.subcommands.is_empty());
    let expected = [
        "acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module",
        "object", "pubsub", "script", "slowlog", "xgroup", "xinfo",
    ];
    assert_eq!(containers, expected.iter().map(|s| s.to_string()).collect());
    for (category, expected) in CATEGORY_COUNTS {
        let index = portcullis::command::category_index(category).expect(category);
        let count = COMMANDS.iter().filter(|c| c.in_category(index)).count();
        assert_eq!(count, expected, "@{category}");
    }
}

#[test]
fn ids_order_and_parents_are_consistent() {
    for (i, spec) in COMMANDS.iter().enumerate() {
        assert_eq!(usize::from(spec.id), i, "{}", spec.name);
        assert_eq!(spec.name, spec.name.to_ascii_lowercase());
        if let Some(next) = COMMANDS.get(i + 1) {
            assert!(spec.name < next.name, "{} !< {}", spec.name, next.name);
        }
        for &sub in spec.subcommands {
            let child = &COMMANDS[usize::from(sub)];
            assert_eq!(child.parent, Some(spec.id), "{}", child.name);
            assert!(child.subcommands.is_empty(), "{}", child.name);
            assert!(child.name.starts_with(&format!("{}|", spec.name)));
            // `+@cat` on a container toggles its subcommands: they carry its categories.
            assert_eq!(child.categories & spec.categories, spec.categories);
        }
        match spec.parent {
            Some(p) => assert!(COMMANDS[usize::from(p)].subcommands.contains(&spec.id)),
            None => assert!(!spec.name.contains('|'), "{}", spec.name),
        }
    }
}

#[test]
fn spot_checks() {
    let spec = |name: &str| by_name(name.as_bytes()).expect(name);
    let get = spec("get");
    assert_eq!(get.arity, 2);
    assert!(get.has_flag(flags::READONLY) && get.has_flag(flags::FAST));
    let ro_access = KeySpec {
        flags: key_flags::RO | key_flags::ACCESS,
        begin: BeginSearch::Index(1),
        find: FindKeys::Range {
            lastkey: 0,
            keystep: 1,
            limit: 0,
        },
    };
    assert_eq!(get.key_specs, &[ro_access]);
    let set = spec("set");
    assert_eq!(set.key_specs.len(), 1);
    assert!(set.key_specs[0].flags & key_flags::VARIABLE_FLAGS != 0);
    assert!(matches!(
        spec("sort").key_specs[1].begin,
        BeginSearch::Unknown
    ));
    assert!(matches!(
        spec("eval").key_specs[0].find,
        FindKeys::Keynum {
            keynumidx: 0,
            firstkey: 1,
            keystep: 1
        }
    ));
    let dangerous = portcullis::command::category_index("dangerous").expect("dangerous");
    assert!(spec("config|set").in_category(dangerous));
    assert!(!spec("config|help").in_category(dangerous));
    let slow = portcullis::command::category_index("slow").expect("slow");
    assert_eq!(spec("config").categories, 1 << slow);
    assert!(spec("auth").has_flag(flags::NO_AUTH));
    assert!(spec("spublish").key_specs[0].flags & key_flags::NOT_KEY != 0);
}

/// A one-command `COMMAND` reply with the given flags and categories.
fn one_command(flag: &str, category: &str) -> Vec<u8> {
    format!(
        "*1\r\n*10\r\n$3\r\nfoo\r\n:1\r\n*1\r\n+{flag}\r\n:0\r\n:0\r\n:0\r\n*1\r\n+{category}\r\n\
         *0\r\n*0\r\n*0\r\n"
    )
    .into_bytes()
}

#[test]
fn generator_rejects_what_the_types_cannot_hold() {
    let ok = gen::generate(&one_command("fast", "@fast"), "x").expect("valid reply");
    assert!(ok.contains("flags: flags::FAST,"), "{ok}");
    let err = gen::generate(&one_command("bogus", "@fast"), "x");
    assert!(
        matches!(err, Err(GenError::Unknown { kind: "flag", .. })),
        "{err:?}"
    );
    let err = gen::generate(&one_command("fast", "@nope"), "x");
    assert!(
        matches!(
            err,
            Err(GenError::Unknown {
                kind: "category",
                ..
            })
        ),
        "{err:?}"
    );
    let err = gen::generate(&one_command("fast", "fast"), "x");
    assert!(matches!(err, Err(GenError::Unknown { .. })), "{err:?}");
    let mut truncated = one_command("fast", "@fast");
    truncated.truncate(truncated.len() - 3);
    assert!(matches!(
        gen::generate(&truncated, "x"),
        Err(GenError::Resp(_))
    ));
    let err = gen::generate(b"-ERR unknown command\r\n", "x");
    assert!(matches!(err, Err(GenError::Server(_))), "{err:?}");
    let err = gen::generate(b"*1\r\n*2\r\n$3\r\nfoo\r\n:1\r\n", "x");
    assert!(matches!(err, Err(GenError::Shape(_))), "{err:?}");
    let spec_reply = b"*1\r\n*10\r\n$3\r\nfoo\r\n:2\r\n*0\r\n:1\r\n:1\r\n:1\r\n*1\r\n+@slow\r\n\
        *0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*1\r\n+RO\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n\
        $6\r\nfuture\r\n$4\r\nspec\r\n*0\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$7\r\nunknown\r\n\
        $4\r\nspec\r\n*0\r\n*0\r\n";
    let err = gen::generate(spec_reply, "x");
    assert!(
        matches!(
            err,
            Err(GenError::Unknown {
                kind: "begin_search type",
                ..
            })
        ),
        "{err:?}"
    );
}
