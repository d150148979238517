//! `idle_timeout_s`, like Redis's `timeout`: a client with nothing in flight,
//! not subscribed, not in MONITOR and not paused by the proxy is closed after
//! that long without I/O. One timer, re-armed lazily (no timer work per command).

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::io::tick;

/// The idle clock of one connection.
#[derive(Debug)]
pub(super) struct IdleClock {
    timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    /// The last byte read from or written to the client.
    last_active: Instant,
}

impl IdleClock {
    /// A clock for `timeout` (`None`: never idle).
    pub(super) fn new(timeout: Option<Duration>) -> Self {
        IdleClock {
            timeout,
            timer: None,
            last_active: Instant::now(),
        }
    }

    /// The client read or was written to now.
    pub(super) fn touch(&mut self) {
        self.last_active = Instant::now();
    }

    /// When the client was last active.
    pub(super) fn last_active(&self) -> Instant {
        self.last_active
    }

    /// True when the timeout applies now (`idle`: nothing in flight, not
    /// subscribed, ... as the connection judges); arms the timer if needed.
    pub(super) fn watch(&mut self, idle: bool) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        if idle && self.timer.is_none() {
            self.timer = Some(Box::pin(tokio::time::sleep_until(
                self.last_active + timeout,
            )));
        }
        idle
    }

    /// Completes when the timer fires (never while it is not armed).
    pub(super) async fn fired(&mut self) {
        tick(&mut self.timer).await;
    }

    /// After the timer fired: true when the client really was idle that long
    /// (close it, like Redis: no reply); otherwise the timer moves to the new deadline.
    pub(super) fn expired(&mut self) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        let deadline = self.last_active + timeout;
        if Instant::now() >= deadline {
            return true;
        }
        if let Some(t) = self.timer.as_mut() {
            t.as_mut().reset(deadline);
        }
        false
    }
}
