//! The cluster side of a client's upstream link: which commands go through
//! the router (shared connections, one pool per master) and which go on a
//! connection of the client's own to one master (`WATCH`, blocking commands,
//! subscriptions, names: state the shared connections must not hold). As in
//! pooled mode, commands are in flight on one side at a time, so the two
//! never reorder each other's replies.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::route::{self, LocalAnswer, Route, CROSSSLOT};
use super::router::{ClusterRouter, Transaction};
use super::{local, merge};
use crate::command::{flags, resolve, KeyRef, Resolved};
use crate::config::UpstreamAddr;
use crate::conn::pin::{Effect, Held};
use crate::conn::slots::{Emit, LocalReply};
use crate::resp::encode::is_keyword;
use crate::resp::request::Args;
use crate::upstream::cluster::Topology;
use crate::upstream::Renames;

/// `CLIENT TRACKING` / `CACHING`: one client's invalidations cannot come from
/// several masters' connections.
pub const TRACKING_REFUSED: &[u8] =
    b"-ERR CLIENT TRACKING is not available through a cluster upstream\r\n";

/// Where the command being decided goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Own,
    Router,
}

/// What to do before deciding a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Decide it now.
    Go,
    /// Wait for the replies in flight on the other side.
    Hold,
    /// Answer this instead (a command the cluster side cannot serve).
    Answer(&'static [u8]),
}

/// What became of a forwarded command.
#[derive(Debug)]
pub enum Sent {
    /// Answered here.
    Local(LocalReply),
    /// Answered here, and it spoils the open transaction (`EXECABORT`).
    Dirty(&'static [u8]),
    /// Taken by the router: one reply will come.
    Router,
    /// To send on the client's own connection: these bytes (the client's
    /// command: `None`), whose first `drops` replies are not the client's;
    /// then this reply of the proxy's instead of the last upstream one.
    Own {
        /// What to send.
        bytes: Option<Bytes>,
        /// Replies dropped.
        drops: usize,
        /// Answered here after them.
        then: Option<LocalReply>,
    },
}

/// The cluster side of a link.
#[derive(Debug)]
pub struct ClusterSide {
    /// The shared connections.
    pub router: ClusterRouter,
    topology: Arc<Topology>,
    /// The master of the client's own connection, while it is pinned.
    pub pinned: Option<UpstreamAddr>,
    /// The state held there.
    pub held: Held,
    keys: Vec<KeyRef>,
    dest: Dest,
}

impl ClusterSide {
    /// Over `router`.
    pub fn new(router: ClusterRouter, topology: Arc<Topology>) -> Self {
        ClusterSide {
            router,
            topology,
            pinned: None,
            held: Held::default(),
            keys: Vec::new(),
            dest: Dest::Router,
        }
    }

    /// The route of `args` and its slot, if it has one.
    fn route_of(&mut self, args: Args<'_>) -> (Route, Option<u16>) {
        let r = route::route(args, &mut self.keys);
        let slot = match r {
            Route::Slot(s) => Some(s),
            _ => None,
        };
        (r, slot)
    }

    /// Chooses the side `args` goes to; `pending` is every reply the client
    /// waits for. Pins the client when the command needs a connection of its
    /// own and nothing is in flight on the shared ones.
    pub fn before(&mut self, args: Args<'_>, effect: Effect, pending: usize) -> Before {
        if let Some(refused) = refused(args) {
            return Before::Answer(refused);
        }
        let on_router = self.router.in_flight();
        let on_own = pending.saturating_sub(on_router);
        if self.router.txn.is_some() && !is_end_of_transaction(args) {
            // Kept here until EXEC: no I/O now.
            return Before::Go;
        }
        let (route, slot) = self.route_of(args);
        if matches!(route, Route::Local(_) | Route::CrossSlot) {
            return Before::Go;
        }
        // The protocol is followed by the router (RESP3 connections per
        // master): `HELLO` pins only for a name.
        let effect = match effect {
            Effect::ForLife if is_hello_without_name(args) => Effect::Free,
            other => other,
        };
        if self.pinned.is_none() && !effect.needs_own() {
            // The common case: through the router, whatever the node.
            self.dest = Dest::Router;
            return if on_own > 0 { Before::Hold } else { Before::Go };
        }
        let node = self.router.node_for(slot);
        let fan_out = matches!(route, Route::All(_) | Route::Split { .. } | Route::Scan);
        let state = self.held.holds();
        self.dest = match &self.pinned {
            _ if fan_out => Dest::Router,
            Some(p) if *p == node || matches!(route, Route::Any) => Dest::Own,
            // Pinned elsewhere with state: answered CROSSSLOT when sent.
            Some(_) if effect.needs_own() && state => return Before::Go,
            Some(_) if effect.needs_own() => {
                if on_own > 0 {
                    return Before::Hold;
                }
                self.pinned = Some(node);
                self.held = Held::default();
                Dest::Own
            }
            Some(_) => Dest::Router,
            None if effect.needs_own() => {
                if on_router > 0 {
                    return Before::Hold;
                }
                self.pinned = Some(node);
                self.held = Held::default();
                Dest::Own
            }
            None => Dest::Router,
        };
        match self.dest {
            Dest::Own if on_router > 0 => Before::Hold,
            Dest::Router if on_own > 0 => Before::Hold,
            _ => Before::Go,
        }
    }

