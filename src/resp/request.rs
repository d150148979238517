//! Step 2, client side: find complete commands in the bytes a client sent.
//!
//! [`RequestScanner`] reads Redis's request protocol exactly as Redis 7.0's
//! `processMultibulkBuffer` / `processInlineBuffer` do (same limits, same
//! quirks, same `Protocol error` texts), so the proxy sees the same command
//! the upstream will. It never copies a multibulk argument: it records the
//! byte range of each argument inside the caller's buffer. "Need more bytes"
//! is the normal [`RequestScan::Incomplete`] outcome, and the scan resumes
//! where it stopped when more bytes arrive. Every size limit lives here, so no
//! caller can forget one, and no declared length is ever allocated.
//!
//! The connection task hands each complete command (its length and its
//! [`Args`]) to policy, then forwards the command's original bytes.

use std::ops::Range;

use super::num::string2ll;
use crate::config::Limits;

/// Redis's limit on elements per command before authentication.
pub const UNAUTH_MAX_MULTIBULK: i64 = 10;
/// Redis's limit on one bulk's length before authentication.
pub const UNAUTH_MAX_BULK: i64 = 16384;

/// The size limits the scanner enforces (from `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Largest bulk string (Redis `proto-max-bulk-len`).
    pub max_bulk_len: u64,
    /// Most elements in one command array.
    pub max_multibulk_len: u64,
    /// Longest inline command line, and longest `*`/`$` header line.
    pub max_inline_len: usize,
    /// Most bytes held for one incomplete command.
    pub max_query_buffer: usize,
}

impl From<&Limits> for ScanLimits {
    fn from(l: &Limits) -> Self {
        ScanLimits {
            max_bulk_len: l.max_bulk_len,
            max_multibulk_len: l.max_multibulk_len,
            max_inline_len: l.max_inline_len,
            max_query_buffer: l.max_query_buffer,
        }
    }
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits::from(&Limits::default())
    }
}

/// Malformed or oversized input. The connection answers [`ProtocolError::reply`] and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `*` header line longer than the inline limit without `\r`.
    #[error("too big mbulk count string")]
    TooBigMbulkCount,
    /// `*` count not a number, or over `max_multibulk_len`.
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// More than 10 elements before authentication.
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// `$` header line longer than the inline limit without `\r`.
    #[error("too big bulk count string")]
    TooBigBulkCount,
    /// An argument header that does not start with `$` (the byte found).
    #[error("expected '$', got '{}'", *.0 as char)]
    ExpectedDollar(u8),
    /// `$` length not a number, negative, or over `max_bulk_len`.
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// A bulk over 16384 bytes before authentication.
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// Inline command line over `max_inline_len` (or never terminated).
    #[error("too big inline request")]
    TooBigInline,
    /// Inline command with unbalanced quotes.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// More than `max_query_buffer` bytes buffered for one command.
    #[error("query buffer limit exceeded")]
    QueryBufferFull,
}

