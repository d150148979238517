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
pub mod client_lines;
pub mod decision;
mod io;
pub mod policy;
pub mod replies;
pub mod session;
pub mod slots;
pub mod stream;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::acl::log::Reason;
use crate::acl::User;
use crate::acl::Users;
use crate::command::{ChannelRef, KeyRef};
use crate::config::Config;
use crate::limits::rate::{RateBucket, RateVerdict, Rates};
use crate::limits::report::Reporter;
use crate::limits::Admission;
use crate::metrics::{CommandResult, Limit};
use crate::resp::reply::{ReplyScan, ReplyScanner};
use crate::resp::request::{ProtocolError, RequestScan, RequestScanner, ScanLimits};
use crate::upstream::{self, UpstreamStream};
use client_lines::ClientDirectory;
use client_lines::{ClientCard, ClientLines, Listed};
use decision::{Decided, Decision};
use io::{pump, pump_opt, read_into, read_opt, shrink, tick, READ_CHUNK};
use session::{Rebind, Session};
use slots::{Emit, LocalReply, ReplySlots, SlotKind};
use stream::Passthrough;

/// Unsent client output above which the upstream is not read.
const CLIENT_OUT_HIGH: usize = 1 << 20;
/// Unsent upstream output above which the client is not read.
const UPSTREAM_OUT_HIGH: usize = 1 << 20;
/// Waiting replies above which the client is not read.
const MAX_SLOTS: usize = 1 << 16;
/// A partial upstream frame this large is sent on before it is complete.
const STREAM_MIN: usize = 64 * 1024;

/// One configuration generation: what a reload (SIGHUP) replaces whole.
#[derive(Debug)]
pub struct Live {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The users.
    pub users: Arc<Users>,
    /// Rate gates: users' `rate`, per-IP connection and auth-failure rates
    /// (a reload keeps the gates whose settings did not change).
    pub rates: Arc<Rates>,
    /// The rustls configuration new handshakes use, and its certificates' expiry.
    pub tls: crate::tls::ServerTls,
    /// 1 at startup, +1 per successful reload.
    pub generation: u64,
}

/// What every connection shares, for the life of the process.
#[derive(Debug)]
pub struct Shared {
    /// The configuration in force: read lock-free, swapped whole by a reload.
    live: ArcSwap<Live>,
    /// Woken after each reload, so idle and subscribed connections check their user.
    reloaded: Notify,
    /// The `ACL LOG` shared by every connection.
    pub acl_log: Arc<crate::acl::log::AclLog>,
    /// Open connections in total, per IP and per user.
    pub admission: Arc<Admission>,
    /// Counts and logs every limit hit; owns the metrics.
    pub reporter: Arc<Reporter>,
    /// Every upstream connection and the client behind it (`CLIENT LIST`).
    pub clients: Arc<ClientDirectory>,
}

impl Shared {
    /// Process-wide state around the first configuration generation.
    pub fn new(live: Live, reporter: Arc<Reporter>) -> Self {
        Shared {
            live: ArcSwap::from_pointee(live),
            reloaded: Notify::new(),
            acl_log: Arc::default(),
            admission: Arc::default(),
            reporter,
            clients: Arc::default(),
        }
    }

    /// The configuration in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Puts `live` in force: new connections and admissions use it at once, every
    /// open connection before its next command (idle ones are woken for it).
    pub fn install(&self, live: Live) {
        self.live.store(Arc::new(live));
        self.reloaded.notify_waiters();
    }
}

