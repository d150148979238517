//! Step 1: listeners, accept, TLS handshake under a deadline, client identity,
//! and graceful shutdown. Each accepted client is handed to [`crate::conn::serve`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::acl::{User, Users};
use crate::config::Config;
use crate::conn::replies;
use crate::conn::{self, Live, Shared, Shutdown};
use crate::limits::rate::Rates;
use crate::limits::report::Reporter;
use crate::limits::{CapRefusal, ConnSlot};
use crate::logsafe::Escaped;
use crate::metrics::{self, Limit, Metrics};
use crate::tls;
use crate::upstream::{sentinel, Renames};

/// Everything the proxy needs, built and checked before anything listens.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Config, users and TLS in force, and what lives as long as the process.
    pub shared: Arc<Shared>,
}

/// Builds users and TLS from `config`; every problem is reported, one per entry.
pub fn prepare(config: Config) -> Result<Prepared, Vec<String>> {
    let live = build_live(config, &Rates::default(), 1)?;
    let reporter = Arc::new(Reporter::new(Arc::new(Metrics::new())));
    set_cert_expiry(reporter.metrics(), &live);
    Ok(Prepared {
        shared: Arc::new(Shared::new(live, reporter)),
    })
}

/// One configuration generation from `config`: users, TLS, and rate gates
/// (those of `previous` whose settings are unchanged are kept).
fn build_live(config: Config, previous: &Rates, generation: u64) -> Result<Live, Vec<String>> {
    let mut errors = Vec::new();
    let users = Users::from_config(&config)
        .map_err(|e| errors.extend(e))
        .ok();
    let tls = tls::load_server(&config.tls)
        .map_err(|e| errors.push(e.to_string()))
        .ok();
    let upstream_tls = match &config.upstream.tls {
        Some(settings) => tls::load_upstream(settings)
            .map_err(|e| errors.push(e.to_string()))
            .ok(),
        None => None,
    };
    match (users, tls) {
        (Some(users), Some(tls)) if errors.is_empty() => Ok(Live {
            rates: Arc::new(Rates::from_config_keeping(&config, previous)),
            renames: Arc::new(Renames::new(&config.upstream.rename_commands)),
            config: Arc::new(config),
            users: Arc::new(users),
            tls,
            upstream_tls,
            generation,
        }),
        _ => Err(errors),
    }
}

/// What a reload changed, for its log line.
#[derive(Debug)]
pub struct Reloaded {
    /// The new generation.
    pub generation: u64,
    /// Users in the new configuration.
    pub users: usize,
    /// Settings that changed but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// SIGHUP: re-reads the configuration file at `path` (and the acl file,
/// certificates, key, CA bundle and CRLs it names), checks all of it, and only
/// then puts it in force. On any error the running configuration stays.
pub fn reload(shared: &Shared, path: &Path) -> Result<Reloaded, Vec<String>> {
    let config = crate::config::load(path).map_err(|e| vec![e.to_string()])?;
    let current = shared.live();
    let live = build_live(config, &current.rates, current.generation + 1)?;
    let (old, new) = (&current.config.server, &live.config.server);
    let mut needs_restart = Vec::new();
    for (changed, key) in [
        (old.listen != new.listen, "server.listen"),
        (
            old.plaintext_listen != new.plaintext_listen,
            "server.plaintext_listen",
        ),
        (
            old.metrics_listen != new.metrics_listen,
            "server.metrics_listen",
        ),
        (
            old.worker_threads != new.worker_threads,
            "server.worker_threads",
        ),
        (
            std::mem::discriminant(&current.config.upstream.target)
                != std::mem::discriminant(&live.config.upstream.target),
            "upstream (address or [upstream.sentinel])",
        ),
        (
            current.config.upstream.mode != live.config.upstream.mode,
            "upstream.mode, pool_size, pool_reply_limit",
        ),
    ] {
        if changed {
            needs_restart.push(key);
        }
    }
    set_cert_expiry(shared.reporter.metrics(), &live);
    let reloaded = Reloaded {
        generation: live.generation,
        users: live.users.len(),
        needs_restart,
    };
    shared.install(live);
    Ok(reloaded)
}

/// Reloads and logs the outcome (INFO, or ERROR with every problem) and counts it.
fn reload_logged(shared: &Shared, path: &Path) {
    let metrics = shared.reporter.metrics();
    match reload(shared, path) {
        Ok(r) => {
            metrics.reload(true);
            info!(
                path = %path.display(),
                generation = r.generation,
                users = r.users,
                "configuration reloaded"
            );
            for key in r.needs_restart {
                warn!(key, "changed setting takes effect only after a restart");
            }
        }
        Err(errors) => {
            metrics.reload(false);
            error!(
                path = %path.display(),
                errors = %errors.join("; "),
                "configuration reload failed; the running configuration stays in force"
            );
        }
    }
}

/// Notes the notAfter of the server certificate and of the client CAs in force.
fn set_cert_expiry(metrics: &Metrics, live: &Live) {
    if let Some(t) = live.tls.server_not_after {
        metrics.set_cert_expiry("server", t);
    }
    if let Some(t) = live.tls.client_ca_not_after {
        metrics.set_cert_expiry("client_ca", t);
    }
    if let Some(t) = live.upstream_tls.as_ref().and_then(|u| u.client_not_after) {
        metrics.set_cert_expiry("upstream_client", t);
    }
}

/// What the process is asked to do while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGHUP: reload the configuration.
    Reload,
    /// SIGTERM / SIGINT: drain and stop.
    Stop,
}

