//! What one connection adds to the metrics: commands by the user they ran as
//! and their result (kept per connection, added once per read batch), and the
//! latency of each forwarded command from the read that brought it to the
//! routing of its reply.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;

use crate::acl::User;
use crate::metrics::{CommandResult, Metrics};

/// Per-connection tallies not yet added to the metrics.
#[derive(Debug)]
pub(super) struct ConnStats {
    /// Commands by result since the last flush, and the user they ran as.
    tally: [u64; CommandResult::ALL.len()],
    tally_user: Option<Arc<User>>,
    /// When the last client read arrived (latency starts there).
    read_at: Instant,
    /// Forwarded commands not yet answered: (read instant, count), oldest first.
    timings: VecDeque<(Instant, u64)>,
    /// Upstream replies already taken out of `timings`.
    timed_answered: u64,
}

impl Default for ConnStats {
    fn default() -> Self {
        ConnStats {
            tally: [0; CommandResult::ALL.len()],
            tally_user: None,
            read_at: Instant::now(),
            timings: VecDeque::new(),
            timed_answered: 0,
        }
    }
}

/// A user's address, only compared (0 for none).
fn address(user: Option<&Arc<User>>) -> usize {
    user.map_or(0, |u| Arc::as_ptr(u) as usize)
}

impl ConnStats {
    /// Client bytes arrived at `at`.
    pub(super) fn read(&mut self, at: Instant) {
        self.read_at = at;
    }

    /// Counts one command's `result` under `user` (the user it ran as),
    /// flushing the tally to `metrics` first when that user differs.
    pub(super) fn count(
        &mut self,
        result: CommandResult,
        user: Option<&Arc<User>>,
        metrics: &Metrics,
    ) {
        if address(user) != address(self.tally_user.as_ref()) {
            self.flush(metrics);
            self.tally_user = user.cloned();
        }
        self.tally[result as usize] += 1;
    }

    /// Adds the commands counted since the last flush to `metrics`
    /// (`user=""` before authentication).
    pub(super) fn flush(&mut self, metrics: &Metrics) {
        if self.tally.iter().any(|&n| n > 0) {
            let user = self.tally_user.as_ref().map_or("", |u| u.name.as_str());
            metrics.commands(user, &self.tally);
            self.tally = [0; CommandResult::ALL.len()];
        }
    }

    /// `forwarded` commands of the last read batch went upstream.
    pub(super) fn forwarded(&mut self, forwarded: u64) {
        if forwarded > 0 {
            self.timings.push_back((self.read_at, forwarded));
        }
    }

    /// Records the latency of every forwarded command answered since the last
    /// call; `answered` counts upstream replies routed (or failed) so far.
    pub(super) fn observe(&mut self, answered: u64, metrics: &Metrics) {
        let mut done = answered.saturating_sub(self.timed_answered);
        self.timed_answered = answered;
        if done == 0 {
            return;
        }
        let now = Instant::now();
        while done > 0 {
            let Some(front) = self.timings.front_mut() else {
                break;
            };
            let n = front.1.min(done);
            let seconds = now.saturating_duration_since(front.0).as_secs_f64();
            for _ in 0..n {
                metrics.observe_latency(seconds);
            }
            front.1 -= n;
            done -= n;
            if front.1 == 0 {
                self.timings.pop_front();
            }
        }
    }

    /// The slot queue was replaced (its counters start again).
    pub(super) fn restart_timings(&mut self) {
        self.timings.clear();
        self.timed_answered = 0;
    }
}
