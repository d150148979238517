//! Opening one upstream connection: TCP or a unix socket, TLS when
//! `[upstream.tls]` is set (never a plaintext fallback), then, in one round
//! trip, the proxy's `AUTH`, `CLIENT ID` (for `CLIENT LIST`) and, for a master
//! Sentinel names, `ROLE` (a replica is never used).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

use super::renames::Renames;
use crate::config::{UpstreamAddr, UpstreamSettings};
use crate::resp::reply::{ReplyScan, ReplyScanner};
use crate::tls::UpstreamTls;

/// Why an upstream connection could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Sentinel mode, and no sentinel has named a master that `ROLE` confirms.
    #[error("no upstream master is known (no sentinel named one that answers ROLE as master)")]
    NoMaster,
    /// TCP/unix connect failed.
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The TLS handshake failed (the server's certificate did not verify, or
    /// it refused ours).
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// The address.
        addr: String,
        /// rustls's reason (unknown CA, name mismatch, expired, ...).
        reason: String,
    },
    /// Connect, TLS and setup took longer than `connect_timeout_ms`.
    #[error("connect to {0} timed out")]
    Timeout(String),
    /// The upstream refused the proxy's AUTH (its reply, first line).
    #[error("upstream {addr} refused AUTH: {reply}")]
    Auth {
        /// The address.
        addr: String,
        /// The reply.
        reply: String,
    },
    /// `ROLE` says this server is not a master.
    #[error("upstream {addr} is not a master (ROLE: {role})")]
    NotMaster {
        /// The address.
        addr: String,
        /// What `ROLE` said.
        role: String,
    },
    /// The proxy is going away: no new connections.
    #[error("the proxy is shutting down")]
    ShuttingDown,
}

/// A connected upstream: TCP, unix socket, or TLS over TCP.
#[derive(Debug)]
pub enum UpstreamStream {
    /// `host:port`.
    Tcp(TcpStream),
    /// `unix:/path`.
    Unix(UnixStream),
    /// `host:port` with `[upstream.tls]`.
    Tls(Box<TlsStream<TcpStream>>),
}

/// An upstream connection ready for commands.
#[derive(Debug)]
pub struct Connected {
    /// The stream.
    pub stream: UpstreamStream,
    /// Its Redis client id (`CLIENT ID`), when the server has that command.
    pub client_id: Option<u64>,
}

/// The RESP bytes of the proxy's upstream `AUTH` (in the upstream's name for
/// it), if one is configured.
pub fn auth_command(s: &UpstreamSettings, renames: &Renames) -> Option<Bytes> {
    credentials_command(s.username.as_deref(), s.password.as_deref(), renames)
}

/// `AUTH [user] password`, or nothing without a password.
pub(super) fn credentials_command(
    user: Option<&str>,
    password: Option<&str>,
    renames: &Renames,
) -> Option<Bytes> {
    let password = password?;
    let mut args: Vec<&[u8]> = vec![b"AUTH"];
    if let Some(user) = user {
        args.push(user.as_bytes());
    }
    args.push(password.as_bytes());
    renames.command(&args).map(Bytes::from)
}

/// Opens a data connection to `addr` within `connect_timeout`: transport, the
/// proxy's AUTH, `CLIENT ID`, and (`must_be_master`) `ROLE`.
pub async fn connect_to(
    addr: &UpstreamAddr,
    s: &UpstreamSettings,
    tls: Option<&UpstreamTls>,
    renames: &Renames,
    must_be_master: bool,
) -> Result<Connected, UpstreamError> {
    let label = label(addr);
    let setup = async {
        let mut stream = open_stream(addr, tls).await?;
        let mut commands = Vec::new();
        let auth = auth_command(s, renames);
        if let Some(auth) = &auth {
            commands.push(auth.to_vec());
        }
        let client_id = renames.command(&[b"CLIENT", b"ID"]);
        commands.extend(client_id.clone());
        let role = must_be_master
            .then(|| renames.command(&[b"ROLE"]))
            .flatten();
        commands.extend(role.clone());
        let replies = exchange(&mut stream, &commands, &label).await?;
        let mut replies = replies.iter();
        if auth.is_some() {
            let reply = replies.next().map(Vec::as_slice).unwrap_or_default();
            if reply != b"+OK\r\n" {
                return Err(UpstreamError::Auth {
                    addr: label.clone(),
                    reply: first_line(reply),
                });
            }
        }
        // `:<id>`; an error from a server older than Redis 5.
        let client_id = client_id
            .and_then(|_| replies.next())
            .and_then(|r| r.strip_prefix(b":"))
            .and_then(|id| std::str::from_utf8(id).ok()?.trim_end().parse().ok());
        if role.is_some() {
            let reply = replies.next().map(Vec::as_slice).unwrap_or_default();
            if !reply.starts_with(b"*3\r\n$6\r\nmaster\r\n") {
                return Err(UpstreamError::NotMaster {
                    addr: label.clone(),
                    role: role_name(reply),
                });
            }
        }
        Ok(Connected { stream, client_id })
    };
    match tokio::time::timeout(s.connect_timeout, setup).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout(label)),
    }
}

