//! What `GET /status` (JSON) and `GET /` (HTML) on `metrics_listen` show the
//! operator: version, uptime, listeners, the upstream with its health and
//! role (the Sentinel master, the cluster's slot map), users with their open
//! connections, rate and command counts, the newest `ACL LOG` entries,
//! certificate expiry dates, and the reload history. Never a password, hash,
//! token, key name or value: users appear by name, `ACL LOG` entries without
//! their key or channel, reloads by outcome and error count only.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::config::{UpstreamAddr, UpstreamMode, UpstreamTarget};
use crate::conn::Shared;

/// Reloads remembered for the page.
const RELOADS_KEPT: usize = 20;
/// `ACL LOG` entries shown.
const ACL_LOG_SHOWN: usize = 10;

/// When the process started serving (monotonic, and Unix seconds).
static STARTED: OnceLock<(Instant, u64)> = OnceLock::new();
/// The newest reloads, newest first.
static RELOADS: Mutex<VecDeque<Value>> = Mutex::new(VecDeque::new());

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Notes the start (once).
pub(super) fn started() {
    STARTED.get_or_init(|| (Instant::now(), unix_now()));
}

/// Notes a reload: its outcome and how many errors it had.
pub(super) fn reloaded(ok: bool, errors: usize, generation: Option<u64>) {
    if let Ok(mut reloads) = RELOADS.lock() {
        reloads.push_front(json!({
            "at": unix_now(),
            "result": if ok { "ok" } else { "failed" },
            "errors": errors,
            "generation": generation,
        }));
        reloads.truncate(RELOADS_KEPT);
    }
}

fn addr_text(addr: &UpstreamAddr) -> String {
    match addr {
        UpstreamAddr::Tcp(hostport) => hostport.clone(),
        UpstreamAddr::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// The snapshot; `healthy` is what `/readyz` would say.
pub(super) fn snapshot(shared: &Shared, healthy: bool) -> Value {
    let live = shared.live();
    let config = &live.config;
    let (since, started_at) = *STARTED.get_or_init(|| (Instant::now(), unix_now()));
    let listeners: Vec<Value> = config
        .server
        .listen
        .iter()
        .map(|a| json!({"kind": "tls", "addr": a.to_string()}))
        .chain(
            config
                .server
                .plaintext_listen
                .iter()
                .map(|a| json!({"kind": "plaintext", "addr": a.to_string()})),
        )
        .chain(
            config
                .server
                .metrics_listen
                .iter()
                .map(|a| json!({"kind": "metrics", "addr": a.to_string()})),
        )
        .collect();
    let mode = match config.upstream.mode {
        UpstreamMode::Dedicated => "dedicated",
        UpstreamMode::Pooled { .. } => "pooled",
    };
    let upstream = match &config.upstream.target {
        UpstreamTarget::Address(addr) => json!({
            "kind": "address", "mode": mode, "healthy": healthy,
            "servers": [{"addr": addr_text(addr), "role": "master"}],
        }),
        UpstreamTarget::Sentinel(s) => {
            let master = shared.endpoints.current().map(|e| addr_text(&e.addr));
            json!({
                "kind": "sentinel", "mode": mode, "healthy": healthy, "master_name": s.master,
                "servers": master.iter().map(|m| json!({"addr": m, "role": "master"})).collect::<Vec<_>>(),
                "sentinels": s.addresses,
            })
        }
        UpstreamTarget::Cluster(c) => {
            let map = shared.cluster().map(|cl| cl.topology.map());
            let masters: Vec<Value> = map
                .as_ref()
                .map(|m| {
                    m.masters()
                        .iter()
                        .map(|n| json!({"addr": addr_text(&n.addr), "role": "master", "id": n.id}))
                        .collect()
                })
                .unwrap_or_default();
            let slots: Vec<Value> = map
                .as_ref()
                .map(|m| {
                    m.ranges()
                        .into_iter()
                        .map(|(start, end, i)| {
                            let owner = m.masters().get(i).map(|n| addr_text(&n.addr));
                            json!({"start": start, "end": end, "master": owner})
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "kind": "cluster", "mode": "pooled", "healthy": healthy,
                "seeds": c.seeds.iter().map(addr_text).collect::<Vec<_>>(),
                "servers": masters, "slots": slots,
            })
        }
    };
    let metrics = shared.reporter.metrics();
    let mut names: Vec<&str> = live.users.names().collect();
    names.sort_unstable();
    let users: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let limits = live.users.limits(name);
            let rate = limits
                .rate
                .map(|r| json!({"ops_per_sec": r.ops_per_sec, "burst": r.burst}));
            let commands: serde_json::Map<String, Value> = metrics
                .user_commands(name)
                .into_iter()
                .map(|(r, n)| (r.as_str().to_owned(), json!(n)))
                .collect();
            json!({
                "name": name,
                "connections": shared.admission.of_user(name),
                "max_clients": limits.max_clients,
                "rate": rate,
                "commands": commands,
            })
        })
        .collect();
    let certificates: Vec<Value> = [
        ("server", live.tls.server_not_after),
        ("client_ca", live.tls.client_ca_not_after),
        (
            "upstream_client",
            live.upstream_tls.as_ref().and_then(|u| u.client_not_after),
        ),
    ]
    .into_iter()
    .filter_map(|(name, t)| t.map(|t| json!({"cert": name, "not_after": t})))
    .collect();
    let reloads: Vec<Value> = RELOADS
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now": unix_now(),
        "started_at": started_at,
        "uptime_seconds": since.elapsed().as_secs(),
        "generation": live.generation,
        "listeners": listeners,
        "connections_open": metrics.connections_open(),
        "upstream": upstream,
        "users": users,
        "acl_log": shared.acl_log.newest_json(ACL_LOG_SHOWN),
        "certificates": certificates,
        "reloads": reloads,
    })
}
