//! Step 3b, key and channel extraction: which arguments of an already resolved,
//! arity-checked command are keys (with their key-spec flags) and which are pub/sub
//! channels, exactly as Redis 7.0.15 finds them for its ACL check.
//!
//! The connection task calls [`command_keys`] and [`command_channels`] once per
//! command, with reusable output buffers, and hands the positions to policy
//! (`crate::acl`), which maps each key's flags to the permissions it needs with
//! [`needs_read`] / [`needs_write`].
//!
//! The algorithm is `getKeysFromCommandWithSpecs(GET_KEYSPEC_DEFAULT)` from
//! `src/db.c`: the key-spec pass first, then the command's `getkeys_proc`
//! (the private `procs` module) when the specs cannot be used or one of them is invalid.
//! `COMMAND GETKEYSANDFLAGS` runs the same path, so `tests/keys_vs_redis.rs`
//! checks this module against a real redis-server.
//!
//! Nothing here allocates: results go into caller-provided `Vec`s that are
//! cleared first and grow only until they reach the largest command seen.

mod procs;
mod stricter;
#[cfg(test)]
mod tests;

use super::types::{key_flags, BeginSearch, CommandSpec, FindKeys, KeySpec};
use crate::resp::encode::is_keyword;
use crate::resp::num::string2ll;

/// Read access to a command's arguments (index 0 is the command name), so that
/// extraction works on any argument view without copying.
pub trait ArgList {
    /// Number of arguments, command name included.
    fn argc(&self) -> usize;
    /// Argument `i`, or `None` past the end.
    fn arg(&self, i: usize) -> Option<&[u8]>;
}

impl<T: AsRef<[u8]>> ArgList for [T] {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(AsRef::as_ref)
    }
}

impl<T: AsRef<[u8]>, const N: usize> ArgList for [T; N] {
    fn argc(&self) -> usize {
        N
    }
    fn arg(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(AsRef::as_ref)
    }
}

impl<T: AsRef<[u8]>> ArgList for Vec<T> {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(AsRef::as_ref)
    }
}

impl<A: ArgList + ?Sized> ArgList for &A {
    fn argc(&self) -> usize {
        (**self).argc()
    }
    fn arg(&self, i: usize) -> Option<&[u8]> {
        (**self).arg(i)
    }
}

/// One key found in a command: its argument index and its key-spec flags
/// ([`key_flags`] bits; 0 for keys found by Redis's generic getkeys procs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    /// Position in the argument list (the command name is 0).
    pub index: usize,
    /// [`key_flags`] bits.
    pub flags: u16,
}

/// One pub/sub channel the ACL checks: its argument index and whether it is a
/// pattern (`PSUBSCRIBE`), which the ACL compares literally instead of globbing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelRef {
    /// Position in the argument list (the command name is 0).
    pub index: usize,
    /// True for `PSUBSCRIBE` patterns.
    pub pattern: bool,
}

/// True when a key with these flags needs read permission (`ACCESS`).
pub fn needs_read(flags: u16) -> bool {
    flags & key_flags::ACCESS != 0
}

/// True when a key with these flags needs write permission (`INSERT`, `UPDATE` or
/// `DELETE`). `RO`/`RW`/`OW`/`RM` play no part in the ACL.
pub fn needs_write(flags: u16) -> bool {
    flags & (key_flags::INSERT | key_flags::UPDATE | key_flags::DELETE) != 0
}

/// Keys of `cmd` (already resolved to the subcommand, arity already checked),
/// exactly as Redis 7.0's `getKeysFromCommandWithSpecs(GET_KEYSPEC_DEFAULT)` finds
/// them, in Redis's order. Clears `out` first.
///
/// The key-spec pass runs when some spec is not `NOT_KEY` and none has
/// `VARIABLE_FLAGS`; if it meets an invalid spec (or an `INCOMPLETE` one) its keys
/// are discarded and the command's getkeys proc runs instead, as it does when the
/// specs are not used at all. A command with neither yields no keys.
pub fn command_keys<A: ArgList + ?Sized>(cmd: &CommandSpec, args: &A, out: &mut Vec<KeyRef>) {
    out.clear();
    // Every command with a getkeys proc has key specs in 7.0 (checked in
    // tests/keys_vs_redis.rs), so spec-less commands stop here.
    if cmd.key_specs.is_empty() {
        return;
    }
    let has_keyspec = cmd
        .key_specs
        .iter()
        .any(|s| s.flags & key_flags::NOT_KEY == 0);
    let has_varflags = cmd
        .key_specs
        .iter()
        .any(|s| s.flags & key_flags::VARIABLE_FLAGS != 0);
    if has_keyspec && !has_varflags {
        if keys_from_specs(cmd.key_specs, args, out) {
            return;
        }
        out.clear();
    }
    if let Some(proc_) = procs::GetKeysProc::of(cmd.name) {
        proc_.run(args, out);
    }
}

