//! Pub/sub classification of a complete reply frame, for routing messages and tracking the
//! subscription count. Such frames are small, so this re-parses them.

use super::scanner::{parse_length, ReplyScan, ReplyScanner};

/// Kind of a pub/sub frame, named after its first element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PubSubKind {
    /// `message channel payload`.
    Message,
    /// `pmessage pattern channel payload`.
    PMessage,
    /// `smessage shardchannel payload`.
    SMessage,
    /// `subscribe channel count`.
    Subscribe,
    /// `unsubscribe channel count`.
    Unsubscribe,
    /// `psubscribe pattern count`.
    PSubscribe,
    /// `punsubscribe pattern count`.
    PUnsubscribe,
    /// `ssubscribe shardchannel count`.
    SSubscribe,
    /// `sunsubscribe shardchannel count`.
    SUnsubscribe,
}

impl PubSubKind {
    /// The kind whose name equals `name`, ASCII case-insensitively.
    fn from_name(name: &[u8]) -> Option<Self> {
        const NAMES: [(&[u8], PubSubKind); 9] = [
            (b"message", PubSubKind::Message),
            (b"pmessage", PubSubKind::PMessage),
            (b"smessage", PubSubKind::SMessage),
            (b"subscribe", PubSubKind::Subscribe),
            (b"unsubscribe", PubSubKind::Unsubscribe),
            (b"psubscribe", PubSubKind::PSubscribe),
            (b"punsubscribe", PubSubKind::PUnsubscribe),
            (b"ssubscribe", PubSubKind::SSubscribe),
            (b"sunsubscribe", PubSubKind::SUnsubscribe),
        ];
        NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, kind)| kind)
    }

    /// Whether the frame ends with a subscription count.
    pub fn is_subscription_change(self) -> bool {
        !matches!(self, Self::Message | Self::PMessage | Self::SMessage)
    }

    /// Number of elements Redis sends in a frame of this kind.
    fn element_count(self) -> u64 {
        match self {
            Self::PMessage => 4,
            _ => 3,
        }
    }
}

/// For a `*` or `>` frame whose first element is a bulk or simple string equal (ASCII
/// case-insensitively) to a pub/sub kind's name, and which has that kind's element count
/// (4 for `pmessage`, else 3): the kind and, for the (un)subscribe kinds, the subscription
/// count (the third element, a `:` integer; `None` if it is not one). Attributes are skipped.
/// Any other frame, or bytes that are not a valid frame, give `None`.
pub fn pubsub_kind(frame: &[u8]) -> Option<(PubSubKind, Option<i64>)> {
    let rest = skip_attributes(frame)?;
    let (&ty, rest) = rest.split_first()?;
    if ty != b'*' && ty != b'>' {
        return None;
    }
    let (header, rest) = split_line(rest)?;
    let count = parse_length(header, false).ok()??;
    let (name, rest) = string_element(rest)?;
    let kind = PubSubKind::from_name(name)?;
    if count != kind.element_count() {
        return None;
    }
    if !kind.is_subscription_change() {
        return Some((kind, None));
    }
    let rest = skip_element(rest)?;
    Some((kind, integer_element(rest)))
}

/// Split at the first CRLF: the line's content and what follows it.
fn split_line(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = buf.windows(2).position(|pair| pair == b"\r\n")?;
    Some((buf.get(..end)?, buf.get(end + 2..)?))
}

/// Skip any attributes (`|`) in front of a value.
fn skip_attributes(mut buf: &[u8]) -> Option<&[u8]> {
    while let Some(rest) = buf.strip_prefix(b"|") {
        let (header, mut rest) = split_line(rest)?;
        let pairs = parse_length(header, false).ok()??;
        for _ in 0..pairs.checked_mul(2)? {
            rest = skip_element(rest)?;
        }
        buf = rest;
    }
    Some(buf)
}

/// Skip what stands in front of an element inside an aggregate without being
/// one, as the reply scanner counts: attributes, and pushes (Redis 7.0 writes
/// them in the middle of other replies).
fn skip_extras(mut buf: &[u8]) -> Option<&[u8]> {
    loop {
        buf = skip_attributes(buf)?;
        if !buf.starts_with(b">") {
            return Some(buf);
        }
        buf = skip_frame(buf)?;
    }
}

/// Skip one whole element inside an aggregate (with its attributes, and any
/// pushes in front of it).
fn skip_element(buf: &[u8]) -> Option<&[u8]> {
    skip_frame(skip_extras(buf)?)
}

/// Skip one frame as it would be scanned on its own.
fn skip_frame(buf: &[u8]) -> Option<&[u8]> {
    match ReplyScanner::new().scan(buf) {
        Ok(ReplyScan::Complete { len }) => buf.get(len..),
        _ => None,
    }
}

/// A bulk (`$`) or simple (`+`) string element: its content and what follows it.
fn string_element(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let buf = skip_extras(buf)?;
    let (&ty, rest) = buf.split_first()?;
    let (line, after) = split_line(rest)?;
    match ty {
        b'+' => Some((line, after)),
        b'$' => {
            let len = usize::try_from(parse_length(line, false).ok()??).ok()?;
            let data = after.get(..len)?;
            let after = after.get(len..)?.strip_prefix(b"\r\n")?;
            Some((data, after))
        }
        _ => None,
    }
}

/// The value of an integer (`:`) element.
fn integer_element(buf: &[u8]) -> Option<i64> {
    let buf = skip_extras(buf)?;
    let (line, _) = split_line(buf.strip_prefix(b":")?)?;
    std::str::from_utf8(line).ok()?.parse().ok()
}
