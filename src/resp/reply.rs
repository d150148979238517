//! Reply scanning, the upstream-side step: bytes read from the upstream Redis (RESP2, or RESP3
//! after `HELLO 3`) are cut into whole reply frames without copying or decoding any value.
//!
//! The connection task feeds every upstream read to a [`ReplyScanner`]. Each
//! [`ReplyScan::Complete`] frame goes to the oldest waiting client reply slot (or, for a push or
//! a pub/sub message, to the subscriber path, classified by [`pubsub_kind`]). While a large
//! reply is still arriving, [`ReplyScanner::scanned`] tells how much of its front is already
//! validated and may be forwarded early; [`ReplyScanner::discard_prefix`] is then called for the
//! bytes the caller dropped from its buffer.
//!
//! Scanning is resumable and iterative: a frame arriving in many reads is never rescanned from
//! its start, nesting is kept on an explicit stack, and no memory is sized by a declared length.

mod pubsub;
mod scanner;
#[cfg(test)]
mod tests;

pub use pubsub::{pubsub_kind, PubSubKind};
pub use scanner::{ReplyError, ReplyScan, ReplyScanner, MAX_DEPTH};
