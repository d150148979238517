//! Rates, as the connection applies them: a user's rate (its local GCRA
//! bucket, or with `rate_scope = "shared"` its budget in the upstream Redis),
//! and the end of a pause (delay mode, the failed-AUTH throttle).

use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{replies, Conn};
use crate::config::{RateMode, RateScope};
use crate::limits::rate::{RateBucket, RateVerdict};
use crate::limits::shared_rate::{SharedVerdict, StoreTarget};
use crate::metrics::{CommandResult, Limit};

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Conn<S> {
    /// A pause is over. A failed AUTH waiting for the per-IP failure rate gets
    /// its reply once a token is taken (until then the pause goes on); then
    /// the commands that waited run.
    pub(super) async fn resume(&mut self) {
        if let Some(decided) = self.throttle.take_debt() {
            match self.live.rates.auth_failure(self.peer.ip()) {
                Ok(()) => {
                    let mut failed = false;
                    self.apply(decided, 0..0, &mut failed).await;
                }
                Err(wait) => {
                    self.throttle.owe(decided, wait);
                    return;
                }
            }
        }
        self.process_commands().await;
    }

    /// `rate_scope = "shared"`: the verdict of the user's shared budget, or of
    /// the local bucket while the store cannot be reached.
    async fn shared_verdict(&self, bucket: &RateBucket) -> RateVerdict {
        let mode = self.live.config.limits.rate_mode;
        let Some(user) = self.session.user(&self.live.users) else {
            return bucket.verdict(mode);
        };
        let live = &self.live;
        let target = StoreTarget {
            settings: &live.config.upstream,
            tls: live.upstream_tls.as_ref(),
            renames: &live.renames,
            endpoints: &self.shared.endpoints,
            topology: self.shared.cluster().map(|c| &*c.topology),
        };
        let shared = &self.shared.rate_store;
        match shared.take(&user.name, bucket, &target).await {
            Ok(SharedVerdict::Go) => RateVerdict::Go,
            Ok(SharedVerdict::Wait(wait)) => match mode {
                RateMode::Reject => RateVerdict::Reject,
                RateMode::Delay => RateVerdict::Wait(wait.max(Duration::from_millis(1))),
            },
            Err(()) => {
                self.shared.reporter.metrics().rate_store_fallback();
                bucket.verdict(mode)
            }
        }
    }

    /// Applies the user's rate to the command at `command`: true to run it;
    /// false when it was answered `-ERR rate limit exceeded` (reject mode) or
    /// the connection paused until a token is due (delay mode).
    pub(super) async fn rate_allows(
        &mut self,
        bucket: Option<&RateBucket>,
        command: Range<usize>,
        upstream_failed: &mut bool,
    ) -> bool {
        let Some(bucket) = bucket else {
            return true;
        };
        let verdict = match self.live.config.limits.rate_scope {
            RateScope::Local => bucket.verdict(self.live.config.limits.rate_mode),
            RateScope::Shared => self.shared_verdict(bucket).await,
        };
        if verdict == RateVerdict::Go {
            return true;
        }
        let user = self.session.user(&self.live.users).map(|u| u.name.clone());
        if let RateVerdict::Wait(wait) = verdict {
            self.shared
                .reporter
                .hit(Limit::RateDelay, self.peer, user.as_deref(), "paused");
            self.throttle.pause_for(wait);
        } else {
            self.shared
                .reporter
                .hit(Limit::RateReject, self.peer, user.as_deref(), "rejected");
            self.count(CommandResult::RateLimited, None);
            let decided = self.session.refuse(replies::RATE_LIMITED);
            self.apply(decided, command, upstream_failed).await;
        }
        false
    }
}
