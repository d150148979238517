//! Throttling of one connection: its user's rate bucket, the pause during
//! which the client is not read (rate `delay`, the per-IP auth-failure rate),
//! and a failed `AUTH` whose reply waits for that rate.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Sleep;

use super::decision::Decided;
use super::io::tick;
use crate::acl::User;
use crate::limits::rate::{RateBucket, Rates};

/// A connection's throttling state.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    /// The user the bucket is for (its address, only compared) and its bucket.
    bucket: Option<(usize, Option<Arc<RateBucket>>)>,
    /// Not reading or running commands until this fires.
    pause: Option<Pin<Box<Sleep>>>,
    /// A failed AUTH whose reply waits for a token of the per-IP failure rate.
    auth_debt: Option<Decided>,
}

impl Throttle {
    /// The rate bucket of `user` (the user commands run as now), if it has one.
    pub(super) fn bucket(
        &mut self,
        user: Option<&Arc<User>>,
        rates: &Rates,
    ) -> Option<Arc<RateBucket>> {
        let key = user.map_or(0, |u| Arc::as_ptr(u) as usize);
        match &self.bucket {
            Some((k, bucket)) if *k == key => bucket.clone(),
            _ => {
                let bucket = user.and_then(|u| rates.user(&u.name)).cloned();
                self.bucket = Some((key, bucket.clone()));
                bucket
            }
        }
    }

    /// Forgets the bucket (after a reload: the user's settings may differ).
    pub(super) fn forget_bucket(&mut self) {
        self.bucket = None;
    }

    /// Stops reading and running commands for `wait`.
    pub(super) fn pause_for(&mut self, wait: Duration) {
        self.pause = Some(Box::pin(tokio::time::sleep(wait)));
    }

    /// True while paused.
    pub(super) fn paused(&self) -> bool {
        self.pause.is_some()
    }

    /// Completes when the pause is over (never while not paused).
    pub(super) async fn pause_over(&mut self) {
        tick(&mut self.pause).await;
        self.pause = None;
    }

    /// Holds the reply of a failed AUTH until a token of the failure rate is due.
    pub(super) fn owe(&mut self, decided: Decided, wait: Duration) {
        self.auth_debt = Some(decided);
        self.pause_for(wait);
    }

    /// The held failed AUTH, if any.
    pub(super) fn take_debt(&mut self) -> Option<Decided> {
        self.auth_debt.take()
    }
}
