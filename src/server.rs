//! Step 1: listeners, accept, TLS handshake under a deadline, client identity,
//! and graceful shutdown. Each accepted client is handed to [`crate::conn::serve`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::acl::{User, Users};
use crate::config::Config;
use crate::conn::{self, Shared, Shutdown};
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
                config: Arc::new(config),
                users: Arc::new(users),
                acl_log: Arc::default(),
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
    if let Some(addr) = config.server.metrics_listen {
        warn!(%addr, "server.metrics_listen is set but metrics are not served by this version yet");
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

impl Listener {
    async fn accept_loop(self, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = self.shutdown.drain.cancelled() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let task = Client {
                        prepared: self.prepared.clone(),
                        acceptor: self.acceptor.clone(),
                        shutdown: self.shutdown.clone(),
                    };
                    self.tracker.spawn(task.serve(tcp, peer));
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

struct Client {
    prepared: Prepared,
    acceptor: Option<TlsAcceptor>,
    shutdown: Shutdown,
}

impl Client {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr) {
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
                return;
            }
            Err(_) => {
                warn!(%peer, reason = "timeout", "TLS handshake failed");
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
