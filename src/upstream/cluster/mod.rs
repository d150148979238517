//! A Redis Cluster upstream: hash slots ([`slot`]), the slot map
//! ([`topology`]), the task that keeps it current ([`Topology::watch`]), and
//! one pool of shared connections per master ([`ClusterPools`]).

pub mod slot;
pub mod topology;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use slot::key_slot;
pub use topology::{Master, SlotMap};

use super::connect::exchange;
use super::pool::{Pool, ViewFn};
use super::{connect_to, label, UpstreamError, UpstreamView};
use crate::config::{UpstreamAddr, UpstreamTarget};
use crate::logsafe::Escaped;
use crate::metrics::Metrics;

/// The slot map is read again this often anyway.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// Refreshes asked for (after `MOVED`, a lost node) come at most this often.
const REFRESH_MIN_GAP: Duration = Duration::from_millis(200);

/// The cluster as the proxy knows it: the slot map every connection routes
/// with, and whether the cluster said `cluster_state:ok`.
#[derive(Debug)]
pub struct Topology {
    map: ArcSwap<SlotMap>,
    /// The first seed (where commands go before the slot map is known).
    seed: UpstreamAddr,
    healthy: AtomicBool,
    refresh: Notify,
    metrics: Option<Arc<Metrics>>,
}

impl Topology {
    /// Nothing known yet but `seed`.
    pub fn new(seed: UpstreamAddr, metrics: Option<Arc<Metrics>>) -> Self {
        Topology {
            map: ArcSwap::from_pointee(SlotMap::default()),
            seed,
            healthy: AtomicBool::new(false),
            refresh: Notify::new(),
            metrics,
        }
    }

    /// The slot map in force.
    pub fn map(&self) -> Arc<SlotMap> {
        self.map.load_full()
    }

    /// The slot map in force, for a look on the hot path (no reference
    /// count touched, so threads routing at once do not share a cache line).
    pub fn map_now(&self) -> arc_swap::Guard<Arc<SlotMap>> {
        self.map.load()
    }

    /// The first seed.
    pub fn seed(&self) -> UpstreamAddr {
        self.seed.clone()
    }

    /// The first seed, borrowed.
    pub fn seed_ref(&self) -> &UpstreamAddr {
        &self.seed
    }

    /// True when the last refresh saw `cluster_state:ok` and every slot served.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// A `MOVED`: `slot` is served at `addr` from now on (until the next
    /// refresh, which is asked for).
    pub fn moved(&self, slot: u16, addr: &UpstreamAddr) {
        let now = self.map.load();
        if now.owner(slot).map(|m| &m.addr) != Some(addr) {
            self.map.store(Arc::new(now.with_owner(slot, addr)));
        }
        self.request_refresh();
    }

    /// Asks the watcher to read the slot map again soon.
    pub fn request_refresh(&self) {
        self.refresh.notify_one();
    }

    /// Keeps the slot map current until `stop` (or `view` has nothing more): at start, every
    /// [`REFRESH_EVERY`], and when asked (at most every 200 ms).
    pub async fn watch(
        self: Arc<Self>,
        view: impl Fn() -> Option<UpstreamView> + Send + Sync,
        stop: CancellationToken,
    ) {
        let mut last = Instant::now() - REFRESH_MIN_GAP;
        let mut warned = false;
        loop {
            let gap = REFRESH_MIN_GAP.saturating_sub(last.elapsed());
            tokio::time::sleep(gap).await;
            last = Instant::now();
            let Some(view) = view() else {
                return;
            };
            match self.refresh_once(&view).await {
                Ok(()) => warned = false,
                Err(why) if !warned => {
                    warn!(reason = %Escaped(&why), "cluster slot map not read");
                    warned = true;
                }
                Err(_) => {}
            }
            let retry = if self.map().complete() {
                REFRESH_EVERY
            } else {
                Duration::from_millis(500)
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.refresh.notified() => {}
                () = tokio::time::sleep(retry) => {}
            }
        }
    }

