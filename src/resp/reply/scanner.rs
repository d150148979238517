//! The resumable frame-boundary scanner behind [`ReplyScanner`].
//!
//! State between calls is the scan position, what is being scanned there (a type byte, a line,
//! or a blob payload with its remaining length) and a stack of remaining element counts, one
//! per open aggregate. Every byte is examined once, however the frame is split across reads.

use memchr::memchr;

/// Deepest aggregate nesting accepted in one reply (attributes count as a level).
///
/// Redis itself nests a few levels (Lua tables and module replies can go deeper); the cap
/// bounds the scanner's stack at 128 KiB whatever the upstream sends.
pub const MAX_DEPTH: usize = 8192;

/// Longest content of a length line (`$`, `*`, ...): 19 digits of `i64::MAX` plus slack.
const MAX_LENGTH_DIGITS: usize = 20;

/// Outcome of [`ReplyScanner::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyScan {
    /// A whole top-level frame occupies `buf[..len]`.
    Complete {
        /// Length of the frame in bytes, any leading attribute included.
        len: usize,
    },
    /// More bytes are needed; [`ReplyScanner::scanned`] tells how many are already validated.
    Incomplete,
}

/// The upstream sent bytes that are not a valid RESP2/RESP3 reply; the stream cannot be
/// resynchronised, so the upstream connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A frame started with a byte that is not a RESP type.
    #[error("invalid RESP type byte 0x{0:02x}")]
    InvalidType(u8),
    /// A length or element count is not a strict decimal in range (or `-1` where a null is allowed).
    #[error("invalid length or element count in a reply")]
    InvalidLength,
    /// A streamed RESP3 type (`$?`, `*?`, `;`, `.`), which Redis never sends.
    #[error("streamed RESP3 replies are not supported")]
    UnsupportedStreamed,
    /// A blob payload was not followed by `\r\n`.
    #[error("blob payload not terminated by CRLF")]
    InvalidTerminator,
    /// A null (`_`) or boolean (`#`) line has content other than empty, `t` or `f`.
    #[error("invalid content in a `{}` line", char::from(*.0))]
    InvalidValue(u8),
    /// Aggregates are nested deeper than [`MAX_DEPTH`].
    #[error("reply nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// What a line holds, decided by its type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    /// `+ - : , (`: opaque text up to the first CRLF.
    Text,
    /// `_`: must be empty.
    Null,
    /// `#`: `t` or `f`.
    Boolean,
    /// `$ ! =`: a payload length; the payload and CRLF follow.
    BlobHeader,
    /// `* % ~ > |`: an element (or pair) count.
    AggregateHeader,
}

/// Where the scan stands at `ReplyScanner::pos`.
#[derive(Debug, Clone, Copy)]
enum State {
    /// The next byte is the type byte of an element.
    TypeByte,
    /// Inside a line whose type byte is at `start`; the CRLF search resumes at `pos`.
    Line {
        ty: u8,
        kind: LineKind,
        start: usize,
    },
    /// Inside a blob: `remaining` bytes are left, its closing CRLF included.
    Payload { remaining: u64 },
}

/// One open aggregate.
#[derive(Debug, Clone, Copy)]
struct Level {
    /// Elements still to come (never 0 while on the stack).
    remaining: u64,
    /// An attribute (`|`), or a push (`>`) nested in another aggregate: when it
    /// ends it does not count as an element of its parent. (Redis 7.0 writes a
    /// pub/sub message to a subscribed RESP3 client in the middle of the reply
    /// being built, e.g. between `EXEC`'s array header and its elements.)
    transparent: bool,
}

/// Resumable scanner that finds reply-frame boundaries in the bytes read from the upstream.
///
/// Feed it the growing buffer that starts at the current frame; it continues where the last
/// call stopped. It allocates only its nesting stack (bounded by [`MAX_DEPTH`]).
#[derive(Debug, Clone)]
pub struct ReplyScanner {
    /// Next unexamined byte, relative to the caller's buffer.
    pos: usize,
    state: State,
    stack: Vec<Level>,
    frame_type: Option<u8>,
    /// The last call returned `Complete`; the next call starts a new frame.
    completed: bool,
    /// Work counter for the linear-time unit test: loop turns plus bytes searched.
    #[cfg(test)]
    pub(super) steps: u64,
}

impl Default for ReplyScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplyScanner {
    /// A scanner positioned before the first byte of a frame.
    pub fn new() -> Self {
        Self {
            pos: 0,
            state: State::TypeByte,
            stack: Vec::new(),
            frame_type: None,
            completed: false,
            #[cfg(test)]
            steps: 0,
        }
    }

