//! `[auth.token]`: the connection ends when the token it authenticated with
//! expires, unless a fresh `AUTH` came first. One timer, re-armed only when
//! the session's deadline changes.

use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Instant, Sleep};

use super::io::tick;

/// The token expiry timer of one connection.
#[derive(Debug, Default)]
pub(super) struct TokenClock {
    /// The deadline (Unix seconds) the timer is armed for.
    armed_for: Option<u64>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl TokenClock {
    /// Follows the session's deadline `expires` (Unix seconds); true while a
    /// deadline is armed.
    pub(super) fn follow(&mut self, expires: Option<u64>) -> bool {
        if expires != self.armed_for {
            self.armed_for = expires;
            self.timer = expires.map(|at| {
                let due = UNIX_EPOCH + Duration::from_secs(at);
                let left = due
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                Box::pin(tokio::time::sleep_until(Instant::now() + left))
            });
        }
        self.timer.is_some()
    }

    /// Completes when the armed deadline passes (never while none is armed).
    pub(super) async fn fired(&mut self) {
        tick(&mut self.timer).await;
    }
}
