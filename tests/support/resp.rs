//! A RESP2/RESP3 client connection for tests: send commands, read typed replies.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// How long a read may take before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One reply, RESP2 or RESP3.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-text` or a RESP3 blob error `!`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` (None = RESP2 null bulk `$-1`); RESP3 verbatim strings without their `txt:`
    Bulk(Option<Vec<u8>>),
    /// `*n` or RESP3 set `~n` (None = RESP2 null array `*-1`)
    Array(Option<Vec<Reply>>),
    /// RESP3 `%n`
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `>n`
    Push(Vec<Reply>),
    /// RESP3 `_`
    Null,
    /// RESP3 `,` (the text as sent)
    Double(String),
    /// RESP3 `#t` / `#f`
    Bool(bool),
    /// Anything else (RESP3 big number `(`), as text
    Other(String),
}

impl Reply {
    /// `+OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Simple(s) if s == "OK")
    }

    /// An error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// The text of a simple string, error, UTF-8 bulk string, double or other.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Simple(s) | Reply::Error(s) | Reply::Double(s) | Reply::Other(s) => Some(s),
            Reply::Bulk(Some(bytes)) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    /// The error text, if this is an error.
    pub fn error(&self) -> Option<&str> {
        match self {
            Reply::Error(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The bytes of a bulk string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(bytes)) => Some(bytes),
            _ => None,
        }
    }

    /// The elements of an array, set or push.
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(Some(items)) | Reply::Push(items) => Some(items),
            _ => None,
        }
    }

    /// Null in either protocol (`$-1`, `*-1`, `_`).
    /// Every string and number in the reply, space-separated (to look into
    /// `ACL LOG` entries and the like).
    pub fn flat_text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Int(n) => n.to_string(),
            Reply::Array(Some(items)) | Reply::Push(items) => items
                .iter()
                .map(Reply::flat_text)
                .collect::<Vec<_>>()
                .join(" "),
            Reply::Map(pairs) => pairs
                .iter()
                .map(|(k, v)| format!("{} {}", k.flat_text(), v.flat_text()))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Reply::Null | Reply::Bulk(None) | Reply::Array(None))
    }
}

/// Encodes a command as a RESP multibulk.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses one reply from the start of `buf`: `Ok(None)` when more bytes are needed,
/// otherwise the reply and how many bytes it used.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    parse_at(buf, 0)
}

fn line_at(buf: &[u8], pos: usize) -> Option<(&str, usize)> {
    let rest = buf.get(pos..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    Some((text, pos + end + 2))
}

fn parse_len(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|_| format!("bad length {text:?}"))
}

/// Parses `n` replies starting at `pos`.
fn parse_many(buf: &[u8], mut pos: usize, n: i64) -> Result<Option<(Vec<Reply>, usize)>, String> {
    let mut items = Vec::new();
    for _ in 0..n {
        match parse_at(buf, pos)? {
            Some((item, next)) => {
                items.push(item);
                pos = next;
            }
            None => return Ok(None),
        }
    }
    Ok(Some((items, pos)))
}

fn parse_at(buf: &[u8], pos: usize) -> Result<Option<(Reply, usize)>, String> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((text, next)) = line_at(buf, pos + 1) else {
        if buf.len() - pos > 64 * 1024 * 1024 {
            return Err("reply header line too long".into());
        }
        return Ok(None);
    };
    let reply = match kind {
        b'+' => Reply::Simple(text.to_string()),
        b'-' => Reply::Error(text.to_string()),
        b':' => Reply::Int(text.parse().map_err(|_| format!("bad integer {text:?}"))?),
        b'_' => Reply::Null,
        b',' => Reply::Double(text.to_string()),
        b'(' => Reply::Other(text.to_string()),
        b'#' => Reply::Bool(text == "t"),
        b'$' | b'!' | b'=' => {
            let len = parse_len(text)?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let end = next + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            let data = buf[next..end].to_vec();
            let reply = match kind {
                b'!' => Reply::Error(String::from_utf8_lossy(&data).into_owned()),
                b'=' => Reply::Bulk(Some(data.get(4..).unwrap_or_default().to_vec())),
                _ => Reply::Bulk(Some(data)),
            };
            return Ok(Some((reply, end + 2)));
        }
        b'*' | b'~' | b'>' => {
            let len = parse_len(text)?;
            if len < 0 {
                return Ok(Some((Reply::Array(None), next)));
            }
            let Some((items, end)) = parse_many(buf, next, len)? else {
                return Ok(None);
            };
            let reply = if kind == b'>' {
                Reply::Push(items)
            } else {
                Reply::Array(Some(items))
            };
            return Ok(Some((reply, end)));
        }
        b'%' | b'|' => {
            let len = parse_len(text)?;
            let Some((items, end)) = parse_many(buf, next, len * 2)? else {
                return Ok(None);
            };
            if kind == b'|' {
                // An attribute: skip it and return the reply it annotates.
                return parse_at(buf, end);
            }
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            return Ok(Some((Reply::Map(pairs), end)));
        }
        other => return Err(format!("unknown reply type byte {:?}", other as char)),
    };
    Ok(Some((reply, next)))
}

