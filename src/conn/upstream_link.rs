//! Step 4, the upstream side of one client connection: the link that carries
//! the client's forwarded commands upstream, in order, and brings the reply
//! frames back, in order, to the connection's reply routing ([`ReplySink`]).
//!
//! The connection task sees one [`UpstreamLink`] whatever stands behind it;
//! today that is always a [`DedicatedLink`], an upstream connection of the
//! client's own.

use std::sync::Arc;

use super::client_lines::ClientCard;
use super::dedicated_link::DedicatedLink;
use super::shared::{Live, Shared};
use crate::resp::reply::ReplyError;
use crate::upstream::{Endpoint, UpstreamError};

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
    own: DedicatedLink,
}

impl UpstreamLink {
    /// A link over an upstream connection of the client's own, opened on first need.
    pub fn dedicated() -> Self {
        UpstreamLink {
            own: DedicatedLink::new(),
        }
    }

    /// True while commands can be sent.
    pub fn is_open(&self) -> bool {
        self.own.is_open()
    }

    /// Opens the connection (to the master, with Sentinel; with the proxy's
    /// upstream `AUTH`) and lists it in the client directory as serving `card`.
    pub async fn open(
        &mut self,
        live: &Live,
        shared: &Shared,
        card: &Arc<ClientCard>,
    ) -> Result<(), UpstreamError> {
        self.own.open(live, shared, card).await
    }

    /// Queues a command's bytes (or more of one) for the upstream, after
    /// everything queued before.
    pub fn send(&mut self, bytes: &[u8]) {
        self.own.send(bytes);
    }

    /// Bytes queued and not yet written (the client is not read past a limit).
    pub fn backlog(&self) -> usize {
        self.own.backlog()
    }

    /// True while the front of a reply was delivered and its rest has not
    /// arrived: nothing else can be put in the client's stream until it has.
    pub fn mid_frame(&self) -> bool {
        self.own.mid_frame()
    }

    /// True when [`UpstreamLink::io`] has something to do (`read`: the client
    /// takes replies now).
    pub fn wants_io(&self, read: bool) -> bool {
        self.own.wants_io(read)
    }

    /// True while open to a master that is no longer the one `current` is
    /// (Sentinel moved on: this connection's server-side state is on the old one).
    pub fn outdated(&self, current: Option<&Endpoint>) -> bool {
        self.own.outdated(current)
    }

    /// One turn of I/O: writes queued commands, or (`read`) reads replies.
    pub async fn io(&mut self, read: bool) -> LinkIo {
        self.own.io(read).await
    }

    /// Hands every complete reply frame to `sink`, and the validated front of
    /// a large incomplete one when the sink may take it.
    pub fn deliver(&mut self, sink: &mut impl ReplySink) -> Result<(), LinkLost> {
        self.own.deliver(sink)
    }

    /// Drops the connection and everything queued either way.
    pub fn close(&mut self) {
        self.own.close();
    }
}
