//! Reply order: a FIFO of reply slots, one per command that gets a reply.
//!
//! A slot is either a local reply (AUTH answer, NOAUTH, ...) or "the next
//! upstream reply(s)". Upstream frames are matched to slots strictly in order;
//! pushes (RESP3 `>` frames, RESP2 pub/sub messages while subscribed, MONITOR
//! lines) take no slot. Replies leave in slot order, never out of it.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::client_lines::ClientLines;
use super::listing::{self, Listing, ListingStream};
use super::upstream_link::{Desync, ReplySink};
use crate::acl::User;
use crate::resp::reply::{pubsub_kind, PubSubKind};

/// A reply produced by the proxy itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalReply {
    /// A fixed RESP reply.
    Static(&'static [u8]),
    /// A formatted RESP reply.
    Owned(Bytes),
}

impl LocalReply {
    /// The RESP bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            LocalReply::Static(b) => b,
            LocalReply::Owned(b) => b,
        }
    }
}

/// What the upstream reply of a forwarded command looks like, and what it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// One reply frame.
    Plain,
    /// `(P|S)SUBSCRIBE` / `(P|S)UNSUBSCRIBE` with `n` arguments: `n` confirmation
    /// frames of `kind` (pushes in RESP3), or one error.
    Subscription { kind: PubSubKind, frames: u32 },
    /// `(P|S)UNSUBSCRIBE` without arguments: one frame per current subscription
    /// of that family, or one frame when there is none.
    UnsubscribeAll(PubSubKind),
    /// `HELLO [protover]`: on success the connection speaks that protocol.
    Hello(Option<u8>),
    /// `RESET`: back to RESP2, no subscriptions, no MONITOR.
    Reset,
    /// `MONITOR`: after its `+OK`, timestamped lines stream as pushes.
    Monitor,
    /// `CLIENT INFO` (`own_line`) / `CLIENT LIST`: rewritten to describe the
    /// proxy's clients ([`ClientLines`]).
    ClientLines { own_line: bool },
}

/// What to do with an upstream reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// Send it to the client.
    Pass,
    /// Read and discard it (`CLIENT REPLY OFF|SKIP`, the proxy's own re-AUTH).
    Drop,
    /// Send this instead (a dirty `EXEC` forwarded as `DISCARD`).
    Replace(Bytes),
    /// Send only the keys this user may read (`filter_listings`).
    Listing(Listing, Arc<User>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Local(LocalReply),
    Upstream {
        kind: SlotKind,
        emit: Emit,
        /// Frames still expected; `None` until known (UnsubscribeAll).
        left: Option<u32>,
    },
}

/// What an upstream frame is to the slot queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// A push (message, MONITOR line, RESP3 `>`): sent on, takes no slot.
    Push,
    /// A confirmation of the head slot's (un)subscribe: fills it, never hidden.
    Confirmation,
    /// The head slot's reply.
    Reply,
}

/// Copies the pushes written inside `frame` (a complete, valid reply that is
/// itself not sent) to `out`, in order.
fn nested_pushes(frame: &[u8], out: &mut BytesMut) {
    if memchr::memchr(b'>', frame).is_none() {
        return;
    }
    let mut pos = 0;
    // Walk element by element: into aggregates, over scalars, pushes copied whole.
    while pos < frame.len() {
        let rest = &frame[pos..];
        let Ok(crate::resp::reply::ReplyScan::Complete { len }) =
            crate::resp::reply::ReplyScanner::new().scan(rest)
        else {
            return;
        };
        if rest[0] == b'>' && pos > 0 {
            out.put_slice(&rest[..len]);
            pos += len;
            continue;
        }
        pos += match rest[0] {
            b'*' | b'%' | b'~' | b'>' | b'|' => match memchr::memchr(b'\n', rest) {
                Some(nl) => nl + 1,
                None => return,
            },
            _ => len,
        };
    }
}

/// The connection's reply routing: its slot queue and the client's output.
pub struct Routing<'a> {
    /// The slot queue.
    pub slots: &'a mut ReplySlots,
    /// Replies waiting to be written to the client.
    pub out: &'a mut BytesMut,
}