/// Who a new connection is, as the server learned it.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The peer address.
    pub addr: SocketAddr,
    /// The proxy address it connected to.
    pub local: SocketAddr,
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
/// `client` says who it is (address, certificate user and identity), as
/// found in `live`, the configuration its handshake used.
pub async fn serve<S>(
    stream: S,
    client: ClientIdentity,
    shared: Arc<Shared>,
    live: Arc<Live>,
    shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (client_r, client_w) = tokio::io::split(stream);
    let limits = ScanLimits::from(&live.config.limits);
    let ClientIdentity {
        addr: peer,
        local,
        cert_user,
        identity,
    } = client;
    let mut label = format!("id={} addr={peer}", next_client_id());
    if let Some(identity) = &identity {
        label.push_str(&format!(" cert=[{identity}]"));
    }
    let audit = audit::Audit {
        log: Arc::clone(&shared.acl_log),
        client: label,
        peer: peer.to_string(),
        identity: identity.unwrap_or_default(),
    };
    let start_user = cert_user
        .clone()
        .or_else(|| live.users.implicit_default().cloned());
    let user_slot = match &start_user {
        Some(u) => {
            let max = live.users.limits(&u.name).max_clients;
            match shared.admission.admit_user(&u.name, max) {
                Some(slot) => Some(slot),
                None => {
                    shared
                        .reporter
                        .hit(Limit::UserMaxClients, peer, Some(&u.name), "connect");
                    refuse(client_w, replies::MAX_CLIENTS).await;
                    return;
                }
            }
        }
        None => None,
    };
    let card = Arc::new(ClientCard::new(
        peer,
        local,
        start_user.as_ref().map_or("", |u| u.name.as_str()),
    ));
    let mut slots = ReplySlots::new();
    slots.set_client_lines(client_lines(&shared, &live.config, &card));
    let session = Session::new(cert_user)
        .with_audit(audit)
        .with_admission(Arc::clone(&shared.admission), user_slot);
    let idle_timeout = live.config.limits.idle_timeout;
    let mut conn = Conn {
        shared,
        live,
        peer,
        client_r,
        client_w,
        client_dirty: false,
        inbuf: BytesMut::with_capacity(READ_CHUNK),
        out: BytesMut::new(),
        scanner: RequestScanner::new(limits),
        session,
        slots,
        card_user: start_user.as_ref().map_or(0, |u| Arc::as_ptr(u) as usize),
        card,
        upstream: None,
        up_out: BytesMut::new(),
        up_in: BytesMut::new(),
        replies: ReplyScanner::new(),
        streaming: false,
        closing: false,
        client_eof: false,
        passthrough: None,
        rate: None,
        pause: None,
        auth_debt: None,
        idle_timeout,
        idle_timer: None,
        last_active: Instant::now(),
        keys: Vec::new(),
        channels: Vec::new(),
        read_at: Instant::now(),
        timings: VecDeque::new(),
        timed_answered: 0,
        tally: [0; CommandResult::ALL.len()],
        tally_user: None,
    };
    match conn.run(&shutdown).await {
        Ok(()) => debug!(%peer, "client disconnected"),
        Err(e) => debug!(%peer, error = %e, "client connection ended"),
    }
    conn.close().await;
}

/// Answers `reply` to a client refused at connect, then closes.
pub async fn refuse<W: AsyncWrite + Unpin>(mut w: W, reply: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = w.write_all(reply).await;
        let _ = w.flush().await;
        let _ = w.shutdown().await;
    })
    .await;
}

/// A process-wide connection counter, like Redis's client ids.
fn next_client_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// How `CLIENT INFO`/`LIST` replies describe this connection's client.
fn client_lines(shared: &Shared, config: &Config, card: &Arc<ClientCard>) -> ClientLines {
    let upstream = &config.upstream;
    ClientLines {
        own: Arc::clone(card),
        directory: Arc::clone(&shared.clients),
        upstream_users: vec![upstream.username.clone().unwrap_or("default".into())],
        upstream_socket: match &upstream.address {
            crate::config::UpstreamAddr::Unix(path) => Some(format!("{}:0", path.display())),
            crate::config::UpstreamAddr::Tcp(_) => None,
        },
    }
}

