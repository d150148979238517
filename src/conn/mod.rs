//! Step 3, the per-client task: read -> scan -> policy -> forward; reply slots.
//!
//! One task per client drives both directions with a single `select!` loop:
//! client bytes are scanned by the [`RequestScanner`], each command is decided
//! by the [`Session`] (answered here or forwarded as the client's own bytes),
//! forwarded bytes go to the client's own upstream connection in one write per
//! read batch, and upstream frames found by the [`ReplyScanner`] fill the
//! [`ReplySlots`] in command order. Backpressure: the client is not read while
//! too much is waiting to go out either way, and the upstream is not read while
//! the client is not taking its replies.

mod acl_cmds;
pub mod audit;
pub mod policy;
pub mod session;
pub mod slots;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::acl::Users;
use crate::config::Config;
use crate::resp::reply::{ReplyScan, ReplyScanner};
use crate::resp::request::{RequestScan, RequestScanner, ScanLimits};
use crate::upstream::{self, UpstreamStream};
use session::{replies, Decided, Decision, Session};
use slots::{Emit, LocalReply, ReplySlots, SlotKind};

/// Bytes asked of each client or upstream read.
const READ_CHUNK: usize = 16 * 1024;
/// Unsent client output above which the upstream is not read.
const CLIENT_OUT_HIGH: usize = 1 << 20;
/// Unsent upstream output above which the client is not read.
const UPSTREAM_OUT_HIGH: usize = 1 << 20;
/// Waiting replies above which the client is not read.
const MAX_SLOTS: usize = 1 << 16;
/// A partial upstream frame this large is sent on before it is complete.
const STREAM_MIN: usize = 64 * 1024;
/// Buffers grown past this are given back when they empty.
const SHRINK_ABOVE: usize = 256 * 1024;

/// What every connection shares (replaced whole on reload).
#[derive(Debug)]
pub struct Shared {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The users.
    pub users: Arc<Users>,
    /// The `ACL LOG` shared by every connection.
    pub acl_log: Arc<crate::acl::log::AclLog>,
}

/// Who a new connection is, as the server learned it.
#[derive(Debug, Clone)]
pub struct Client {
    /// The peer address.
    pub addr: SocketAddr,
    /// The `on` user its verified certificate names, if any.
    pub cert_user: Option<Arc<crate::acl::User>>,
    /// Its certificate's identity (CN and SANs) for logs, if it sent one.
    pub identity: Option<String>,
}

/// Signals from the server to its connections.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop reading new commands, finish what is in flight.
    pub drain: CancellationToken,
    /// Grace is over: answer what is still in flight with an error and close.
    pub abort: CancellationToken,
}

/// Serves one client until it leaves, errs, or shutdown completes.
/// `client` says who it is (address, certificate user and identity).
pub async fn serve<S>(stream: S, client: Client, shared: Arc<Shared>, shutdown: Shutdown)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (client_r, client_w) = tokio::io::split(stream);
    let limits = ScanLimits::from(&shared.config.limits);
    let Client {
        addr: peer,
        cert_user,
        identity,
    } = client;
    let mut label = format!("id={} addr={peer}", next_client_id());
    if let Some(identity) = identity {
        label.push_str(&format!(" cert=[{identity}]"));
    }
    let audit = audit::Audit {
        log: Arc::clone(&shared.acl_log),
        client: label,
    };
    let mut conn = Conn {
        shared,
        peer,
        client_r,
        client_w,
        client_dirty: false,
        inbuf: BytesMut::with_capacity(READ_CHUNK),
        out: BytesMut::new(),
        scanner: RequestScanner::new(limits),
        session: Session::new(cert_user).with_audit(audit),
        slots: ReplySlots::new(),
        upstream: None,
        up_out: BytesMut::new(),
        up_in: BytesMut::new(),
        replies: ReplyScanner::new(),
        streaming: false,
        closing: false,
        client_eof: false,
    };
    match conn.run(&shutdown).await {
        Ok(()) => debug!(%peer, "client disconnected"),
        Err(e) => debug!(%peer, error = %e, "client connection ended"),
    }
    conn.close().await;
}

/// A process-wide connection counter, like Redis's client ids.
fn next_client_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

struct Upstream {
    r: ReadHalf<UpstreamStream>,
    w: WriteHalf<UpstreamStream>,
}

struct Conn<S> {
    shared: Arc<Shared>,
    peer: SocketAddr,
    client_r: ReadHalf<S>,
    client_w: WriteHalf<S>,
    client_dirty: bool,
    /// Client bytes not yet scanned into whole commands.
    inbuf: BytesMut,
    /// Replies waiting to be written to the client.
    out: BytesMut,
    scanner: RequestScanner,
    session: Session,
    slots: ReplySlots,
    upstream: Option<Upstream>,
    /// Commands waiting to be written upstream.
    up_out: BytesMut,
    /// Upstream bytes not yet routed.
    up_in: BytesMut,
    replies: ReplyScanner,
    /// The head of `up_in` continues a frame whose start was already sent.
    streaming: bool,
    /// Stop reading commands; close once everything queued is written.
    closing: bool,
    client_eof: bool,
}