    /// Sends (or keeps, or answers) a forwarded command: `bytes` as the
    /// upstream names it, `args` as the client sent it.
    pub fn forward(
        &mut self,
        bytes: &[u8],
        args: Args<'_>,
        emit: &Emit,
        renames: &Renames,
        local: SocketAddr,
    ) -> Sent {
        let name = args.get(0).unwrap_or_default();
        let cmd = match resolve(name, args.get(1)) {
            Resolved::Found(cmd) => Some(cmd),
            _ => None,
        };
        let cmd_name = cmd.map_or("", |c| c.name);
        let reads_only = cmd.is_some_and(|c| c.has_flag(flags::READONLY));
        match cmd_name {
            "multi" if self.router.txn.is_some() => {
                return Sent::Local(LocalReply::Static(
                    b"-ERR MULTI calls can not be nested\r\n",
                ))
            }
            "multi" => {
                self.router.txn = Some(Transaction::default());
                return Sent::Local(LocalReply::Static(b"+OK\r\n"));
            }
            "exec" if self.router.txn.is_some() => return self.exec(),
            // A clean DISCARD, or the DISCARD of an EXEC the proxy refused.
            "discard" if self.router.txn.is_some() => {
                self.router.txn = None;
                let reply = match emit {
                    Emit::Replace(r) => LocalReply::Owned(r.clone()),
                    _ => LocalReply::Static(b"+OK\r\n"),
                };
                return self.forget_watch(reply, renames);
            }
            "watch" if self.router.txn.is_some() => {
                return Sent::Local(LocalReply::Static(
                    b"-ERR WATCH inside MULTI is not allowed\r\n",
                ))
            }
            "reset" => {
                self.router.txn = None;
                self.router.resp3 = false;
            }
            // The protocol of the connections the client's commands go on.
            "hello" => match args.get(1) {
                Some(b"3") => self.router.resp3 = true,
                Some(b"2") => self.router.resp3 = false,
                _ => {}
            },
            _ => {}
        }
        if self.router.txn.is_some() {
            return self.queue(bytes, args, reads_only);
        }
        let (route, slot) = self.route_of(args);
        match route {
            Route::Local(answer) => return Sent::Local(self.local_answer(answer, local)),
            Route::CrossSlot => return Sent::Local(LocalReply::Static(CROSSSLOT)),
            _ => {}
        }
        if self.dest == Dest::Own {
            let node = self.router.node_for(slot);
            if slot.is_some() && self.pinned.as_ref() != Some(&node) {
                return Sent::Local(LocalReply::Static(CROSSSLOT));
            }
            self.held.sent(Effect::of(args));
            return Sent::Own {
                bytes: None,
                drops: 0,
                then: None,
            };
        }
        match route {
            Route::Slot(s) => self.router.send(bytes, Some(s), reads_only),
            Route::Any => self.router.send(bytes, None, reads_only),
            Route::All(combine) => {
                self.router
                    .send_group(combine, Vec::new(), 0, reads_only, Some(bytes))
            }
            Route::Split {
                combine,
                mut parts,
                total,
            } => {
                for part in &mut parts {
                    if let Some(renamed) = renames.rewrite(&part.bytes, None) {
                        part.bytes = renamed;
                    }
                }
                self.router
                    .send_group(combine, parts, total, reads_only, None);
            }
            Route::Scan => {
                let cursor = args.get(1).and_then(merge::scan_cursor);
                let Some((index, node_cursor)) = cursor else {
                    return Sent::Local(LocalReply::Static(b"-ERR invalid cursor\r\n"));
                };
                let c = node_cursor.to_string();
                let mut words: Vec<&[u8]> = vec![b"SCAN", c.as_bytes()];
                words.extend(args.iter().skip(2));
                let scan = renames.command(&words).unwrap_or_default();
                if !self.router.send_scan(scan, index) {
                    return Sent::Local(LocalReply::Static(b"-ERR invalid cursor\r\n"));
                }
            }
            Route::Local(_) | Route::CrossSlot => {}
        }
        Sent::Router
    }

