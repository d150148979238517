//! Redis 7.0's `getkeys_proc` functions (`src/db.c`), used when a command's key
//! specs cannot be used (`VARIABLE_FLAGS`) or one of them is invalid or
//! `INCOMPLETE`. Each one is a literal port, quirks included: C strings stop at
//! the first NUL byte, `strcasecmp` folds ASCII only, and numkeys goes through
//! `atoi`.

use super::{ArgList, KeyRef};
use crate::command::types::key_flags::{ACCESS, DELETE, OW, RO, RW, UPDATE};
use crate::resp::encode::is_keyword;

/// The getkeys procs of Redis 7.0.15's built-in commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GetKeysProc {
    /// `setGetKeys`.
    Set,
    /// `bitfieldGetKeys`.
    Bitfield,
    /// `sortGetKeys`.
    Sort,
    /// `sortROGetKeys`.
    SortRo,
    /// `migrateGetKeys`.
    Migrate,
    /// `georadiusGetKeys`.
    Georadius,
    /// `xreadGetKeys`.
    Xread,
    /// `genericGetKeys(store, count, first, step)` behind the eval, function,
    /// z*/s*intercard and *mpop procs.
    Generic {
        /// Position of the destination key, 0 for none.
        store: usize,
        /// Position of numkeys.
        count: usize,
        /// Position of the first key.
        first: usize,
    },
}

impl GetKeysProc {
    /// The proc of the command with full lowercase name `name`, if it has one.
    pub(super) fn of(name: &str) -> Option<GetKeysProc> {
        let generic = |store, count, first| GetKeysProc::Generic {
            store,
            count,
            first,
        };
        Some(match name {
            "set" => GetKeysProc::Set,
            "bitfield" => GetKeysProc::Bitfield,
            "sort" => GetKeysProc::Sort,
            "sort_ro" => GetKeysProc::SortRo,
            "migrate" => GetKeysProc::Migrate,
            "georadius" | "georadiusbymember" => GetKeysProc::Georadius,
            "xread" | "xreadgroup" => GetKeysProc::Xread,
            // zunionInterDiffStoreGetKeys: genericGetKeys(1, 2, 3, 1).
            "zunionstore" | "zinterstore" | "zdiffstore" => generic(1, 2, 3),
            // evalGetKeys, functionGetKeys, blmpopGetKeys, bzmpopGetKeys: (0, 2, 3, 1).
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "blmpop"
            | "bzmpop" => generic(0, 2, 3),
            // zunionInterDiffGetKeys, sintercardGetKeys, zintercardGetKeys, lmpopGetKeys,
            // zmpopGetKeys: (0, 1, 2, 1).
            "zunion" | "zinter" | "zdiff" | "sintercard" | "zintercard" | "lmpop" | "zmpop" => {
                generic(0, 1, 2)
            }
            _ => return None,
        })
    }

    /// Runs the proc, pushing its keys onto `out` (expected empty).
    pub(super) fn run<A: ArgList + ?Sized>(self, args: &A, out: &mut Vec<KeyRef>) {
        match self {
            GetKeysProc::Set => set_keys(args, out),
            GetKeysProc::Bitfield => bitfield_keys(args, out),
            GetKeysProc::Sort => sort_keys(args, out),
            GetKeysProc::SortRo => push(out, 1, RO | ACCESS),
            GetKeysProc::Migrate => migrate_keys(args, out),
            GetKeysProc::Georadius => georadius_keys(args, out),
            GetKeysProc::Xread => xread_keys(args, out),
            GetKeysProc::Generic {
                store,
                count,
                first,
            } => generic_keys(args, store, count, first, out),
        }
    }
}

/// Pushes one key.
fn push(out: &mut Vec<KeyRef>, index: usize, flags: u16) {
    out.push(KeyRef { index, flags });
}

/// Argument `i` compared like Redis's `strcasecmp` ([`is_keyword`]); false past the end.
pub(super) fn arg_is<A: ArgList + ?Sized>(args: &A, i: usize, keyword: &str) -> bool {
    args.arg(i).is_some_and(|a| is_keyword(a, keyword))
}

/// glibc `atoi`: `(int)strtol(s, NULL, 10)`. Skips C whitespace, takes one optional
/// sign, then digits up to the first non-digit (or NUL); saturates to the `long`
/// range like `strtol`, then keeps the low 32 bits like the `int` conversion.
pub(super) fn atoi(s: &[u8]) -> i32 {
    let mut rest = s;
    while let Some((&c, tail)) = rest.split_first() {
        if matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            rest = tail;
        } else {
            break;
        }
    }
    let negative = match rest.first() {
        Some(b'-') => {
            rest = &rest[1..];
            true
        }
        Some(b'+') => {
            rest = &rest[1..];
            false
        }
        _ => false,
    };
    // Magnitude, saturated just above what an i64 can hold.
    let cap: u64 = 1 << 63;
    let mut magnitude: u64 = 0;
    for &c in rest.iter().take_while(|c| c.is_ascii_digit()) {
        magnitude = magnitude
            .saturating_mul(10)
            .saturating_add(u64::from(c - b'0'))
            .min(cap + 1);
    }
    let long: i64 = if negative {
        if magnitude >= cap {
            i64::MIN
        } else {
            -i64::try_from(magnitude).unwrap_or(i64::MAX)
        }
    } else {
        i64::try_from(magnitude).unwrap_or(i64::MAX)
    };
    // The `long` to `int` conversion keeps the low 32 bits.
    long as i32
}

/// `setGetKeys`: argument 1, `RW|ACCESS|UPDATE` if a `GET` (any case) appears at
/// argument 3 or later, else `OW|UPDATE`.
fn set_keys<A: ArgList + ?Sized>(args: &A, out: &mut Vec<KeyRef>) {
    let get = (3..args.argc()).any(|i| arg_is(args, i, "get"));
    push(
        out,
        1,
        if get {
            RW | ACCESS | UPDATE
        } else {
            OW | UPDATE
        },
    );
}

