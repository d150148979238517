//! Step 1: listeners, accept, TLS handshake under a deadline, client identity,
//! and graceful shutdown. Each accepted client is handed to [`crate::conn::serve`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::acl::{User, Users};
use crate::config::Config;
use crate::conn::session::replies;
use crate::conn::{self, Shared, Shutdown};
use crate::limits::rate::Rates;
use crate::limits::report::Reporter;
use crate::limits::{CapRefusal, ConnSlot};
use crate::metrics::{self, Limit, Metrics};
use crate::tls;

/// Everything the proxy needs, built and checked before anything listens.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Config and users, shared by every connection.
    pub shared: Arc<Shared>,
    /// The rustls server configuration.
    pub tls: Arc<rustls::ServerConfig>,
}

/// Builds users and TLS from `config`; every problem is reported, one per entry.
pub fn prepare(config: Config) -> Result<Prepared, Vec<String>> {
    let mut errors = Vec::new();
    let users = Users::from_config(&config)
        .map_err(|e| errors.extend(e))
        .ok();
    let tls = tls::load_server_config(&config.tls)
        .map_err(|e| errors.push(e.to_string()))
        .ok();
    match (users, tls) {
        (Some(users), Some(tls)) if errors.is_empty() => Ok(Prepared {
            shared: Arc::new(Shared {
                rates: Arc::new(Rates::from_config(&config)),
                config: Arc::new(config),
                users: Arc::new(users),
                acl_log: Arc::default(),
                admission: Arc::default(),
                reporter: Arc::new(Reporter::new(Arc::new(Metrics::new()))),
            }),
            tls,
        }),
        _ => Err(errors),
    }
}

/// Binds every listener, serves until `stop` resolves, then drains connections
/// for up to `server.shutdown_grace_s`.
pub async fn run(
    prepared: Prepared,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let config = Arc::clone(&prepared.shared.config);
    let shutdown = Shutdown::default();
    let tracker = TaskTracker::new();
    let acceptor = TlsAcceptor::from(Arc::clone(&prepared.tls));
    for addr in &config.server.listen {
        let listener = bind(*addr, "tls").await?;
        let ctx = Listener {
            prepared: prepared.clone(),
            acceptor: Some(acceptor.clone()),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        };
        tracker.spawn(ctx.accept_loop(listener));
    }
    for addr in &config.server.plaintext_listen {
        let listener = bind(*addr, "plaintext").await?;
        let ctx = Listener {
            prepared: prepared.clone(),
            acceptor: None,
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        };
        tracker.spawn(ctx.accept_loop(listener));
    }
    let metrics_stop = CancellationToken::new();
    if let Some(addr) = config.server.metrics_listen {
        let listener = bind(addr, "metrics").await?;
        let metrics = Arc::clone(prepared.shared.reporter.metrics());
        let drain = shutdown.drain.clone();
        let ready = Arc::new(move || !drain.is_cancelled());
        tokio::spawn(metrics::serve(
            listener,
            metrics,
            ready,
            metrics_stop.clone(),
        ));
    }
    stop.await;
    info!(
        grace_s = config.server.shutdown_grace.as_secs(),
        "shutting down: draining connections"
    );
    shutdown.drain.cancel();
    tracker.close();
    if tokio::time::timeout(config.server.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        warn!("shutdown grace over: answering what is still in flight with an error");
        shutdown.abort.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(3), tracker.wait()).await;
    }
    metrics_stop.cancel();
    info!("stopped");
    Ok(())
}

async fn bind(addr: SocketAddr, kind: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({kind}): {e}"))
    })?;
    info!(kind, addr = %listener.local_addr()?, "listening");
    Ok(listener)
}

struct Listener {
    prepared: Prepared,
    acceptor: Option<TlsAcceptor>,
    shutdown: Shutdown,
    tracker: TaskTracker,
}

/// TLS handshakes spent at once on telling refused clients why; past this a
/// refused connection is just closed.
const REFUSAL_HANDSHAKES: usize = 32;
/// Longest handshake spent on a refused client.
const REFUSAL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

impl Listener {
    async fn accept_loop(self, listener: TcpListener) {
        let refusals = Arc::new(Semaphore::new(REFUSAL_HANDSHAKES));
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = self.shutdown.drain.cancelled() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let shared = &self.prepared.shared;
                    // Cheapest first: a flood from one address is closed before
                    // anything is spent on it.
                    if shared.rates.new_connection(peer.ip()).is_err() {
                        shared
                            .reporter
                            .hit(Limit::ConnRatePerIp, peer, None, "closed at accept");
                        continue;
                    }
                    let slot = match shared.admission.admit(peer.ip(), &shared.config.limits) {
                        Ok(slot) => slot,
                        Err(cap) => {
                            let limit = match cap {
                                CapRefusal::MaxClients => Limit::MaxClients,
                                CapRefusal::MaxClientsPerIp => Limit::MaxClientsPerIp,
                            };
                            shared.reporter.hit(limit, peer, None, "refused at accept");
                            if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                                let acceptor = self.acceptor.clone();
                                self.tracker.spawn(refuse(tcp, acceptor, permit));
                            }
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    let task = Client {
                        prepared: self.prepared.clone(),
                        acceptor: self.acceptor.clone(),
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

struct Client {
    prepared: Prepared,
    acceptor: Option<TlsAcceptor>,
    shutdown: Shutdown,
}

impl Client {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr, slot: ConnSlot) {
        let metrics = Arc::clone(self.prepared.shared.reporter.metrics());
        metrics.connection_opened();
        self.serve_admitted(tcp, peer).await;
        metrics.connection_closed();
        drop(slot);
    }

    async fn serve_admitted(self, tcp: TcpStream, peer: SocketAddr) {
        let shared = Arc::clone(&self.prepared.shared);
        let Some(acceptor) = self.acceptor else {
            let client = conn::Client {
                addr: peer,
                cert_user: None,
                identity: None,
            };
            conn::serve(tcp, client, shared, self.shutdown).await;
            return;
        };
        let deadline = shared.config.limits.handshake_timeout;
        let tls = match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                warn!(%peer, reason = %e, "TLS handshake failed");
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
        let client = client_of(&shared, tls.get_ref().1, peer);
        conn::serve(tls, client, shared, self.shutdown).await;
    }
}

/// The client: its certificate's identity (for logs) and the `on` user the
/// certificate names, if any.
fn client_of(shared: &Shared, conn: &rustls::ServerConnection, peer: SocketAddr) -> conn::Client {
    let identity = tls::peer_identity(conn);
    conn::Client {
        addr: peer,
        cert_user: identity.as_ref().and_then(|id| cert_user(shared, id, peer)),
        identity: identity.map(|id| id.describe()),
    }
}

/// The `on` user named by a verified certificate, if any.
fn cert_user(shared: &Shared, identity: &tls::PeerIdentity, peer: SocketAddr) -> Option<Arc<User>> {
    let auth = &shared.config.auth;
    let Some(name) = identity.user_name(auth.cert_user, &auth.cert_map) else {
        debug!(%peer, identity = %identity.describe(), "certificate names no user");
        return None;
    };
    match shared.users.get(name) {
        Some(u) if u.enabled => {
            debug!(%peer, user = name, "authenticated by certificate");
            Some(Arc::clone(u))
        }
        Some(_) => {
            warn!(%peer, identity = %identity.describe(), user = name, reason = "user is off", "certificate user refused");
            None
        }
        None => {
            warn!(%peer, identity = %identity.describe(), user = name, reason = "no such user", "certificate user refused");
            None
        }
    }
}
