//! Prometheus metrics: the [`Metrics`] registry every part of the proxy bumps,
//! and [`serve`], the small HTTP endpoint that exposes it together with
//! `/healthz` and `/readyz`.
//!
//! The exposition is produced by `prometheus-client` in the OpenMetrics text
//! format (served as [`CONTENT_TYPE`]). Families with labels show up in the
//! output only once at least one label set exists: `limit` and `result` of
//! reloads are created up front, so they are always present (at 0); the
//! per-user, per-reason and per-certificate families appear with their first
//! value.
//!
//! Label cardinality is the caller's job: `user` values must come from the
//! configured users (never from unauthenticated input), `reason` from a small
//! fixed set of strings, and `cert` from the configured certificates. Every
//! distinct value is a new time series that lives until the process exits.

mod http;
mod labels;
pub mod status_page;

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

pub use http::{serve, Probes, Ready, ReadyFuture, Status, StatusFuture, CONTENT_TYPE};
pub use labels::{CommandResult, Limit, UpstreamKind};

use labels::{
    CertLabels, CommandLabels, KindLabels, LimitLabels, ReasonLabels, ReloadLabels, Text,
};

/// Upper bounds of the `portcullis_command_duration_seconds` buckets:
/// 50 µs doubling 15 times, the last finite one at 819.2 ms (then `+Inf`).
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(50e-6, 2.0, 15)
}

/// An open upstream connection counted in `portcullis_upstream_connections`
/// until dropped.
#[derive(Debug)]
pub struct UpstreamCounted(Gauge);

