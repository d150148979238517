//! `filter_listings`: the replies of `KEYS`, `SCAN` and `RANDOMKEY` keep only
//! the keys the user may read — exactly the keys for which `ACL DRYRUN <user>
//! GET <key>` is `OK` — with `SCAN`'s cursor unchanged. The reply arrives
//! whole (such a slot is never streamed), is walked once, and only the kept
//! keys are copied to the client's output: the frame is never rebuilt in a
//! second buffer. Pushes Redis wrote inside the reply go out first, as pushes.

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
/// keys `user` may read; `resp3` picks RANDOMKEY's nil.
pub fn filter(frame: &[u8], listing: Listing, user: &User, resp3: bool, out: &mut BytesMut) {
    let mut scratch = CheckScratch::default();
    let mut readable = |key: &[u8]| may_read(user, key, &mut scratch);
    match frame.first() {
        Some(b'*') => {}
        Some(b'$') if listing == Listing::RandomKey => {
            match bulk_value(frame) {
                Some(key) if !readable(key) => {
                    out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
                }
                _ => out.put_slice(frame),
            }
            return;
        }
        // Errors and nils hold no key.
        _ => {
            out.put_slice(frame);
            return;
        }
    }
    let done = match listing {
        Listing::Keys => keys(frame, &mut readable, out),
        Listing::Scan => scan(frame, &mut readable, out),
        Listing::RandomKey => None,
    };
    if done.is_none() {
        out.put_slice(UNFILTERABLE);
    }
}

/// `KEYS`: the array with the unreadable keys left out.
fn keys(frame: &[u8], readable: &mut impl FnMut(&[u8]) -> bool, out: &mut BytesMut) -> Option<()> {
    let (count, mut pos) = header(frame)?;
    let kept = kept_keys(frame, &mut pos, count, readable, out)?;
    write_array(&kept, frame, out);
    Some(())
}

/// `SCAN`: the cursor as it is, the key page filtered.
fn scan(frame: &[u8], readable: &mut impl FnMut(&[u8]) -> bool, out: &mut BytesMut) -> Option<()> {
    let (2, mut pos) = header(frame)? else {
        return None;
    };
    let cursor = next_element(frame, &mut pos, out)?;
    let (count, inner) = header(frame.get(pos..)?)?;
    pos += inner;
    let kept = kept_keys(frame, &mut pos, count, readable, out)?;
    out.put_slice(b"*2\r\n");
    out.put_slice(frame.get(cursor.0..cursor.1)?);
    write_array(&kept, frame, out);
    Some(())
}

/// `*<n>\r\n` (or `~<n>`) at the start of `frame`: `n` and the header's length.
fn header(frame: &[u8]) -> Option<(usize, usize)> {
    if !matches!(frame.first(), Some(b'*' | b'~')) {
        return None;
    }
    let nl = memchr::memchr(b'\n', frame)?;
    let digits = std::str::from_utf8(frame.get(1..nl.checked_sub(1)?)?).ok()?;
    Some((digits.parse().ok()?, nl + 1))
}

/// The next element at `pos` (pushes before it go to `out` as they are):
/// its byte range.
fn next_element(frame: &[u8], pos: &mut usize, out: &mut BytesMut) -> Option<(usize, usize)> {
    loop {
        let rest = frame.get(*pos..)?;
        let Ok(ReplyScan::Complete { len }) = ReplyScanner::new().scan(rest) else {
            return None;
        };
        let range = (*pos, *pos + len);
        *pos += len;
        if rest.first() == Some(&b'>') {
            out.put_slice(frame.get(range.0..range.1)?);
            continue;
        }
        return Some(range);
    }
}

/// The ranges of the readable keys among the next `count` elements.
fn kept_keys(
    frame: &[u8],
    pos: &mut usize,
    count: usize,
    readable: &mut impl FnMut(&[u8]) -> bool,
    out: &mut BytesMut,
) -> Option<Vec<(usize, usize)>> {
    let mut kept = Vec::new();
    for _ in 0..count {
        let (start, end) = next_element(frame, pos, out)?;
        let element = frame.get(start..end)?;
        // A key is a bulk string; anything else is kept as it is.
        let keep = bulk_value(element).is_none_or(&mut *readable);
        if keep {
            kept.push((start, end));
        }
    }
    Some(kept)
}

fn write_array(kept: &[(usize, usize)], frame: &[u8], out: &mut BytesMut) {
    out.put_slice(format!("*{}\r\n", kept.len()).as_bytes());
    for &(start, end) in kept {
        if let Some(element) = frame.get(start..end) {
            out.put_slice(element);
        }
    }
}

/// The value of a bulk string frame `$<n>\r\n<value>\r\n`.
fn bulk_value(frame: &[u8]) -> Option<&[u8]> {
    if frame.first() != Some(&b'$') {
        return None;
    }
    let nl = memchr::memchr(b'\n', frame)?;
    frame.get(nl + 1..frame.len().checked_sub(2)?)
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
