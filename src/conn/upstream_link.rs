//! Step 4, the upstream side of one client connection: the link that carries
//! the client's forwarded commands upstream, in order, and brings the reply
//! frames back, in order, to the connection's reply routing ([`ReplySink`]).
//!
//! The connection task sees one [`UpstreamLink`] whatever stands behind it:
//! in dedicated mode a [`DedicatedLink`], an upstream connection of the
//! client's own; in pooled mode a [`PooledSeat`] on a shared connection, and
//! a [`DedicatedLink`] while the client is pinned by server-side state
//! ([`super::pin`]). Commands go to one of the two at a time and a client
//! moves between them only when nothing is in flight, so its replies stay in
//! order.

use std::sync::Arc;
use std::time::Duration;

use super::client_lines::ClientCard;
use super::cluster::link::{Before, ClusterSide};
use super::dedicated_link::DedicatedLink;
use super::pin::{Effect, Held};
use super::pooled_seat::PooledSeat;
use super::shared::{Live, Shared};
use crate::metrics::UpstreamKind;
use crate::resp::reply::ReplyError;
use crate::resp::request::Args;
use crate::upstream::{Endpoint, Pool, UpstreamError};

/// A pinned client whose state is gone goes back to the pool after this long
/// without needing its own connection (a loop of transactions or blocking
/// pops keeps it).
pub const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// The upstream reply did not fit any slot: the proxy and upstream disagree
/// about the conversation, and the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream sent a reply no command was waiting for")]
pub struct Desync;

/// Where reply frames go: the connection's slot queue and client output.
pub trait ReplySink {
    /// A whole frame of type `ty`, or (`continued`) the rest of a frame whose
    /// front was already passed to [`ReplySink::stream`]. An error means no
    /// command was waiting for it.
    fn frame(&mut self, frame: &[u8], ty: u8, continued: bool) -> Result<(), Desync>;
    /// True when the validated front of an incomplete frame of type `ty` may be
    /// passed on now (it certainly is the plain reply of the command waiting).
    fn may_stream(&self, ty: u8) -> bool;
    /// The validated front (or a further part) of a frame still arriving.
    fn stream(&mut self, part: &[u8]);
    /// The next `commands` forwarded commands get `reply` instead of theirs.
    fn fail(&mut self, commands: usize, reply: &'static [u8]) -> Result<(), Desync>;
    /// True while the client has as much output waiting as it may.
    fn full(&self) -> bool;
}

/// Why a link stopped: the upstream is gone, or cannot be trusted any more.
#[derive(Debug, thiserror::Error)]
pub enum LinkLost {
    /// The connection failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The upstream closed the connection.
    #[error("closed by upstream")]
    Closed,
    /// The upstream sent bytes that are not RESP.
    #[error("bad reply from upstream: {0}")]
    BadReply(#[from] ReplyError),
    /// A reply came that no command was waiting for.
    #[error("upstream sent a reply no command was waiting for")]
    Desync,
    /// The shared connection was lost in the middle of this client's reply.
    #[error("shared upstream connection lost in the middle of a reply")]
    SharedCut,
    /// The client did not read its replies: more than `pool_reply_limit`
    /// bytes of them waited.
    #[error("replies not read: over upstream.pool_reply_limit")]
    ReplyLimit,
}

/// What one turn of link I/O did.
#[derive(Debug)]
pub enum LinkIo {
    /// Commands were written.
    Wrote,
    /// Reply bytes arrived: deliver them.
    Read,
    /// The link is gone.
    Lost(LinkLost),
}

/// The upstream side of one client connection.
#[derive(Debug)]
pub struct UpstreamLink {
    /// The client's own connection (dedicated mode, or pinned).
    own: DedicatedLink,
    /// Pooled mode: the seat, and whether the client is pinned.
    pooled: Option<Pooled>,
    /// Cluster mode: the router over one pool per master.
    pub(super) cluster: Option<ClusterSide>,
}

#[derive(Debug)]
struct Pooled {
    seat: PooledSeat,
    pinned: bool,
    /// The state the own connection holds, while pinned.
    held: Held,
}

impl UpstreamLink {
    /// A link over an upstream connection of the client's own, opened on first need.
    pub fn dedicated() -> Self {
        UpstreamLink {
            own: DedicatedLink::new(),
            pooled: None,
            cluster: None,
        }
    }

