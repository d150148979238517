//! Pooled mode's shared upstream connections: `pool_size` [`lane`]s per
//! upstream server, each one task owning one connection, that many clients'
//! commands share.
//!
//! A client takes a [`Seat`] on one lane (round robin) and keeps it, so its
//! commands stay in order. It submits whole commands in batches; the lane
//! writes every seat's batches in the order they came, remembers whose
//! commands are in flight (a FIFO of runs), and sends each reply frame back to
//! the seat at the front of that FIFO. Nothing a client does can make a lane
//! wait: replies for a client that does not read them pile up in its seat up
//! to `reply_limit` bytes, and then the seat is given up ([`PoolReply::Overflow`]).
//!
//! Only state-free commands travel here: a client that takes server-side
//! state is pinned to a connection of its own first (see `conn::pin`), so a
//! shared connection stays in RESP2, database 0, with no subscriptions, and
//! every command gets exactly one reply frame.

mod lane;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Endpoints, UpstreamView};
use crate::config::UpstreamAddr;
use crate::metrics::Metrics;

/// What a lane reads from the configuration in force each time it connects
/// (`None` once the proxy is going away).
pub type ViewFn = Arc<dyn Fn() -> Option<UpstreamView> + Send + Sync>;

/// What a seat receives, in the order of its commands.
#[derive(Debug)]
pub enum PoolReply {
    /// Whole reply frames, one per command, back to back: `frames` holds each
    /// one's end offset in `data` and its type byte. When the seat was given
    /// [`PoolReply::Part`]s before, the first frame is the rest of that frame.
    Frames {
        /// The frames' bytes.
        data: Bytes,
        /// (end offset, type byte) of each frame.
        frames: Vec<(usize, u8)>,
    },
    /// The validated front (or a further part) of a large frame of type `ty`
    /// still arriving.
    Part {
        /// The bytes.
        data: Bytes,
        /// The frame's type byte.
        ty: u8,
    },
    /// The next `commands` commands get no reply: the shared connection was
    /// lost with them in flight (`lost`), or none could be opened.
    Failed {
        /// How many commands.
        commands: usize,
        /// True when the connection was lost (they may have run), false when
        /// none could be opened (they did not).
        lost: bool,
    },
    /// The client did not take its replies and more than `reply_limit` bytes
    /// waited: nothing more comes to this seat.
    Overflow,
}

/// Batches of one client's commands, written in the order submitted.
#[derive(Debug)]
struct Submission {
    inbox: Arc<Inbox>,
    bytes: Bytes,
    commands: usize,
}

/// What a client's seats (one per pool it uses) share: where replies go,
/// tagged with the seat, and the bytes of them not yet taken.
#[derive(Debug)]
struct Budget {
    tx: mpsc::UnboundedSender<(u32, PoolReply)>,
    /// Reply bytes sent and not yet taken by the client.
    undelivered: AtomicUsize,
    /// Given up: more than `limit` bytes waited.
    overflowed: AtomicBool,
    limit: usize,
}

/// The part of a seat the lane holds.
#[derive(Debug)]
struct Inbox {
    tag: u32,
    budget: Arc<Budget>,
    /// Submitted bytes the lane has not taken yet.
    unwritten: AtomicUsize,
}

impl Inbox {
    /// Sends `reply` (`len` bytes of reply data) unless the client was given
    /// up; gives it up when its replies waiting would pass the limit.
    fn deliver(&self, reply: PoolReply, len: usize) {
        let budget = &self.budget;
        if budget.overflowed.load(Ordering::Relaxed) {
            return;
        }
        let waiting = budget.undelivered.fetch_add(len, Ordering::Relaxed) + len;
        if waiting > budget.limit {
            budget.overflowed.store(true, Ordering::Relaxed);
            let _ = budget.tx.send((self.tag, PoolReply::Overflow));
            return;
        }
        // A client that left drops its receiver: nothing to do.
        let _ = budget.tx.send((self.tag, reply));
    }
}

/// Where a pool's connections go.
#[derive(Debug, Clone)]
enum LaneTarget {
    /// The upstream of the configuration (a fixed address, or Sentinel's master).
    Configured(Arc<Endpoints>),
    /// One node (a cluster master), in RESP3 when `resp3`.
    Node {
        /// Where.
        addr: UpstreamAddr,
        /// `HELLO 3` after connecting.
        resp3: bool,
    },
}