/// What woke the loop.
enum Event {
    ClientWrote(io::Result<()>),
    UpstreamWrote(io::Result<()>),
    UpstreamRead(io::Result<usize>),
    ClientRead(io::Result<usize>),
    Drain,
    Abort,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Conn<S> {
    async fn run(&mut self, shutdown: &Shutdown) -> io::Result<()> {
        let mut draining = false;
        loop {
            self.process_commands().await;
            self.process_replies();
            let idle = self.slots.is_empty() && self.up_out.is_empty();
            if self.out.is_empty()
                && !self.client_dirty
                && idle
                && (self.closing || self.client_eof || draining)
            {
                return Ok(());
            }
            let read_client = !self.closing
                && !self.client_eof
                && !draining
                && self.out.len() < CLIENT_OUT_HIGH
                && self.up_out.len() < UPSTREAM_OUT_HIGH
                && self.slots.len() < MAX_SLOTS;
            let read_upstream = self.upstream.is_some() && self.out.len() < CLIENT_OUT_HIGH;
            let write_client = !self.out.is_empty() || self.client_dirty;
            let write_upstream = self.upstream.is_some() && !self.up_out.is_empty();
            if !read_client && !read_upstream && !write_client && !write_upstream && draining {
                return Ok(());
            }
            let event = {
                let up = self.upstream.as_mut();
                let (up_r, up_w) = match up {
                    Some(u) => (Some(&mut u.r), Some(&mut u.w)),
                    None => (None, None),
                };
                tokio::select! {
                    biased;
                    r = pump(&mut self.client_w, &mut self.out, &mut self.client_dirty), if write_client => Event::ClientWrote(r),
                    r = pump_opt(up_w, &mut self.up_out), if write_upstream => Event::UpstreamWrote(r),
                    r = read_opt(up_r, &mut self.up_in), if read_upstream => Event::UpstreamRead(r),
                    r = read_into(&mut self.client_r, &mut self.inbuf), if read_client => Event::ClientRead(r),
                    _ = shutdown.drain.cancelled(), if !draining => Event::Drain,
                    _ = shutdown.abort.cancelled() => Event::Abort,
                }
            };
            match event {
                Event::ClientWrote(r) => r?,
                Event::UpstreamWrote(Ok(())) => shrink(&mut self.up_out),
                Event::UpstreamWrote(Err(e)) | Event::UpstreamRead(Err(e)) => {
                    self.upstream_lost(&e.to_string())
                }
                Event::UpstreamRead(Ok(0)) => self.upstream_lost("closed by upstream"),
                Event::UpstreamRead(Ok(_)) => {}
                Event::ClientRead(Ok(0)) => self.client_eof = true,
                Event::ClientRead(Ok(_)) => {}
                Event::ClientRead(Err(e)) => return Err(e),
                Event::Drain => draining = true,
                Event::Abort => {
                    self.slots
                        .fail_upstream(&mut self.out, replies::SHUTTING_DOWN);
                    self.upstream = None;
                    self.closing = true;
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(1),
                        self.flush_client(),
                    )
                    .await;
                    return Ok(());
                }
            }
        }
    }

    /// Scans complete commands out of `inbuf` and applies each decision.
    async fn process_commands(&mut self) {
        let mut pos = 0;
        let mut upstream_failed = false;
        let users = Arc::clone(&self.shared.users);
        while !self.closing && pos < self.inbuf.len() {
            let unauth = !self.session.authenticated(&users);
            let rest = &self.inbuf[pos..];
            let (len, decided) = match self.scanner.scan(rest, unauth) {
                Ok(RequestScan::Complete(n)) => {
                    (n, self.session.decide(self.scanner.args(rest), &users))
                }
                Ok(RequestScan::Incomplete) => break,
                Err(e) => {
                    warn!(peer = %self.peer, reason = %e, "protocol error, closing client");
                    self.slots.push_local(LocalReply::Owned(e.reply().into()));
                    self.closing = true;
                    break;
                }
            };
            let command = pos..pos + len;
            pos += len;
            self.apply(decided, command, &mut upstream_failed).await;
        }
        self.inbuf.advance(pos);
        if self.inbuf.is_empty() {
            shrink(&mut self.inbuf);
        }
        self.slots.drain_local(&mut self.out);
    }

