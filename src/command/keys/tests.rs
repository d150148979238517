//! Unit tests on hand-written specs shaped like Redis 7.0's; the full table is
//! checked against a real server in `tests/keys_vs_redis.rs`.

use super::procs::atoi;
use super::*;
use crate::command::types::key_flags::*;

const fn spec(flags: u16, begin: BeginSearch, find: FindKeys) -> KeySpec {
    KeySpec { flags, begin, find }
}

const fn cmd(name: &'static str, arity: i32, key_specs: &'static [KeySpec]) -> CommandSpec {
    CommandSpec {
        name,
        id: 0,
        arity,
        flags: 0,
        categories: 0,
        key_specs,
        parent: None,
        subcommands: &[],
    }
}

const ONE: FindKeys = FindKeys::Range {
    lastkey: 0,
    keystep: 1,
    limit: 0,
};

static GET: CommandSpec = cmd("get", 2, &[spec(RO | ACCESS, BeginSearch::Index(1), ONE)]);
static MSET: CommandSpec = cmd(
    "mset",
    -3,
    &[spec(
        OW | UPDATE,
        BeginSearch::Index(1),
        FindKeys::Range {
            lastkey: -1,
            keystep: 2,
            limit: 0,
        },
    )],
);
static EVAL: CommandSpec = cmd(
    "eval",
    -3,
    &[spec(
        RW | ACCESS | UPDATE,
        BeginSearch::Index(2),
        FindKeys::Keynum {
            keynumidx: 0,
            firstkey: 1,
            keystep: 1,
        },
    )],
);
static ZUNIONSTORE: CommandSpec = cmd(
    "zunionstore",
    -4,
    &[
        spec(OW | UPDATE, BeginSearch::Index(1), ONE),
        spec(
            RO | ACCESS,
            BeginSearch::Index(2),
            FindKeys::Keynum {
                keynumidx: 0,
                firstkey: 1,
                keystep: 1,
            },
        ),
    ],
);
static XREAD: CommandSpec = cmd(
    "xread",
    -4,
    &[spec(
        RO | ACCESS,
        BeginSearch::Keyword {
            keyword: "streams",
            startfrom: 1,
        },
        FindKeys::Range {
            lastkey: -1,
            keystep: 1,
            limit: 2,
        },
    )],
);
static MIGRATE: CommandSpec = cmd(
    "migrate",
    -6,
    &[
        spec(RW | ACCESS | DELETE, BeginSearch::Index(3), ONE),
        spec(
            RW | ACCESS | DELETE | INCOMPLETE,
            BeginSearch::Keyword {
                keyword: "keys",
                startfrom: -2,
            },
            FindKeys::Range {
                lastkey: -1,
                keystep: 1,
                limit: 0,
            },
        ),
    ],
);
static SET: CommandSpec = cmd(
    "set",
    -3,
    &[spec(
        RW | ACCESS | UPDATE | VARIABLE_FLAGS,
        BeginSearch::Index(1),
        ONE,
    )],
);
static SORT: CommandSpec = cmd(
    "sort",
    -2,
    &[
        spec(RO | ACCESS, BeginSearch::Index(1), ONE),
        spec(OW | UPDATE, BeginSearch::Unknown, FindKeys::Unknown),
    ],
);
static SPUBLISH: CommandSpec = cmd("spublish", 3, &[spec(NOT_KEY, BeginSearch::Index(1), ONE)]);
static PING: CommandSpec = cmd("ping", -1, &[]);

/// `(index, flags)` pairs of `cmd` on the space-separated `line`.
fn keys(cmd: &CommandSpec, line: &str) -> Vec<(usize, u16)> {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    let mut out = vec![KeyRef {
        index: 99,
        flags: 0,
    }];
    command_keys(cmd, &args, &mut out);
    out.iter().map(|k| (k.index, k.flags)).collect()
}

#[test]
fn range_specs() {
    assert_eq!(keys(&GET, "get k"), [(1, RO | ACCESS)]);
    assert_eq!(
        keys(&MSET, "mset a 1 b 2"),
        [(1, OW | UPDATE), (3, OW | UPDATE)]
    );
    assert_eq!(keys(&PING, "ping"), []);
    assert_eq!(keys(&SPUBLISH, "spublish c m"), []);
}

#[test]
fn keynum_is_strict_then_falls_back_to_atoi() {
    let f = RW | ACCESS | UPDATE;
    assert_eq!(keys(&EVAL, "eval s 2 a b c"), [(3, f), (4, f)]);
    assert_eq!(keys(&EVAL, "eval s 0"), []);
    // `01` fails string2ll, so genericGetKeys runs: flags 0.
    assert_eq!(keys(&EVAL, "eval s 01 k"), [(3, 0)]);
    assert_eq!(keys(&EVAL, "eval s +1 k"), [(3, 0)]);
    assert_eq!(keys(&EVAL, "eval s 3 k"), []);
    assert_eq!(keys(&EVAL, "eval s -1 k"), []);
    // (int)4294967297 == 1: the spec pass itself accepts it.
    assert_eq!(keys(&EVAL, "eval s 4294967297 k"), [(3, f)]);
    assert_eq!(
        keys(&ZUNIONSTORE, "zunionstore d 2 a b"),
        [(1, OW | UPDATE), (3, RO | ACCESS), (4, RO | ACCESS)]
    );
    assert_eq!(keys(&ZUNIONSTORE, "zunionstore d 0 a"), []);
    assert_eq!(keys(&ZUNIONSTORE, "zunionstore x 5 r1"), []);
    // Destination last when the proc runs.
    assert_eq!(
        keys(&ZUNIONSTORE, "zunionstore d 02 a b"),
        [(3, 0), (4, 0), (1, 0)]
    );
}

