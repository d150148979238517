//! Headers written on a real loopback connection, whole or in pieces, with
//! the client's next bytes right behind them: the address is read and the
//! next bytes are left in place.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ppp::v2::{Builder, Command, IPv4, IPv6, Protocol, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;

const NEXT: &[u8] = b"\x16\x03\x01 the TLS ClientHello";

/// Sends `pieces` (a pause between them), then [`NEXT`]; returns what the
/// reader made of the header and the bytes it left.
async fn exchange(pieces: &[&[u8]]) -> (Result<Option<SocketAddr>, String>, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
    let writer = tokio::spawn(async move {
        let mut c = TcpStream::connect(addr).await.expect("connect");
        for p in pieces {
            c.write_all(&p).await.expect("write");
            c.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = c.write_all(NEXT).await;
        let _ = c.shutdown().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let (mut server, _) = listener.accept().await.expect("accept");
    let result = read_proxy_header(&mut server)
        .await
        .map_err(|e| e.to_string());
    let mut rest = Vec::new();
    if result.is_ok() {
        let _ = server.read_to_end(&mut rest).await;
    }
    writer.await.expect("writer");
    (result, rest)
}

fn v2(command: Command, addresses: impl Into<v2::Addresses>) -> Vec<u8> {
    Builder::with_addresses(Version::Two | command, Protocol::Stream, addresses)
        .write_tlv(0x04, b"some load balancer TLV")
        .expect("tlv")
        .build()
        .expect("v2 header")
}

#[tokio::test]
async fn v1_headers_whole_and_in_pieces() {
    let line = b"PROXY TCP4 10.1.2.3 192.168.0.1 56324 443\r\n";
    let want: SocketAddr = "10.1.2.3:56324".parse().expect("addr");
    assert_eq!(exchange(&[line]).await, (Ok(Some(want)), NEXT.to_vec()));
    let (a, b) = line.split_at(20);
    assert_eq!(exchange(&[a, b]).await, (Ok(Some(want)), NEXT.to_vec()));
    // CR and LF in separate pieces.
    let (a, b) = line.split_at(line.len() - 1);
    assert_eq!(exchange(&[a, b]).await, (Ok(Some(want)), NEXT.to_vec()));
    let six = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n";
    let want6: SocketAddr = "[2001:db8::7]:4000".parse().expect("addr");
    assert_eq!(exchange(&[six]).await, (Ok(Some(want6)), NEXT.to_vec()));
    assert_eq!(
        exchange(&[b"PROXY UNKNOWN\r\n"]).await,
        (Ok(None), NEXT.to_vec())
    );
}

#[tokio::test]
async fn v2_headers_with_tlvs() {
    let four = IPv4::new(
        Ipv4Addr::new(10, 9, 8, 7),
        Ipv4Addr::new(10, 0, 0, 1),
        40000,
        443,
    );
    let header = v2(Command::Proxy, four);
    let want: SocketAddr = "10.9.8.7:40000".parse().expect("addr");
    assert_eq!(exchange(&[&header]).await, (Ok(Some(want)), NEXT.to_vec()));
    let (a, b) = header.split_at(14);
    assert_eq!(exchange(&[a, b]).await, (Ok(Some(want)), NEXT.to_vec()));
    let six = IPv6::new(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, 5555, 443);
    let want6: SocketAddr = "[::1]:5555".parse().expect("addr");
    assert_eq!(
        exchange(&[&v2(Command::Proxy, six)]).await,
        (Ok(Some(want6)), NEXT.to_vec())
    );
    // LOCAL: a health check; the connection's own address stands.
    assert_eq!(
        exchange(&[&v2(Command::Local, four)]).await,
        (Ok(None), NEXT.to_vec())
    );
}

#[tokio::test]
async fn no_header_or_a_bad_one_is_refused() {
    let refused = |r: &(Result<Option<SocketAddr>, String>, Vec<u8>)| r.0.clone().err();
    // A client that speaks TLS (or RESP) at once.
    let r = exchange(&[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00"]).await;
    assert_eq!(refused(&r).as_deref(), Some("no PROXY protocol header"));
    let r = exchange(&[b"*1\r\n$4\r\nPING\r\n"]).await;
    assert_eq!(refused(&r).as_deref(), Some("no PROXY protocol header"));
    // A v1 header that never ends within its 107 bytes.
    let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
    let r = exchange(&[&long]).await;
    assert_eq!(
        refused(&r).as_deref(),
        Some("PROXY protocol header too long")
    );
    let r = exchange(&[b"PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n"]).await;
    assert_eq!(
        refused(&r).as_deref(),
        Some("malformed PROXY protocol header")
    );
    // A v2 length past the limit: refused before reading it.
    let mut big = V2_SIGNATURE.to_vec();
    big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    let r = exchange(&[&big]).await;
    assert_eq!(
        refused(&r).as_deref(),
        Some("PROXY protocol header too long")
    );
    // A peer that closes mid-header.
    let r = exchange(&[b"PROXY TCP4 10."]).await;
    assert!(
        refused(&r).is_some_and(|e| e.starts_with("read failed")),
        "{r:?}"
    );
}