    /// A command inside the open transaction: kept, answered `+QUEUED`, or
    /// `-CROSSSLOT` when its keys are in another slot than the transaction's.
    fn queue(&mut self, bytes: &[u8], args: Args<'_>, reads_only: bool) -> Sent {
        let slot = route::command_slot(args, &mut self.keys);
        let pinned = self.pinned.clone();
        let owner = |s: u16, topology: &Topology| topology.map().owner(s).map(|m| m.addr.clone());
        let Some(txn) = self.router.txn.as_mut() else {
            return Sent::Router;
        };
        match slot {
            Some(Err(())) => return Sent::Dirty(CROSSSLOT),
            Some(Ok(s)) => match txn.slot {
                Some(t) if t != s => return Sent::Dirty(CROSSSLOT),
                Some(_) => {}
                None => {
                    // With WATCH, the transaction runs where the watched keys are.
                    if pinned.is_some() && owner(s, &self.topology) != pinned {
                        return Sent::Dirty(CROSSSLOT);
                    }
                    txn.slot = Some(s);
                }
            },
            None => {}
        }
        txn.queue(bytes, reads_only);
        Sent::Local(LocalReply::Static(b"+QUEUED\r\n"))
    }

    /// `EXEC` of a kept transaction: on the own connection when the client
    /// watches keys there, else through the router.
    fn exec(&mut self) -> Sent {
        let own = self.pinned.is_some();
        match self.router.exec(own) {
            Some((unit, frames)) => {
                self.held.sent(Effect::Unwatch);
                Sent::Own {
                    bytes: Some(unit),
                    drops: frames - 1,
                    then: None,
                }
            }
            None => Sent::Router,
        }
    }

    /// A transaction ended here: the keys watched on the own connection are
    /// forgotten there too (`UNWATCH`, its reply not the client's).
    fn forget_watch(&mut self, reply: LocalReply, renames: &Renames) -> Sent {
        if self.pinned.is_none() || !self.held.holds() {
            return Sent::Local(reply);
        }
        self.held.sent(Effect::Unwatch);
        let unwatch = renames.command(&[b"UNWATCH"]).unwrap_or_default();
        Sent::Own {
            bytes: Some(Bytes::from(unwatch)),
            drops: 1,
            then: Some(reply),
        }
    }

    fn local_answer(&self, answer: LocalAnswer, local: SocketAddr) -> LocalReply {
        match answer {
            LocalAnswer::Fixed(r) => LocalReply::Static(r),
            LocalAnswer::KeySlot(s) => LocalReply::Owned(Bytes::from(format!(":{s}\r\n"))),
            LocalAnswer::Cluster(q) => LocalReply::Owned(Bytes::from(local::answer(
                q,
                local,
                self.topology.healthy(),
            ))),
        }
    }

    /// True when the client is pinned with no state held and nothing in
    /// flight on its own connection (`clear`, as the connection task sees it).
    pub fn releasable(&self, clear: bool) -> bool {
        self.pinned.is_some() && !self.held.holds() && clear
    }

    /// Back to the shared connections only.
    pub fn release(&mut self) {
        self.pinned = None;
        self.held = Held::default();
    }
}

/// `HELLO` without `SETNAME`.
fn is_hello_without_name(args: Args<'_>) -> bool {
    args.get(0).is_some_and(|n| is_keyword(n, "hello"))
        && !args.iter().skip(2).any(|a| is_keyword(a, "setname"))
}

/// `EXEC`, `DISCARD` or `RESET`: a transaction kept here ends.
fn is_end_of_transaction(args: Args<'_>) -> bool {
    args.get(0).is_some_and(|n| {
        is_keyword(n, "exec") || is_keyword(n, "discard") || is_keyword(n, "reset")
    })
}

/// What the cluster side refuses before any decision: tracking, which one
/// client cannot have across several masters' connections.
fn refused(args: Args<'_>) -> Option<&'static [u8]> {
    let name = args.get(0)?;
    let sub = args.get(1)?;
    (is_keyword(name, "client") && (is_keyword(sub, "tracking") || is_keyword(sub, "caching")))
        .then_some(TRACKING_REFUSED)
}