    /// A link through a cluster router (own connection to one master while pinned).
    pub fn clustered(side: ClusterSide) -> Self {
        UpstreamLink {
            own: DedicatedLink::new(),
            pooled: None,
            cluster: Some(side),
        }
    }

    /// A link over a seat on a shared connection of `pool` (own connection
    /// while pinned).
    pub fn pooled(pool: &Pool) -> Self {
        UpstreamLink {
            own: DedicatedLink::new(),
            pooled: Some(Pooled {
                seat: PooledSeat::new(pool),
                pinned: false,
                held: Held::default(),
            }),
            cluster: None,
        }
    }

    /// The seat, while commands go through it (pooled and not pinned).
    fn seat(&self) -> Option<&PooledSeat> {
        self.pooled.as_ref().filter(|p| !p.pinned).map(|p| &p.seat)
    }

    fn seat_mut(&mut self) -> Option<&mut PooledSeat> {
        self.pooled
            .as_mut()
            .filter(|p| !p.pinned)
            .map(|p| &mut p.seat)
    }

    /// True while commands can be sent.
    pub fn is_open(&self) -> bool {
        self.seat().is_some() || self.own.is_open()
    }

    /// True when a large command may be decided and passed on before it all
    /// arrived: not on a shared connection (its rest would hold up everyone).
    pub fn streams_requests(&self) -> bool {
        self.seat().is_none() && self.cluster.is_none()
    }

    /// What the command `args` does to the connection's state, in pooled
    /// mode (in dedicated mode nothing here needs to know).
    pub fn effect_of(&self, args: Args<'_>) -> Effect {
        if self.pooled.is_some() || self.cluster.is_some() {
            Effect::of(args)
        } else {
            Effect::Free
        }
    }

    /// What to do before deciding the command `args` (of `effect`); `pending`
    /// is every reply the client waits for. Pooled and cluster modes hold a
    /// command that must run on the other side of what is in flight, and pin
    /// the client when it needs a connection of its own.
    pub fn before(&mut self, args: Args<'_>, effect: Effect, pending: usize) -> Before {
        if let Some(c) = self.cluster.as_mut() {
            return c.before(args, effect, pending);
        }
        if self.needs_pin(effect, pending > 0) {
            Before::Hold
        } else {
            Before::Go
        }
    }

    /// Pooled mode: true when the command of `effect` must wait for the
    /// client's commands in flight on the shared connection (`pooled_in_flight`),
    /// after which it runs pinned. Pins the client when it need not wait.
    fn needs_pin(&mut self, effect: Effect, pooled_in_flight: bool) -> bool {
        let Some(p) = self.pooled.as_mut().filter(|p| !p.pinned) else {
            return false;
        };
        if !effect.needs_own() {
            return false;
        }
        if pooled_in_flight {
            return true;
        }
        p.pinned = true;
        p.held = Held::default();
        false
    }

    /// Follows a command that was sent (it matters on a pinned connection).
    pub fn sent(&mut self, effect: Effect) {
        if let Some(p) = self.pooled.as_mut().filter(|p| p.pinned) {
            p.held.sent(effect);
        }
    }

    /// True when the client is pinned with nothing in flight on its own
    /// connection and no state there (`clear`: the connection task holds
    /// none either: no reply owed, no subscription, no pending name).
    pub fn releasable(&self, clear: bool) -> bool {
        let pinned_free = match (&self.pooled, &self.cluster) {
            (Some(p), _) => p.pinned && !p.held.holds(),
            (_, Some(c)) => c.releasable(true),
            _ => false,
        };
        pinned_free && clear && self.own.backlog() == 0 && !self.own.mid_frame()
    }

    /// Back to the pool: the own connection closes.
    pub fn release(&mut self) {
        if let Some(p) = self.pooled.as_mut() {
            p.pinned = false;
            self.own.close();
        }
        if let Some(c) = self.cluster.as_mut() {
            c.release();
            self.own.close();
        }
    }

