//! Step 3, the per-client task: read -> scan -> policy -> forward; reply slots.
//!
//! One task per client waits on both directions at once. Each event does its
//! own work: client bytes are scanned by the [`RequestScanner`] and each
//! command is decided by the [`Session`] (answered here, or forwarded through
//! the [`UpstreamLink`]) at once ([`commands`]); reply frames from the link go
//! to the [`ReplySlots`], which release replies in command order. The client is
//! not read while too much waits to go out either way, and the upstream is not
//! read while the client does not take its replies.
//!
//! Around that: [`throttle`] (rate limits), [`idle`] (idle timeout), [`stats`]
//! (metrics), [`state`] (why a connection ends, handled in [`Conn::close`]).

mod acl_cmds;
pub mod audit;
pub mod client_lines;
pub mod cluster;
mod cluster_commands;
mod commands;
pub mod decision;
mod dedicated_link;
mod idle;
mod io;
pub mod listing;
mod pin;
pub mod policy;
mod pooled_seat;
mod rate_check;
pub mod replies;
pub mod session;
mod shared;
pub mod slots;
mod state;
mod stats;
pub mod stream;
mod throttle;
mod token_clock;
pub mod upstream_link;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Sleep;
use tracing::{debug, info, warn};

use crate::config::{Config, UpstreamAddr, UpstreamTarget};
use crate::edge::AuthMethod;
use crate::logsafe::Escaped;
use crate::metrics::Limit;
use crate::resp::request::{RequestScanner, ScanLimits};
use crate::upstream::Endpoint;
use client_lines::{ClientCard, ClientLines};
use idle::IdleClock;
pub use io::refuse;
use io::ClientIo;
use session::Session;
pub use shared::{ClientIdentity, Live, Shared, Shutdown};
use slots::{ReplySlots, Routing};
pub use state::Close;
use state::Phase;
use stats::ConnStats;
use stream::Passthrough;
use throttle::Throttle;
use token_clock::TokenClock;
use upstream_link::{LinkIo, LinkLost, UpstreamLink};

