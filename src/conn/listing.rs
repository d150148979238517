//! `filter_listings`: the replies of `KEYS`, `SCAN` and `RANDOMKEY` keep only
//! the keys the user may read — exactly the keys for which `ACL DRYRUN <user>
//! GET <key>` is `OK` — with `SCAN`'s cursor unchanged. One walk,
//! [`ListingStream`], filters a large `KEYS` or `SCAN` reply as it arrives
//! and a small one ([`filter`]) in one piece: only the keys kept are held
//! until the end (their count heads the array), never the whole reply. Pushes Redis wrote
//! inside the reply go out first, as pushes.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use crate::acl::check::may_read;
use crate::acl::check::CheckScratch;
use crate::acl::User;
use crate::resp::reply::{ReplyScan, ReplyScanner};

/// A listing command whose reply is filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `KEYS pattern`: an array of keys.
    Keys,
    /// `SCAN cursor [...]`: `[cursor, [keys]]`.
    Scan,
    /// `RANDOMKEY`: a key or nil.
    RandomKey,
}

impl Listing {
    /// The listing that command `name` (its full lowercase name) is.
    pub fn of(name: &str) -> Option<Listing> {
        match name {
            "keys" => Some(Listing::Keys),
            "scan" => Some(Listing::Scan),
            "randomkey" => Some(Listing::RandomKey),
            _ => None,
        }
    }
}

/// Said instead of a reply the proxy could not walk (never the reply itself).
const UNFILTERABLE: &[u8] = b"-ERR the proxy could not filter this reply\r\n";

/// Writes `frame` (one complete reply of `listing`) to `out` with only the
/// keys `user` may read; `resp3` picks RANDOMKEY's nil. An array is walked
/// by the same [`ListingStream`] that filters a reply as it streams.
pub fn filter(frame: &[u8], listing: Listing, user: &Arc<User>, resp3: bool, out: &mut BytesMut) {
    match (frame.first(), listing) {
        (Some(b'*'), Listing::RandomKey) => out.put_slice(UNFILTERABLE),
        (Some(b'*'), _) => ListingStream::new(listing, Arc::clone(user)).finish(frame, out),
        (Some(b'$'), Listing::RandomKey) => match bulk_value(frame) {
            Some(key) if !may_read(user, key, &mut CheckScratch::default()) => {
                out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
            }
            _ => out.put_slice(frame),
        },
        // Errors and nils hold no key.
        _ => out.put_slice(frame),
    }
}

/// `*<n>\r\n` at the start of `line`: `n`.
fn header(line: &[u8]) -> Option<usize> {
    if line.first() != Some(&b'*') {
        return None;
    }
    let nl = memchr::memchr(b'\n', line)?;
    std::str::from_utf8(line.get(1..nl.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()
}

/// The value of a bulk string frame `$<n>\r\n<value>\r\n`.
fn bulk_value(frame: &[u8]) -> Option<&[u8]> {
    if frame.first() != Some(&b'$') {
        return None;
    }
    let nl = memchr::memchr(b'\n', frame)?;
    frame.get(nl + 1..frame.len().checked_sub(2)?)
}

/// Where a streamed reply's walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The reply's own array header.
    Outer,
    /// `SCAN`'s cursor.
    Cursor,
    /// `SCAN`'s key array header.
    Inner,
    /// Keys still to come.
    Keys(usize),
    /// Walked; more bytes would be wrong.
    Done,
    /// Not a reply this walk understands: the client gets [`UNFILTERABLE`].
    Failed,
}

/// A large `KEYS` or `SCAN` reply filtered part by part as it arrives.
#[derive(Debug)]
pub struct ListingStream {
    listing: Listing,
    user: Arc<User>,
    scratch: CheckScratch,
    /// Received, not yet walked: at most one element and a part.
    pending: BytesMut,
    stage: Stage,
    cursor: BytesMut,
    kept: BytesMut,
    kept_count: usize,
}

impl ListingStream {
    /// A walk of a `listing` reply for `user` (`KEYS` or `SCAN`).
    pub fn new(listing: Listing, user: Arc<User>) -> Self {
        ListingStream {
            listing,
            user,
            scratch: CheckScratch::default(),
            pending: BytesMut::new(),
            stage: Stage::Outer,
            cursor: BytesMut::new(),
            kept: BytesMut::new(),
            kept_count: 0,
        }
    }

    /// Walks `part`, the next bytes of the reply; pushes inside it go to `out`.
    pub fn feed(&mut self, part: &[u8], out: &mut BytesMut) {
        if matches!(self.stage, Stage::Failed) {
            return;
        }
        self.pending.extend_from_slice(part);
        while self.step(out) {}
    }

    /// The reply's last bytes: the filtered reply goes to `out`.
    pub fn finish(mut self, tail: &[u8], out: &mut BytesMut) {
        self.feed(tail, out);
        if matches!(self.stage, Stage::Keys(0)) {
            self.stage = Stage::Done;
        }
        if self.stage != Stage::Done || !self.pending.is_empty() {
            out.put_slice(UNFILTERABLE);
            return;
        }
        if self.listing == Listing::Scan {
            out.put_slice(b"*2\r\n");
            out.put_slice(&self.cursor);
        }
        out.put_slice(format!("*{}\r\n", self.kept_count).as_bytes());
        out.put_slice(&self.kept);
    }

    /// One step of the walk; false when it needs more bytes (or is over).
    fn step(&mut self, out: &mut BytesMut) -> bool {
        match self.stage {
            Stage::Outer | Stage::Inner => {
                let Some(nl) = memchr::memchr(b'\n', &self.pending) else {
                    return false;
                };
                let line = self.pending.split_to(nl + 1);
                let count = header(&line);
                self.stage = match (self.stage, self.listing, count) {
                    (Stage::Outer, Listing::Scan, Some(2)) => Stage::Cursor,
                    (Stage::Outer, Listing::Keys, Some(n)) | (Stage::Inner, _, Some(n)) => {
                        Stage::Keys(n)
                    }
                    _ => Stage::Failed,
                };
                true
            }
            Stage::Cursor => match self.next_element(out) {
                Some(cursor) => {
                    self.cursor = cursor;
                    self.stage = Stage::Inner;
                    true
                }
                None => false,
            },
            Stage::Keys(0) => {
                self.stage = Stage::Done;
                true
            }
            Stage::Keys(left) => match self.next_element(out) {
                Some(element) => {
                    let keep = bulk_value(&element)
                        .is_none_or(|key| may_read(&self.user, key, &mut self.scratch));
                    if keep {
                        self.kept.put_slice(&element);
                        self.kept_count += 1;
                    }
                    self.stage = Stage::Keys(left - 1);
                    true
                }
                None => false,
            },
            Stage::Done | Stage::Failed => false,
        }
    }

    /// The next complete element in `pending` (pushes before it go to `out`).
    fn next_element(&mut self, out: &mut BytesMut) -> Option<BytesMut> {
        loop {
            match ReplyScanner::new().scan(&self.pending) {
                Ok(ReplyScan::Complete { len }) => {
                    let element = self.pending.split_to(len);
                    if element.first() == Some(&b'>') {
                        out.put_slice(&element);
                        continue;
                    }
                    return Some(element);
                }
                Ok(ReplyScan::Incomplete) => return None,
                Err(_) => {
                    self.stage = Stage::Failed;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
