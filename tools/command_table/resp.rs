//! A tiny RESP2 reader and command encoder, enough to read `COMMAND`, `INFO` and `ACL CAT`.

use super::GenError;

/// Deepest array nesting accepted (`COMMAND` needs 6).
const MAX_DEPTH: usize = 16;

/// One RESP2 reply value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+text`
    Simple(String),
    /// `-text`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` (None for the null bulk string)
    Bulk(Option<Vec<u8>>),
    /// `*n` (None for the null array)
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The text of a simple string or of a UTF-8 bulk string.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Simple(s) => Some(s),
            Value::Bulk(Some(bytes)) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The elements of a (non-null) array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(Some(items)) => Some(items),
            _ => None,
        }
    }
}

/// Encodes a command as a RESP multibulk.
pub use portcullis::resp::encode::command as encode_command;

/// Parses one reply from the start of `buf`: `Ok(None)` when more bytes are needed,
/// otherwise the value and how many bytes it used.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Value, usize)>, GenError> {
    parse_at(buf, 0, 0)
}

fn bad(what: impl Into<String>) -> GenError {
    GenError::Resp(what.into())
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Value, usize)>, GenError> {
    if depth > MAX_DEPTH {
        return Err(bad("arrays nested too deep"));
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let rest = buf.get(pos + 1..).unwrap_or_default();
    let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = rest.get(..eol).unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| bad("header line is not UTF-8"))?;
    let next = pos + 1 + eol + 2;
    let number = || -> Result<i64, GenError> {
        line.parse()
            .map_err(|_| bad(format!("bad number {line:?} after {:?}", kind as char)))
    };
    let value = match kind {
        b'+' => Value::Simple(line.to_owned()),
        b'-' => Value::Error(line.to_owned()),
        b':' => Value::Int(number()?),
        b'$' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Value::Bulk(None), next)));
            };
            let end = next
                .checked_add(len)
                .ok_or_else(|| bad("bulk length overflows"))?;
            let Some(tail) = buf.get(end..end.saturating_add(2)) else {
                return Ok(None);
            };
            if tail != b"\r\n" {
                return Err(bad("bulk string not followed by CRLF"));
            }
            let data = buf.get(next..end).unwrap_or_default().to_vec();
            return Ok(Some((Value::Bulk(Some(data)), end + 2)));
        }
        b'*' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Value::Array(None), next)));
            };
            let mut items = Vec::with_capacity(len.min(1024));
            let mut at = next;
            for _ in 0..len {
                let Some((item, after)) = parse_at(buf, at, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                at = after;
            }
            return Ok(Some((Value::Array(Some(items)), at)));
        }
        other => return Err(bad(format!("unknown reply type byte {:?}", other as char))),
    };
    Ok(Some((value, next)))
}
