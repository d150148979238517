//! A dedicated upstream link: one upstream connection of the client's own
//! (dedicated mode, or a pooled client pinned by server-side state), opened at
//! the first command it carries. Connecting (with the proxy's upstream
//! `AUTH`), the reply scanner, sending on the front of a large reply before it
//! is complete, backpressure and noticing that the upstream is gone live here.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{ReadHalf, WriteHalf};

use super::client_lines::{ClientCard, Listed};
use super::shared::{Live, Shared};
use super::upstream_link::{LinkIo, LinkLost, ReplySink};
use crate::bufio::{pump, read_into, shrink};
use crate::config::{UpstreamAddr, UpstreamTarget};
use crate::metrics::{UpstreamCounted, UpstreamKind};
use crate::resp::reply::{ReplyScan, ReplyScanner};
use crate::upstream::{self, Endpoint, Endpoints, UpstreamError, UpstreamStream};

/// A partial reply frame this large is sent on before it is complete.
pub(super) const STREAM_MIN: usize = 64 * 1024;

/// An upstream connection of the client's own, opened on first need.
#[derive(Debug)]
pub struct DedicatedLink {
    conn: Option<Open>,
    /// Commands waiting to be written.
    out: BytesMut,
    /// Reply bytes not yet delivered.
    input: BytesMut,
    scanner: ReplyScanner,
    /// The front of `input` continues a frame whose start was already delivered.
    mid_frame: bool,
    /// Written since the last flush (TLS holds records back until flushed).
    unflushed: bool,
    /// The master's generation the connection was opened to (Sentinel).
    generation: u64,
    /// With Sentinel: told when the master answers `-READONLY`.
    endpoints: Option<Arc<Endpoints>>,
}

#[derive(Debug)]
struct Open {
    r: ReadHalf<UpstreamStream>,
    w: WriteHalf<UpstreamStream>,
    /// Listed in the client directory while open (`CLIENT LIST`).
    _listed: Option<Listed>,
    /// Counted in `portcullis_upstream_connections` while open.
    _counted: UpstreamCounted,
}

impl DedicatedLink {
    /// Not open yet.
    pub fn new() -> Self {
        DedicatedLink {
            conn: None,
            out: BytesMut::new(),
            input: BytesMut::new(),
            scanner: ReplyScanner::new(),
            mid_frame: false,
            unflushed: false,
            generation: 0,
            endpoints: None,
        }
    }

    /// True while commands can be sent.
    pub fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// Opens the connection (to `node` when given, a cluster master; else to
    /// the configured upstream, the master with Sentinel; with the proxy's
    /// upstream `AUTH`) and lists it in the client directory as serving `card`.
    pub async fn open(
        &mut self,
        live: &Live,
        shared: &Shared,
        card: &Arc<ClientCard>,
        kind: UpstreamKind,
        node: Option<&UpstreamAddr>,
    ) -> Result<(), UpstreamError> {
        let settings = &live.config.upstream;
        let (tls, renames) = (live.upstream_tls.as_ref(), &live.renames);
        let (connected, generation) = match node {
            Some(addr) => (
                upstream::connect_to(addr, settings, tls, renames, false).await?,
                0,
            ),
            None => upstream::connect(settings, tls, renames, &shared.endpoints).await?,
        };
        let (r, w) = tokio::io::split(connected.stream);
        let listed = connected
            .client_id
            .map(|id| shared.clients.list(id, Arc::clone(card)));
        self.generation = generation;
        self.endpoints = matches!(settings.target, UpstreamTarget::Sentinel(_))
            .then(|| Arc::clone(&shared.endpoints));
        self.unflushed = false;
        self.conn = Some(Open {
            r,
            w,
            _listed: listed,
            _counted: shared.reporter.metrics().upstream_opened(kind),
        });
        self.scanner = ReplyScanner::new();
        self.mid_frame = false;
        Ok(())
    }

    /// Queues a command's bytes (or more of one) for the upstream, after
    /// everything queued before.
    pub fn send(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Bytes queued and not yet written (the client is not read past a limit).
    pub fn backlog(&self) -> usize {
        self.out.len()
    }

    /// True while the front of a reply was delivered and its rest has not
    /// arrived: nothing else can be put in the client's stream until it has.
    pub fn mid_frame(&self) -> bool {
        self.mid_frame
    }

    /// True when [`DedicatedLink::io`] has something to do (`read`: the client
    /// takes replies now).
    pub fn wants_io(&self, read: bool) -> bool {
        self.conn.is_some() && (read || !self.out.is_empty() || self.unflushed)
    }

    /// True while open to a master that is no longer the one `current` is
    /// (Sentinel moved on: this connection's server-side state is on the old one).
    pub fn outdated(&self, current: Option<&Endpoint>) -> bool {
        self.conn.is_some()
            && self.endpoints.is_some()
            && current.is_some_and(|m| m.generation != self.generation)
    }

    /// One turn of I/O: writes queued commands, or (`read`) reads replies.
    pub async fn io(&mut self, read: bool) -> LinkIo {
        let Some(conn) = self.conn.as_mut() else {
            return std::future::pending().await;
        };
        let write = !self.out.is_empty() || self.unflushed;
        tokio::select! {
            biased;
            r = pump(&mut conn.w, &mut self.out, &mut self.unflushed), if write => match r {
                Ok(()) => LinkIo::Wrote,
                Err(e) => LinkIo::Lost(e.into()),
            },
            r = read_into(&mut conn.r, &mut self.input), if read => match r {
                Ok(0) => LinkIo::Lost(LinkLost::Closed),
                Ok(_) => LinkIo::Read,
                Err(e) => LinkIo::Lost(e.into()),
            },
            else => std::future::pending().await,
        }
    }

    /// Hands every complete reply frame to `sink`, and the validated front of
    /// a large incomplete one when the sink may take it.
    pub fn deliver(&mut self, sink: &mut impl ReplySink) -> Result<(), LinkLost> {
        loop {
            match self.scanner.scan(&self.input)? {
                ReplyScan::Complete { len } => {
                    let ty = self.scanner.frame_type().unwrap_or(0);
                    if ty == b'-' && self.input.starts_with(b"-READONLY") {
                        // Sentinel's master is a replica now: find the new one.
                        if let Some(endpoints) = &self.endpoints {
                            endpoints.request_discovery();
                        }
                    }
                    sink.frame(&self.input[..len], ty, self.mid_frame)
                        .map_err(|_| LinkLost::Desync)?;
                    self.input.advance(len);
                    self.mid_frame = false;
                }
                ReplyScan::Incomplete => {
                    let scanned = self.scanner.scanned();
                    let ty = self.scanner.frame_type().unwrap_or(0);
                    if scanned >= STREAM_MIN && (self.mid_frame || sink.may_stream(ty)) {
                        sink.stream(&self.input[..scanned]);
                        self.input.advance(scanned);
                        self.scanner.discard_prefix(scanned);
                        self.mid_frame = true;
                    }
                    shrink(&mut self.input);
                    return Ok(());
                }
            }
        }
    }

    /// Drops the connection and everything queued either way.
    pub fn close(&mut self) {
        self.conn = None;
        self.out.clear();
        self.input.clear();
        self.mid_frame = false;
        self.unflushed = false;
    }
}