impl ReplySink for Routing<'_> {
    fn frame(&mut self, frame: &[u8], ty: u8, continued: bool) -> Result<(), Desync> {
        self.slots.on_frame(frame, ty, continued, self.out)
    }

    fn may_stream(&self, ty: u8) -> bool {
        self.slots.can_stream(ty)
    }

    fn stream(&mut self, part: &[u8]) {
        self.slots.stream_part(part, self.out);
    }

    fn fail(&mut self, commands: usize, reply: &'static [u8]) -> Result<(), Desync> {
        self.slots.fail_front(commands, reply, self.out)
    }

    fn full(&self) -> bool {
        self.out.len() >= super::CLIENT_OUT_HIGH
    }
}

/// The slot FIFO plus the connection state that decides what a frame is.
#[derive(Debug, Default)]
pub struct ReplySlots {
    queue: VecDeque<Slot>,
    resp3: bool,
    monitor: bool,
    channels: i64,
    patterns: i64,
    shard: i64,
    /// Upstream slots queued, and answered (by the upstream or failed), so far.
    pushed: u64,
    answered: u64,
    /// Waiting (un)subscribe slots, and waiting `HELLO`/`RESET` slots.
    subscription_changes: u32,
    protocol_changes: u32,
    /// Rewrites `CLIENT INFO`/`LIST` replies; without it they pass as they are.
    client_lines: Option<ClientLines>,
    /// The front slot's large `KEYS`/`SCAN` reply being filtered as it streams.
    listing: Option<ListingStream>,
}

impl ReplySlots {
    /// Empty queue, RESP2.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rewrites `CLIENT INFO`/`LIST` replies with `lines`.
    pub fn set_client_lines(&mut self, lines: ClientLines) {
        self.client_lines = Some(lines);
    }

    /// Forgets every waiting slot and what the connection state was (a
    /// reply was cut off half sent: nothing more can be matched).
    pub fn clear(&mut self) {
        let client_lines = self.client_lines.take();
        *self = ReplySlots::default();
        self.client_lines = client_lines;
    }

    /// Queues a local reply.
    pub fn push_local(&mut self, reply: LocalReply) {
        self.queue.push_back(Slot::Local(reply));
    }

    /// Queues a slot for a forwarded command's reply.
    pub fn push_upstream(&mut self, kind: SlotKind, emit: Emit) {
        let left = match kind {
            SlotKind::Subscription { frames, .. } => Some(frames.max(1)),
            SlotKind::UnsubscribeAll(_) => None,
            _ => Some(1),
        };
        self.queue.push_back(Slot::Upstream { kind, emit, left });
        self.pushed += 1;
        if let Some(n) = self.change_counter(kind) {
            *n += 1;
        }
    }

    /// The counter of waiting slots that `kind` belongs to, if any.
    fn change_counter(&mut self, kind: SlotKind) -> Option<&mut u32> {
        match kind {
            SlotKind::Subscription { .. } | SlotKind::UnsubscribeAll(_) => {
                Some(&mut self.subscription_changes)
            }
            SlotKind::Hello(_) | SlotKind::Reset => Some(&mut self.protocol_changes),
            SlotKind::Plain | SlotKind::Monitor | SlotKind::ClientLines { .. } => None,
        }
    }

    /// True while a waiting reply may change whether RESP2's pub/sub context
    /// applies: an (un)subscribe, or a `HELLO`/`RESET` while subscribed.
    pub fn pubsub_context_pending(&self) -> bool {
        self.subscription_changes > 0 || (self.subscribed() && self.protocol_changes > 0)
    }

    /// True in RESP2's pub/sub context: subscribed, not RESP3 (Redis then runs
    /// only the (un)subscribe family, PING, QUIT and RESET).
    pub fn pubsub_context(&self) -> bool {
        !self.resp3 && self.subscribed()
    }

    /// Number of slots waiting for upstream replies.
    pub fn upstream_pending(&self) -> usize {
        usize::try_from(self.pushed - self.answered).unwrap_or(usize::MAX)
    }

    /// Upstream slots queued since the queue was made.
    pub fn upstream_pushed(&self) -> u64 {
        self.pushed
    }

    /// Upstream slots answered (or failed) since the queue was made, in order.
    pub fn upstream_answered(&self) -> u64 {
        self.answered
    }