/// The keys the proxy's ACL checks: Redis's ([`command_keys`]), then the keys
/// Redis's key specs miss although the command touches them (checked for
/// write access; see the `stricter` module). Clears `out` first.
pub fn acl_keys<A: ArgList + ?Sized>(cmd: &CommandSpec, args: &A, out: &mut Vec<KeyRef>) {
    command_keys(cmd, args, out);
    stricter::add_missed_keys(cmd, args, out);
}

/// Channels of `cmd` that the ACL checks (`commands_with_channels` in `src/db.c`),
/// in argument order. Clears `out` first.
///
/// `PUBLISH`/`SPUBLISH`: argument 1. `SUBSCRIBE`/`SSUBSCRIBE`: every argument from 1.
/// `PSUBSCRIBE`: every argument from 1, as patterns. The `UNSUBSCRIBE` variants are
/// never checked, so they (like every other command) yield nothing.
pub fn command_channels<A: ArgList + ?Sized>(
    cmd: &CommandSpec,
    args: &A,
    out: &mut Vec<ChannelRef>,
) {
    out.clear();
    let (stop, pattern) = match cmd.name {
        "publish" | "spublish" => (args.argc().min(2), false),
        "subscribe" | "ssubscribe" => (args.argc(), false),
        "psubscribe" => (args.argc(), true),
        _ => return,
    };
    out.extend((1..stop).map(|index| ChannelRef { index, pattern }));
}

/// `getKeysUsingKeySpecs` without `RETURN_PARTIAL`: pushes the keys of every usable
/// spec in spec order and returns true, or returns false (Redis's -1) as soon as a
/// spec is invalid or `INCOMPLETE`, leaving partial results in `out`.
///
/// Arithmetic is done in `i64` on Redis's `int` values; the one place where C
/// narrows, `(int)numkeys`, is narrowed the same way.
fn keys_from_specs<A: ArgList + ?Sized>(
    specs: &[KeySpec],
    args: &A,
    out: &mut Vec<KeyRef>,
) -> bool {
    let argc = i64::try_from(args.argc()).unwrap_or(i64::MAX);
    for spec in specs {
        if spec.flags & key_flags::NOT_KEY != 0 {
            continue;
        }
        let first = match spec.begin {
            BeginSearch::Index(pos) => i64::from(pos),
            BeginSearch::Keyword { keyword, startfrom } => {
                match find_keyword(args, argc, keyword, i64::from(startfrom)) {
                    Some(first) => first,
                    // Keyword absent: the spec is skipped, which is not an error.
                    None => continue,
                }
            }
            BeginSearch::Unknown => return false,
        };
        let (first, last, step) = match spec.find {
            FindKeys::Range {
                lastkey,
                keystep,
                limit,
            } => {
                let (lastkey, limit) = (i64::from(lastkey), i64::from(limit));
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    // Redis asserts lastkey == -1 here; `/` truncates like C's.
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, i64::from(keystep))
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => {
                let keynumidx = i64::from(keynumidx);
                if keynumidx >= argc {
                    return false;
                }
                // Redis reads argv[first + keynumidx] unchecked; past the end is
                // impossible for 7.0's table after the arity check, and invalid here.
                let Some(numkeys) = arg_at(args, first + keynumidx).and_then(string2ll) else {
                    return false;
                };
                if numkeys < 0 {
                    return false;
                }
                let first = first + i64::from(firstkey);
                // C: `last = first + (int)numkeys - 1`, the cast keeping the low 32 bits.
                let numkeys = numkeys as i32;
                (first, first + i64::from(numkeys) - 1, i64::from(keystep))
            }
            FindKeys::Unknown => return false,
        };
        if last >= argc || last < first || first >= argc {
            return false;
        }
        // A step below 1 would make Redis loop forever; no 7.0 spec has one.
        if step < 1 {
            return false;
        }
        let mut i = first;
        while i <= last {
            if let Ok(index) = usize::try_from(i) {
                out.push(KeyRef {
                    index,
                    flags: spec.flags,
                });
            }
            i += step;
        }
        if spec.flags & key_flags::INCOMPLETE != 0 {
            return false;
        }
    }
    true
}

/// The `keyword` begin-search: the position after the first case-insensitive match
/// of `keyword`, scanning up from `startfrom` to `argc - 2` when `startfrom > 0`, or
/// down from `argc + startfrom` to 2 otherwise (Redis's loop, bounds included).
fn find_keyword<A: ArgList + ?Sized>(
    args: &A,
    argc: i64,
    keyword: &str,
    startfrom: i64,
) -> Option<i64> {
    let (start, end) = if startfrom > 0 {
        (startfrom, argc - 1)
    } else {
        (argc + startfrom, 1)
    };
    let upward = start <= end;
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            break;
        }
        if arg_at(args, i).is_some_and(|a| is_keyword(a, keyword)) {
            return Some(i + 1);
        }
        i = if upward { i + 1 } else { i - 1 };
    }
    None
}

/// Argument `i` when `i` is a valid index.
fn arg_at<A: ArgList + ?Sized>(args: &A, i: i64) -> Option<&[u8]> {
    usize::try_from(i).ok().and_then(|i| args.arg(i))
}
