//! A client's commands on the shared connections of a cluster: one seat per
//! master it uses, every command an entry in client order, each reply filed
//! into its entry (replies of different masters arrive in any order) and
//! handed on from the front. `MOVED`, `ASK` and `TRYAGAIN` replies are
//! followed here and never reach the client; commands sent to several
//! masters get one reply. A transaction is kept here until `EXEC` and sent
//! whole (`MULTI` ... `EXEC` in one batch), so its node can be chosen by its
//! keys and it can be sent again after a redirect.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::merge::{self, scan_reply};
use super::route::{Combine, Part};
use crate::config::UpstreamAddr;
use crate::metrics::Metrics;
use crate::upstream::cluster::{ClusterPools, Topology};
use crate::upstream::{PoolReply, Seat, SeatReplies};

use super::super::upstream_link::{LinkLost, ReplySink};

mod filing;

/// Redirects followed for one command before its last redirect reply is passed on.
const MAX_REDIRECTS: u8 = 16;
/// `TRYAGAIN`, an `ASK` inside a transaction, or a node that cannot be
/// reached: the command is sent again after this long...
const RETRY_AFTER: Duration = Duration::from_millis(100);
/// ...this many times at most.
const MAX_RETRIES: u8 = 40;

/// A seat on one master's pool.
#[derive(Debug)]
struct SeatOn {
    addr: UpstreamAddr,
    resp3: bool,
    seat: Seat,
    /// Entries whose replies this master sends next, in order.
    expect: VecDeque<u64>,
    /// This turn's commands, submitted together.
    batch: BytesMut,
    batch_commands: usize,
    /// The front of a large frame arriving in parts.
    partial: Option<BytesMut>,
}

/// How an entry's reply becomes the client's.
#[derive(Debug)]
enum Shape {
    /// As it is.
    Plain,
    /// A `SCAN` reply of master `index` of `masters`.
    Scan { index: usize, masters: usize },
    /// The first part of a split or fan-out: it holds the others' replies.
    Lead(Box<Group>),
    /// Another part: its reply goes to the lead `lead`, as part `index`.
    Member { lead: u64, index: usize },
}

#[derive(Debug)]
struct Group {
    combine: Combine,
    replies: Vec<Option<Bytes>>,
    positions: Vec<Vec<usize>>,
    total: usize,
}

/// One command (or part, or transaction) in flight.
#[derive(Debug)]
struct Entry {
    /// What is sent (again, after a redirect).
    bytes: Bytes,
    /// Its slot, when it has keys.
    slot: Option<u16>,
    /// Frames before the one kept (a transaction's `MULTI` and `QUEUED`s,
    /// an `ASKING`'s `+OK`), and how many of them came; `base_skip` without
    /// an `ASKING`.
    skip: usize,
    skipped: usize,
    base_skip: usize,
    /// A redirect seen among the skipped frames (a transaction's).
    redirect_seen: Option<Redirect>,
    redirects: u8,
    retries: u8,
    /// Safe to send again when its connection was lost: it only reads.
    reads_only: bool,
    /// Sent for a RESP3 client (again, then, on a RESP3 connection).
    resp3: bool,
    shape: Shape,
    /// Done: the reply, or nothing to hand on (a member).
    reply: Option<Option<Bytes>>,
}

/// A redirect reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Redirect {
    Moved(u16, UpstreamAddr),
    Ask(u16, UpstreamAddr),
    TryAgain,
}

/// A transaction kept until `EXEC`.
#[derive(Debug, Default)]
pub struct Transaction {
    /// The queued commands, back to back.
    commands: BytesMut,
    count: usize,
    /// The slot of its keys, once one command had keys.
    pub slot: Option<u16>,
    reads_only: bool,
}

impl Transaction {
    /// Keeps one more command (`bytes`, as the upstream names it).
    pub fn queue(&mut self, bytes: &[u8], reads_only: bool) {
        if self.count == 0 {
            self.reads_only = true;
        }
        self.commands.extend_from_slice(bytes);
        self.count += 1;
        self.reads_only &= reads_only;
    }
}

/// The seats of one client and its entries in flight.
pub struct ClusterRouter {
    topology: Arc<Topology>,
    pools: Arc<ClusterPools>,
    metrics: Arc<Metrics>,
    replies: SeatReplies,
    backlog: VecDeque<(u32, PoolReply)>,
    seats: Vec<SeatOn>,
    entries: VecDeque<Entry>,
    /// Id of `entries.front()`.
    first: u64,
    /// Entries to send again, and when.
    retries: VecDeque<(Instant, u64)>,
    /// The open transaction.
    pub txn: Option<Transaction>,
    /// The client speaks RESP3 (`HELLO 3`): its commands go on RESP3 connections.
    pub resp3: bool,
    /// The names the upstream knows `ASKING`, `MULTI` and `EXEC` by.
    asking: Bytes,
    multi: Bytes,
    exec: Bytes,
}

impl std::fmt::Debug for ClusterRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRouter")
            .field("seats", &self.seats.len())
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// The commands the router itself sends, in the upstream's names.
pub struct OwnCommands {
    /// `ASKING`.
    pub asking: Bytes,
    /// `MULTI`.
    pub multi: Bytes,
    /// `EXEC`.
    pub exec: Bytes,
}