    /// Number of queued slots.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// True while subscribed to anything (RESP2 then restricts commands).
    pub fn subscribed(&self) -> bool {
        self.channels + self.patterns + self.shard > 0
    }

    /// True while the connection is in MONITOR mode.
    pub fn monitoring(&self) -> bool {
        self.monitor
    }

    /// True after a successful `HELLO 3`.
    pub fn resp3(&self) -> bool {
        self.resp3
    }

    /// Moves the local replies at the head of the queue to `out`.
    pub fn drain_local(&mut self, out: &mut BytesMut) {
        while let Some(Slot::Local(r)) = self.queue.front() {
            out.put_slice(r.bytes());
            self.queue.pop_front();
        }
    }

    /// True when a frame of type `ty` now starting may be sent on before it is
    /// complete: it is certainly the plain reply of the head slot, passed as is.
    pub fn can_stream(&self, ty: u8) -> bool {
        let head_plain = matches!(
            self.queue.front(),
            Some(Slot::Upstream {
                kind: SlotKind::Plain,
                emit: Emit::Pass,
                ..
            })
        );
        // A large KEYS or SCAN reply is filtered as it streams.
        let head_listing = matches!(
            self.queue.front(),
            Some(Slot::Upstream {
                kind: SlotKind::Plain,
                emit: Emit::Listing(Listing::Keys | Listing::Scan, _),
                ..
            })
        );
        (head_plain || (head_listing && ty == b'*')) && !self.may_be_push(ty)
    }

    /// The validated front (or a further part) of a large reply: to the
    /// client, or through the front slot's listing filter.
    fn stream_part(&mut self, part: &[u8], out: &mut BytesMut) {
        match self.queue.front() {
            Some(Slot::Upstream {
                emit: Emit::Listing(listing, user),
                ..
            }) => self
                .listing
                .get_or_insert_with(|| ListingStream::new(*listing, Arc::clone(user)))
                .feed(part, out),
            _ => out.put_slice(part),
        }
    }

    fn may_be_push(&self, ty: u8) -> bool {
        ty == b'>'
            || (ty == b'*' && !self.resp3 && self.subscribed())
            || (ty == b'+' && self.monitor)
    }

    /// Routes one upstream frame (or, when `streamed`, the rest of a frame whose
    /// start was already sent) to `out`, then moves following local replies.
    pub fn on_frame(
        &mut self,
        frame: &[u8],
        ty: u8,
        streamed: bool,
        out: &mut BytesMut,
    ) -> Result<(), Desync> {
        let route = if streamed {
            Route::Reply
        } else {
            self.route_push(frame, ty, out)
        };
        if route == Route::Push {
            self.drain_local(out);
            return Ok(());
        }
        let is_error = ty == b'-' || ty == b'!';
        let Some(Slot::Upstream { kind, emit, left }) = self.queue.front_mut() else {
            return Err(Desync);
        };
        let kind = *kind;
        let remaining = match left {
            Some(n) if !is_error => n.saturating_sub(1),
            _ => 0,
        };
        *left = Some(remaining);
        match emit {
            Emit::Pass => match (kind, &self.client_lines) {
                (SlotKind::ClientLines { own_line }, Some(lines)) if !streamed => {
                    out.put_slice(&lines.rewrite(frame, own_line));
                }
                _ => out.put_slice(frame),
            },
            // Redis 7.0 never hides subscription confirmations (they count as
            // pushes for `CLIENT REPLY`), nor pushes written inside a reply.
            Emit::Drop if route == Route::Confirmation => out.put_slice(frame),
            Emit::Drop => {
                if self.resp3 {
                    nested_pushes(frame, out);
                }
            }
            Emit::Replace(r) => out.put_slice(r),
            Emit::Listing(listing, user) => match self.listing.take() {
                Some(stream) if streamed => stream.finish(frame, out),
                _ => listing::filter(frame, *listing, user, self.resp3, out),
            },
        }
        if remaining == 0 {
            self.queue.pop_front();
            self.answered += 1;
            if let Some(n) = self.change_counter(kind) {
                *n -= 1;
            }
            self.apply_effect(kind, is_error, ty);
        }
        self.drain_local(out);
        Ok(())
    }