    /// Asks the known masters, then the seeds, in turn until one answers.
    async fn refresh_once(&self, view: &UpstreamView) -> Result<(), String> {
        let UpstreamTarget::Cluster(cluster) = &view.settings.target else {
            return Err("not a cluster upstream".into());
        };
        let known: Vec<UpstreamAddr> = self
            .map()
            .masters()
            .iter()
            .map(|m| m.addr.clone())
            .collect();
        let mut last_error = String::from("no seed");
        for addr in known.iter().chain(&cluster.seeds) {
            match read_map(view, addr).await {
                Ok((map, healthy)) => {
                    self.install(map, healthy);
                    return Ok(());
                }
                Err(e) => last_error = format!("{}: {e}", label(addr)),
            }
        }
        self.healthy.store(false, Ordering::Relaxed);
        Err(last_error)
    }

    fn install(&self, map: SlotMap, healthy: bool) {
        let old = self.map.load();
        let moved = old.moved_slots(&map);
        if moved > 0 {
            info!(slots = moved, "cluster slots changed master");
            if let Some(m) = &self.metrics {
                m.upstream_failover();
            }
        }
        self.healthy
            .store(healthy && map.complete(), Ordering::Relaxed);
        if **old != map {
            self.map.store(Arc::new(map));
        }
    }
}

/// `CLUSTER SHARDS` (or, on servers without it, `CLUSTER SLOTS`) and
/// `CLUSTER INFO` from the node at `addr`: the map and whether it said ok.
async fn read_map(
    view: &UpstreamView,
    addr: &UpstreamAddr,
) -> Result<(SlotMap, bool), UpstreamError> {
    let s = &view.settings;
    let renames = &view.renames;
    let mut connected = connect_to(addr, s, view.tls.as_ref(), renames, false).await?;
    let asked = label(addr);
    let commands: Vec<Vec<u8>> = [
        &[&b"CLUSTER"[..], b"SHARDS"][..],
        &[b"CLUSTER", b"SLOTS"],
        &[b"CLUSTER", b"INFO"],
    ]
    .iter()
    .filter_map(|c| renames.command(c))
    .collect();
    let exchanged = exchange(&mut connected.stream, &commands, &asked);
    let replies = tokio::time::timeout(s.connect_timeout, exchanged)
        .await
        .map_err(|_| UpstreamError::Timeout(asked.clone()))??;
    let tls = view.tls.is_some();
    let map = replies
        .first()
        .and_then(|r| SlotMap::from_shards(r, &asked, tls))
        .or_else(|| replies.get(1).and_then(|r| SlotMap::from_slots(r, &asked)))
        .ok_or_else(|| UpstreamError::Connect {
            addr: asked.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no slot map in the reply",
            ),
        })?;
    let healthy = replies
        .get(2)
        .is_some_and(|r| memchr::memmem::find(r, b"cluster_state:ok").is_some());
    Ok((map, healthy))
}

/// One pool of shared connections per master, made at first use.
pub struct ClusterPools {
    pools: Mutex<HashMap<(UpstreamAddr, bool), Arc<Pool>>>,
    size: usize,
    reply_limit: usize,
    view: ViewFn,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ClusterPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPools")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ClusterPools {
    /// `size` shared connections per master, each connecting as `view` says.
    pub fn new(size: usize, reply_limit: usize, view: ViewFn, metrics: Arc<Metrics>) -> Self {
        ClusterPools {
            pools: Mutex::default(),
            size,
            reply_limit,
            view,
            metrics,
        }
    }

    /// The pool of the master at `addr` for RESP2 or (`resp3`) RESP3 clients
    /// (started on the current runtime at first use).
    pub fn pool(&self, addr: &UpstreamAddr, resp3: bool) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let pool = pools.entry((addr.clone(), resp3)).or_insert_with(|| {
            Arc::new(Pool::start_to(
                addr.clone(),
                resp3,
                self.size,
                self.reply_limit,
                Arc::clone(&self.view),
                Arc::clone(&self.metrics),
            ))
        });
        Arc::clone(pool)
    }
}
