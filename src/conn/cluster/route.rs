//! Where a command goes in a cluster (pure): the master of its keys' slot,
//! any master, every master with the replies combined, split per slot, or
//! answered here; and `-CROSSSLOT` for keys in several slots of a command
//! that cannot be split.

use crate::command::{command_keys, resolve, CommandSpec, KeyRef, Resolved};
use crate::resp::encode;
use crate::resp::request::Args;
use crate::upstream::cluster::key_slot;

/// Redis's reply to keys in several slots.
pub const CROSSSLOT: &[u8] = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";
/// Redis Cluster's reply to `SELECT` of another database.
pub const SELECT_REFUSED: &[u8] = b"-ERR SELECT is not allowed in cluster mode\r\n";

/// How the replies of a command sent to every master become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Integers added (`DBSIZE`; `DEL`, `UNLINK`, `EXISTS`, `TOUCH` split).
    Sum,
    /// Arrays concatenated (`KEYS`).
    Concat,
    /// The first reply, or the first error (`FLUSHALL`, `SCRIPT LOAD`, `MSET` split ...).
    First,
    /// Arrays put back in the client's key order (`MGET` split).
    Mget,
}

/// One per-slot part of a split command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The slot of its keys.
    pub slot: u16,
    /// The command for that slot.
    pub bytes: Vec<u8>,
    /// For `MGET`: the client's key positions its replies fill.
    pub positions: Vec<usize>,
}

/// Where a command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The master serving this slot.
    Slot(u16),
    /// Any master (keyless).
    Any,
    /// Every master, replies combined.
    All(Combine),
    /// Per-slot parts, replies combined (`total`: the client's keys).
    Split {
        /// How.
        combine: Combine,
        /// The parts, in the order of their first key.
        parts: Vec<Part>,
        /// Keys of the client's command.
        total: usize,
    },
    /// `SCAN`: the master the cursor names, from where it names.
    Scan,
    /// Answered here with this reply (a `CLUSTER` query, `SELECT`, ...).
    Local(LocalAnswer),
    /// Keys in several slots.
    CrossSlot,
}

/// Replies the proxy makes itself in cluster mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAnswer {
    /// A fixed reply.
    Fixed(&'static [u8]),
    /// `CLUSTER SLOTS` / `SHARDS` / `NODES` / `INFO` / `MYID`: depends on
    /// the address the client connected to.
    Cluster(ClusterQuery),
    /// `CLUSTER KEYSLOT key`.
    KeySlot(u16),
}

/// The `CLUSTER` queries answered as a one-node cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterQuery {
    /// `CLUSTER SLOTS`.
    Slots,
    /// `CLUSTER SHARDS`.
    Shards,
    /// `CLUSTER NODES`.
    Nodes,
    /// `CLUSTER INFO`.
    Info,
    /// `CLUSTER MYID`.
    MyId,
}

/// The route of `args` (a command the session forwards); `keys` is scratch.
pub fn route(args: Args<'_>, keys: &mut Vec<KeyRef>) -> Route {
    let Some(name) = args.get(0) else {
        return Route::Any;
    };
    let cmd = match resolve(name, args.get(1)) {
        Resolved::Found(cmd) => cmd,
        _ => return Route::Any,
    };
    if let Some(r) = special(cmd, args) {
        return r;
    }
    slots_of(cmd, args, keys)
}