    /// Sends pushes on, and tracks subscription confirmations.
    fn route_push(&mut self, frame: &[u8], ty: u8, out: &mut BytesMut) -> Route {
        if ty == b'+' && self.monitor && frame.get(1).is_some_and(u8::is_ascii_digit) {
            out.put_slice(frame);
            return Route::Push;
        }
        let head_sub = match self.queue.front() {
            Some(Slot::Upstream {
                kind: SlotKind::Subscription { kind, .. } | SlotKind::UnsubscribeAll(kind),
                ..
            }) => Some(*kind),
            _ => None,
        };
        let candidate = self.may_be_push(ty) || (ty == b'*' && head_sub.is_some());
        let classified = if candidate { pubsub_kind(frame) } else { None };
        let Some((kind, count)) = classified else {
            if ty == b'>' {
                out.put_slice(frame);
                return Route::Push;
            }
            return Route::Reply;
        };
        if !kind.is_subscription_change() {
            out.put_slice(frame);
            return Route::Push;
        }
        if head_sub == Some(kind) {
            let expected = u32::try_from(self.family_count(kind).max(1)).unwrap_or(u32::MAX);
            if let Some(Slot::Upstream {
                left: left @ None, ..
            }) = self.queue.front_mut()
            {
                *left = Some(expected);
            }
            self.update_counts(kind, count);
            return Route::Confirmation;
        }
        // Unsolicited (e.g. the server dropped a shard channel): a push.
        self.update_counts(kind, count);
        out.put_slice(frame);
        Route::Push
    }

    fn family_count(&self, kind: PubSubKind) -> i64 {
        use PubSubKind::*;
        match kind {
            Subscribe | Unsubscribe => self.channels,
            PSubscribe | PUnsubscribe => self.patterns,
            _ => self.shard,
        }
    }

    fn update_counts(&mut self, kind: PubSubKind, count: Option<i64>) {
        use PubSubKind::*;
        let Some(count) = count else { return };
        match kind {
            Subscribe | Unsubscribe => self.channels = (count - self.patterns).max(0),
            PSubscribe | PUnsubscribe => self.patterns = (count - self.channels).max(0),
            SSubscribe | SUnsubscribe => self.shard = count.max(0),
            _ => {}
        }
    }

    fn apply_effect(&mut self, kind: SlotKind, is_error: bool, ty: u8) {
        if is_error {
            return;
        }
        match kind {
            SlotKind::Hello(Some(v)) => self.resp3 = v == 3,
            SlotKind::Reset => {
                self.resp3 = false;
                self.monitor = false;
                self.channels = 0;
                self.patterns = 0;
                self.shard = 0;
            }
            SlotKind::Monitor if ty == b'+' => self.monitor = true,
            _ => {}
        }
    }

    /// The next `commands` upstream slots get `reply` (unless their reply was
    /// to be dropped) and the local replies up to the next one go out: those
    /// commands got no reply (a shared upstream connection was lost).
    pub fn fail_front(
        &mut self,
        commands: usize,
        reply: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), Desync> {
        for _ in 0..commands {
            self.drain_local(out);
            let Some(Slot::Upstream { kind, emit, .. }) = self.queue.pop_front() else {
                return Err(Desync);
            };
            self.answered += 1;
            if let Some(n) = self.change_counter(kind) {
                *n -= 1;
            }
            if emit != Emit::Drop {
                out.put_slice(reply);
            }
        }
        self.drain_local(out);
        Ok(())
    }

    /// The upstream is gone: every slot waiting for it gets `reply` (unless its
    /// reply was to be dropped), local replies keep their places.
    pub fn fail_upstream(&mut self, out: &mut BytesMut, reply: &[u8]) {
        while let Some(slot) = self.queue.pop_front() {
            match slot {
                Slot::Local(r) => out.put_slice(r.bytes()),
                Slot::Upstream {
                    emit: Emit::Drop, ..
                } => self.answered += 1,
                Slot::Upstream { .. } => {
                    self.answered += 1;
                    out.put_slice(reply);
                }
            }
        }
        self.subscription_changes = 0;
        self.protocol_changes = 0;
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
