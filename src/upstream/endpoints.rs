//! Which server new upstream connections go to, when Sentinel decides it: the
//! master the sentinels name (and `ROLE` confirms), or none while none is
//! known. Connections watch it and learn of a failover at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::config::UpstreamAddr;
use crate::metrics::Metrics;

/// A master in use, numbered: a connection opened to generation `n` belongs
/// to the old master once the generation moves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where the master listens.
    pub addr: UpstreamAddr,
    /// Moves on each time another master is taken into use.
    pub generation: u64,
}

/// The master Sentinel names, shared by every connection.
#[derive(Debug)]
pub struct Endpoints {
    master: watch::Sender<Option<Endpoint>>,
    /// The last master taken into use (kept while none is known).
    last: Mutex<Option<Endpoint>>,
    /// A connection found the master unreachable or read-only.
    rediscover: Notify,
    metrics: Option<Arc<Metrics>>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints::new(None)
    }
}

impl Endpoints {
    /// No master known yet; failovers are counted in `metrics`.
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Endpoints {
            master: watch::Sender::new(None),
            last: Mutex::new(None),
            rediscover: Notify::new(),
            metrics,
        }
    }

    /// The master now, if one is known.
    pub fn current(&self) -> Option<Endpoint> {
        self.master.borrow().clone()
    }

    /// The master, waiting up to `limit` for one to be known.
    pub async fn wait(&self, limit: Duration) -> Option<Endpoint> {
        let mut rx = self.master.subscribe();
        let known = async { rx.wait_for(Option::is_some).await.ok().map(|m| m.clone()) };
        tokio::time::timeout(limit, known)
            .await
            .ok()
            .flatten()
            .flatten()
    }

    /// Follows the master (a connection closes when its generation is over).
    pub fn watch(&self) -> watch::Receiver<Option<Endpoint>> {
        self.master.subscribe()
    }

    /// `addr` is the master (confirmed by `ROLE`). True when that is a failover:
    /// another master than the last one in use.
    pub fn set_master(&self, addr: UpstreamAddr) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let (endpoint, failover) = match last.as_ref() {
            Some(e) if e.addr == addr => (e.clone(), false),
            Some(e) => (
                Endpoint {
                    addr,
                    generation: e.generation + 1,
                },
                true,
            ),
            None => (
                Endpoint {
                    addr,
                    generation: 1,
                },
                false,
            ),
        };
        *last = Some(endpoint.clone());
        drop(last);
        self.master.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&endpoint);
            *current = Some(endpoint);
            changed
        });
        if failover {
            if let Some(m) = &self.metrics {
                m.upstream_failover();
            }
        }
        failover
    }

    /// No master is known any more (the last one is gone and no sentinel
    /// names another). The same master coming back is no failover.
    pub fn forget_master(&self) {
        self.master
            .send_if_modified(|current| current.take().is_some());
    }

    /// A connection could not reach the master, or it answered `-READONLY`:
    /// ask the sentinels again now.
    pub fn request_discovery(&self) {
        self.rediscover.notify_one();
    }

    /// Completes when a connection asked for a new discovery.
    pub async fn discovery_requested(&self) {
        self.rediscover.notified().await;
    }
}