/// `bitfieldGetKeys`: argument 1, `RO|ACCESS` only if every operation is a complete
/// `GET type offset` or `OVERFLOW mode`; anything else (`SET`, `INCRBY`, a syntax
/// error) makes it `RW|ACCESS|UPDATE`.
fn bitfield_keys<A: ArgList + ?Sized>(args: &A, out: &mut Vec<KeyRef>) {
    let argc = args.argc();
    let mut readonly = true;
    let mut i = 2;
    while i < argc {
        let remaining = argc - i - 1;
        if arg_is(args, i, "get") && remaining >= 2 {
            i += 2;
        } else if arg_is(args, i, "overflow") && remaining >= 1 {
            i += 1;
        } else {
            // `SET`/`INCRBY` with their 3 arguments, or a syntax error.
            readonly = false;
            break;
        }
        i += 1;
    }
    let flags = if readonly {
        RO | ACCESS
    } else {
        RW | ACCESS | UPDATE
    };
    push(out, 1, flags);
}

/// `sortGetKeys`: argument 1 (`RO|ACCESS`), then the argument after the last
/// `STORE` found scanning from argument 2, where `LIMIT` skips 2 arguments and
/// `GET`/`BY` skip 1 (`OW|UPDATE`). `STORE` itself skips nothing, and a `STORE`
/// in last position is ignored.
fn sort_keys<A: ArgList + ?Sized>(args: &A, out: &mut Vec<KeyRef>) {
    let argc = args.argc();
    push(out, 1, RO | ACCESS);
    let mut store = None;
    let mut i = 2;
    while i < argc {
        if arg_is(args, i, "limit") {
            i += 2;
        } else if arg_is(args, i, "store") && i + 1 < argc {
            store = Some(i + 1);
        } else if arg_is(args, i, "get") || arg_is(args, i, "by") {
            i += 1;
        }
        i += 1;
    }
    if let Some(index) = store {
        push(out, index, OW | UPDATE);
    }
}

/// `migrateGetKeys` (`RW|ACCESS|DELETE`): argument 3, unless a `KEYS` appears from
/// argument 6 on (skipping `AUTH`'s 1 and `AUTH2`'s 2 arguments): then every
/// argument after it, or none when argument 3 is not empty.
fn migrate_keys<A: ArgList + ?Sized>(args: &A, out: &mut Vec<KeyRef>) {
    let argc = args.argc();
    let (mut first, mut num) = (3, 1);
    if argc > 6 {
        let mut i = 6;
        while i < argc {
            if arg_is(args, i, "keys") {
                if args.arg(3).is_some_and(|a| !a.is_empty()) {
                    num = 0;
                } else {
                    first = i + 1;
                    num = argc - first;
                }
                break;
            }
            if arg_is(args, i, "auth") {
                i += 1;
            } else if arg_is(args, i, "auth2") {
                i += 2;
            }
            i += 1;
        }
    }
    for index in first..first + num {
        push(out, index, RW | ACCESS | DELETE);
    }
}

/// `georadiusGetKeys` (flags 0): argument 1, then the argument after the last
/// `STORE`/`STOREDIST` found from argument 5 on (each match skips its argument).
fn georadius_keys<A: ArgList + ?Sized>(args: &A, out: &mut Vec<KeyRef>) {
    let argc = args.argc();
    let mut stored = None;
    let mut i = 5;
    while i < argc {
        if (arg_is(args, i, "store") || arg_is(args, i, "storedist")) && i + 1 < argc {
            stored = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    push(out, 1, 0);
    if let Some(index) = stored {
        push(out, index, 0);
    }
}

/// `xreadGetKeys` (flags 0): finds `STREAMS` past the `BLOCK x`, `COUNT x`,
/// `GROUP g c` and `NOACK` options; the first half of the arguments after it are
/// keys, provided there is a positive even number of them.
fn xread_keys<A: ArgList + ?Sized>(args: &A, out: &mut Vec<KeyRef>) {
    let argc = args.argc();
    let mut streams = None;
    let mut i = 1;
    while i < argc {
        if arg_is(args, i, "block") || arg_is(args, i, "count") {
            i += 1;
        } else if arg_is(args, i, "group") {
            i += 2;
        } else if arg_is(args, i, "noack") {
            // No argument.
        } else if arg_is(args, i, "streams") {
            streams = Some(i);
            break;
        } else {
            break;
        }
        i += 1;
    }
    let Some(pos) = streams else { return };
    let rest = argc - pos - 1;
    if rest == 0 || !rest.is_multiple_of(2) {
        return;
    }
    let num = rest / 2;
    for index in pos + 1..argc - num {
        push(out, index, 0);
    }
}

/// `genericGetKeys(store, count, first, 1)` (flags 0): `atoi(argv[count])` keys
/// from `first`, then the destination key at `store` (if nonzero) last; nothing
/// when the number is below 1 or more than the arguments left.
fn generic_keys<A: ArgList + ?Sized>(
    args: &A,
    store: usize,
    count: usize,
    first: usize,
    out: &mut Vec<KeyRef>,
) {
    let argc = args.argc();
    let num = args.arg(count).map_or(0, atoi);
    let available = i64::try_from(argc)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(first).unwrap_or(i64::MAX));
    let Ok(num) = usize::try_from(num) else {
        return;
    };
    if num < 1 || i64::try_from(num).unwrap_or(i64::MAX) > available {
        return;
    }
    for index in first..first + num {
        push(out, index, 0);
    }
    if store != 0 {
        push(out, store, 0);
    }
}