/// `host:port` or `unix:/path`, as configuration and logs write it.
pub fn label(addr: &UpstreamAddr) -> String {
    match addr {
        UpstreamAddr::Tcp(a) => a.clone(),
        UpstreamAddr::Unix(p) => format!("unix:{}", p.display()),
    }
}

/// TCP (with TLS when configured) or a unix socket.
pub(super) async fn open_stream(
    addr: &UpstreamAddr,
    tls: Option<&UpstreamTls>,
) -> Result<UpstreamStream, UpstreamError> {
    let label = label(addr);
    let err = |source| UpstreamError::Connect {
        addr: label.clone(),
        source,
    };
    match addr {
        UpstreamAddr::Unix(p) => Ok(UpstreamStream::Unix(
            UnixStream::connect(p).await.map_err(err)?,
        )),
        UpstreamAddr::Tcp(a) => {
            let tcp = TcpStream::connect(a.as_str()).await.map_err(err)?;
            tcp.set_nodelay(true).map_err(err)?;
            let Some(tls) = tls else {
                return Ok(UpstreamStream::Tcp(tcp));
            };
            let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
            let name = tls.name_for(host).map_err(|reason| UpstreamError::Tls {
                addr: label.clone(),
                reason,
            })?;
            match tls.connector.connect(name, tcp).await {
                Ok(stream) => Ok(UpstreamStream::Tls(Box::new(stream))),
                Err(e) => Err(UpstreamError::Tls {
                    addr: label.clone(),
                    reason: e.to_string(),
                }),
            }
        }
    }
}

/// Longest setup reply read (`ROLE` of a master lists its replicas).
const MAX_SETUP_REPLIES: usize = 1 << 20;

/// Writes `commands` at once and reads one reply frame for each.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    commands: &[Vec<u8>],
    label: &str,
) -> Result<Vec<Vec<u8>>, UpstreamError> {
    let err = |source| UpstreamError::Connect {
        addr: label.to_string(),
        source,
    };
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    stream.write_all(&commands.concat()).await.map_err(err)?;
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    let mut scanner = ReplyScanner::new();
    while replies.len() < commands.len() {
        match scanner.scan(&buf) {
            Ok(ReplyScan::Complete { len }) => {
                replies.push(buf.drain(..len).collect());
                continue;
            }
            Ok(ReplyScan::Incomplete) if buf.len() < MAX_SETUP_REPLIES => {}
            _ => {
                return Err(err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad setup reply",
                )));
            }
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.map_err(err)?;
        if n == 0 {
            return Err(err(io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(replies)
}

/// The first line of a reply, for messages.
fn first_line(reply: &[u8]) -> String {
    let line = reply.split(|&b| b == b'\r').next().unwrap_or_default();
    String::from_utf8_lossy(line).into_owned()
}

/// The role `ROLE` names (`slave`, `sentinel`), or its first line.
fn role_name(reply: &[u8]) -> String {
    let mut lines = reply.split(|&b| b == b'\n');
    match (lines.next(), lines.next(), lines.next()) {
        (Some(b"*3\r" | b"*5\r" | b"*2\r"), Some(_), Some(role)) => {
            String::from_utf8_lossy(role.strip_suffix(b"\r").unwrap_or(role)).into_owned()
        }
        _ => first_line(reply),
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