impl ClusterRouter {
    /// A router for a new client.
    pub fn new(
        topology: Arc<Topology>,
        pools: Arc<ClusterPools>,
        metrics: Arc<Metrics>,
        reply_limit: usize,
        own: OwnCommands,
    ) -> Self {
        ClusterRouter {
            topology,
            pools,
            metrics,
            replies: SeatReplies::new(reply_limit),
            backlog: VecDeque::new(),
            seats: Vec::new(),
            entries: VecDeque::new(),
            first: 0,
            retries: VecDeque::new(),
            txn: None,
            resp3: false,
            asking: own.asking,
            multi: own.multi,
            exec: own.exec,
        }
    }

    /// Client commands in flight here (parts of one command count once).
    pub fn in_flight(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| !matches!(e.shape, Shape::Member { .. }))
            .count()
    }

    /// Bytes of this turn not yet submitted.
    pub fn backlog(&self) -> usize {
        self.seats
            .iter()
            .map(|s| s.batch.len() + s.seat.unwritten())
            .sum()
    }

    /// The master serving `slot` (any master without one; a seed before
    /// the slot map is known: its `MOVED` will say where to go).
    pub fn node_for(&self, slot: Option<u16>) -> UpstreamAddr {
        let map = self.topology.map_now();
        map.serving(slot)
            .map_or_else(|| self.topology.seed(), |m| m.addr.clone())
    }

    fn seat_index(&mut self, addr: &UpstreamAddr, resp3: bool) -> usize {
        seat_index(&mut self.seats, &self.pools, &self.replies, addr, resp3)
    }

    /// [`Self::seat_index`] of the master serving `slot`, as [`Self::node_for`]
    /// finds it, without copying its address.
    fn seat_for(&mut self, slot: Option<u16>, resp3: bool) -> usize {
        let map = self.topology.map_now();
        let addr = map
            .serving(slot)
            .map_or(self.topology.seed_ref(), |m| &m.addr);
        seat_index(&mut self.seats, &self.pools, &self.replies, addr, resp3)
    }

    fn push_entry(&mut self, entry: Entry, addr: &UpstreamAddr) -> u64 {
        let i = self.seat_index(addr, entry.resp3);
        self.push_entry_to(entry, i)
    }

    fn push_entry_to(&mut self, entry: Entry, i: usize) -> u64 {
        let id = self.first + self.entries.len() as u64;
        let seat = &mut self.seats[i];
        seat.batch.extend_from_slice(&entry.bytes);
        seat.batch_commands += 1;
        seat.expect.push_back(id);
        self.entries.push_back(entry);
        id
    }

    fn entry(&self, bytes: Bytes, slot: Option<u16>, reads_only: bool, shape: Shape) -> Entry {
        Entry {
            resp3: self.resp3,
            bytes,
            slot,
            skip: 0,
            skipped: 0,
            base_skip: 0,
            redirect_seen: None,
            redirects: 0,
            retries: 0,
            reads_only,
            shape,
            reply: None,
        }
    }

    /// A command for the master of `slot` (any master: `None`).
    pub fn send(&mut self, bytes: &[u8], slot: Option<u16>, reads_only: bool) {
        let i = self.seat_for(slot, self.resp3);
        let e = self.entry(
            Bytes::copy_from_slice(bytes),
            slot,
            reads_only,
            Shape::Plain,
        );
        self.push_entry_to(e, i);
    }

    /// `SCAN` (`bytes`, its cursor already the master's own) on master
    /// `index` of the slot map; false when there is no such master.
    pub fn send_scan(&mut self, bytes: Vec<u8>, index: usize) -> bool {
        let map = self.topology.map();
        let masters = map.masters().len().max(1);
        let Some(addr) = map
            .masters()
            .get(index)
            .map(|m| m.addr.clone())
            .or_else(|| (index == 0).then(|| self.topology.seed()))
        else {
            return false;
        };
        let e = self.entry(
            Bytes::from(bytes),
            None,
            true,
            Shape::Scan { index, masters },
        );
        self.push_entry(e, &addr);
        true
    }

    /// Parts for several masters (a split command, or `bytes` to every master
    /// with `parts` empty), one reply for the client.
    pub fn send_group(
        &mut self,
        combine: Combine,
        parts: Vec<Part>,
        total: usize,
        reads_only: bool,
        every: Option<&[u8]>,
    ) {
        let targets: Vec<(Bytes, Option<u16>, Vec<usize>, UpstreamAddr)> = match every {
            Some(bytes) => {
                let map = self.topology.map();
                let mut addrs: Vec<UpstreamAddr> =
                    map.masters().iter().map(|m| m.addr.clone()).collect();
                if addrs.is_empty() {
                    addrs.push(self.topology.seed());
                }
                addrs
                    .into_iter()
                    .map(|a| (Bytes::copy_from_slice(bytes), None, Vec::new(), a))
                    .collect()
            }
            None => parts
                .into_iter()
                .map(|p| {
                    let addr = self.node_for(Some(p.slot));
                    (Bytes::from(p.bytes), Some(p.slot), p.positions, addr)
                })
                .collect(),
        };
        let lead = self.first + self.entries.len() as u64;
        let n = targets.len();
        let mut positions = Vec::with_capacity(n);
        for (index, (bytes, slot, pos, addr)) in targets.into_iter().enumerate() {
            positions.push(pos);
            let shape = if index == 0 {
                Shape::Lead(Box::new(Group {
                    combine,
                    replies: vec![None; n],
                    positions: Vec::new(),
                    total,
                }))
            } else {
                Shape::Member { lead, index }
            };
            self.push_entry(self.entry(bytes, slot, reads_only, shape), &addr);
        }
        if let Some(Entry {
            shape: Shape::Lead(group),
            ..
        }) = self.entry_mut(lead)
        {
            group.positions = positions;
        }
    }

    /// `EXEC` of the open transaction: `MULTI`, its commands and `EXEC` as
    /// one batch to the master of its slot. Returns the batch when it runs on
    /// the client's own connection instead (`own`), with its frame count.
    pub fn exec(&mut self, own: bool) -> Option<(Bytes, usize)> {
        let txn = self.txn.take()?;
        let mut unit = BytesMut::with_capacity(txn.commands.len() + 32);
        unit.extend_from_slice(&self.multi);
        unit.extend_from_slice(&txn.commands);
        unit.extend_from_slice(&self.exec);
        if own {
            return Some((unit.freeze(), txn.count + 2));
        }
        let addr = self.node_for(txn.slot);
        let mut e = self.entry(unit.freeze(), txn.slot, txn.reads_only, Shape::Plain);
        e.skip = txn.count + 1;
        e.base_skip = e.skip;
        self.push_entry(e, &addr);
        None
    }

    /// Submits this turn's batches.
    pub fn flush(&mut self) {
        for s in &mut self.seats {
            if s.batch_commands > 0 {
                s.seat.submit(s.batch.split().freeze(), s.batch_commands);
                s.batch_commands = 0;
            }
        }
    }

    /// True while kept replies wait for the client to take more output.
    pub fn has_replies(&self) -> bool {
        !self.backlog.is_empty() || self.entries.front().is_some_and(|e| e.reply.is_some())
    }

    /// When the next command waiting to be sent again is due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.front().map(|(t, _)| *t)
    }

    /// Waits for the next reply of any seat and keeps it.
    pub async fn receive(&mut self) -> Result<(), LinkLost> {
        match self.replies.recv().await {
            Some((_, PoolReply::Overflow)) => Err(LinkLost::ReplyLimit),
            Some(tagged) => {
                self.backlog.push_back(tagged);
                Ok(())
            }
            None => std::future::pending().await,
        }
    }

    /// Sends again the commands whose retry is due.
    pub fn retry_due(&mut self) {
        let now = Instant::now();
        while self.retries.front().is_some_and(|(t, _)| *t <= now) {
            let Some((_, id)) = self.retries.pop_front() else {
                break;
            };
            let Some(e) = self.entry_mut(id) else {
                continue;
            };
            let slot = e.slot;
            let addr = self.node_for(slot);
            self.resend(id, &addr, false);
        }
        self.flush();
    }

    fn entry_mut(&mut self, id: u64) -> Option<&mut Entry> {
        let i = usize::try_from(id.checked_sub(self.first)?).ok()?;
        self.entries.get_mut(i)
    }

    /// Sends entry `id` to `addr` (with `ASKING` first when `ask`).
    fn resend(&mut self, id: u64, addr: &UpstreamAddr, ask: bool) {
        let asking = self.asking.clone();
        let Some(resp3) = self.entry_mut(id).map(|e| e.resp3) else {
            return;
        };
        let i = self.seat_index(addr, resp3);
        let Some(e) = self.entry_mut(id) else { return };
        e.skipped = 0;
        e.redirect_seen = None;
        e.skip = e.base_skip + usize::from(ask);
        let bytes = e.bytes.clone();
        let seat = &mut self.seats[i];
        if ask {
            seat.batch.extend_from_slice(&asking);
        }
        seat.batch.extend_from_slice(&bytes);
        seat.batch_commands += 1 + usize::from(ask);
        seat.expect.push_back(id);
    }
}

/// The index in `seats` of the seat on `addr`'s pool for `resp3`, taken from
/// the pool on first use.
fn seat_index(
    seats: &mut Vec<SeatOn>,
    pools: &ClusterPools,
    replies: &SeatReplies,
    addr: &UpstreamAddr,
    resp3: bool,
) -> usize {
    if let Some(i) = seats
        .iter()
        .position(|s| &s.addr == addr && s.resp3 == resp3)
    {
        return i;
    }
    let pool = pools.pool(addr, resp3);
    let tag = u32::try_from(seats.len()).unwrap_or(u32::MAX);
    seats.push(SeatOn {
        addr: addr.clone(),
        resp3,
        seat: pool.seat(replies, tag),
        expect: VecDeque::new(),
        batch: BytesMut::new(),
        batch_commands: 0,
        partial: None,
    });
    seats.len() - 1
}
