//! Keys that Redis 7.0's key specs miss although the command really touches
//! them. Redis checks them with the connection's own user behind it; behind
//! the proxy the upstream connection may do anything, so the proxy checks
//! these too (the interface's "Hardening").
//!
//! Found by `tests/keys_touched_vs_redis.rs`, which repeats each keyword that
//! introduces keys and watches which keys a real redis-server touches.

use super::procs::arg_is;
use super::{ArgList, KeyRef};
use crate::command::types::key_flags::{OW, UPDATE};
use crate::command::CommandSpec;

/// Appends the keys of `cmd` that Redis's key specs miss to `out`.
///
/// - `GEORADIUS`/`GEORADIUSBYMEMBER`: Redis's key spec takes the first `STORE`
///   / `STOREDIST` key while the command writes the last one given; every such
///   key is a write key here (a superset of what the command can write).
/// - `SORT`: Redis's getkeys proc does not skip a `STORE`'s argument, so in
///   `SORT l STORE STORE ASC` it checks `ASC` while the command writes the key
///   `STORE`; the key the command's own option loop stores to is added.
pub fn add_missed_keys<A: ArgList + ?Sized>(cmd: &CommandSpec, args: &A, out: &mut Vec<KeyRef>) {
    let options_from = match cmd.name {
        "georadius" => 6,
        "georadiusbymember" => 5,
        "sort" => {
            if let Some(index) = sort_store_key(args) {
                out.push(KeyRef {
                    index,
                    flags: OW | UPDATE,
                });
            }
            return;
        }
        _ => return,
    };
    for i in options_from..args.argc().saturating_sub(1) {
        if arg_is(args, i, "store") || arg_is(args, i, "storedist") {
            out.push(KeyRef {
                index: i + 1,
                flags: OW | UPDATE,
            });
        }
    }
}

/// The key `SORT` stores to, read like its own option loop (`sortCommandGeneric`):
/// each option takes its arguments, the last `STORE` wins, and a syntax error
/// ends the loop (the command then fails and stores nothing).
fn sort_store_key<A: ArgList + ?Sized>(args: &A) -> Option<usize> {
    let argc = args.argc();
    let mut store = None;
    let mut j = 2;
    while j < argc {
        let left = argc - j - 1;
        if arg_is(args, j, "asc") || arg_is(args, j, "desc") || arg_is(args, j, "alpha") {
        } else if arg_is(args, j, "limit") && left >= 2 {
            j += 2;
        } else if arg_is(args, j, "store") && left >= 1 {
            store = Some(j + 1);
            j += 1;
        } else if (arg_is(args, j, "by") || arg_is(args, j, "get")) && left >= 1 {
            j += 1;
        } else {
            return None;
        }
        j += 1;
    }
    store
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::by_name;

    fn missed(args: &[&str]) -> Vec<usize> {
        let cmd = by_name(args[0].as_bytes()).expect("command");
        let mut out = Vec::new();
        add_missed_keys(cmd, args, &mut out);
        assert!(out.iter().all(|k| k.flags == OW | UPDATE));
        out.iter().map(|k| k.index).collect()
    }

    #[test]
    fn every_store_key_of_georadius() {
        let g = ["GEORADIUS", "src", "15", "37", "200", "km"];
        let with = |tail: &[&'static str]| [&g[..], tail].concat();
        assert_eq!(missed(&with(&["STORE", "a", "STORE", "b"])), [7, 9]);
        assert_eq!(missed(&with(&["storedist", "a", "StOrE\0x", "b"])), [7, 9]);
        assert_eq!(missed(&with(&["COUNT", "3", "STORE"])), Vec::<usize>::new());
        assert_eq!(
            missed(&["GEORADIUSBYMEMBER", "src", "m", "1", "km", "STORE", "a"]),
            [6]
        );
        // The member of GEORADIUSBYMEMBER is not an option.
        assert_eq!(
            missed(&["GEORADIUSBYMEMBER", "src", "store", "1", "km"]),
            Vec::<usize>::new()
        );
        assert!(missed(&["GEORADIUS_RO", "src", "15", "37", "200", "km"]).is_empty());
    }

    #[test]
    fn the_key_sort_really_stores_to() {
        // Redis's proc checks `ASC` here; SORT writes the key `STORE`.
        assert_eq!(missed(&["SORT", "l", "STORE", "STORE", "ASC"]), [3]);
        assert_eq!(
            missed(&["SORT", "l", "store", "d2", "STORE", "STORE", "LIMIT", "0", "2"]),
            [5]
        );
        assert_eq!(missed(&["SORT", "l", "BY", "STORE", "STORE", "d"]), [5]);
        assert_eq!(
            missed(&["SORT", "l", "LIMIT", "0", "1", "GET", "#"]),
            Vec::<usize>::new()
        );
        // A syntax error: nothing is stored.
        assert_eq!(
            missed(&["SORT", "l", "STORE", "d", "junk"]),
            Vec::<usize>::new()
        );
        assert!(missed(&["SORT_RO", "l", "STORE", "d"]).is_empty());
        assert!(missed(&["SET", "STORE", "x"]).is_empty());
    }
}