    /// Opens the own connection (to the master, with Sentinel; with the
    /// proxy's upstream `AUTH`) and lists it in the client directory as
    /// serving `card`.
    pub async fn open(
        &mut self,
        live: &Live,
        shared: &Shared,
        card: &Arc<ClientCard>,
    ) -> Result<(), UpstreamError> {
        let kind = match (&self.pooled, &self.cluster) {
            (None, None) => UpstreamKind::Dedicated,
            _ => UpstreamKind::Pinned,
        };
        let node = self.cluster.as_ref().and_then(|c| c.pinned.as_ref());
        self.own.open(live, shared, card, kind, node).await
    }

    /// Queues a command's bytes (or more of one) for the upstream, after
    /// everything queued before.
    pub fn send(&mut self, bytes: &[u8]) {
        match self.seat_mut() {
            Some(seat) => seat.send(bytes),
            None => self.own.send(bytes),
        }
    }

    /// Ends a turn of commands: on a shared connection, the `commands`
    /// commands sent since the last turn go as one batch.
    pub fn flush(&mut self, commands: usize) {
        if let Some(seat) = self.seat_mut() {
            seat.submit(commands);
        }
        if let Some(c) = self.cluster.as_mut() {
            c.router.flush();
        }
    }

    /// Bytes queued and not yet written (the client is not read past a limit).
    pub fn backlog(&self) -> usize {
        self.own.backlog()
            + self.seat().map_or(0, PooledSeat::backlog)
            + self.cluster.as_ref().map_or(0, |c| c.router.backlog())
    }

    /// True while the front of a reply was delivered and its rest has not
    /// arrived: nothing else can be put in the client's stream until it has.
    pub fn mid_frame(&self) -> bool {
        self.own.mid_frame() || self.pooled.as_ref().is_some_and(|p| p.seat.mid_frame())
    }

    /// True when [`UpstreamLink::io`] has something to do (`read`: the client
    /// takes replies now). A seat is always listened to, so a seat given up
    /// is noticed even while the client takes nothing.
    pub fn wants_io(&self, read: bool) -> bool {
        self.pooled.is_some() || self.cluster.is_some() || self.own.wants_io(read)
    }

    /// True when replies are kept that the client can take now.
    pub fn has_replies(&self) -> bool {
        self.pooled.as_ref().is_some_and(|p| p.seat.has_replies())
            || self
                .cluster
                .as_ref()
                .is_some_and(|c| c.router.has_replies())
    }

    /// True while open to a master that is no longer the one `current` is
    /// (Sentinel moved on: this connection's server-side state is on the old one).
    pub fn outdated(&self, current: Option<&Endpoint>) -> bool {
        self.own.outdated(current)
    }

    /// One turn of I/O: writes queued commands, or (`read`) reads replies.
    pub async fn io(&mut self, read: bool) -> LinkIo {
        let own = self.own.wants_io(read);
        if let Some(c) = self.cluster.as_mut() {
            let retry = c.router.next_retry();
            return tokio::select! {
                r = self.own.io(read), if own => r,
                r = c.router.receive() => match r {
                    Ok(()) => LinkIo::Read,
                    Err(lost) => LinkIo::Lost(lost),
                },
                () = sleep_until(retry), if retry.is_some() => {
                    c.router.retry_due();
                    LinkIo::Wrote
                }
            };
        }
        let Some(p) = self.pooled.as_mut() else {
            return self.own.io(read).await;
        };
        tokio::select! {
            r = self.own.io(read), if own => r,
            r = p.seat.receive() => match r {
                Ok(()) => LinkIo::Read,
                Err(lost) => LinkIo::Lost(lost),
            },
        }
    }

    /// Hands every complete reply frame to `sink`, and the validated front of
    /// a large incomplete one when the sink may take it.
    pub fn deliver(&mut self, sink: &mut impl ReplySink) -> Result<(), LinkLost> {
        if let Some(p) = self.pooled.as_mut() {
            p.seat.deliver(sink)?;
        }
        if let Some(c) = self.cluster.as_mut() {
            c.router.deliver(sink)?;
        }
        self.own.deliver(sink)
    }

    /// Drops the connection and everything queued either way.
    pub fn close(&mut self) {
        self.own.close();
        if let Some(p) = self.pooled.as_mut() {
            p.seat.clear();
        }
    }
}

/// Completes at `at` (a retry), never without one.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
