//! A small RESP2 value reader for the few replies the proxy looks inside
//! (`CLUSTER SHARDS`/`SLOTS`, and the parts of a split command it merges).
//! Borrowed, no copies; anything but RESP2 types is refused.

use super::num::string2ll;
use super::reply::{ReplyScan, ReplyScanner};

/// A RESP2 value borrowing from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `+text`
    Simple(&'a [u8]),
    /// `-text`
    Error(&'a [u8]),
    /// `:n`
    Int(i64),
    /// `$n` (`None`: `$-1`)
    Bulk(Option<&'a [u8]>),
    /// `*n` (`None`: `*-1`)
    Array(Option<Vec<Value<'a>>>),
}

impl<'a> Value<'a> {
    /// Reads one value from the front of `buf`: it and the bytes it took.
    pub fn parse(buf: &'a [u8]) -> Option<(Value<'a>, usize)> {
        let line_end = memchr::memmem::find(buf, b"\r\n")?;
        let line = &buf[1..line_end];
        let after = line_end + 2;
        match *buf.first()? {
            b'+' => Some((Value::Simple(line), after)),
            b'-' => Some((Value::Error(line), after)),
            b':' => Some((Value::Int(string2ll(line)?), after)),
            b'$' => {
                let n = string2ll(line)?;
                if n < 0 {
                    return Some((Value::Bulk(None), after));
                }
                let n = usize::try_from(n).ok()?;
                let data = buf.get(after..after + n)?;
                (buf.get(after + n..after + n + 2)? == b"\r\n")
                    .then_some((Value::Bulk(Some(data)), after + n + 2))
            }
            b'*' => {
                let n = string2ll(line)?;
                if n < 0 {
                    return Some((Value::Array(None), after));
                }
                let mut items = Vec::with_capacity(usize::try_from(n.min(1024)).ok()?);
                let mut pos = after;
                for _ in 0..n {
                    let (item, used) = Value::parse(buf.get(pos..)?)?;
                    items.push(item);
                    pos += used;
                }
                Some((Value::Array(Some(items)), pos))
            }
            _ => None,
        }
    }

    /// The whole of `frame` as one value.
    pub fn of(frame: &'a [u8]) -> Option<Value<'a>> {
        match Value::parse(frame)? {
            (value, used) if used == frame.len() => Some(value),
            _ => None,
        }
    }

    /// The bytes of a simple or bulk string.
    pub fn text(&self) -> Option<&'a [u8]> {
        match self {
            Value::Simple(s) | Value::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }

    /// The integer of `:n` (or of a string holding one).
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            other => string2ll(other.text()?),
        }
    }

    /// The items of an array.
    pub fn items(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::Array(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// In a flat `[key, value, key, value ...]` array (a RESP2 map): the value of `key`.
    pub fn field(&self, key: &str) -> Option<&Value<'a>> {
        self.items()?
            .chunks(2)
            .find(|kv| kv[0].text() == Some(key.as_bytes()))
            .and_then(|kv| kv.get(1))
    }
}

/// The raw bytes of each element of the array `frame` (`*`; its elements of
/// any RESP2 or RESP3 type), in order.
pub fn array_elements(frame: &[u8]) -> Option<Vec<&[u8]>> {
    let line_end = memchr::memmem::find(frame, b"\r\n")?;
    if frame.first() != Some(&b'*') {
        return None;
    }
    let n = usize::try_from(string2ll(&frame[1..line_end])?).ok()?;
    let mut out = Vec::with_capacity(n.min(1024));
    let mut pos = line_end + 2;
    for _ in 0..n {
        let rest = frame.get(pos..)?;
        let Ok(ReplyScan::Complete { len }) = ReplyScanner::new().scan(rest) else {
            return None;
        };
        out.push(&rest[..len]);
        pos += len;
    }
    (pos == frame.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resp2_values() {
        let frame = b"*4\r\n+OK\r\n:-7\r\n$3\r\na\r\n\r\n*2\r\n$-1\r\n-ERR x\r\n";
        let value = Value::of(frame).unwrap();
        assert_eq!(
            value,
            Value::Array(Some(vec![
                Value::Simple(b"OK"),
                Value::Int(-7),
                Value::Bulk(Some(b"a\r\n")),
                Value::Array(Some(vec![Value::Bulk(None), Value::Error(b"ERR x")])),
            ]))
        );
        assert_eq!(
            array_elements(frame).unwrap(),
            vec![
                &b"+OK\r\n"[..],
                b":-7\r\n",
                b"$3\r\na\r\n\r\n",
                b"*2\r\n$-1\r\n-ERR x\r\n"
            ]
        );
        let map = Value::of(b"*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n:1\r\n").unwrap();
        assert_eq!(map.field("nodes"), Some(&Value::Int(1)));
        assert_eq!(Value::of(b"$3\r\nab\r\n"), None);
        assert_eq!(Value::of(b"%1\r\n"), None);
        assert_eq!(Value::of(b"+OK\r\nextra"), None);
    }
}
