//! Step 1 of the data path: a listener's accept loop. Every connection
//! passes, cheapest first: the PROXY protocol header when its peer is a
//! listed load balancer (which sets the client address for everything
//! after), `server.allow`, the per-IP connection rate, the connection caps,
//! then the TLS handshake and the certificate's user; then it is served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::acl::User;
use crate::conn::replies;
use crate::conn::{self, Live, Shared, Shutdown};
use crate::edge::read_proxy_header;
use crate::limits::{CapRefusal, ConnSlot};
use crate::logsafe::Escaped;
use crate::metrics::Limit;
use crate::tls;

/// TLS handshakes spent at once on telling refused clients why; past this a
/// refused connection is just closed.
const REFUSAL_HANDSHAKES: usize = 32;
/// Longest handshake spent on a refused client.
const REFUSAL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// One listening socket's accept loop and what its connections share.
#[derive(Clone)]
pub(super) struct Listener {
    shared: Arc<Shared>,
    /// A TLS listener (else plaintext).
    tls: bool,
    shutdown: Shutdown,
    tracker: TaskTracker,
    /// Bounds the handshakes spent on refusals.
    refusals: Arc<Semaphore>,
}

impl Listener {
    pub(super) fn new(
        shared: Arc<Shared>,
        tls: bool,
        shutdown: Shutdown,
        tracker: TaskTracker,
    ) -> Self {
        Listener {
            shared,
            tls,
            shutdown,
            tracker,
            refusals: Arc::new(Semaphore::new(REFUSAL_HANDSHAKES)),
        }
    }

    /// The acceptor for a new connection: the certificates in force now.
    fn acceptor(&self, live: &Live) -> Option<TlsAcceptor> {
        self.tls
            .then(|| TlsAcceptor::from(Arc::clone(&live.tls.config)))
    }

    pub(super) async fn accept_loop(self, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = self.shutdown.drain.cancelled() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let live = self.shared.live();
                    let deadline = Instant::now() + live.config.limits.handshake_timeout;
                    let proxied = live
                        .config
                        .server
                        .proxy_protocol_from
                        .as_ref()
                        .is_some_and(|from| from.contains(peer.ip()));
                    if proxied {
                        // Its header is read on a task of its own: a slow
                        // load balancer never holds up the accept loop.
                        let me = self.clone();
                        self.tracker
                            .spawn(async move { me.behind_proxy(tcp, peer, live, deadline).await });
                    } else if let Some(serve) = self.admit(tcp, peer, live, deadline) {
                        self.tracker.spawn(serve);
                    }
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// A connection from a listed load balancer: its PROXY header first
    /// (within the handshake deadline), then the client it names is admitted
    /// as if it had connected itself. No valid header: closed.
    async fn behind_proxy(
        self,
        mut tcp: TcpStream,
        lb: SocketAddr,
        live: Arc<Live>,
        deadline: Instant,
    ) {
        let client = match tokio::time::timeout_at(deadline, read_proxy_header(&mut tcp)).await {
            Ok(Ok(Some(client))) => client,
            // LOCAL (a health check) or no address: the balancer itself.
            Ok(Ok(None)) => lb,
            Ok(Err(e)) => {
                self.shared
                    .reporter
                    .hit(Limit::ProxyHeader, lb, None, &e.to_string());
                return;
            }
            Err(_) => {
                self.shared.reporter.hit(
                    Limit::ProxyHeader,
                    lb,
                    None,
                    "no PROXY protocol header in time",
                );
                return;
            }
        };
        debug!(%lb, %client, "PROXY protocol header read");
        if let Some(serve) = self.admit(tcp, client, live, deadline) {
            serve.await;
        }
    }

    /// `server.allow`, the connection rate and the caps for `peer`; the
    /// serving of the connection when it passes (a refusal over a cap is
    /// told to the client on a task of its own).
    fn admit(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        live: Arc<Live>,
        deadline: Instant,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let shared = &self.shared;
        // Cheapest first: a peer outside `server.allow`, or a flood from one
        // address, is closed before anything is spent on it.
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
            return None;
        }
        if live.rates.new_connection(peer.ip()).is_err() {
            shared
                .reporter
                .hit(Limit::ConnRatePerIp, peer, None, "closed at accept");
            return None;
        }
        let slot = match shared.admission.admit(peer.ip(), &live.config.limits) {
            Ok(slot) => slot,
            Err(cap) => {
                let limit = match cap {
                    CapRefusal::MaxClients => Limit::MaxClients,
                    CapRefusal::MaxClientsPerIp => Limit::MaxClientsPerIp,
                };
                shared.reporter.hit(limit, peer, None, "refused at accept");
                if let Ok(permit) = Arc::clone(&self.refusals).try_acquire_owned() {
                    let acceptor = self.acceptor(&live);
                    self.tracker.spawn(refuse(tcp, acceptor, permit));
                }
                return None;
            }
        };
        let _ = tcp.set_nodelay(true);
        let task = AcceptedClient {
            shared: Arc::clone(shared),
            acceptor: self.acceptor(&live),
            live,
            shutdown: self.shutdown.clone(),
            deadline,
        };
        Some(task.serve(tcp, peer, slot))
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
    /// When the TLS handshake (a PROXY header's time included) must be done.
    deadline: Instant,
}

impl AcceptedClient {
    /// Serves the client at `peer` (the PROXY header's address, when there
    /// is one), holding its place under the caps (`slot`).
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
            deadline,
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
        let tls = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
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