/// Binds every listener, serves until `control` says stop (reloading the
/// configuration file at `path` on each `Reload`), then drains connections for
/// up to `server.shutdown_grace_s`.
pub async fn run(
    prepared: Prepared,
    path: &Path,
    mut control: tokio::sync::mpsc::Receiver<Control>,
) -> std::io::Result<()> {
    let shared = Arc::clone(&prepared.shared);
    let config = Arc::clone(&shared.live().config);
    let shutdown = Shutdown::default();
    let tracker = TaskTracker::new();
    for (addrs, tls, kind) in [
        (&config.server.listen, true, "tls"),
        (&config.server.plaintext_listen, false, "plaintext"),
    ] {
        for addr in addrs {
            let listener = bind(*addr, kind).await?;
            let ctx = Listener {
                shared: Arc::clone(&shared),
                tls,
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
            };
            tracker.spawn(ctx.accept_loop(listener));
        }
    }
    let metrics_stop = CancellationToken::new();
    watch_sentinels(&shared, metrics_stop.clone());
    shared.start_pool(metrics_stop.clone());
    if let Some(addr) = config.server.metrics_listen {
        let listener = bind(addr, "metrics").await?;
        let metrics = Arc::clone(shared.reporter.metrics());
        let drain = shutdown.drain.clone();
        let probe = Arc::clone(&shared);
        let ready = Arc::new(move || {
            let probe = Arc::clone(&probe);
            let draining = drain.is_cancelled();
            Box::pin(async move { !draining && upstream_reachable(&probe).await })
                as metrics::ReadyFuture
        });
        tokio::spawn(metrics::serve(
            listener,
            metrics,
            ready,
            metrics_stop.clone(),
        ));
    }
    while let Some(Control::Reload) = control.recv().await {
        let (shared, path) = (Arc::clone(&shared), path.to_path_buf());
        // Reading and parsing files blocks: keep it off the connections' threads.
        let _ = tokio::task::spawn_blocking(move || reload_logged(&shared, &path)).await;
    }
    let grace = shared.live().config.server.shutdown_grace;
    info!(
        grace_s = grace.as_secs(),
        "shutting down: draining connections"
    );
    shutdown.drain.cancel();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        warn!("shutdown grace over: answering what is still in flight with an error");
        shutdown.abort.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(3), tracker.wait()).await;
    }
    metrics_stop.cancel();
    info!("stopped");
    Ok(())
}

/// `/readyz`: the upstream (the master, with Sentinel) accepts a connection
/// within its connect timeout; a cluster said `cluster_state:ok` at the last
/// refresh and every slot has a master.
async fn upstream_reachable(shared: &Shared) -> bool {
    if let Some(cluster) = shared.cluster() {
        return cluster.topology.healthy();
    }
    let live = shared.live();
    crate::upstream::connect(
        &live.config.upstream,
        live.upstream_tls.as_ref(),
        &live.renames,
        &shared.endpoints,
    )
    .await
    .is_ok()
}

/// Follows the master the sentinels name, while the upstream is a Sentinel one.
fn watch_sentinels(shared: &Arc<Shared>, stop: CancellationToken) {
    if !matches!(
        shared.live().config.upstream.target,
        crate::config::UpstreamTarget::Sentinel(_)
    ) {
        return;
    }
    let view = {
        let shared = Arc::clone(shared);
        move || shared.upstream_view()
    };
    tokio::spawn(sentinel::watch(Arc::clone(&shared.endpoints), view, stop));
}

async fn bind(addr: SocketAddr, kind: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({kind}): {e}"))
    })?;
    info!(kind, addr = %listener.local_addr()?, "listening");
    Ok(listener)
}

struct Listener {
    shared: Arc<Shared>,
    /// A TLS listener (else plaintext).
    tls: bool,
    shutdown: Shutdown,
    tracker: TaskTracker,
}

/// TLS handshakes spent at once on telling refused clients why; past this a
/// refused connection is just closed.
const REFUSAL_HANDSHAKES: usize = 32;
/// Longest handshake spent on a refused client.
const REFUSAL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

impl Listener {
    /// The acceptor for a new connection: the certificates in force now.
    fn acceptor(&self, live: &Live) -> Option<TlsAcceptor> {
        self.tls
            .then(|| TlsAcceptor::from(Arc::clone(&live.tls.config)))
    }