impl ProtocolError {
    /// The exact RESP error reply, e.g. `-ERR Protocol error: invalid bulk length\r\n`.
    /// Like Redis, `\r` and `\n` inside the message become spaces; other bytes are
    /// sent as they are (Redis's `%c`).
    pub fn reply(&self) -> Vec<u8> {
        let mut out = b"-ERR Protocol error: ".to_vec();
        match self {
            ProtocolError::ExpectedDollar(b) => {
                out.extend_from_slice(b"expected '$', got '");
                out.push(super::encode::error_byte(*b));
                out.push(b'\'');
            }
            other => out.extend_from_slice(other.to_string().as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Outcome of one [`RequestScanner::scan`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestScan {
    /// A whole command occupies `buf[..n]`; its arguments are in [`RequestScanner::args`].
    /// A command may have zero arguments (`*0`, `*-1`, an empty inline line): Redis
    /// ignores those without a reply.
    Complete(usize),
    /// More bytes are needed; call again with the same buffer start and more bytes.
    Incomplete,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// At the first byte of a command.
    Start,
    /// Inside a `*` command: `pos` is the next unread byte, `remaining` arguments are
    /// still to come, and `bulk` is the length of the argument whose `$` header was read.
    Multibulk {
        pos: usize,
        remaining: u64,
        bulk: Option<usize>,
    },
    /// Inside an inline command; `searched` bytes hold no `\n`.
    Inline { searched: usize },
}

/// Resumable, zero-copy scanner for client commands (RESP2 multibulk and inline).
#[derive(Debug, Clone)]
pub struct RequestScanner {
    limits: ScanLimits,
    state: State,
    /// Argument ranges: into the caller's buffer, or into `scratch` for inline commands.
    args: Vec<Range<usize>>,
    /// Decoded inline arguments (inline commands may use quotes and escapes).
    scratch: Vec<u8>,
    inline: bool,
}

impl RequestScanner {
    /// A scanner enforcing `limits`.
    pub fn new(limits: ScanLimits) -> Self {
        RequestScanner {
            limits,
            state: State::Start,
            args: Vec::new(),
            scratch: Vec::new(),
            inline: false,
        }
    }

    /// Scans `buf`, which must start at the first byte of the current command
    /// (the same start as the previous call while that returned `Incomplete`).
    /// `unauthenticated` turns on Redis's pre-auth limits.
    pub fn scan(
        &mut self,
        buf: &[u8],
        unauthenticated: bool,
    ) -> Result<RequestScan, ProtocolError> {
        let result = self.scan_inner(buf, unauthenticated);
        match result {
            Ok(RequestScan::Incomplete) if buf.len() > self.limits.max_query_buffer => {
                self.state = State::Start;
                Err(ProtocolError::QueryBufferFull)
            }
            Ok(RequestScan::Complete(_)) | Err(_) => {
                self.state = State::Start;
                result
            }
            Ok(RequestScan::Incomplete) => result,
        }
    }

    /// After [`RequestScan::Incomplete`]: when the scan stopped inside the
    /// payload of the command's last argument, that payload's start in `buf`
    /// and its declared length. The arguments before it are in [`Self::args`].
    pub fn pending_last_bulk(&self) -> Option<(usize, usize)> {
        match self.state {
            State::Multibulk {
                pos,
                remaining: 1,
                bulk: Some(len),
            } if !self.inline => Some((pos, len)),
            _ => None,
        }
    }

    /// Forgets the command in progress: the next scan starts a new command.
    pub fn reset(&mut self) {
        self.state = State::Start;
    }

    /// The arguments of the command just completed (or, after `Incomplete`,
    /// its arguments complete so far); `buf` is the buffer given to `scan`.
    pub fn args<'a>(&'a self, buf: &'a [u8]) -> Args<'a> {
        Args {
            src: if self.inline { &self.scratch } else { buf },
            ranges: &self.args,
        }
    }

    fn scan_inner(&mut self, buf: &[u8], unauth: bool) -> Result<RequestScan, ProtocolError> {
        loop {
            match self.state {
                State::Start => {
                    let Some(&first) = buf.first() else {
                        return Ok(RequestScan::Incomplete);
                    };
                    self.args.clear();
                    self.inline = first != b'*';
                    if self.inline {
                        self.scratch.clear();
                        self.state = State::Inline { searched: 0 };
                        continue;
                    }
                    return self.multibulk_header(buf, unauth);
                }
                State::Multibulk {
                    pos,
                    remaining,
                    bulk,
                } => return self.multibulk_args(buf, pos, remaining, bulk, unauth),
                State::Inline { searched } => return self.inline(buf, searched),
            }
        }
    }

    /// `*<count>\r\n`.
    fn multibulk_header(&mut self, buf: &[u8], unauth: bool) -> Result<RequestScan, ProtocolError> {
        let Some(cr) = find_cr(buf, 0) else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigMbulkCount);
            }
            return Ok(RequestScan::Incomplete);
        };
        if cr + 2 > buf.len() {
            return Ok(RequestScan::Incomplete);
        }
        let count = match string2ll(&buf[1..cr]) {
            Some(n) if n <= i64::from(i32::MAX) && n <= clamp(self.limits.max_multibulk_len) => n,
            _ => return Err(ProtocolError::InvalidMultibulkLength),
        };
        if count > UNAUTH_MAX_MULTIBULK && unauth {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        let pos = cr + 2;
        if count <= 0 {
            return Ok(RequestScan::Complete(pos));
        }
        // Never reserve by the declared count: grow with arguments actually seen.
        self.multibulk_args(buf, pos, count as u64, None, unauth)
    }

    /// The `$<len>\r\n<payload>\r\n` arguments.
    fn multibulk_args(
        &mut self,
        buf: &[u8],
        mut pos: usize,
        mut remaining: u64,
        mut bulk: Option<usize>,
        unauth: bool,
    ) -> Result<RequestScan, ProtocolError> {
        while remaining > 0 {
            let len = match bulk {
                Some(len) => len,
                None => {
                    let Some(cr) = find_cr(buf, pos) else {
                        if buf.len() - pos > self.limits.max_inline_len {
                            return Err(ProtocolError::TooBigBulkCount);
                        }
                        break;
                    };
                    if cr + 2 > buf.len() {
                        break;
                    }
                    if buf[pos] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(buf[pos]));
                    }
                    let len = match string2ll(&buf[pos + 1..cr]) {
                        Some(n) if n >= 0 && n <= clamp(self.limits.max_bulk_len) => n,
                        _ => return Err(ProtocolError::InvalidBulkLength),
                    };
                    if len > UNAUTH_MAX_BULK && unauth {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    pos = cr + 2;
                    let len = usize::try_from(len).map_err(|_| ProtocolError::InvalidBulkLength)?;
                    bulk = Some(len);
                    len
                }
            };
            // Like Redis, the two bytes after the payload are skipped, not checked.
            if buf.len() - pos < len.saturating_add(2) {
                break;
            }
            self.args.push(pos..pos + len);
            pos += len + 2;
            bulk = None;
            remaining -= 1;
        }
        if remaining == 0 {
            return Ok(RequestScan::Complete(pos));
        }
        self.state = State::Multibulk {
            pos,
            remaining,
            bulk,
        };
        Ok(RequestScan::Incomplete)
    }

    /// An inline command: one line, split like Redis's `sdssplitargs`.
    fn inline(&mut self, buf: &[u8], searched: usize) -> Result<RequestScan, ProtocolError> {
        // Redis finds the line end with strchr, which stops at a NUL byte: a NUL
        // before the newline hides it, and the line can then only grow too big.
        let newline = match memchr::memchr2(b'\n', 0, &buf[searched..]) {
            Some(i) if buf[searched + i] == b'\n' => Some(searched + i),
            Some(_) => None,
            None => {
                self.state = State::Inline {
                    searched: buf.len(),
                };
                None
            }
        };
        let Some(nl) = newline else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(RequestScan::Incomplete);
        };
        let mut line = &buf[..nl];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        split_args(line, &mut self.scratch, &mut self.args)?;
        Ok(RequestScan::Complete(nl + 1))
    }
}

/// `u64` limit as an `i64` bound.
fn clamp(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Position of the first `\r` at or after `from`, as Redis's `strchr` finds it:
/// a NUL byte first means "not found".
#[inline]
fn find_cr(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    // Headers are short: a plain loop beats memchr's setup for the first bytes.
    for (i, &b) in rest.iter().take(24).enumerate() {
        match b {
            b'\r' => return Some(from + i),
            0 => return None,
            _ => {}
        }
    }
    let skip = rest.len().min(24);
    match memchr::memchr2(b'\r', 0, &rest[skip..]) {
        Some(i) if rest[skip + i] == b'\r' => Some(from + skip + i),
        _ => None,
    }
}

/// C `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Redis's `sdssplitargs` on one line (which holds no NUL), decoded into `out`,
/// ranges into `ranges`.
fn split_args(
    line: &[u8],
    out: &mut Vec<u8>,
    ranges: &mut Vec<Range<usize>>,
) -> Result<(), ProtocolError> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        let start = out.len();
        // The open quote character while inside a quoted section.
        let mut quote: Option<u8> = None;
        loop {
            let c = at(p);
            if let Some(q) = quote {
                let escape = c == b'\\';
                if q == b'"' && escape && at(p + 1) == b'x' {
                    if let (Some(h), Some(l)) = (hex_val(at(p + 2)), hex_val(at(p + 3))) {
                        out.push(h * 16 + l);
                        p += 4;
                        continue;
                    }
                }
                if q == b'"' && escape && at(p + 1) != 0 {
                    p += 1;
                    out.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if q == b'\'' && escape && at(p + 1) == b'\'' {
                    p += 1;
                    out.push(b'\'');
                } else if c == q {
                    // A closing quote must be followed by a space or the end.
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(ProtocolError::UnbalancedQuotes);
                } else {
                    out.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            p += 1;
                        }
                        break;
                    }
                    b'"' | b'\'' => quote = Some(c),
                    other => out.push(other),
                }
            }
            p += 1;
        }
        ranges.push(start..out.len());
    }
}

/// Redis's `sdssplitargs` on `line` (which stops at a NUL byte): the decoded
/// arguments, or `None` for unbalanced quotes.
pub fn split_args_owned(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let (mut out, mut ranges) = (Vec::new(), Vec::new());
    split_args(line, &mut out, &mut ranges).ok()?;
    Some(ranges.into_iter().map(|r| out[r].to_vec()).collect())
}

/// The arguments of one command, borrowed from the input buffer (or, for inline
/// commands, from the scanner's decoded copy).
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    src: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// Arguments at `ranges` of `src`.
    pub fn new(src: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Args { src, ranges }
    }

    /// Number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True for an empty command (which Redis ignores).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i` (0 is the command name).
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.ranges.get(i).and_then(|r| self.src.get(r.clone()))
    }

    /// All arguments in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let src = self.src;
        self.ranges.iter().filter_map(move |r| src.get(r.clone()))
    }
}

impl crate::command::ArgList for Args<'_> {
    fn argc(&self) -> usize {
        self.len()
    }

    fn arg(&self, i: usize) -> Option<&[u8]> {
        self.get(i)
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
