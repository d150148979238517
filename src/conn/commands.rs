//! The client side of the connection task: client bytes are scanned into
//! commands, each command passes its user's rate and is decided by the
//! session, and the decision is applied (a local reply in its slot, or the
//! command's bytes forwarded through the upstream link), in command order.

use std::ops::Range;
use std::sync::Arc;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

use super::cluster::link::Before;
use super::decision::{Decided, Decision};
use super::io::shrink;
use super::session::{self, Rebind};
use super::slots::{Emit, LocalReply, SlotKind};
use super::state::{Close, Phase};
use super::stream::{self, Passthrough};
use super::{replies, Conn};
use crate::acl::log::Reason;
use crate::acl::Users;
use crate::limits::rate::RateBucket;
use crate::logsafe::Escaped;
use crate::metrics::{CommandResult, Limit};
use crate::resp::request::{ProtocolError, RequestScan};
use crate::upstream;

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Conn<S> {
    /// True while commands already read still run: the connection is open,
    /// or its client or the server stopped sending but waits for replies.
    fn runs_commands(&self) -> bool {
        matches!(
            self.phase,
            Phase::Open | Phase::Closing(Close::ClientEof | Close::Drain)
        )
    }

    /// Scans commands out of the input and applies each decision, until the
    /// input ends in an incomplete command, or a command must wait (for a
    /// pause, or for replies that settle the state it is decided in), or the
    /// connection closes.
    pub(super) async fn process_commands(&mut self) {
        self.held = false;
        self.refresh();
        let mut pos = 0;
        let mut upstream_failed = false;
        let pushed = self.slots.upstream_pushed();
        let users = Arc::clone(&self.live.users);
        while self.runs_commands() && !self.throttle.paused() && pos < self.client.rx.inbuf.len() {
            if let Some(p) = self.passthrough.as_mut() {
                let inbuf = &self.client.rx.inbuf;
                let n = p.remaining.min(inbuf.len() - pos);
                if p.forward {
                    self.link.send(&inbuf[pos..pos + n]);
                }
                p.remaining -= n;
                pos += n;
                if p.remaining == 0 {
                    self.passthrough = None;
                }
                continue;
            }
            let user = self.session.user(&users);
            let bucket = self.throttle.bucket(user, &self.live.rates);
            let unauth = user.is_none();
            let rest = &self.client.rx.inbuf[pos..];
            let len = match self.scanner.scan(rest, unauth) {
                Ok(RequestScan::Complete(n)) => n,
                Ok(RequestScan::Incomplete) => {
                    match self
                        .stream_request(pos, bucket, &users, &mut upstream_failed)
                        .await
                    {
                        Some(n) => {
                            pos += n;
                            continue;
                        }
                        None => break,
                    }
                }
                Err(e) => {
                    self.protocol_error(&e);
                    break;
                }
            };
            let args = self.scanner.args(&self.client.rx.inbuf[pos..]);
            if self.slots.pubsub_context_pending() && session::depends_on_pubsub_context(args) {
                // Redis decides it in a state that replies on their way will
                // settle; it is scanned again once they have been routed.
                self.held = true;
                break;
            }
            let effect = self.link.effect_of(args);
            match self
                .link
                .before(args, effect, self.slots.upstream_pending())
            {
                Before::Go => {}
                // It runs on the other side (a connection of the client's own,
                // or the shared ones) once the replies in flight are in.
                Before::Hold => {
                    self.held = true;
                    break;
                }
                Before::Answer(reply) => {
                    self.slots.push_local(LocalReply::Static(reply));
                    self.count(CommandResult::Local, None);
                    pos += len;
                    continue;
                }
            }
            self.session.set_pubsub_context(self.slots.pubsub_context());
            let bucket = bucket.filter(|_| !session::rate_exempt(args));
            if !self
                .rate_allows(bucket.as_deref(), pos..pos + len, &mut upstream_failed)
                .await
            {
                if !self.throttle.paused() {
                    pos += len;
                }
                continue;
            }
            let args = self.scanner.args(&self.client.rx.inbuf[pos..]);
            let decided = self.session.decide(args, &users, &self.live.renames);
            let command = pos..pos + len;
            pos += len;
            if self.settle(decided, command, &mut upstream_failed).await {
                self.link.sent(effect);
            }
        }
        let inbuf = &mut self.client.rx.inbuf;
        inbuf.advance(pos);
        shrink(inbuf);
        self.slots.drain_local(&mut self.client.tx.out);
        let forwarded = self.slots.upstream_pushed() - pushed;
        self.link
            .flush(usize::try_from(forwarded).unwrap_or(usize::MAX));
        self.stats.forwarded(forwarded);
        self.stats.flush(self.shared.reporter.metrics());
    }

    /// Brings the connection to the configuration in force, if a reload
    /// changed it. Closes it when its user was removed or turned `off` (like
    /// Redis's `ACL DELUSER`: commands in flight get no reply), or when it is
    /// subscribed and its user's channel permissions changed (Redis 7.0 kills
    /// such subscribers too; the proxy does not track which channels they hold).
    pub(super) fn refresh(&mut self) {
        let Some(current) = self.shared.newer_than(&self.live) else {
            return;
        };
        let old = std::mem::replace(&mut self.live, current);
        self.throttle.forget_bucket();
        let (user, reason) = match self.session.rebind(&old.users, &self.live.users) {
            Rebind::Kept {
                channels_changed: true,
            } if self.slots.subscribed() => (
                self.session.user(&self.live.users).map(|u| u.name.clone()),
                "channel permissions of a subscribed user changed",
            ),
            Rebind::Kept { .. } => return,
            Rebind::Gone(user) => (Some(user), "user removed or turned off"),
        };
        self.close(Close::Reload { user, reason });
    }

    /// Acts on what a decision did besides its reply (a failed AUTH under the
    /// per-IP failure rate, a user cap, the metrics), then applies it.
    async fn settle(
        &mut self,
        decided: Decided,
        command: Range<usize>,
        upstream_failed: &mut bool,
    ) -> bool {
        let events = self.session.take_events();
        if let Some(user) = events.user_cap {
            self.shared
                .reporter
                .hit(Limit::UserMaxClients, self.peer, Some(&user), "auth");
        }
        // A denial or failed AUTH is counted now (its reply may wait below);
        // anything else once applied, as forwarded or answered here.
        let known = match events.denied {
            Some(Reason::Key) => Some(CommandResult::DeniedKey),
            Some(Reason::Channel) => Some(CommandResult::DeniedChannel),
            Some(Reason::Command | Reason::Auth) => Some(CommandResult::DeniedCommand),
            None => events.auth_failed.then_some(CommandResult::Local),
        };
        if let Some(result) = known {
            self.count(result, None);
        }
        if events.auth_failed {
            self.shared.reporter.metrics().auth_failure();
            if let Err(wait) = self.live.rates.auth_failure(self.peer.ip()) {
                self.shared.reporter.hit(
                    Limit::AuthFailuresPerIp,
                    self.peer,
                    None,
                    "reply delayed",
                );
                self.throttle.owe(decided, wait);
                return false;
            }
        }
        let forwarded = self.apply(decided, command, upstream_failed).await;
        if known.is_none() {
            let result = match (forwarded, events.shadow_denied) {
                (true, Some(Reason::Key)) => CommandResult::ShadowDeniedKey,
                (true, Some(Reason::Channel)) => CommandResult::ShadowDeniedChannel,
                (true, Some(_)) => CommandResult::ShadowDeniedCommand,
                (true, None) => CommandResult::Forwarded,
                (false, _) => CommandResult::Local,
            };
            // RESET ran as the user it left.
            self.count(result, events.reset_from);
        }
        forwarded
    }

    /// Counts one command's outcome under the user it ran as (`ran_as`, else
    /// the current one), and keeps the client's card (`CLIENT LIST`) on the
    /// current user.
    pub(super) fn count(&mut self, result: CommandResult, ran_as: Option<Arc<crate::acl::User>>) {
        let current = self.session.user(&self.live.users);
        let metrics = self.shared.reporter.metrics();
        self.stats
            .count(result, ran_as.as_ref().or(current), metrics);
        let address = current.map_or(0, |u| Arc::as_ptr(u) as usize);
        if address != self.card_user {
            self.card_user = address;
            self.card.set_user(current.map_or("", |u| u.name.as_str()));
        }
    }

    /// Malformed or oversized input: Redis's error, then close.
    fn protocol_error(&mut self, e: &ProtocolError) {
        let limit = match e {
            ProtocolError::TooBigInline
            | ProtocolError::TooBigMbulkCount
            | ProtocolError::TooBigBulkCount => Limit::MaxInlineLen,
            ProtocolError::InvalidMultibulkLength => Limit::MaxMultibulkLen,
            ProtocolError::InvalidBulkLength => Limit::MaxBulkLen,
            ProtocolError::UnauthenticatedMultibulkLength => Limit::UnauthMultibulkLen,
            ProtocolError::UnauthenticatedBulkLength => Limit::UnauthBulkLen,
            ProtocolError::QueryBufferFull => Limit::MaxQueryBuffer,
            ProtocolError::ExpectedDollar(_) | ProtocolError::UnbalancedQuotes => {
                Limit::ProtocolError
            }
        };
        let user = self.session.user(&self.live.users).map(|u| u.name.clone());
        self.shared
            .reporter
            .hit(limit, self.peer, user.as_deref(), &e.to_string());
        self.slots.push_local(LocalReply::Owned(e.reply().into()));
        self.close(Close::Requested);
    }

    /// The command at `pos` is incomplete: when it is large and its last
    /// argument still arriving, decide it now and pass the rest through
    /// ([`stream`]). Returns the bytes consumed.
    async fn stream_request(
        &mut self,
        pos: usize,
        bucket: Option<Arc<RateBucket>>,
        users: &Users,
        upstream_failed: &mut bool,
    ) -> Option<usize> {
        if self.slots.pubsub_context_pending() || !self.link.streams_requests() {
            return None;
        }
        self.session.set_pubsub_context(self.slots.pubsub_context());
        let rest = &self.client.rx.inbuf[pos..];
        let early = stream::early(&self.scanner, rest)?;
        let effect = self.link.effect_of(early.args());
        let held = rest.len();
        if !self
            .rate_allows(bucket.as_deref(), pos..pos, upstream_failed)
            .await
        {
            if self.throttle.paused() {
                return None;
            }
            // Rejected: drop what arrived and what is still to come.
            self.scanner.reset();
            self.passthrough = Some(Passthrough {
                remaining: early.remaining,
                forward: false,
            });
            return Some(held);
        }
        let decided = self.session.decide(early.args(), users, &self.live.renames);
        let own_bytes = matches!(decided.decision, Decision::Forward(_));
        let forwarded = self.settle(decided, pos..pos + held, upstream_failed).await;
        if forwarded {
            self.link.sent(effect);
        }
        self.scanner.reset();
        self.passthrough = Some(Passthrough {
            remaining: early.remaining,
            forward: forwarded && own_bytes,
        });
        Some(held)
    }

    /// Applies one decision; true when the command's bytes went upstream.
    pub(super) async fn apply(
        &mut self,
        decided: Decided,
        command: Range<usize>,
        upstream_failed: &mut bool,
    ) -> bool {
        let Decided { decision, suppress } = decided;
        let (bytes, kind, emit) = match decision {
            Decision::Nothing => return false,
            Decision::Local(r) => {
                if !suppress {
                    self.slots.push_local(r);
                }
                return false;
            }
            Decision::Quit => {
                if !suppress {
                    self.slots.push_local(LocalReply::Static(replies::OK));
                }
                self.close(Close::Requested);
                return false;
            }
            Decision::Refuse(reply) => {
                self.slots.push_local(LocalReply::Static(reply));
                self.close(Close::Requested);
                return false;
            }
            Decision::Forward(kind) => (None, kind, Emit::Pass),
            Decision::ForwardFiltered(listing, user) => {
                (None, SlotKind::Plain, Emit::Listing(listing, user))
            }
            Decision::ForwardInstead(b, kind, emit) => (Some(b), kind, emit),
        };
        if self.link.cluster.is_some() {
            return self
                .apply_cluster(bytes, kind, emit, suppress, command, upstream_failed)
                .await;
        }
        if !self.link.is_open() && !*upstream_failed {
            *upstream_failed = !self.open_link().await;
        }
        if !self.link.is_open() {
            if !suppress {
                self.slots
                    .push_local(LocalReply::Static(replies::UPSTREAM_UNAVAILABLE));
            }
            return false;
        }
        let renames = &self.live.renames;
        if let Some(setname) = self.session.take_pending_name() {
            let renamed = renames.rewrite(&setname, None);
            self.link.send(renamed.as_deref().unwrap_or(&setname));
            self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
        }
        match &bytes {
            Some(b) => {
                let renamed = renames.rewrite(b, None);
                self.link.send(renamed.as_deref().unwrap_or(b));
            }
            None => {
                let own = &self.client.rx.inbuf[command.clone()];
                let args = self.scanner.args(&self.client.rx.inbuf[command.start..]);
                let renamed = renames.rewrite(own, Some(args));
                self.link.send(renamed.as_deref().unwrap_or(own));
            }
        }
        self.slots
            .push_upstream(kind, if suppress { Emit::Drop } else { emit });
        if kind == SlotKind::Reset {
            // RESET also logs the upstream connection out: log the proxy back in.
            if let Some(auth) =
                upstream::auth_command(&self.live.config.upstream, &self.live.renames)
            {
                self.link.send(&auth);
                self.slots.push_upstream(SlotKind::Plain, Emit::Drop);
            }
        }
        true
    }

    /// Opens the upstream link; false (and a WARN line) when it cannot be.
    pub(super) async fn open_link(&mut self) -> bool {
        let opened = self.link.open(&self.live, &self.shared, &self.card).await;
        match opened {
            Ok(()) => true,
            Err(e) => {
                self.shared.reporter.metrics().upstream_connect_error();
                warn!(peer = %self.peer, error = %Escaped(&e), "upstream unavailable");
                false
            }
        }
    }
}