/// Unsent client output above which the upstream is not read.
pub(super) const CLIENT_OUT_HIGH: usize = 1 << 20;
/// Unsent upstream output above which the client is not read.
const UPSTREAM_OUT_HIGH: usize = 1 << 20;
/// Waiting replies above which the client is not read.
const MAX_SLOTS: usize = 1 << 16;

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
    let ClientIdentity {
        addr: peer,
        local,
        cert_user,
        identity,
    } = client;
    let mut label = format!("id={} addr={peer}", shared::next_client_id());
    if let Some(identity) = &identity {
        label.push_str(&format!(" cert=[{identity}]"));
    }
    let audit = audit::Audit {
        log: Arc::clone(&shared.acl_log),
        client: label,
        peer: peer.to_string(),
        identity: identity.unwrap_or_default(),
    };
    let cert_user = cert_user.filter(|u| match u.access.refuses(peer.ip(), AuthMethod::Cert) {
        Some(rule) => {
            audit.auth_refused(false, b"", &u.name, rule);
            false
        }
        None => true,
    });
    let start_user = cert_user
        .clone()
        .or_else(|| live.users.implicit_default(peer.ip()).cloned());
    let user_slot = match &start_user {
        Some(u) => {
            let max = live.users.limits(&u.name).max_clients;
            let Some(slot) = shared.admission.admit_user(&u.name, max) else {
                shared
                    .reporter
                    .hit(Limit::UserMaxClients, peer, Some(&u.name), "connect");
                refuse(stream, replies::MAX_CLIENTS).await;
                return;
            };
            Some(slot)
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
    let link = match (shared.cluster(), shared.pool()) {
        (Some(cluster), _) => cluster_link(&shared, &live, cluster),
        (None, Some(pool)) => UpstreamLink::pooled(pool),
        (None, None) => UpstreamLink::dedicated(),
    };
    let session = Session::new(cert_user)
        .with_peer(peer.ip())
        .with_audit(audit)
        .with_admission(Arc::clone(&shared.admission), user_slot);
    let mut conn = Conn {
        master: shared.endpoints.watch(),
        scanner: RequestScanner::new(ScanLimits::from(&live.config.limits)),
        idle: IdleClock::new(live.config.limits.idle_timeout),
        token_clock: TokenClock::default(),
        card_user: start_user.as_ref().map_or(0, |u| Arc::as_ptr(u) as usize),
        shared,
        live,
        peer,
        client: ClientIo::new(stream),
        session,
        slots,
        card,
        link,
        release: None,
        passthrough: None,
        throttle: Throttle::default(),
        stats: ConnStats::default(),
        phase: Phase::Open,
        held: false,
    };
    conn.run(&shutdown).await;
    let Conn {
        mut client,
        mut stats,
        shared,
        phase,
        ..
    } = conn;
    stats.flush(shared.reporter.metrics());
    let limit = match &phase {
        Phase::Closing(why) => why.flush_limit(),
        Phase::Open => Close::ClientEof.flush_limit(),
    };
    client.tx.finish(limit).await;
    match phase {
        Phase::Closing(Close::ClientIo(e)) => debug!(%peer, error = %e, "client connection ended"),
        _ => debug!(%peer, "client disconnected"),
    }
}

/// A new client's link through the cluster router.
fn cluster_link(shared: &Shared, live: &Live, cluster: &shared::ClusterUpstream) -> UpstreamLink {
    let renames = &live.renames;
    let named = |name: &[u8]| bytes::Bytes::from(renames.command(&[name]).unwrap_or_default());
    let reply_limit = match live.config.upstream.mode {
        crate::config::UpstreamMode::Pooled { reply_limit, .. } => reply_limit,
        crate::config::UpstreamMode::Dedicated => usize::MAX,
    };
    let router = cluster::router::ClusterRouter::new(
        Arc::clone(&cluster.topology),
        Arc::clone(&cluster.pools),
        Arc::clone(shared.reporter.metrics()),
        reply_limit,
        cluster::router::OwnCommands {
            asking: named(b"ASKING"),
            multi: named(b"MULTI"),
            exec: named(b"EXEC"),
        },
    );
    UpstreamLink::clustered(cluster::link::ClusterSide::new(
        router,
        Arc::clone(&cluster.topology),
    ))
}

/// How `CLIENT INFO`/`LIST` replies describe this connection's client.
fn client_lines(shared: &Shared, config: &Config, card: &Arc<ClientCard>) -> ClientLines {
    let upstream = &config.upstream;
    ClientLines {
        own: Arc::clone(card),
        directory: Arc::clone(&shared.clients),
        upstream_users: vec![upstream.username.clone().unwrap_or("default".into())],
        upstream_socket: match &upstream.target {
            UpstreamTarget::Address(UpstreamAddr::Unix(path)) => {
                Some(format!("{}:0", path.display()))
            }
            _ => None,
        },
    }
}

/// One client connection.
struct Conn<S> {
    shared: Arc<Shared>,
    /// The configuration this connection follows (brought up to date before each batch).
    live: Arc<Live>,
    peer: SocketAddr,
    client: ClientIo<S>,
    scanner: RequestScanner,
    session: Session,
    slots: ReplySlots,
    /// This client as `CLIENT LIST` shows it, and the user it shows (its
    /// address, only compared; 0 for none).
    card: Arc<ClientCard>,
    card_user: usize,
    link: UpstreamLink,
    /// Pooled mode: armed while the client is pinned and holds no state;
    /// it goes back to the pool when this fires.
    release: Option<Pin<Box<Sleep>>>,
    /// The rest of a large command decided before it all arrived.
    passthrough: Option<Passthrough>,
    throttle: Throttle,
    idle: IdleClock,
    /// Closes the connection when its token expires.
    token_clock: TokenClock,
    stats: ConnStats,
    phase: Phase,
    /// A command waits in the input for replies on their way ([`commands`]).
    held: bool,
    /// The master Sentinel names (never changes with a fixed address).
    master: watch::Receiver<Option<Endpoint>>,
}

/// What woke the connection task.
enum Event {
    ClientWrote(std::io::Result<()>),
    Link(LinkIo),
    ClientRead(std::io::Result<usize>),
    PauseOver,
    ReleaseDue,
    MasterChanged(bool),
    IdleCheck,
    TokenExpired,
    Reloaded,
    Drain,
    Abort,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Conn<S> {
    async fn run(&mut self, shutdown: &Shutdown) {
        // Made once, not per turn: each `cancelled()`/`notified()` future
        // registers with a lock shared by every connection when first polled.
        let shared = Arc::clone(&self.shared);
        let reloaded = shared.reloaded();
        let drain = shutdown.drain.cancelled();
        let abort = shutdown.abort.cancelled();
        tokio::pin!(reloaded, drain, abort);
        let mut draining = false;
        while !self.finished() {
            let read_client = self.phase.open()
                && !self.throttle.paused()
                && self.client.tx.out.len() < CLIENT_OUT_HIGH
                && self.link.backlog() < UPSTREAM_OUT_HIGH
                && self.slots.len() < MAX_SLOTS;
            let read_upstream = self.client.tx.out.len() < CLIENT_OUT_HIGH;
            let link_io = self.link.wants_io(read_upstream);
            let write_client = self.client.tx.wants_write();
            let paused = self.throttle.paused();
            let releasing = self.release.is_some();
            let idle = self.idle.watch(self.is_idle());
            let token = self.token_clock.follow(self.session.token_expires()) && self.phase.open();
            let event = tokio::select! {
                biased;
                r = self.client.tx.write(), if write_client => Event::ClientWrote(r),
                r = self.link.io(read_upstream), if link_io => Event::Link(r),
                r = self.client.rx.read(), if read_client => Event::ClientRead(r),
                () = self.throttle.pause_over(), if paused => Event::PauseOver,
                () = io::tick(&mut self.release), if releasing => Event::ReleaseDue,
                () = self.idle.fired(), if idle => Event::IdleCheck,
                () = self.token_clock.fired(), if token => Event::TokenExpired,
                r = self.master.changed() => Event::MasterChanged(r.is_ok()),
                () = &mut reloaded => Event::Reloaded,
                () = &mut drain, if !draining => Event::Drain,
                () = &mut abort => Event::Abort,
            };
            match event {
                Event::ClientWrote(Ok(())) => {
                    self.idle.touch();
                    if self.link.has_replies() {
                        self.route_replies().await;
                    }
                }
                Event::ClientWrote(Err(e)) | Event::ClientRead(Err(e)) => {
                    self.close(Close::ClientIo(e))
                }
                Event::ClientRead(Ok(0)) => self.close(Close::ClientEof),
                Event::ClientRead(Ok(_)) => {
                    self.idle.touch();
                    self.stats.read(self.idle.last_active());
                    self.process_commands().await;
                }
                Event::Link(LinkIo::Wrote) => {}
                Event::Link(LinkIo::Read) => self.route_replies().await,
                Event::Link(LinkIo::Lost(LinkLost::ReplyLimit)) => self.close(Close::ReplyLimit),
                Event::Link(LinkIo::Lost(why)) => self.close(Close::UpstreamLost(why.to_string())),
                Event::PauseOver => self.resume().await,
                Event::ReleaseDue => {
                    self.release = None;
                    self.link.release();
                }
                Event::MasterChanged(true) => {
                    let master = self.master.borrow_and_update().clone();
                    if self.link.outdated(master.as_ref()) {
                        self.close(Close::UpstreamLost(
                            "the upstream master changed (Sentinel failover)".into(),
                        ));
                    }
                }
                // The sender lives as long as the process.
                Event::MasterChanged(false) => {}
                Event::IdleCheck => {
                    if self.idle.expired() {
                        self.close(Close::Idle);
                    }
                }
                Event::TokenExpired => self.close(Close::TokenExpired),
                Event::Reloaded => {
                    reloaded.set(shared.reloaded());
                    self.refresh();
                }
                Event::Drain => {
                    draining = true;
                    self.close(Close::Drain);
                }
                Event::Abort => self.close(Close::Aborted),
            }
            self.watch_release();
        }
    }

    /// Pooled mode: arms the return to the pool while the client is pinned
    /// and holds no server-side state; disarms it as soon as it holds some.
    fn watch_release(&mut self) {
        let clear = self.slots.upstream_pending() == 0
            && !self.slots.subscribed()
            && !self.slots.monitoring()
            && self.passthrough.is_none()
            && !self.session.has_pending_name();
        match (self.link.releasable(clear), self.release.is_some()) {
            (true, false) => {
                self.release = Some(Box::pin(tokio::time::sleep(upstream_link::RELEASE_AFTER)));
            }
            (false, true) => self.release = None,
            _ => {}
        }
    }

    /// True when the task is done: closing, and either nothing more is owed
    /// (in flight, paused, being written) or the reason ends it at once.
    fn finished(&self) -> bool {
        let Phase::Closing(why) = &self.phase else {
            return false;
        };
        !why.answers_in_flight()
            || (self.slots.is_empty()
                && self.link.backlog() == 0
                && !self.throttle.paused()
                && !self.client.tx.wants_write())
    }

    /// True when nothing happens on this connection that the idle timeout
    /// should wait for.
    fn is_idle(&self) -> bool {
        self.slots.is_empty()
            && self.link.backlog() == 0
            && !self.client.tx.wants_write()
            && !self.slots.subscribed()
            && !self.slots.monitoring()
            && !self.throttle.paused()
            && self.passthrough.is_none()
    }

    /// Routes the reply frames that arrived; a command held for them runs now.
    async fn route_replies(&mut self) {
        let delivered = self.link.deliver(&mut Routing {
            slots: &mut self.slots,
            out: &mut self.client.tx.out,
        });
        match delivered {
            Ok(()) => {}
            Err(LinkLost::ReplyLimit) => self.close(Close::ReplyLimit),
            Err(lost) => {
                if matches!(lost, LinkLost::Desync) {
                    warn!(peer = %self.peer, "upstream reply with no command waiting; closing");
                }
                self.close(Close::UpstreamLost(lost.to_string()));
            }
        }
        self.stats.observe(
            self.slots.upstream_answered(),
            self.shared.reporter.metrics(),
        );
        if self.held {
            self.process_commands().await;
        }
    }

    /// Every command in flight gets `reply`, and the link closes. A reply
    /// half sent cannot take an error in its middle: the output is cut there.
    fn fail_in_flight(&mut self, reply: &[u8]) {
        if self.link.mid_frame() {
            self.client.tx.out.clear();
            self.slots.clear();
            self.stats.restart_timings();
        } else {
            self.slots.fail_upstream(&mut self.client.tx.out, reply);
        }
        self.link.close();
    }

    /// Stops taking commands for `why`; the one place that decides what that
    /// means for the replies still owed, the log and the metrics.
    fn close(&mut self, why: Close) {
        match &why {
            Close::ClientEof | Close::Drain | Close::Requested => {}
            Close::ClientIo(_) => {}
            Close::UpstreamLost(reason) => {
                let in_flight = self.slots.upstream_pending();
                if in_flight > 0 || self.link.is_open() {
                    info!(peer = %self.peer, in_flight, reason = %Escaped(reason), "upstream connection lost; closing client");
                }
                self.fail_in_flight(replies::UPSTREAM_LOST);
            }
            Close::Idle => {
                let user = self.session.user(&self.live.users).map(|u| u.name.clone());
                self.shared.reporter.hit(
                    Limit::IdleTimeout,
                    self.peer,
                    user.as_deref(),
                    "closed idle client",
                );
            }
            Close::Reload { user, reason } => {
                let audit = self.session.audit();
                warn!(
                    peer = %audit.peer,
                    identity = %audit.identity,
                    user = user.as_deref().unwrap_or(""),
                    reason,
                    "connection closed by a configuration reload"
                );
                self.link.close();
            }
            Close::TokenExpired => {
                let user = self.session.user(&self.live.users).map(|u| u.name.clone());
                info!(peer = %self.peer, user = user.as_deref().unwrap_or(""), "token expired; closing client after the replies in flight");
                self.shared.reporter.metrics().token_expired();
            }
            Close::Aborted => {
                self.slots
                    .fail_upstream(&mut self.client.tx.out, replies::SHUTTING_DOWN);
                self.link.close();
            }
            Close::ReplyLimit => {
                let user = self.session.user(&self.live.users).map(|u| u.name.clone());
                self.shared.reporter.hit(
                    Limit::PoolReplyLimit,
                    self.peer,
                    user.as_deref(),
                    "closed a client that did not read its replies",
                );
                self.fail_in_flight(replies::REPLY_LIMIT);
            }
        }
        // A reason that ends the connection sooner wins over one that waits.
        let keep = matches!(&self.phase, Phase::Closing(now) if !now.answers_in_flight())
            && why.answers_in_flight();
        if !keep {
            self.phase = Phase::Closing(why);
        }
    }
}