    async fn apply(
        &mut self,
        decided: Decided,
        command: std::ops::Range<usize>,
        upstream_failed: &mut bool,
    ) {
        let Decided { decision, suppress } = decided;
        let (bytes, kind, emit) = match decision {
            Decision::Nothing => return,
            Decision::Local(r) => {
                if !suppress {
                    self.slots.push_local(r);
                }
                return;
            }
            Decision::Quit => {
                if !suppress {
                    self.slots.push_local(LocalReply::Static(replies::OK));
                }
                self.closing = true;
                return;
            }
            Decision::Forward(kind) => (None, kind, Emit::Pass),
            Decision::ForwardInstead(b, kind, emit) => (Some(b), kind, emit),
        };
        if self.upstream.is_none() && !*upstream_failed {
            *upstream_failed = !self.connect_upstream().await;
        }
        if self.upstream.is_none() {
            if !suppress {
                self.slots
                    .push_local(LocalReply::Static(replies::UPSTREAM_UNAVAILABLE));
            }
            return;
        }
        match &bytes {
            Some(b) => self.up_out.extend_from_slice(b),
            None => self.up_out.extend_from_slice(&self.inbuf[command]),
        }
        self.slots
            .push_upstream(kind, if suppress { Emit::Drop } else { emit });
        if kind == SlotKind::Reset {
            // RESET also logs the upstream connection out: log the proxy back in.
            if let Some(auth) = upstream::auth_command(&self.shared.config.upstream) {
                self.up_out.extend_from_slice(&auth);
                self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
            }
        }
    }

    async fn connect_upstream(&mut self) -> bool {
        match upstream::connect(&self.shared.config.upstream).await {
            Ok(stream) => {
                let (r, w) = tokio::io::split(stream);
                self.upstream = Some(Upstream { r, w });
                self.replies = ReplyScanner::new();
                self.streaming = false;
                true
            }
            Err(e) => {
                warn!(peer = %self.peer, error = %e, "upstream unavailable");
                false
            }
        }
    }

    /// Routes every complete upstream frame to its slot; sends on the validated
    /// front of a large incomplete frame when it certainly belongs to the head slot.
    fn process_replies(&mut self) {
        loop {
            match self.replies.scan(&self.up_in) {
                Ok(ReplyScan::Complete { len }) => {
                    let ty = self.replies.frame_type().unwrap_or(0);
                    let frame = &self.up_in[..len];
                    if self
                        .slots
                        .on_frame(frame, ty, self.streaming, &mut self.out)
                        .is_err()
                    {
                        warn!(peer = %self.peer, "upstream reply with no command waiting; closing");
                        self.upstream = None;
                        self.closing = true;
                        return;
                    }
                    self.up_in.advance(len);
                    self.streaming = false;
                }
                Ok(ReplyScan::Incomplete) => {
                    let scanned = self.replies.scanned();
                    let ty = self.replies.frame_type().unwrap_or(0);
                    if scanned >= STREAM_MIN && (self.streaming || self.slots.can_stream(ty)) {
                        self.out.extend_from_slice(&self.up_in[..scanned]);
                        self.up_in.advance(scanned);
                        self.replies.discard_prefix(scanned);
                        self.streaming = true;
                    }
                    if self.up_in.is_empty() {
                        shrink(&mut self.up_in);
                    }
                    return;
                }
                Err(e) => {
                    self.upstream_lost(&format!("bad reply from upstream: {e}"));
                    return;
                }
            }
        }
    }

    /// The upstream connection is gone: answer everything in flight, then close.
    fn upstream_lost(&mut self, why: &str) {
        let in_flight = self.slots.upstream_pending();
        if in_flight > 0 || self.upstream.is_some() {
            info!(peer = %self.peer, in_flight, reason = why, "upstream connection lost; closing client");
        }
        self.upstream = None;
        self.up_out.clear();
        self.up_in.clear();
        if self.streaming {
            // A reply is half sent: no error can be put in the middle of it.
            self.out.clear();
            self.slots = ReplySlots::new();
        } else {
            self.slots
                .fail_upstream(&mut self.out, replies::UPSTREAM_LOST);
        }
        self.closing = true;
    }

    async fn flush_client(&mut self) -> io::Result<()> {
        while !self.out.is_empty() || self.client_dirty {
            pump(&mut self.client_w, &mut self.out, &mut self.client_dirty).await?;
        }
        Ok(())
    }

    async fn close(&mut self) {
        let grace = std::time::Duration::from_secs(2);
        let _ = tokio::time::timeout(grace, async {
            let _ = self.flush_client().await;
            let _ = self.client_w.shutdown().await;
        })
        .await;
    }
}

/// Writes some of `buf`, or flushes once it is empty.
async fn pump<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &mut BytesMut,
    dirty: &mut bool,
) -> io::Result<()> {
    if buf.is_empty() {
        w.flush().await?;
        *dirty = false;
        return Ok(());
    }
    let n = w.write(buf).await?;
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    buf.advance(n);
    *dirty = true;
    if buf.is_empty() {
        shrink(buf);
    }
    Ok(())
}

async fn pump_opt<W: AsyncWrite + Unpin>(w: Option<&mut W>, buf: &mut BytesMut) -> io::Result<()> {
    let Some(w) = w else {
        return std::future::pending().await;
    };
    let n = w.write(buf).await?;
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    buf.advance(n);
    Ok(())
}

async fn read_into<R: AsyncRead + Unpin>(r: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    r.read_buf(buf).await
}

async fn read_opt<R: AsyncRead + Unpin>(
    r: Option<&mut R>,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    match r {
        Some(r) => read_into(r, buf).await,
        None => std::future::pending().await,
    }
}

/// Gives back a large, now empty buffer.
fn shrink(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > SHRINK_ABOVE {
        *buf = BytesMut::new();
    }
}
