//! What the session decides for one command, applied by the connection task
//! in command order.

use std::sync::Arc;

use bytes::Bytes;

use super::listing::Listing;
use super::slots::{Emit, LocalReply, SlotKind};
use crate::acl::User;

/// What one command becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward the command's own bytes; the reply fills a slot of this kind.
    Forward(SlotKind),
    /// Forward the command's own bytes; only the keys the user may read
    /// reach the client (`filter_listings`).
    ForwardFiltered(Listing, Arc<User>),
    /// Forward these bytes instead of the command's.
    ForwardInstead(Bytes, SlotKind, Emit),
    /// Answer here.
    Local(LocalReply),
    /// `QUIT`: answer `+OK`, then close.
    Quit,
    /// Answer this error, then close (a connection cap).
    Refuse(&'static [u8]),
    /// No reply and nothing forwarded (empty command, `CLIENT REPLY OFF|SKIP`).
    Nothing,
}

/// A decision plus whether `CLIENT REPLY OFF|SKIP` hides its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// What to do.
    pub decision: Decision,
    /// True when the reply must not reach the client.
    pub suppress: bool,
}