    /// Continue scanning `buf`, which starts at the first byte of the current frame (minus
    /// whatever [`discard_prefix`](Self::discard_prefix) removed) and holds at least the bytes
    /// of the previous call. On `Complete { len }` the scanner resets for the next frame, which
    /// the caller passes as `buf[len..]`. After an error the scanner must not be used again.
    pub fn scan(&mut self, buf: &[u8]) -> Result<ReplyScan, ReplyError> {
        if self.completed {
            self.completed = false;
            self.frame_type = None;
        }
        loop {
            #[cfg(test)]
            {
                self.steps += 1;
            }
            let done = match self.state {
                State::TypeByte => {
                    let Some(&ty) = buf.get(self.pos) else {
                        return Ok(ReplyScan::Incomplete);
                    };
                    let kind = line_kind(ty)?;
                    if self.stack.is_empty() && ty != b'|' {
                        self.frame_type = Some(ty);
                    }
                    self.state = State::Line {
                        ty,
                        kind,
                        start: self.pos,
                    };
                    self.pos += 1;
                    false
                }
                State::Line { ty, kind, start } => {
                    let Some(end) = self.find_line_end(buf, ty, kind, start)? else {
                        return Ok(ReplyScan::Incomplete);
                    };
                    self.pos = end + 2;
                    self.state = State::TypeByte;
                    self.finish_line(ty, kind, buf.get(start + 1..end).unwrap_or_default())?
                }
                State::Payload { remaining } => match self.advance_payload(buf, remaining)? {
                    Some(done) => done,
                    None => return Ok(ReplyScan::Incomplete),
                },
            };
            if done && self.end_element() {
                let len = self.pos;
                self.pos = 0;
                self.state = State::TypeByte;
                self.stack.clear();
                self.completed = true;
                return Ok(ReplyScan::Complete { len });
            }
        }
    }

    /// How many bytes at the front of the current incomplete frame are already validated and
    /// may be forwarded now; inside a blob payload this includes the payload bytes so far.
    pub fn scanned(&self) -> usize {
        match self.state {
            State::Line { start, .. } => start,
            State::TypeByte | State::Payload { .. } => self.pos,
        }
    }

    /// The caller removed `n` bytes from the front of its buffer (it forwarded a partial
    /// frame). `n` is clamped to [`scanned`](Self::scanned).
    pub fn discard_prefix(&mut self, n: usize) {
        let n = n.min(self.scanned());
        self.pos -= n;
        if let State::Line { start, .. } = &mut self.state {
            *start -= n;
        }
    }

    /// Type byte of the current (or just completed) top-level frame, after any attribute:
    /// `b'$'`, `b'*'`, `b'>'` ...; `None` before it has been read.
    pub fn frame_type(&self) -> Option<u8> {
        self.frame_type
    }