#[test]
fn keyword_search() {
    let f = RO | ACCESS;
    assert_eq!(
        keys(&XREAD, "xread count 2 streams a b 1 2"),
        [(4, f), (5, f)]
    );
    assert_eq!(keys(&XREAD, "xread StReAmS a 1"), [(2, f)]);
    // Odd count: the spec is invalid and xreadGetKeys finds no keys.
    assert_eq!(keys(&XREAD, "xread streams a b 1"), [(2, f)]);
    assert_eq!(keys(&XREAD, "xread x streams a"), []);
    // The last argument is never the keyword.
    assert_eq!(keys(&XREAD, "xread a b streams"), []);
}

#[test]
fn migrate() {
    let f = RW | ACCESS | DELETE;
    assert_eq!(keys(&MIGRATE, "migrate h p k 0 5"), [(3, f)]);
    assert_eq!(
        keys(&MIGRATE, "migrate h p  0 5 keys a b"),
        [(7, f), (8, f)]
    );
    assert_eq!(keys(&MIGRATE, "migrate h p k 0 5 keys a b"), []);
    assert_eq!(
        keys(&MIGRATE, "migrate h p  0 5 auth keys keys a"),
        [(9, f)]
    );
}

#[test]
fn variable_flags_and_unknown_specs() {
    assert_eq!(keys(&SET, "set k v"), [(1, OW | UPDATE)]);
    assert_eq!(keys(&SET, "set k v nx gEt"), [(1, RW | ACCESS | UPDATE)]);
    assert_eq!(keys(&SET, "set k get"), [(1, OW | UPDATE)]);
    let args: [&[u8]; 4] = [b"set", b"k", b"v", b"get\0x"];
    let mut out = Vec::new();
    command_keys(&SET, &args, &mut out);
    assert_eq!(out[0].flags, RW | ACCESS | UPDATE);

    let r = RO | ACCESS;
    let w = OW | UPDATE;
    assert_eq!(keys(&SORT, "sort k"), [(1, r)]);
    assert_eq!(keys(&SORT, "sort k store d"), [(1, r), (3, w)]);
    assert_eq!(keys(&SORT, "sort k store a store b"), [(1, r), (5, w)]);
    assert_eq!(
        keys(&SORT, "sort k by store get store limit store 1"),
        [(1, r)]
    );
    assert_eq!(keys(&SORT, "sort k store"), [(1, r)]);
    assert_eq!(keys(&SORT, "sort k store store x"), [(1, r), (4, w)]);
}

#[test]
fn atoi_is_glibc() {
    for (s, n) in [
        (&b"12"[..], 12),
        (b" \t\n\x0b\x0c\r-3x", -3),
        (b"+7", 7),
        (b"007", 7),
        (b"", 0),
        (b"x1", 0),
        (b"- 1", 0),
        (b"4294967297", 1),
        (b"99999999999999999999", -1),
        (b"-99999999999999999999", 0),
        (b"2\x003", 2),
    ] {
        assert_eq!(atoi(s), n, "{:?}", String::from_utf8_lossy(s));
    }
}

#[test]
fn channels() {
    let publish = cmd("publish", 3, &[]);
    let psub = cmd("psubscribe", -2, &[]);
    let unsub = cmd("unsubscribe", -1, &[]);
    let mut out = Vec::new();
    command_channels(&publish, &["publish", "c", "m"], &mut out);
    assert_eq!(
        out,
        [ChannelRef {
            index: 1,
            pattern: false
        }]
    );
    command_channels(&psub, &["psubscribe", "a*", "b"], &mut out);
    assert_eq!(out.iter().map(|c| c.index).collect::<Vec<_>>(), [1, 2]);
    assert!(out.iter().all(|c| c.pattern));
    command_channels(&unsub, &["unsubscribe", "a"], &mut out);
    assert!(out.is_empty());
}

#[test]
fn permissions() {
    assert!(needs_read(RO | ACCESS) && !needs_write(RO | ACCESS));
    assert!(needs_write(RM | DELETE) && !needs_read(RM | DELETE));
    assert!(needs_write(OW | UPDATE));
    assert!(needs_read(RW | ACCESS | UPDATE) && needs_write(RW | ACCESS | UPDATE));
    assert!(!needs_read(0) && !needs_write(0));
    assert!(needs_write(RW | INSERT) && !needs_read(RW | INSERT));
}
