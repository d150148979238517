//! Step 1: configuration in force (start and reload), listeners and graceful
//! shutdown. The accept side (PROXY header, admission, TLS handshake under a
//! deadline, client identity) is in `accept`; each accepted client is handed
//! to [`crate::conn::serve`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::acl::Users;
use crate::config::Config;
use crate::conn::{Live, Shared, Shutdown};
use crate::limits::rate::Rates;
use crate::limits::report::Reporter;
use crate::metrics::{self, Metrics};
use crate::tls;
use crate::upstream::{sentinel, Renames};

mod accept;
mod status;
mod watch;
use accept::Listener;
use watch::FileWatch;

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
            status::reloaded(true, 0, Some(r.generation));
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
            status::reloaded(false, errors.len(), None);
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
    status::started();
    let config = Arc::clone(&shared.live().config);
    let shutdown = Shutdown::default();
    let tracker = TaskTracker::new();
    for (addrs, tls, kind) in [
        (&config.server.listen, true, "tls"),
        (&config.server.plaintext_listen, false, "plaintext"),
    ] {
        for addr in addrs {
            let listener = bind(*addr, kind).await?;
            let ctx = Listener::new(Arc::clone(&shared), tls, shutdown.clone(), tracker.clone());
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
        let ready_drain = drain.clone();
        let ready = Arc::new(move || {
            let probe = Arc::clone(&probe);
            let draining = ready_drain.is_cancelled();
            Box::pin(async move { !draining && upstream_reachable(&probe).await })
                as metrics::ReadyFuture
        });
        let probe = Arc::clone(&shared);
        let status = Arc::new(move || {
            let probe = Arc::clone(&probe);
            let draining = drain.is_cancelled();
            Box::pin(async move {
                let healthy = !draining && upstream_reachable(&probe).await;
                status::snapshot(&probe, healthy)
            }) as metrics::StatusFuture
        });
        let probes = metrics::Probes {
            ready,
            status: Some(status),
        };
        tokio::spawn(metrics::serve(
            listener,
            metrics,
            probes,
            metrics_stop.clone(),
        ));
    }
    let mut files = FileWatch::start(Arc::clone(&shared));
    loop {
        // SIGHUP, or a change to a watched TLS or JWKS file: the same reload.
        tokio::select! {
            c = control.recv() => match c {
                Some(Control::Reload) => {}
                Some(Control::Stop) | None => break,
            },
            Some(_) = files.changed() => {}
        }
        let (shared, path) = (Arc::clone(&shared), path.to_path_buf());
        // Reading and parsing files blocks: keep it off the connections' threads.
        let _ = tokio::task::spawn_blocking(move || reload_logged(&shared, &path)).await;
        files.refresh();
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
