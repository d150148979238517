//! Every limit hit is counted (`portcullis_limit_hits_total{limit}`) and
//! logged as one WARN line, with the lines of each limit rate-limited so a
//! flood of abusive clients cannot flood the log: past the budget, lines are
//! dropped and the next line that gets through says how many were.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota};
use tracing::warn;

use crate::metrics::{Limit, Metrics};

/// WARN lines per second for one limit, and how many may come at once.
const LINES_PER_SEC: u32 = 5;
const LINES_BURST: u32 = 20;
/// More than the number of [`Limit`] variants.
const SLOTS: usize = 32;

#[derive(Debug)]
struct LogBudget {
    gate: DefaultDirectRateLimiter,
    suppressed: AtomicU64,
}

/// Counts limit hits and logs them within a per-limit line budget.
#[derive(Debug)]
pub struct Reporter {
    metrics: Arc<Metrics>,
    budgets: Vec<LogBudget>,
}

impl Reporter {
    /// A reporter feeding `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let quota = Quota::per_second(NonZeroU32::new(LINES_PER_SEC).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(LINES_BURST).unwrap_or(NonZeroU32::MIN));
        let budgets = (0..SLOTS)
            .map(|_| LogBudget {
                gate: DefaultDirectRateLimiter::direct(quota),
                suppressed: AtomicU64::new(0),
            })
            .collect();
        Reporter { metrics, budgets }
    }

    /// The metrics this reporter feeds.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Counts one hit of `limit` by `peer` (running as `user`, if known) and
    /// logs it unless this limit's line budget is spent. `detail` must never
    /// hold a password or a value.
    pub fn hit(&self, limit: Limit, peer: SocketAddr, user: Option<&str>, detail: &str) {
        self.metrics.limit_hit(limit);
        let Some(budget) = self.budgets.get(limit as usize) else {
            return;
        };
        if budget.gate.check().is_err() {
            budget.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = budget.suppressed.swap(0, Ordering::Relaxed);
        warn!(
            limit = limit.as_str(),
            %peer,
            user = user.unwrap_or(""),
            detail,
            suppressed,
            "limit reached"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hit_is_counted_even_when_its_line_is_dropped() {
        let reporter = Reporter::new(Arc::new(Metrics::new()));
        let peer: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        for _ in 0..1000 {
            reporter.hit(Limit::MaxClientsPerIp, peer, None, "");
        }
        reporter.hit(Limit::RateReject, peer, Some("app"), "GET");
        let m = reporter.metrics();
        assert_eq!(m.limit_hits(Limit::MaxClientsPerIp), 1000);
        assert_eq!(m.limit_hits(Limit::RateReject), 1);
        let b = &reporter.budgets[Limit::MaxClientsPerIp as usize];
        // At most the burst plus what refilled while looping got a line.
        let dropped = b.suppressed.load(Ordering::Relaxed);
        assert!(dropped >= 1000 - u64::from(LINES_BURST) - 50, "{dropped}");
        assert_eq!(
            reporter.budgets[Limit::RateReject as usize]
                .suppressed
                .load(Ordering::Relaxed),
            0
        );
    }
}