/// Commands whose route is not their keys'.
fn special(cmd: &CommandSpec, args: Args<'_>) -> Option<Route> {
    let fixed = |r| Some(Route::Local(LocalAnswer::Fixed(r)));
    match cmd.name {
        "select" => match args.get(1) {
            Some(b"0") => fixed(b"+OK\r\n"),
            _ => fixed(SELECT_REFUSED),
        },
        "readonly" | "readwrite" | "asking" => fixed(b"+OK\r\n"),
        "dbsize" => Some(Route::All(Combine::Sum)),
        "keys" => Some(Route::All(Combine::Concat)),
        "flushall" | "flushdb" | "script|load" | "script|flush" | "function|load" => {
            Some(Route::All(Combine::First))
        }
        "scan" => Some(Route::Scan),
        "cluster|slots" => Some(Route::Local(LocalAnswer::Cluster(ClusterQuery::Slots))),
        "cluster|shards" => Some(Route::Local(LocalAnswer::Cluster(ClusterQuery::Shards))),
        "cluster|nodes" => Some(Route::Local(LocalAnswer::Cluster(ClusterQuery::Nodes))),
        "cluster|info" => Some(Route::Local(LocalAnswer::Cluster(ClusterQuery::Info))),
        "cluster|myid" => Some(Route::Local(LocalAnswer::Cluster(ClusterQuery::MyId))),
        "cluster|keyslot" => Some(Route::Local(LocalAnswer::KeySlot(key_slot(args.get(2)?)))),
        "cluster|countkeysinslot" | "cluster|getkeysinslot" => {
            let slot = std::str::from_utf8(args.get(2)?)
                .ok()?
                .parse::<u16>()
                .ok()?;
            Some(
                if usize::from(slot) < crate::upstream::cluster::slot::SLOTS {
                    Route::Slot(slot)
                } else {
                    Route::Any
                },
            )
        }
        "spublish" | "ssubscribe" | "sunsubscribe" => Some(same_slot(
            (1..args.len()).take(if cmd.name == "spublish" {
                1
            } else {
                usize::MAX
            }),
            args,
        )),
        _ => None,
    }
}

/// The slot shared by the arguments at `indexes` (none: any master).
fn same_slot(indexes: impl Iterator<Item = usize>, args: Args<'_>) -> Route {
    let mut slot = None;
    for i in indexes {
        let s = key_slot(args.get(i).unwrap_or_default());
        match slot {
            None => slot = Some(s),
            Some(t) if t != s => return Route::CrossSlot,
            _ => {}
        }
    }
    slot.map_or(Route::Any, Route::Slot)
}

/// Keyed commands: one slot, a split, or `CROSSSLOT`.
fn slots_of(cmd: &CommandSpec, args: Args<'_>, keys: &mut Vec<KeyRef>) -> Route {
    command_keys(cmd, &args, keys);
    match same_slot(keys.iter().map(|k| k.index), args) {
        Route::CrossSlot => split(cmd, args, keys).unwrap_or(Route::CrossSlot),
        other => other,
    }
}

/// `MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS`, `TOUCH` across slots: one
/// command per slot, in the order of each slot's first key.
fn split(cmd: &CommandSpec, args: Args<'_>, keys: &[KeyRef]) -> Option<Route> {
    let (combine, step) = match cmd.name {
        "mget" => (Combine::Mget, 1),
        "mset" => (Combine::First, 2),
        "del" | "unlink" | "exists" | "touch" => (Combine::Sum, 1),
        _ => return None,
    };
    let name = args.get(0)?;
    // Per slot: the command's words and the client's key positions.
    struct Group<'a> {
        slot: u16,
        words: Vec<&'a [u8]>,
        positions: Vec<usize>,
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (position, key) in keys.iter().enumerate() {
        let slot = key_slot(args.get(key.index)?);
        let i = match groups.iter().position(|g| g.slot == slot) {
            Some(i) => i,
            None => {
                groups.push(Group {
                    slot,
                    words: vec![name],
                    positions: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[i];
        for j in 0..step {
            group.words.push(args.get(key.index + j)?);
        }
        group.positions.push(position);
    }
    let parts = groups
        .into_iter()
        .map(|g| Part {
            slot: g.slot,
            bytes: encode::command(&g.words),
            positions: g.positions,
        })
        .collect();
    Some(Route::Split {
        combine,
        parts,
        total: keys.len(),
    })
}

/// Keys of a command (for a transaction's slot); `keys` is scratch.
pub fn command_slot(args: Args<'_>, keys: &mut Vec<KeyRef>) -> Option<Result<u16, ()>> {
    let name = args.get(0)?;
    let Resolved::Found(cmd) = resolve(name, args.get(1)) else {
        return None;
    };
    match slots_of(cmd, args, keys) {
        Route::Slot(s) => Some(Ok(s)),
        Route::CrossSlot | Route::Split { .. } => Some(Err(())),
        _ => None,
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