struct Upstream {
    r: ReadHalf<UpstreamStream>,
    w: WriteHalf<UpstreamStream>,
    /// Listed in the client directory while open.
    _listed: Option<Listed>,
}

struct Conn<S> {
    shared: Arc<Shared>,
    /// The configuration this connection follows (brought up to date before each batch).
    live: Arc<Live>,
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
    /// This client as `CLIENT LIST` shows it.
    card: Arc<ClientCard>,
    /// The user the card shows (its address, only compared; 0 for none).
    card_user: usize,
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
    /// The rest of a large command decided before it all arrived.
    passthrough: Option<Passthrough>,
    /// The current user (its address, only compared) and its rate gate, if any.
    rate: Option<(usize, Option<Arc<RateBucket>>)>,
    /// Not reading or running commands until this fires (rate delay, auth throttle).
    pause: Option<Pin<Box<Sleep>>>,
    /// A failed AUTH whose reply waits for a token of the per-IP failure rate.
    auth_debt: Option<Decided>,
    idle_timeout: Option<Duration>,
    idle_timer: Option<Pin<Box<Sleep>>>,
    /// Last byte read from or written to the client.
    last_active: Instant,
    keys: Vec<KeyRef>,
    channels: Vec<ChannelRef>,
    /// When the last client read arrived (latency starts there).
    read_at: Instant,
    /// Forwarded commands not yet answered: (read instant, count), oldest first.
    timings: VecDeque<(Instant, u64)>,
    /// `slots.upstream_answered()` already taken out of `timings`.
    timed_answered: u64,
    /// Commands by result not yet added to the metrics, and the user they ran as.
    tally: [u64; CommandResult::ALL.len()],
    tally_user: Option<Arc<User>>,
}