    async fn accept_loop(self, listener: TcpListener) {
        let refusals = Arc::new(Semaphore::new(REFUSAL_HANDSHAKES));
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = self.shutdown.drain.cancelled() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let shared = &self.shared;
                    let live = shared.live();
                    // Cheapest first: a peer outside `server.allow`, or a flood
                    // from one address, is closed before anything is spent on it.
                    if live
                        .config
                        .server
                        .allow
                        .as_ref()
                        .is_some_and(|allow| !allow.contains(peer.ip()))
                    {
                        shared
                            .reporter
                            .hit(Limit::Allow, peer, None, "not in server.allow");
                        continue;
                    }
                    if live.rates.new_connection(peer.ip()).is_err() {
                        shared
                            .reporter
                            .hit(Limit::ConnRatePerIp, peer, None, "closed at accept");
                        continue;
                    }
                    let slot = match shared.admission.admit(peer.ip(), &live.config.limits) {
                        Ok(slot) => slot,
                        Err(cap) => {
                            let limit = match cap {
                                CapRefusal::MaxClients => Limit::MaxClients,
                                CapRefusal::MaxClientsPerIp => Limit::MaxClientsPerIp,
                            };
                            shared.reporter.hit(limit, peer, None, "refused at accept");
                            if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                                let acceptor = self.acceptor(&live);
                                self.tracker.spawn(refuse(tcp, acceptor, permit));
                            }
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    let task = AcceptedClient {
                        shared: Arc::clone(shared),
                        acceptor: self.acceptor(&live),
                        live,
                        shutdown: self.shutdown.clone(),
                    };
                    self.tracker.spawn(task.serve(tcp, peer, slot));
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Tells a client over a connection cap `-ERR max number of clients reached`
/// (over TLS when the short handshake succeeds), then closes. The cap was
/// decided before this handshake, and `permit` bounds how many run at once.
async fn refuse(tcp: TcpStream, acceptor: Option<TlsAcceptor>, permit: OwnedSemaphorePermit) {
    let Some(acceptor) = acceptor else {
        conn::refuse(tcp, replies::MAX_CLIENTS).await;
        return;
    };
    if let Ok(Ok(tls)) = tokio::time::timeout(REFUSAL_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
    {
        conn::refuse(tls, replies::MAX_CLIENTS).await;
    }
    drop(permit);
}

/// An accepted TCP connection on its way to being served.
struct AcceptedClient {
    shared: Arc<Shared>,
    /// The configuration in force when the connection was accepted.
    live: Arc<Live>,
    acceptor: Option<TlsAcceptor>,
    shutdown: Shutdown,
}

impl AcceptedClient {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr, slot: ConnSlot) {
        let metrics = Arc::clone(self.shared.reporter.metrics());
        metrics.connection_opened();
        self.serve_admitted(tcp, peer).await;
        metrics.connection_closed();
        drop(slot);
    }

    async fn serve_admitted(self, tcp: TcpStream, peer: SocketAddr) {
        let Ok(local) = tcp.local_addr() else {
            return;
        };
        let AcceptedClient {
            shared,
            live,
            acceptor,
            shutdown,
        } = self;
        let Some(acceptor) = acceptor else {
            let client = conn::ClientIdentity {
                addr: peer,
                local,
                cert_user: None,
                identity: None,
            };
            conn::serve(tcp, client, shared, live, shutdown).await;
            return;
        };
        let deadline = live.config.limits.handshake_timeout;
        let tls = match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                warn!(%peer, reason = %Escaped(&e), "TLS handshake failed");
                shared.reporter.metrics().handshake_failed("error");
                return;
            }
            Err(_) => {
                shared.reporter.metrics().handshake_failed("timeout");
                shared.reporter.hit(
                    Limit::HandshakeTimeout,
                    peer,
                    None,
                    "TLS handshake not done in time",
                );
                return;
            }
        };
        let client = client_of(&live, tls.get_ref().1, peer, local);
        conn::serve(tls, client, shared, live, shutdown).await;
    }
}

/// The client: its certificate's identity (for logs) and the `on` user the
/// certificate names, if any.
fn client_of(
    live: &Live,
    conn: &rustls::ServerConnection,
    peer: SocketAddr,
    local: SocketAddr,
) -> conn::ClientIdentity {
    let identity = tls::peer_identity(conn);
    conn::ClientIdentity {
        addr: peer,
        local,
        cert_user: identity.as_ref().and_then(|id| cert_user(live, id, peer)),
        identity: identity.map(|id| id.describe()),
    }
}

/// The `on` user named by a verified certificate, if any.
fn cert_user(live: &Live, identity: &tls::PeerIdentity, peer: SocketAddr) -> Option<Arc<User>> {
    let auth = &live.config.auth;
    let Some(name) = identity.user_name(auth.cert_user, &auth.cert_map) else {
        debug!(%peer, identity = %identity.describe(), "certificate names no user");
        return None;
    };
    match live.users.get(name) {
        Some(u) if u.enabled => {
            debug!(%peer, user = name, "authenticated by certificate");
            Some(Arc::clone(u))
        }
        Some(_) => {
            warn!(%peer, identity = %identity.describe(), user = %Escaped(name), reason = "user is off", "certificate user refused");
            None
        }
        None => {
            warn!(%peer, identity = %identity.describe(), user = %Escaped(name), reason = "no such user", "certificate user refused");
            None
        }
    }
}
