//! The PROXY protocol header (v1 text, v2 binary) a load balancer listed in
//! `server.proxy_protocol_from` puts before the client's bytes. Parsed with
//! the ppp crate; read exactly (never a byte of what follows it, the TLS
//! handshake), bounded in size here and in time by the caller.

use std::net::SocketAddr;

use ppp::v2::{self, Addresses, Command};
use ppp::{v1, HeaderResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature, and the bytes read before the version is known.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header (the protocol's own limit, CRLF included).
const V1_MAX: usize = 107;
/// The longest v2 header accepted (address block and TLVs included; the
/// protocol allows 65551 bytes, load balancers send a few hundred).
pub const V2_MAX: usize = 4096;

/// Why a peer that must send a header did not send a usable one.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Reading failed or the peer closed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// Neither a v1 nor a v2 signature.
    #[error("no PROXY protocol header")]
    Missing,
    /// Longer than the limit.
    #[error("PROXY protocol header too long")]
    TooLong,
    /// The crate refused it.
    #[error("malformed PROXY protocol header")]
    Malformed,
}

/// Reads the header from `tcp`: the client address it carries, or `None`
/// for a header without one (`LOCAL`, `UNKNOWN`, a unix or unspecified
/// address: a load balancer's own health check), when the connection's own
/// peer address stands.
pub async fn read_proxy_header(
    tcp: &mut TcpStream,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await?;
    if &head == V2_SIGNATURE {
        let mut rest = [0u8; 4];
        tcp.read_exact(&mut rest).await?;
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if 16 + len > V2_MAX {
            return Err(ProxyHeaderError::TooLong);
        }
        let mut header = Vec::with_capacity(16 + len);
        header.extend_from_slice(&head);
        header.extend_from_slice(&rest);
        header.resize(16 + len, 0);
        tcp.read_exact(&mut header[16..]).await?;
        return v2_address(&header);
    }
    if !head.starts_with(b"PROXY ") {
        return Err(ProxyHeaderError::Missing);
    }
    let mut header = head.to_vec();
    while !header.ends_with(b"\r\n") {
        // Peek at what has arrived and take the header's part of it: up to
        // and including CRLF, nothing after.
        let mut window = [0u8; V1_MAX];
        let room = V1_MAX.saturating_sub(header.len());
        if room == 0 {
            return Err(ProxyHeaderError::TooLong);
        }
        let seen = tcp.peek(&mut window[..room]).await?;
        if seen == 0 {
            return Err(ProxyHeaderError::Io(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        let take = window[..seen]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(seen, |i| i + 2);
        // A CR at the end of the header so far, LF first in the window.
        let take = if header.ends_with(b"\r") && window[0] == b'\n' {
            1
        } else {
            take
        };
        let start = header.len();
        header.resize(start + take, 0);
        tcp.read_exact(&mut header[start..]).await?;
    }
    v1_address(&header)
}

fn v2_address(header: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let parsed = v2::Header::try_from(header).map_err(|_| ProxyHeaderError::Malformed)?;
    if parsed.command == Command::Local {
        return Ok(None);
    }
    Ok(match parsed.addresses {
        Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Unspecified | Addresses::Unix(_) => None,
    })
}

fn v1_address(header: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let HeaderResult::V1(Ok(parsed)) = HeaderResult::parse(header) else {
        return Err(ProxyHeaderError::Malformed);
    };
    Ok(match parsed.addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Unknown => None,
    })
}

#[cfg(test)]
#[path = "proxy_header_tests.rs"]
mod tests;