/// What woke the loop.
enum Event {
    ClientWrote(std::io::Result<()>),
    UpstreamWrote(std::io::Result<()>),
    UpstreamRead(std::io::Result<usize>),
    ClientRead(std::io::Result<usize>),
    Resume,
    IdleCheck,
    Reloaded,
    Drain,
    Abort,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Conn<S> {
    async fn run(&mut self, shutdown: &Shutdown) -> std::io::Result<()> {
        let mut draining = false;
        // Made once, not per loop turn: each `cancelled()`/`notified()` future
        // registers with a lock shared by every connection when first polled.
        let shared = Arc::clone(&self.shared);
        let reloaded = shared.reloaded.notified();
        let drain = shutdown.drain.cancelled();
        let abort = shutdown.abort.cancelled();
        tokio::pin!(reloaded, drain, abort);
        loop {
            if self.refresh() {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.flush_client()).await;
                return Ok(());
            }
            // Replies first: they may settle the state a waiting command needs.
            self.process_replies();
            self.process_commands().await;
            let quiet = self.slots.is_empty() && self.up_out.is_empty();
            if self.out.is_empty()
                && !self.client_dirty
                && quiet
                && self.pause.is_none()
                && (self.closing || self.client_eof || draining)
            {
                return Ok(());
            }
            let read_client = !self.closing
                && !self.client_eof
                && !draining
                && self.pause.is_none()
                && self.out.len() < CLIENT_OUT_HIGH
                && self.up_out.len() < UPSTREAM_OUT_HIGH
                && self.slots.len() < MAX_SLOTS;
            let read_upstream = self.upstream.is_some() && self.out.len() < CLIENT_OUT_HIGH;
            let write_client = !self.out.is_empty() || self.client_dirty;
            let write_upstream = self.upstream.is_some() && !self.up_out.is_empty();
            if !read_client && !read_upstream && !write_client && !write_upstream && draining {
                return Ok(());
            }
            let idle_watch = self.idle_watch(quiet && !write_client);
            let paused = self.pause.is_some();
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
                    _ = tick(&mut self.pause), if paused => Event::Resume,
                    _ = tick(&mut self.idle_timer), if idle_watch => Event::IdleCheck,
                    _ = &mut reloaded => Event::Reloaded,
                    _ = &mut drain, if !draining => Event::Drain,
                    _ = &mut abort => Event::Abort,
                }
            };
            match event {
                Event::ClientWrote(r) => {
                    r?;
                    self.last_active = Instant::now();
                }
                Event::UpstreamWrote(Ok(())) => shrink(&mut self.up_out),
                Event::UpstreamWrote(Err(e)) | Event::UpstreamRead(Err(e)) => {
                    self.upstream_lost(&e.to_string())
                }
                Event::UpstreamRead(Ok(0)) => self.upstream_lost("closed by upstream"),
                Event::UpstreamRead(Ok(_)) => {}
                Event::ClientRead(Ok(0)) => self.client_eof = true,
                Event::ClientRead(Ok(_)) => {
                    self.last_active = Instant::now();
                    self.read_at = self.last_active;
                }
                Event::ClientRead(Err(e)) => return Err(e),
                Event::Resume => self.resume().await,
                Event::IdleCheck => {
                    if self.idle_expired() {
                        return Ok(());
                    }
                }
                // The next turn's refresh() picks the new configuration up.
                Event::Reloaded => reloaded.set(shared.reloaded.notified()),
                Event::Drain => draining = true,
                Event::Abort => {
                    self.slots
                        .fail_upstream(&mut self.out, replies::SHUTTING_DOWN);
                    self.upstream = None;
                    self.closing = true;
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.flush_client()).await;
                    return Ok(());
                }
            }
        }
    }

    /// Brings the connection to the configuration in force, if a reload changed
    /// it. True when the connection must close: its user was removed or turned
    /// `off` (like Redis's `ACL DELUSER`: commands in flight get no reply), or it
    /// is subscribed and its user's channel permissions changed (Redis 7.0 kills
    /// such subscribers too; the proxy does not track which channels they hold).
    fn refresh(&mut self) -> bool {
        let current = self.shared.live.load();
        if Arc::ptr_eq(&current, &self.live) {
            return false;
        }
        let old = std::mem::replace(&mut self.live, arc_swap::Guard::into_inner(current));
        self.rate = None;
        let reason = match self.session.rebind(&old.users, &self.live.users) {
            Rebind::Kept {
                channels_changed: true,
            } if self.slots.subscribed() => Some((
                self.session.user(&self.live.users).map(|u| u.name.clone()),
                "channel permissions of a subscribed user changed",
            )),
            Rebind::Kept { .. } => None,
            Rebind::Gone(user) => Some((Some(user), "user removed or turned off")),
        };
        let Some((user, reason)) = reason else {
            return false;
        };
        let audit = self.session.audit();
        warn!(
            peer = %audit.peer,
            identity = %audit.identity,
            user = user.as_deref().unwrap_or(""),
            reason,
            "connection closed by a configuration reload"
        );
        self.upstream = None;
        self.closing = true;
        true
    }

    /// True when `idle_timeout_s` applies now: nothing in flight or to write
    /// (`quiet`), not subscribed, not MONITORing, not paused by the proxy.
    /// Arms the idle timer if it is not armed.
    fn idle_watch(&mut self, quiet: bool) -> bool {
        let Some(idle) = self.idle_timeout else {
            return false;
        };
        let watch = quiet
            && !self.slots.subscribed()
            && !self.slots.monitoring()
            && self.pause.is_none()
            && self.passthrough.is_none();
        if watch && self.idle_timer.is_none() {
            self.idle_timer = Some(Box::pin(tokio::time::sleep_until(self.last_active + idle)));
        }
        watch
    }

    /// The idle timer fired: true (close, like Redis: no reply) when the client
    /// really was idle that long; otherwise the timer is moved to the new deadline.
    fn idle_expired(&mut self) -> bool {
        let Some(idle) = self.idle_timeout else {
            return false;
        };
        let deadline = self.last_active + idle;
        if Instant::now() >= deadline {
            let user = self.session.user(&self.live.users).map(|u| u.name.clone());
            self.shared.reporter.hit(
                Limit::IdleTimeout,
                self.peer,
                user.as_deref(),
                "closed idle client",
            );
            return true;
        }
        if let Some(t) = self.idle_timer.as_mut() {
            t.as_mut().reset(deadline);
        }
        false
    }

    /// Stops reading and running commands for `wait`.
    fn pause_for(&mut self, wait: Duration) {
        self.pause = Some(Box::pin(tokio::time::sleep(wait)));
    }

    /// A pause is over. A failed AUTH waiting for the per-IP failure rate gets
    /// its reply once a token is taken; until then the pause goes on.
    async fn resume(&mut self) {
        self.pause = None;
        let Some(decided) = self.auth_debt.take() else {
            return;
        };
        match self.live.rates.auth_failure(self.peer.ip()) {
            Ok(()) => {
                let mut failed = false;
                self.apply(decided, 0..0, &mut failed).await;
            }
            Err(wait) => {
                self.auth_debt = Some(decided);
                self.pause_for(wait);
            }
        }
    }

    /// The rate gate of the user commands run as now, if it has one.
    fn rate_gate(&mut self, users: &Users) -> Option<Arc<RateBucket>> {
        let user = self.session.user(users);
        let key = user.map_or(0, |u| Arc::as_ptr(u) as usize);
        match &self.rate {
            Some((k, gate)) if *k == key => gate.clone(),
            _ => {
                let gate = user.and_then(|u| self.live.rates.user(&u.name)).cloned();
                self.rate = Some((key, gate.clone()));
                gate
            }
        }
    }

    /// Scans commands out of `inbuf` and applies each decision, until the
    /// buffer ends in an incomplete command or the connection pauses or closes.
    async fn process_commands(&mut self) {
        if self.pause.is_some() {
            // Replies to commands run before the pause still go out.
            self.slots.drain_local(&mut self.out);
            return;
        }
        let mut pos = 0;
        let mut upstream_failed = false;
        let pushed = self.slots.upstream_pushed();
        let users = Arc::clone(&self.live.users);
        while !self.closing && self.pause.is_none() && pos < self.inbuf.len() {
            if let Some(p) = self.passthrough.as_mut() {
                let n = p.remaining.min(self.inbuf.len() - pos);
                if p.forward {
                    self.up_out.extend_from_slice(&self.inbuf[pos..pos + n]);
                }
                p.remaining -= n;
                pos += n;
                if p.remaining == 0 {
                    self.passthrough = None;
                }
                continue;
            }
            let gate = self.rate_gate(&users);
            let unauth = !self.session.authenticated(&users);
            let rest = &self.inbuf[pos..];
            let len = match self.scanner.scan(rest, unauth) {
                Ok(RequestScan::Complete(n)) => n,
                Ok(RequestScan::Incomplete) => {
                    match self
                        .stream_request(pos, gate, &users, &mut upstream_failed)
                        .await
                    {
                        Some(n) => {
                            pos += n;
                            continue;
                        }
                        None => break,
                    }
                }
                Err(e) => {
                    self.protocol_error(&e);
                    break;
                }
            };
            let rest = &self.inbuf[pos..];
            if self.slots.pubsub_context_pending()
                && session::depends_on_pubsub_context(self.scanner.args(rest))
            {
                // Redis decides it in a state that replies on their way will
                // settle; it is scanned again when they have arrived.
                break;
            }
            self.session.set_pubsub_context(self.slots.pubsub_context());
            let gate = gate.filter(|_| !session::rate_exempt(self.scanner.args(rest)));
            if !self
                .rate_allows(gate.as_deref(), pos..pos + len, &mut upstream_failed)
                .await
            {
                if self.pause.is_none() {
                    pos += len;
                }
                continue;
            }
            let rest = &self.inbuf[pos..];
            let decided = self.session.decide(self.scanner.args(rest), &users);
            let command = pos..pos + len;
            pos += len;
            self.settle(decided, command, &mut upstream_failed).await;
        }
        self.inbuf.advance(pos);
        if self.inbuf.is_empty() {
            shrink(&mut self.inbuf);
        }
        self.slots.drain_local(&mut self.out);
        let forwarded = self.slots.upstream_pushed() - pushed;
        if forwarded > 0 {
            self.timings.push_back((self.read_at, forwarded));
        }
        self.flush_tally();
    }

    /// Counts one command's outcome for `portcullis_commands_total`, under the
    /// user it ran as (kept per connection, added to the metrics per batch).
    fn count(&mut self, result: CommandResult) {
        self.count_as(result, None);
    }

    /// Like [`Conn::count`], under `ran_as` when the command left that user
    /// (`RESET`), else under the current one. Also keeps the client's card
    /// (`CLIENT LIST`) on the current user.
    fn count_as(&mut self, result: CommandResult, ran_as: Option<Arc<User>>) {
        let address = |u: Option<&Arc<User>>| u.map_or(0, |u| Arc::as_ptr(u) as usize);
        let current = address(self.session.user(&self.live.users));
        let counted = ran_as.as_ref().map_or(current, |u| address(Some(u)));
        if counted != address(self.tally_user.as_ref()) {
            self.flush_tally();
            self.tally_user = ran_as.or_else(|| self.session.user(&self.live.users).cloned());
        }
        if current != self.card_user {
            self.card_user = current;
            let name = self
                .session
                .user(&self.live.users)
                .map_or("", |u| u.name.as_str());
            self.card.set_user(name);
        }
        self.tally[result as usize] += 1;
    }

    /// Adds the commands counted since the last flush to the metrics
    /// (`user=""` before authentication).
    fn flush_tally(&mut self) {
        if self.tally.iter().any(|&n| n > 0) {
            let user = self.tally_user.as_ref().map_or("", |u| u.name.as_str());
            self.shared.reporter.metrics().commands(user, &self.tally);
            self.tally = [0; CommandResult::ALL.len()];
        }
    }

    /// Records the latency of every forwarded command answered since the last
    /// call: from the read that brought it to the routing of its reply.
    fn observe_latencies(&mut self) {
        let answered = self.slots.upstream_answered();
        let mut done = answered.saturating_sub(self.timed_answered);
        self.timed_answered = answered;
        if done == 0 {
            return;
        }
        let now = Instant::now();
        let metrics = self.shared.reporter.metrics();
        while done > 0 {
            let Some(front) = self.timings.front_mut() else {
                break;
            };
            let n = front.1.min(done);
            let seconds = now.saturating_duration_since(front.0).as_secs_f64();
            for _ in 0..n {
                metrics.observe_latency(seconds);
            }
            front.1 -= n;
            done -= n;
            if front.1 == 0 {
                self.timings.pop_front();
            }
        }
    }

    /// Applies the user's rate to the command at `command`: true to run it;
    /// false when it was answered `-ERR rate limit exceeded` (reject mode) or
    /// the connection paused until a token is due (delay mode).
    async fn rate_allows(
        &mut self,
        gate: Option<&RateBucket>,
        command: std::ops::Range<usize>,
        upstream_failed: &mut bool,
    ) -> bool {
        let Some(gate) = gate else {
            return true;
        };
        let verdict = gate.verdict(self.live.config.limits.rate_mode);
        if verdict == RateVerdict::Go {
            return true;
        }
        let user = self.session.user(&self.live.users).map(|u| u.name.clone());
        match verdict {
            RateVerdict::Wait(wait) => {
                self.shared
                    .reporter
                    .hit(Limit::RateDelay, self.peer, user.as_deref(), "paused");
                self.pause_for(wait);
            }
            _ => {
                self.shared
                    .reporter
                    .hit(Limit::RateReject, self.peer, user.as_deref(), "rejected");
                self.count(CommandResult::RateLimited);
                let decided = self.session.refuse(replies::RATE_LIMITED);
                self.apply(decided, command, upstream_failed).await;
            }
        }
        false
    }

    /// Acts on what a decision did besides its reply (a failed AUTH under the
    /// per-IP failure rate, a user cap), then applies it.
    async fn settle(
        &mut self,
        decided: Decided,
        command: std::ops::Range<usize>,
        upstream_failed: &mut bool,
    ) -> bool {
        let events = self.session.take_events();
        if let Some(user) = events.user_cap {
            self.shared
                .reporter
                .hit(Limit::UserMaxClients, self.peer, Some(&user), "auth");
        }
        // A denial or failed AUTH is counted now (its reply may wait below);
        // anything else once applied, as forwarded or answered here.
        let known = match events.denied {
            Some(Reason::Key) => Some(CommandResult::DeniedKey),
            Some(Reason::Channel) => Some(CommandResult::DeniedChannel),
            Some(Reason::Command | Reason::Auth) => Some(CommandResult::DeniedCommand),
            None => events.auth_failed.then_some(CommandResult::Local),
        };
        if let Some(result) = known {
            self.count(result);
        }
        if events.auth_failed {
            self.shared.reporter.metrics().auth_failure();
            if let Err(wait) = self.live.rates.auth_failure(self.peer.ip()) {
                self.shared.reporter.hit(
                    Limit::AuthFailuresPerIp,
                    self.peer,
                    None,
                    "reply delayed",
                );
                self.auth_debt = Some(decided);
                self.pause_for(wait);
                return false;
            }
        }
        let forwarded = self.apply(decided, command, upstream_failed).await;
        if known.is_none() {
            let result = if forwarded {
                CommandResult::Forwarded
            } else {
                CommandResult::Local
            };
            self.count_as(result, events.reset_from);
        }
        forwarded
    }

    /// Malformed or oversized input: Redis's error, then close.
    fn protocol_error(&mut self, e: &ProtocolError) {
        let limit = match e {
            ProtocolError::TooBigInline
            | ProtocolError::TooBigMbulkCount
            | ProtocolError::TooBigBulkCount => Limit::MaxInlineLen,
            ProtocolError::InvalidMultibulkLength => Limit::MaxMultibulkLen,
            ProtocolError::InvalidBulkLength => Limit::MaxBulkLen,
            ProtocolError::UnauthenticatedMultibulkLength => Limit::UnauthMultibulkLen,
            ProtocolError::UnauthenticatedBulkLength => Limit::UnauthBulkLen,
            ProtocolError::QueryBufferFull => Limit::MaxQueryBuffer,
            ProtocolError::ExpectedDollar(_) | ProtocolError::UnbalancedQuotes => {
                Limit::ProtocolError
            }
        };
        let user = self.session.user(&self.live.users).map(|u| u.name.clone());
        self.shared
            .reporter
            .hit(limit, self.peer, user.as_deref(), &e.to_string());
        self.slots.push_local(LocalReply::Owned(e.reply().into()));
        self.closing = true;
    }

    /// The command at `pos` is incomplete: when it is large and its last
    /// argument still arriving, decide it now and pass the rest through
    /// ([`stream`]). Returns the bytes consumed.
    async fn stream_request(
        &mut self,
        pos: usize,
        gate: Option<Arc<RateBucket>>,
        users: &Users,
        upstream_failed: &mut bool,
    ) -> Option<usize> {
        if self.slots.pubsub_context_pending() {
            return None;
        }
        self.session.set_pubsub_context(self.slots.pubsub_context());
        let rest = &self.inbuf[pos..];
        let early = stream::early(&self.scanner, rest, &mut self.keys, &mut self.channels)?;
        let held = rest.len();
        if !self
            .rate_allows(gate.as_deref(), pos..pos, upstream_failed)
            .await
        {
            if self.pause.is_some() {
                return None;
            }
            // Rejected: drop what arrived and what is still to come.
            self.scanner.reset();
            self.passthrough = Some(Passthrough {
                remaining: early.remaining,
                forward: false,
            });
            return Some(held);
        }
        let decided = self.session.decide(early.args(), users);
        let own_bytes = matches!(decided.decision, Decision::Forward(_));
        let forwarded = self.settle(decided, pos..pos + held, upstream_failed).await;
        self.scanner.reset();
        self.passthrough = Some(Passthrough {
            remaining: early.remaining,
            forward: forwarded && own_bytes,
        });
        Some(held)
    }

    /// Applies one decision; true when the command's bytes went upstream.
    async fn apply(
        &mut self,
        decided: Decided,
        command: std::ops::Range<usize>,
        upstream_failed: &mut bool,
    ) -> bool {
        let Decided { decision, suppress } = decided;
        let (bytes, kind, emit) = match decision {
            Decision::Nothing => return false,
            Decision::Local(r) => {
                if !suppress {
                    self.slots.push_local(r);
                }
                return false;
            }
            Decision::Quit => {
                if !suppress {
                    self.slots.push_local(LocalReply::Static(replies::OK));
                }
                self.closing = true;
                return false;
            }
            Decision::Refuse(reply) => {
                self.slots.push_local(LocalReply::Static(reply));
                self.closing = true;
                return false;
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
            return false;
        }
        if let Some(setname) = self.session.take_pending_name() {
            self.up_out.extend_from_slice(&setname);
            self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
        }
        match &bytes {
            Some(b) => self.up_out.extend_from_slice(b),
            None => self.up_out.extend_from_slice(&self.inbuf[command]),
        }
        self.slots
            .push_upstream(kind, if suppress { Emit::Drop } else { emit });
        if kind == SlotKind::Reset {
            // RESET also logs the upstream connection out: log the proxy back in.
            if let Some(auth) = upstream::auth_command(&self.live.config.upstream) {
                self.up_out.extend_from_slice(&auth);
                self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
            }
        }
        true
    }

    async fn connect_upstream(&mut self) -> bool {
        match upstream::connect(&self.live.config.upstream).await {
            Ok(connected) => {
                let (r, w) = tokio::io::split(connected.stream);
                let listed = connected
                    .client_id
                    .map(|id| self.shared.clients.list(id, Arc::clone(&self.card)));
                self.upstream = Some(Upstream {
                    r,
                    w,
                    _listed: listed,
                });
                self.replies = ReplyScanner::new();
                self.streaming = false;
                true
            }
            Err(e) => {
                self.shared.reporter.metrics().upstream_connect_error();
                warn!(peer = %self.peer, error = %crate::logsafe::Escaped(&e), "upstream unavailable");
                false
            }
        }
    }

    /// Routes every complete upstream frame to its slot; sends on the validated
    /// front of a large incomplete frame when it certainly belongs to the head slot.
    fn process_replies(&mut self) {
        self.route_replies();
        self.observe_latencies();
    }

    fn route_replies(&mut self) {
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
            self.timings.clear();
            self.timed_answered = 0;
        } else {
            self.slots
                .fail_upstream(&mut self.out, replies::UPSTREAM_LOST);
        }
        self.closing = true;
    }

    async fn flush_client(&mut self) -> std::io::Result<()> {
        while !self.out.is_empty() || self.client_dirty {
            pump(&mut self.client_w, &mut self.out, &mut self.client_dirty).await?;
        }
        Ok(())
    }

    async fn close(&mut self) {
        self.flush_tally();
        let grace = std::time::Duration::from_secs(2);
        let _ = tokio::time::timeout(grace, async {
            let _ = self.flush_client().await;
            let _ = self.client_w.shutdown().await;
        })
        .await;
    }
}
