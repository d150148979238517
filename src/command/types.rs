//! The shape of the command table (filled in by the generated `table.rs`).

/// Command flags as `COMMAND` reports them (a bit each).
pub mod flags {
    pub const WRITE: u64 = 1 << 0;
    pub const READONLY: u64 = 1 << 1;
    pub const DENYOOM: u64 = 1 << 2;
    pub const MODULE: u64 = 1 << 3;
    pub const ADMIN: u64 = 1 << 4;
    pub const PUBSUB: u64 = 1 << 5;
    pub const NOSCRIPT: u64 = 1 << 6;
    pub const BLOCKING: u64 = 1 << 7;
    pub const LOADING: u64 = 1 << 8;
    pub const STALE: u64 = 1 << 9;
    pub const SKIP_MONITOR: u64 = 1 << 10;
    pub const SKIP_SLOWLOG: u64 = 1 << 11;
    pub const ASKING: u64 = 1 << 12;
    pub const FAST: u64 = 1 << 13;
    pub const NO_AUTH: u64 = 1 << 14;
    pub const MAY_REPLICATE: u64 = 1 << 15;
    pub const NO_MANDATORY_KEYS: u64 = 1 << 16;
    pub const NO_ASYNC_LOADING: u64 = 1 << 17;
    pub const NO_MULTI: u64 = 1 << 18;
    pub const MOVABLEKEYS: u64 = 1 << 19;
    pub const ALLOW_BUSY: u64 = 1 << 20;
    /// Names in `COMMAND`'s spelling, in bit order.
    pub const NAMES: [&str; 21] = [
        "write",
        "readonly",
        "denyoom",
        "module",
        "admin",
        "pubsub",
        "noscript",
        "blocking",
        "loading",
        "stale",
        "skip_monitor",
        "skip_slowlog",
        "asking",
        "fast",
        "no_auth",
        "may_replicate",
        "no_mandatory_keys",
        "no_async_loading",
        "no_multi",
        "movablekeys",
        "allow_busy",
    ];
}

/// ACL categories, in Redis's `ACLCommandCategories` order (also `ACL CAT`'s order):
/// bit `i` is `CATEGORIES[i]`.
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Key-spec flags as `COMMAND` reports them (a bit each).
pub mod key_flags {
    pub const RO: u16 = 1 << 0;
    pub const RW: u16 = 1 << 1;
    pub const OW: u16 = 1 << 2;
    pub const RM: u16 = 1 << 3;
    pub const ACCESS: u16 = 1 << 4;
    pub const UPDATE: u16 = 1 << 5;
    pub const INSERT: u16 = 1 << 6;
    pub const DELETE: u16 = 1 << 7;
    pub const NOT_KEY: u16 = 1 << 8;
    pub const INCOMPLETE: u16 = 1 << 9;
    pub const VARIABLE_FLAGS: u16 = 1 << 10;
    /// Names in `COMMAND`'s spelling, in bit order.
    pub const NAMES: [&str; 11] = [
        "RO",
        "RW",
        "OW",
        "RM",
        "access",
        "update",
        "insert",
        "delete",
        "not_key",
        "incomplete",
        "variable_flags",
    ];
}

/// Where a key spec starts looking (`begin_search`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginSearch {
    /// `index{pos}`.
    Index(i32),
    /// `keyword{keyword, startfrom}`; the keyword is lowercase.
    Keyword {
        keyword: &'static str,
        startfrom: i32,
    },
    /// `unknown`: the spec is invalid for the key-spec pass.
    Unknown,
}

/// How a key spec finds its keys (`find_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindKeys {
    /// `range{lastkey, keystep, limit}`.
    Range {
        lastkey: i32,
        keystep: i32,
        limit: i32,
    },
    /// `keynum{keynumidx, firstkey, keystep}`.
    Keynum {
        keynumidx: i32,
        firstkey: i32,
        keystep: i32,
    },
    /// `unknown`.
    Unknown,
}

/// One key spec of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// `key_flags` bits.
    pub flags: u16,
    pub begin: BeginSearch,
    pub find: FindKeys,
}

/// A command or subcommand of Redis 7.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// Full lowercase name: `get`, or `config|set` for a subcommand.
    pub name: &'static str,
    /// Index of this entry in [`COMMANDS`](crate::command::COMMANDS); ids are dense.
    pub id: u16,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    /// `flags` bits.
    pub flags: u64,
    /// Category bits (bit i = `CATEGORIES[i]`), implicit categories included.
    pub categories: u32,
    pub key_specs: &'static [KeySpec],
    /// Id of the container for a subcommand.
    pub parent: Option<u16>,
    /// Ids of the subcommands of a container (empty otherwise).
    pub subcommands: &'static [u16],
}

impl CommandSpec {
    /// True when `argc` arguments (command name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// True when the command has flag bit `f`.
    pub fn has_flag(&self, f: u64) -> bool {
        self.flags & f != 0
    }

    /// True when the command is in category `index` (of [`CATEGORIES`]).
    pub fn in_category(&self, index: usize) -> bool {
        index < 32 && self.categories & (1 << index) != 0
    }
}

/// Index of category `name` (case-insensitive) in [`CATEGORIES`].
pub fn category_index(name: &str) -> Option<usize> {
    CATEGORIES.iter().position(|c| c.eq_ignore_ascii_case(name))
}
