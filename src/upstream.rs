//! Step 4, upstream side: open the client's own connection to the upstream Redis.
//!
//! One connection per authenticated client, opened on first need, over TCP or a
//! unix socket, with the proxy's own upstream `AUTH` when configured. The
//! connection task then writes forwarded commands to it and reads replies.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::config::{UpstreamAddr, UpstreamSettings};

/// Why the upstream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP/unix connect failed.
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// The configured address.
        addr: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Connect or AUTH took longer than `connect_timeout_ms`.
    #[error("connect to {0} timed out")]
    Timeout(String),
    /// The upstream refused the proxy's AUTH (its reply, first line).
    #[error("upstream AUTH refused: {0}")]
    Auth(String),
}

/// A connected upstream, TCP or unix.
#[derive(Debug)]
pub enum UpstreamStream {
    /// `host:port`.
    Tcp(TcpStream),
    /// `unix:/path`.
    Unix(UnixStream),
}

/// The RESP bytes of the proxy's upstream `AUTH`, if one is configured.
pub fn auth_command(s: &UpstreamSettings) -> Option<Bytes> {
    let password = s.password.as_deref()?;
    let mut args: Vec<&[u8]> = vec![b"AUTH"];
    if let Some(user) = s.username.as_deref() {
        args.push(user.as_bytes());
    }
    args.push(password.as_bytes());
    Some(Bytes::from(crate::resp::encode::command(&args)))
}

/// An upstream connection ready for commands.
#[derive(Debug)]
pub struct Connected {
    /// The stream.
    pub stream: UpstreamStream,
    /// Its Redis client id (`CLIENT ID`), when the server has that command.
    pub client_id: Option<u64>,
}

/// Connects (and authenticates, if configured) within `connect_timeout`, and
/// learns the connection's Redis client id (pipelined with the `AUTH`).
pub async fn connect(s: &UpstreamSettings) -> Result<Connected, UpstreamError> {
    let label = match &s.address {
        UpstreamAddr::Tcp(a) => a.clone(),
        UpstreamAddr::Unix(p) => format!("unix:{}", p.display()),
    };
    match tokio::time::timeout(s.connect_timeout, connect_and_auth(s, &label)).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout(label)),
    }
}

async fn connect_and_auth(s: &UpstreamSettings, label: &str) -> Result<Connected, UpstreamError> {
    let err = |source| UpstreamError::Connect {
        addr: label.to_string(),
        source,
    };
    let mut stream = match &s.address {
        UpstreamAddr::Tcp(a) => {
            let tcp = TcpStream::connect(a.as_str()).await.map_err(err)?;
            tcp.set_nodelay(true).map_err(err)?;
            UpstreamStream::Tcp(tcp)
        }
        UpstreamAddr::Unix(p) => UpstreamStream::Unix(UnixStream::connect(p).await.map_err(err)?),
    };
    let auth = auth_command(s);
    let mut hello = auth.as_deref().unwrap_or_default().to_vec();
    hello.extend_from_slice(CLIENT_ID);
    stream.write_all(&hello).await.map_err(err)?;
    if auth.is_some() {
        let line = read_line(&mut stream).await.map_err(err)?;
        if line != b"+OK" {
            return Err(UpstreamError::Auth(
                String::from_utf8_lossy(&line).into_owned(),
            ));
        }
    }
    // `:<id>`, or an error from a server older than Redis 5.
    let line = read_line(&mut stream).await.map_err(err)?;
    let client_id = line
        .strip_prefix(b":")
        .and_then(|id| std::str::from_utf8(id).ok()?.parse().ok());
    Ok(Connected { stream, client_id })
}

/// `CLIENT ID`, sent once on every new upstream connection.
const CLIENT_ID: &[u8] = b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n";

/// Reads one `\r\n`-terminated reply line (at most 4 KiB), without the terminator.
async fn read_line(stream: &mut UpstreamStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() > 4096 || stream.read(&mut byte).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "no AUTH reply",
            ));
        }
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    Ok(line)
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
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