/// A RESP connection over any byte stream (TCP, unix socket, TLS).
pub struct RespConn<S> {
    stream: S,
    buf: Vec<u8>,
}

impl RespConn<TcpStream> {
    /// Plain TCP to `addr` (e.g. straight to redis-server to see what landed upstream).
    pub async fn connect_tcp(addr: &str) -> std::io::Result<Self> {
        Ok(RespConn::new(TcpStream::connect(addr).await?))
    }
}

impl RespConn<UnixStream> {
    /// A unix socket connection.
    pub async fn connect_unix(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(RespConn::new(UnixStream::connect(path).await?))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RespConn<S> {
    /// Wraps an established stream.
    pub fn new(stream: S) -> Self {
        RespConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// The underlying stream (nothing may be left unread in the buffer).
    pub fn into_inner(self) -> S {
        assert!(self.buf.is_empty(), "unread bytes: {:?}", self.buf);
        self.stream
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Sends one command (multibulk encoded) without reading.
    pub async fn send(&mut self, args: &[&[u8]]) {
        self.send_raw(&encode_command(args)).await;
    }

    /// Sends bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to server");
        self.stream.flush().await.expect("flush to server");
    }

    /// Sends bytes, returning the write error instead of panicking.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads one reply (10 s timeout); panics on timeout, EOF or a malformed reply.
    pub async fn read_reply(&mut self) -> Reply {
        match self.try_read_reply().await {
            Ok(reply) => reply,
            Err(e) => panic!("read_reply: {e}"),
        }
    }

    /// Reads one reply (10 s timeout), reporting timeout, EOF and errors.
    pub async fn try_read_reply(&mut self) -> Result<Reply, String> {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        loop {
            if let Some((reply, used)) = parse_reply(&self.buf)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await;
            match read {
                Err(_) => return Err(format!("no reply within {READ_TIMEOUT:?}")),
                Ok(Err(e)) => return Err(format!("read error: {e}")),
                Ok(Ok(0)) => {
                    return Err(format!(
                        "connection closed (unparsed bytes: {:?})",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends a command and reads its reply, reporting a broken connection.
    pub async fn try_cmd(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        self.try_send_raw(&encode_command(args))
            .await
            .map_err(|e| e.to_string())?;
        self.try_read_reply().await
    }

    /// Sends a command and reads its reply.
    pub async fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        self.send(args).await;
        self.read_reply().await
    }

    /// Like [`RespConn::cmd`] with string arguments.
    pub async fn cmd_str(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd(&args).await
    }

    /// Reads everything until the peer closes (EOF or a read error) and returns it,
    /// including bytes already buffered. Panics if the connection stays open 10 s.
    pub async fn read_raw_until_closed(&mut self) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        let mut out = std::mem::take(&mut self.buf);
        loop {
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => panic!(
                    "connection still open after {READ_TIMEOUT:?}; got {:?}",
                    String::from_utf8_lossy(&out)
                ),
                Ok(Ok(0)) | Ok(Err(_)) => return out,
                Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads whatever arrives within `wait` (for "nothing should come" checks).
    pub async fn read_raw_for(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = std::mem::take(&mut self.buf);
        loop {
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return out,
                Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
            }
        }
    }
}
