//! What a connection task is given by the server: the process-wide state every
//! connection shares, the configuration generation in force, the shutdown
//! signals, and who the client is.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};

use arc_swap::ArcSwap;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client_lines::ClientDirectory;
use crate::acl::log::AclLog;
use crate::acl::{User, Users};
use crate::config::Config;
use crate::config::{UpstreamAddr, UpstreamMode, UpstreamTarget};
use crate::limits::rate::Rates;
use crate::limits::report::Reporter;
use crate::limits::Admission;
use crate::upstream::cluster::{ClusterPools, Topology};
use crate::upstream::{Endpoints, Pool, Renames, UpstreamView};

/// One configuration generation: what a reload (SIGHUP) replaces whole.
#[derive(Debug)]
pub struct Live {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The users.
    pub users: Arc<Users>,
    /// Rate buckets: users' `rate`, per-IP connection and auth-failure rates
    /// (a reload keeps the buckets whose settings did not change).
    pub rates: Arc<Rates>,
    /// The rustls configuration new handshakes use, and its certificates' expiry.
    pub tls: crate::tls::ServerTls,
    /// `[upstream.tls]`, loaded: what new upstream connections use.
    pub upstream_tls: Option<crate::tls::UpstreamTls>,
    /// The upstream's names for renamed commands.
    pub renames: Arc<Renames>,
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
    pub acl_log: Arc<AclLog>,
    /// Open connections in total, per IP and per user.
    pub admission: Arc<Admission>,
    /// Counts and logs every limit hit; owns the metrics.
    pub reporter: Arc<Reporter>,
    /// Every upstream connection and the client behind it (`CLIENT LIST`).
    pub clients: Arc<ClientDirectory>,
    /// The master Sentinel names (unused with a fixed upstream address).
    pub endpoints: Arc<Endpoints>,
    /// `rate_scope = "shared"`: this process's leases of the shared budgets.
    pub rate_store: crate::limits::shared_rate::RateStore,
    /// Pooled mode's shared upstream connections ([`Shared::start_pool`]).
    pool: OnceLock<Pool>,
    /// Cluster mode: the slot map and one pool per master.
    cluster: OnceLock<ClusterUpstream>,
}

/// What cluster mode shares between connections.
#[derive(Debug, Clone)]
pub struct ClusterUpstream {
    /// The slot map, kept current by [`Topology::watch`].
    pub topology: Arc<Topology>,
    /// One pool per master.
    pub pools: Arc<ClusterPools>,
}

impl Shared {
    /// Process-wide state around the first configuration generation.
    pub fn new(live: Live, reporter: Arc<Reporter>) -> Self {
        Shared {
            live: ArcSwap::from_pointee(live),
            reloaded: Notify::new(),
            acl_log: Arc::default(),
            admission: Arc::default(),
            endpoints: Arc::new(Endpoints::new(Some(Arc::clone(reporter.metrics())))),
            reporter,
            clients: Arc::default(),
            rate_store: Default::default(),
            pool: OnceLock::new(),
            cluster: OnceLock::new(),
        }
    }

    /// In pooled mode, starts the pool (on the current runtime); in cluster
    /// mode, the pools (one per master, at first use) and the topology
    /// watcher, until `stop`. Shared connections follow the configuration in
    /// force each time they connect.
    pub fn start_pool(self: &Arc<Self>, stop: CancellationToken) {
        let UpstreamMode::Pooled { size, reply_limit } = self.live().config.upstream.mode else {
            return;
        };
        let weak: Weak<Shared> = Arc::downgrade(self);
        let view = Arc::new(move || weak.upgrade().map(|s| s.upstream_view()));
        let metrics = Arc::clone(self.reporter.metrics());
        if let UpstreamTarget::Cluster(cluster) = &self.live().config.upstream.target {
            let seed = cluster
                .seeds
                .first()
                .cloned()
                .unwrap_or(UpstreamAddr::Tcp(String::new()));
            let topology = Arc::new(Topology::new(seed, Some(Arc::clone(&metrics))));
            let pools = Arc::new(ClusterPools::new(size, reply_limit, view, metrics));
            let weak = Arc::downgrade(self);
            let watch_view = move || weak.upgrade().map(|s| s.upstream_view());
            tokio::spawn(Arc::clone(&topology).watch(watch_view, stop));
            let _ = self.cluster.set(ClusterUpstream { topology, pools });
            return;
        }
        let pool = Pool::start(
            size,
            reply_limit,
            view,
            Arc::clone(&self.endpoints),
            metrics,
        );
        let _ = self.pool.set(pool);
    }

    /// Cluster mode's shared parts.
    pub fn cluster(&self) -> Option<&ClusterUpstream> {
        self.cluster.get()
    }

    /// The pool, in pooled mode.
    pub fn pool(&self) -> Option<&Pool> {
        self.pool.get()
    }

    /// What background upstream tasks (the Sentinel watcher, the pool) connect with now.
    pub fn upstream_view(&self) -> UpstreamView {
        let live = self.live();
        UpstreamView {
            settings: live.config.upstream.clone(),
            tls: live.upstream_tls.clone(),
            renames: (*live.renames).clone(),
        }
    }

    /// The configuration in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// The configuration in force now, if it is not `current`.
    pub fn newer_than(&self, current: &Arc<Live>) -> Option<Arc<Live>> {
        let now = self.live.load();
        (!Arc::ptr_eq(&now, current)).then(|| arc_swap::Guard::into_inner(now))
    }

    /// Puts `live` in force: new connections and admissions use it at once, every
    /// open connection before its next command (idle ones are woken for it).
    pub fn install(&self, live: Live) {
        self.live.store(Arc::new(live));
        self.reloaded.notify_waiters();
    }

    /// Completes at the next reload.
    pub fn reloaded(&self) -> Notified<'_> {
        self.reloaded.notified()
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
    pub cert_user: Option<Arc<User>>,
    /// Its certificate's identity (CN and SANs, escaped) for logs, if it sent one.
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

/// A process-wide connection counter, like Redis's client ids.
pub(super) fn next_client_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