impl Drop for UpstreamCounted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The proxy's metrics: one registry holding every `portcullis_*` family.
///
/// Cheap to bump from any task: counters are atomics, and the label sets of
/// the hot families (`limit`, per-user `result`) are resolved once and kept.
/// Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// One counter per [`Limit`], indexed by `limit as usize`.
    limits: [Counter; Limit::ALL.len()],
    connections_open: Gauge,
    connections_accepted: Counter,
    handshake_failures: Family<ReasonLabels, Counter>,
    commands: Family<CommandLabels, Counter>,
    /// Per-user counters of `commands`, indexed by `result as usize`, so a
    /// command costs a read lock and a hash of the name, not an allocation.
    command_counters: RwLock<HashMap<Box<str>, [Counter; CommandResult::ALL.len()]>>,
    auth_failures: Counter,
    token_expiries: Counter,
    rate_store_fallbacks: Counter,
    upstream_connect_errors: Counter,
    upstream_failovers: Counter,
    upstream_redirects: [Counter; 2],
    /// One gauge per [`UpstreamKind`], indexed by `kind as usize`.
    upstream_connections: [Gauge; UpstreamKind::ALL.len()],
    command_duration: Histogram,
    reloads_ok: Counter,
    reloads_failed: Counter,
    cert_expiry: Family<CertLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Builds the registry with every family.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();

        let limit_family = Family::<LimitLabels, Counter>::default();
        let limits =
            Limit::ALL.map(|limit| limit_family.get_or_create_owned(&LimitLabels { limit }));
        registry.register(
            "portcullis_limit_hits",
            "Times a limit or protection refused, delayed or closed something",
            limit_family,
        );

        let connections_open = Gauge::default();
        registry.register(
            "portcullis_connections_open",
            "Client connections currently open",
            connections_open.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "portcullis_connections_accepted",
            "Client connections accepted",
            connections_accepted.clone(),
        );

        let handshake_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "portcullis_tls_handshake_failures",
            "TLS handshakes that failed, by reason",
            handshake_failures.clone(),
        );

        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "portcullis_commands",
            "Client commands by user and outcome",
            commands.clone(),
        );

        let auth_failures = Counter::default();
        registry.register(
            "portcullis_auth_failures",
            "Failed AUTH or HELLO AUTH attempts",
            auth_failures.clone(),
        );

        let token_expiries = Counter::default();
        registry.register(
            "portcullis_token_expiries",
            "Connections closed because the token they authenticated with expired",
            token_expiries.clone(),
        );

        let rate_store_fallbacks = Counter::default();
        registry.register(
            "portcullis_rate_store_fallbacks",
            "Rate decisions made locally because the shared rate store (rate_scope = \"shared\") could not be reached",
            rate_store_fallbacks.clone(),
        );

        let upstream_connect_errors = Counter::default();
        registry.register(
            "portcullis_upstream_connect_errors",
            "Failed attempts to connect to the upstream Redis",
            upstream_connect_errors.clone(),
        );

        let upstream_failovers = Counter::default();
        registry.register(
            "portcullis_upstream_failovers",
            "New upstream masters (or slot owners) taken into use",
            upstream_failovers.clone(),
        );

        let redirects = Family::<KindLabels, Counter>::default();
        let upstream_redirects =
            ["moved", "ask"].map(|kind| redirects.get_or_create_owned(&KindLabels { kind }));
        registry.register(
            "portcullis_upstream_redirects",
            "Cluster MOVED and ASK replies the proxy followed",
            redirects,
        );

        let kinds = Family::<KindLabels, Gauge>::default();
        let upstream_connections = UpstreamKind::ALL.map(|kind| {
            kinds.get_or_create_owned(&KindLabels {
                kind: kind.as_str(),
            })
        });
        registry.register(
            "portcullis_upstream_connections",
            "Upstream connections open now, by what they serve",
            kinds,
        );

        let command_duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "portcullis_command_duration",
            "Time from a command read to its reply written",
            Unit::Seconds,
            command_duration.clone(),
        );

        let reloads = Family::<ReloadLabels, Counter>::default();
        let reloads_ok = reloads.get_or_create_owned(&ReloadLabels { result: "ok" });
        let reloads_failed = reloads.get_or_create_owned(&ReloadLabels { result: "failed" });
        registry.register(
            "portcullis_config_reloads",
            "Configuration reloads by result",
            reloads,
        );

        let cert_expiry = Family::<CertLabels, Gauge>::default();
        registry.register_with_unit(
            "portcullis_certificate_expiry_timestamp",
            "Expiry (notAfter) of a loaded certificate as a Unix timestamp",
            Unit::Seconds,
            cert_expiry.clone(),
        );

        Metrics {
            registry,
            limits,
            connections_open,
            connections_accepted,
            handshake_failures,
            commands,
            command_counters: RwLock::default(),
            auth_failures,
            token_expiries,
            rate_store_fallbacks,
            upstream_connect_errors,
            upstream_failovers,
            upstream_redirects,
            upstream_connections,
            command_duration,
            reloads_ok,
            reloads_failed,
            cert_expiry,
        }
    }

    /// Counts one hit of `limit` in `portcullis_limit_hits_total{limit}`.
    pub fn limit_hit(&self, limit: Limit) {
        self.limits[limit as usize].inc();
    }

    /// The current value of `portcullis_limit_hits_total{limit}`.
    pub fn limit_hits(&self, limit: Limit) -> u64 {
        self.limits[limit as usize].get()
    }

    /// A client connection was accepted: bumps
    /// `portcullis_connections_accepted_total` and `portcullis_connections_open`.
    pub fn connection_opened(&self) {
        self.connections_accepted.inc();
        self.connections_open.inc();
    }

    /// A client connection (one counted by [`Metrics::connection_opened`])
    /// ended: decrements `portcullis_connections_open`.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// Counts a failed TLS handshake in
    /// `portcullis_tls_handshake_failures_total{reason}`. `reason` must come
    /// from a small fixed set (e.g. `"timeout"`, `"io"`, `"tls"`), never from
    /// peer-supplied text.
    pub fn handshake_failed(&self, reason: &str) {
        self.handshake_failures
            .get_or_create(&ReasonLabels {
                reason: Text(reason.into()),
            })
            .inc();
    }

    /// `user`'s `portcullis_commands_total` values by result (zeros before
    /// its first command), for the status page.
    pub fn user_commands(&self, user: &str) -> [(CommandResult, u64); CommandResult::ALL.len()] {
        let counters = self.command_counters.read().ok();
        let series = counters.as_ref().and_then(|c| c.get(user));
        CommandResult::ALL.map(|r| (r, series.map_or(0, |s| s[r as usize].get())))
    }

    /// `portcullis_connections_open` now.
    pub fn connections_open(&self) -> i64 {
        self.connections_open.get()
    }

    /// Counts one command in `portcullis_commands_total{user,result}`.
    ///
    /// `user` must be a configured user name (or a fixed placeholder such as
    /// `"default"`): each new name adds nine series that are never removed.
    /// The first command of a user creates its series (all nine results, at 0).
    pub fn command(&self, user: &str, result: CommandResult) {
        let mut counts = [0; CommandResult::ALL.len()];
        counts[result as usize] = 1;
        self.commands(user, &counts);
    }

    /// Adds `counts[r as usize]` commands of each result `r` to `user`'s
    /// `portcullis_commands_total` series (one lookup for a whole batch).
    pub fn commands(&self, user: &str, counts: &[u64; CommandResult::ALL.len()]) {
        let add = |series: &[Counter; CommandResult::ALL.len()]| {
            for (counter, &n) in series.iter().zip(counts) {
                if n > 0 {
                    counter.inc_by(n);
                }
            }
        };
        {
            let counters = self
                .command_counters
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = counters.get(user) {
                add(series);
                return;
            }
        }
        let mut counters = self
            .command_counters
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        add(counters.entry(user.into()).or_insert_with(|| {
            CommandResult::ALL.map(|result| {
                self.commands.get_or_create_owned(&CommandLabels {
                    user: Text(user.into()),
                    result,
                })
            })
        }));
    }

    /// Counts a rate decision made locally while the shared store is unreachable.
    pub fn rate_store_fallback(&self) {
        self.rate_store_fallbacks.inc();
    }

    /// Counts a connection closed at its token's expiry.
    pub fn token_expired(&self) {
        self.token_expiries.inc();
    }

    /// Counts a failed authentication in `portcullis_auth_failures_total`.
    pub fn auth_failure(&self) {
        self.auth_failures.inc();
    }

    /// Counts another master taken into use in `portcullis_upstream_failovers_total`.
    pub fn upstream_failover(&self) {
        self.upstream_failovers.inc();
    }

    /// Counts a followed cluster redirect in
    /// `portcullis_upstream_redirects_total{kind}` (`"moved"` or `"ask"`).
    pub fn upstream_redirect(&self, kind: &str) {
        self.upstream_redirects[usize::from(kind == "ask")].inc();
    }

    /// `portcullis_upstream_connect_errors_total`.
    pub fn upstream_connect_error(&self) {
        self.upstream_connect_errors.inc();
    }

    /// Counts an upstream connection of `kind` in
    /// `portcullis_upstream_connections` for as long as the guard lives.
    pub fn upstream_opened(&self, kind: UpstreamKind) -> UpstreamCounted {
        let gauge = self.upstream_connections[kind as usize].clone();
        gauge.inc();
        UpstreamCounted(gauge)
    }

    /// Records one command latency in `portcullis_command_duration_seconds`
    /// (buckets from 50 µs doubling up to 819.2 ms, then `+Inf`).
    pub fn observe_latency(&self, seconds: f64) {
        self.command_duration.observe(seconds);
    }

    /// Counts a configuration reload in
    /// `portcullis_config_reloads_total{result="ok"|"failed"}`.
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.inc();
        } else {
            self.reloads_failed.inc();
        }
    }

    /// Sets `portcullis_certificate_expiry_timestamp_seconds{cert=which}` to
    /// the certificate's notAfter. `which` names a configured certificate
    /// (e.g. `"server"`, `"client_ca"`).
    pub fn set_cert_expiry(&self, which: &str, unix_seconds: i64) {
        self.cert_expiry
            .get_or_create(&CertLabels {
                cert: Text(which.into()),
            })
            .set(unix_seconds);
    }

    /// The whole registry in the OpenMetrics text format (ending in `# EOF`),
    /// as produced by `prometheus_client::encoding::text::encode`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Only a label encoder can fail, and ours never do; a truncated
            // exposition (no `# EOF`) is rejected by scrapers, which is right.
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests;