/// The shared connections to one upstream server.
pub struct Pool {
    lanes: Vec<mpsc::UnboundedSender<Submission>>,
    next: AtomicUsize,
    reply_limit: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("lanes", &self.lanes.len())
            .field("reply_limit", &self.reply_limit)
            .finish()
    }
}

impl Pool {
    /// Starts `size` lanes to the configured upstream (each connects at its
    /// first command) on the current runtime. They end when the pool is dropped.
    pub fn start(
        size: usize,
        reply_limit: usize,
        view: ViewFn,
        endpoints: Arc<Endpoints>,
        metrics: Arc<Metrics>,
    ) -> Pool {
        Self::start_lanes(
            LaneTarget::Configured(endpoints),
            size,
            reply_limit,
            view,
            metrics,
        )
    }

    /// Like [`Pool::start`], to the node at `addr` (speaking RESP3 when `resp3`).
    pub fn start_to(
        addr: UpstreamAddr,
        resp3: bool,
        size: usize,
        reply_limit: usize,
        view: ViewFn,
        metrics: Arc<Metrics>,
    ) -> Pool {
        Self::start_lanes(
            LaneTarget::Node { addr, resp3 },
            size,
            reply_limit,
            view,
            metrics,
        )
    }

    fn start_lanes(
        target: LaneTarget,
        size: usize,
        reply_limit: usize,
        view: ViewFn,
        metrics: Arc<Metrics>,
    ) -> Pool {
        let lanes = (0..size.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(lane::run(
                    rx,
                    target.clone(),
                    Arc::clone(&view),
                    Arc::clone(&metrics),
                ));
                tx
            })
            .collect();
        Pool {
            lanes,
            next: AtomicUsize::new(0),
            reply_limit,
        }
    }

    /// Bytes of replies a client may leave unread (`pool_reply_limit`).
    pub fn reply_limit(&self) -> usize {
        self.reply_limit
    }

    /// A seat for a client on the next lane in turn; its replies come to
    /// `replies` tagged `tag`.
    pub fn seat(&self, replies: &SeatReplies, tag: u32) -> Seat {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        Seat {
            lane: self.lanes[i].clone(),
            inbox: Arc::new(Inbox {
                tag,
                budget: Arc::clone(&replies.budget),
                unwritten: AtomicUsize::new(0),
            }),
        }
    }
}

/// Where the replies of a client's seats arrive, in each seat's order.
#[derive(Debug)]
pub struct SeatReplies {
    rx: mpsc::UnboundedReceiver<(u32, PoolReply)>,
    budget: Arc<Budget>,
}

impl SeatReplies {
    /// For a client that may leave `limit` bytes of replies unread.
    pub fn new(limit: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        SeatReplies {
            rx,
            budget: Arc::new(Budget {
                tx,
                undelivered: AtomicUsize::new(0),
                overflowed: AtomicBool::new(false),
                limit,
            }),
        }
    }

    /// The next reply and the tag of its seat (never `None`: the budget
    /// holds a sender).
    pub async fn recv(&mut self) -> Option<(u32, PoolReply)> {
        self.rx.recv().await
    }

    /// The client took `n` bytes of reply data.
    pub fn taken(&self, n: usize) {
        self.budget.undelivered.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One client's place on a lane.
#[derive(Debug)]
pub struct Seat {
    lane: mpsc::UnboundedSender<Submission>,
    inbox: Arc<Inbox>,
}

impl Seat {
    /// Sends `commands` whole commands (their bytes back to back) to be
    /// written after everything submitted before.
    pub fn submit(&self, bytes: Bytes, commands: usize) {
        self.inbox
            .unwritten
            .fetch_add(bytes.len(), Ordering::Relaxed);
        let submission = Submission {
            inbox: Arc::clone(&self.inbox),
            bytes,
            commands,
        };
        if let Err(mpsc::error::SendError(s)) = self.lane.send(submission) {
            // The lane task ended (the runtime is shutting down).
            s.inbox
                .unwritten
                .fetch_sub(s.bytes.len(), Ordering::Relaxed);
            s.inbox.deliver(
                PoolReply::Failed {
                    commands: s.commands,
                    lost: false,
                },
                0,
            );
        }
    }

    /// Submitted bytes the lane has not taken yet.
    pub fn unwritten(&self) -> usize {
        self.inbox.unwritten.load(Ordering::Relaxed)
    }
}