    /// Bytes the scanner holds on the heap (its nesting stack), for the no-allocation test.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.stack.capacity() * std::mem::size_of::<Level>()
    }

    /// Find the CRLF ending the line that starts at `start`, resuming at `self.pos`.
    /// Lines of bounded kinds fail as soon as they are longer than their kind allows.
    fn find_line_end(
        &mut self,
        buf: &[u8],
        ty: u8,
        kind: LineKind,
        start: usize,
    ) -> Result<Option<usize>, ReplyError> {
        let max_content = match kind {
            LineKind::Text => None,
            LineKind::Null => Some(0),
            LineKind::Boolean => Some(1),
            LineKind::BlobHeader | LineKind::AggregateHeader => Some(MAX_LENGTH_DIGITS),
        };
        // The CR may sit at most at `start + 1 + max_content`.
        let limit = max_content.map_or(buf.len(), |max| buf.len().min(start + max + 2));
        while let Some(hay) = buf.get(self.pos..limit) {
            let found = memchr(b'\r', hay);
            #[cfg(test)]
            {
                self.steps += found.map_or(hay.len(), |i| i + 1) as u64;
            }
            let Some(i) = found else {
                self.pos = limit;
                break;
            };
            let cr = self.pos + i;
            match buf.get(cr + 1) {
                Some(b'\n') => return Ok(Some(cr)),
                Some(_) => self.pos = cr + 1,
                None => {
                    self.pos = cr;
                    return Ok(None);
                }
            }
        }
        if limit < buf.len() {
            return Err(match kind {
                LineKind::Null | LineKind::Boolean => ReplyError::InvalidValue(ty),
                _ => ReplyError::InvalidLength,
            });
        }
        Ok(None)
    }

    /// Act on a whole line; true when it ended an element.
    fn finish_line(&mut self, ty: u8, kind: LineKind, content: &[u8]) -> Result<bool, ReplyError> {
        match kind {
            LineKind::Text => Ok(true),
            LineKind::Null if content.is_empty() => Ok(true),
            LineKind::Boolean if content == b"t" || content == b"f" => Ok(true),
            LineKind::Null | LineKind::Boolean => Err(ReplyError::InvalidValue(ty)),
            LineKind::BlobHeader => match parse_length(content, ty == b'$')? {
                None => Ok(true),
                // A verbatim string holds at least its `txt:` format prefix.
                Some(len) if ty == b'=' && len < 4 => Err(ReplyError::InvalidLength),
                Some(len) => {
                    // len <= i64::MAX, so the CRLF cannot overflow.
                    self.state = State::Payload { remaining: len + 2 };
                    Ok(false)
                }
            },
            LineKind::AggregateHeader => {
                let Some(count) = parse_length(content, ty == b'*')? else {
                    return Ok(true);
                };
                let attribute = ty == b'|';
                let transparent = attribute || (ty == b'>' && !self.stack.is_empty());
                let elements = if attribute || ty == b'%' {
                    count.checked_mul(2).ok_or(ReplyError::InvalidLength)?
                } else {
                    count
                };
                if elements == 0 {
                    // An empty attribute or nested push is no element; an empty
                    // aggregate is one.
                    return Ok(!transparent);
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(ReplyError::TooDeep);
                }
                self.stack.push(Level {
                    remaining: elements,
                    transparent,
                });
                Ok(false)
            }
        }
    }

    /// Consume payload bytes, then check the closing CRLF. `None` when more bytes are needed,
    /// `Some(true)` when the blob ended, `Some(false)` to keep going.
    fn advance_payload(&mut self, buf: &[u8], remaining: u64) -> Result<Option<bool>, ReplyError> {
        let available = buf.len().saturating_sub(self.pos);
        if available == 0 {
            return Ok(None);
        }
        if remaining > 2 {
            let body = remaining - 2;
            let take = usize::try_from(body).map_or(available, |body| body.min(available));
            self.pos += take;
            self.state = State::Payload {
                remaining: remaining - take as u64,
            };
            return Ok(Some(false));
        }
        // remaining is 1 or 2: the closing CRLF, possibly split across reads.
        let expected: &[u8] = if remaining == 2 { b"\r\n" } else { b"\n" };
        let take = expected.len().min(available);
        if buf.get(self.pos..self.pos + take) != expected.get(..take) {
            return Err(ReplyError::InvalidTerminator);
        }
        self.pos += take;
        let remaining = remaining - take as u64;
        if remaining == 0 {
            self.state = State::TypeByte;
            return Ok(Some(true));
        }
        self.state = State::Payload { remaining };
        Ok(None)
    }

    /// An element ended: count it in its parent, closing every aggregate it completes.
    /// True when the top-level frame is complete.
    fn end_element(&mut self) -> bool {
        while let Some(top) = self.stack.last_mut() {
            top.remaining = top.remaining.saturating_sub(1);
            if top.remaining > 0 {
                return false;
            }
            let transparent = top.transparent;
            self.stack.pop();
            if transparent {
                // An attribute belongs to the value that follows, and a nested
                // push stands beside the elements: neither is an element.
                return false;
            }
        }
        true
    }
}

/// Classify a type byte.
fn line_kind(ty: u8) -> Result<LineKind, ReplyError> {
    match ty {
        b'+' | b'-' | b':' | b',' | b'(' => Ok(LineKind::Text),
        b'_' => Ok(LineKind::Null),
        b'#' => Ok(LineKind::Boolean),
        b'$' | b'!' | b'=' => Ok(LineKind::BlobHeader),
        b'*' | b'%' | b'~' | b'>' | b'|' => Ok(LineKind::AggregateHeader),
        b';' | b'.' => Err(ReplyError::UnsupportedStreamed),
        other => Err(ReplyError::InvalidType(other)),
    }
}

/// Parse a strict decimal length in `0..=i64::MAX` (no sign, no leading zero); `-1` gives
/// `None` when `null_allowed`, `?` is a streamed length.
pub(super) fn parse_length(content: &[u8], null_allowed: bool) -> Result<Option<u64>, ReplyError> {
    match content {
        b"-1" if null_allowed => Ok(None),
        b"?" => Err(ReplyError::UnsupportedStreamed),
        b"0" => Ok(Some(0)),
        [b'1'..=b'9', ..] if content.len() <= 19 => {
            let mut value: u64 = 0;
            for &digit in content {
                if !digit.is_ascii_digit() {
                    return Err(ReplyError::InvalidLength);
                }
                // At most 19 digits: cannot overflow u64.
                value = value * 10 + u64::from(digit - b'0');
            }
            if value > i64::MAX as u64 {
                return Err(ReplyError::InvalidLength);
            }
            Ok(Some(value))
        }
        _ => Err(ReplyError::InvalidLength),
    }
}
