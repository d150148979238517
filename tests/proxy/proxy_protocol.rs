//! `server.proxy_protocol_from` through the built proxy: real PROXY v1 and v2
//! headers from a listed peer (127.0.0.2) set the client address for
//! `server.allow`, a user's `allow_from`, `CLIENT INFO` and `ACL LOG`; HAProxy
//! with `send-proxy-v2` in front works; a listed peer without a header is
//! closed; an unlisted peer's "header" is never read as one.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ppp::v2::{Builder, Command as PpCommand, IPv4, Protocol, Version};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::support::*;

const LB: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn config(pki: &TestPki, redis: &RedisServer, plaintext: bool) -> String {
    let server = format!(
        "metrics_listen = \"127.0.0.1:0\"\nproxy_protocol_from = [\"{LB}\"]\n\
         allow = [\"10.9.0.0/16\", \"127.0.0.3\", \"{LB}\"]{}",
        if plaintext {
            "\nplaintext_listen = \"127.0.0.1:0\""
        } else {
            ""
        }
    );
    let users = "[[users]]\nname = \"bob\"\nrules = \"on >pw ~* &* +@all\"\n\n\
                 [[users]]\nname = \"app\"\nrules = \"on >pw ~* &* +@all\"\nallow_from = [\"10.9.8.0/24\"]\n";
    base_config_with_server(pki, &redis.addr(), &server, users)
}

/// A TLS client (certificate `bob`) from `from` to `addr` that sends
/// `header` first (nothing when empty).
async fn tls_after(
    from: &str,
    addr: SocketAddr,
    pki: &TestPki,
    header: &[u8],
) -> std::io::Result<RespConn<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>> {
    let mut tcp = tcp_connect_from(ip(from), addr).await?;
    tcp.write_all(header).await?;
    let (cert, key) = pki.client("bob");
    let config = client_config(&pki.ca_pem(), Some((&cert, &key)), ALL_VERSIONS);
    let name = ServerName::try_from("localhost").expect("name");
    let mut c = RespConn::new(TlsConnector::from(config).connect(name, tcp).await?);
    // The handshake may look done on the client's side before the server's
    // close arrives: a command proves the connection is served.
    c.try_cmd(&[b"PING"]).await.map_err(std::io::Error::other)?;
    Ok(c)
}

async fn through_header(
    proxy: &Proxy,
    pki: &TestPki,
    from: &str,
    header: &[u8],
) -> std::io::Result<RespConn<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>> {
    tls_after(from, proxy.tls_addr(), pki, header).await
}

fn field(info: &str, key: &str) -> String {
    info.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_string()
}

async fn client_addr<S>(c: &mut RespConn<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let info = c.cmd_str(&["CLIENT", "INFO"]).await;
    field(info.as_str().unwrap_or_default(), "addr")
}

fn v2_header(client: [u8; 4], port: u16) -> Vec<u8> {
    let addrs = IPv4::new(client, [127, 0, 0, 1], port, 443);
    Builder::with_addresses(Version::Two | PpCommand::Proxy, Protocol::Stream, addrs)
        .write_tlv(0x05, b"unique-id-1")
        .expect("tlv")
        .build()
        .expect("v2")
}

#[tokio::test]
async fn headers_from_a_listed_peer_name_the_client_everywhere() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&config(&pki, &redis, false), pki.dir());

    // v1: the client is 10.9.8.7; bob by certificate, app by allow_from.
    let v1 = b"PROXY TCP4 10.9.8.7 127.0.0.1 40001 443\r\n";
    let mut c = through_header(&proxy, &pki, LB, v1).await.expect("v1");
    assert_eq!(client_addr(&mut c).await, "10.9.8.7:40001");
    assert!(c.cmd_str(&["AUTH", "app", "pw"]).await.is_ok());
    // v2 with a TLV: 10.9.1.1 is allowed in, but outside app's allow_from.
    let mut d = through_header(&proxy, &pki, LB, &v2_header([10, 9, 1, 1], 40002))
        .await
        .expect("v2");
    assert_eq!(client_addr(&mut d).await, "10.9.1.1:40002");
    assert_eq!(
        d.cmd_str(&["AUTH", "app", "pw"]).await.error(),
        Some("WRONGPASS invalid username-password pair or user is disabled.")
    );
    let log = c.cmd_str(&["ACL", "LOG"]).await.flat_text();
    assert!(
        log.contains("addr=10.9.1.1:40002") && log.contains("refused-by=allow_from"),
        "{log}"
    );
    // server.allow applies to the carried address: 10.8.0.1 is not in it.
    let refused =
        through_header(&proxy, &pki, LB, b"PROXY TCP4 10.8.0.1 127.0.0.1 1 443\r\n").await;
    assert!(
        refused.is_err(),
        "a client outside server.allow got through"
    );
    assert!(proxy
        .wait_for_log(Duration::from_secs(5), |l| l
            .contains("not in server.allow")
            && l.contains("10.8.0.1"))
        .is_some());
    // LOCAL (a health check): the balancer's own address stands.
    let local = Builder::with_addresses(
        Version::Two | PpCommand::Local,
        Protocol::Unspecified,
        ppp::v2::Addresses::Unspecified,
    )
    .build()
    .expect("local");
    let mut h = through_header(&proxy, &pki, LB, &local)
        .await
        .expect("local");
    assert!(client_addr(&mut h).await.starts_with("127.0.0.2:"));
}

#[tokio::test]
async fn a_listed_peer_without_a_header_is_closed_and_others_are_never_parsed() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&config(&pki, &redis, true), pki.dir());
    // The balancer's address speaking TLS at once: closed, counted.
    let direct = tls_after(LB, proxy.tls_addr(), &pki, b"").await;
    assert!(direct.is_err());
    let mut garbage = tcp_connect_from(ip(LB), proxy.tls_addr())
        .await
        .expect("tcp");
    garbage
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?} {buf:?}");
    let hits = scrape(
        &proxy,
        "portcullis_limit_hits_total{limit=\"proxy_header\"}",
    )
    .await;
    assert_eq!(hits, 2.0);
    // A peer that is not listed: its "header" is just bytes. Over TLS the
    // handshake fails; in plaintext it is an (unknown) inline command.
    let spoof = through_header(
        &proxy,
        &pki,
        "127.0.0.3",
        b"PROXY TCP4 10.9.8.7 127.0.0.1 1 443\r\n",
    )
    .await;
    assert!(spoof.is_err());
    let plain = proxy.plaintext_addr().expect("plaintext listener");
    let mut p = RespConn::new(tcp_connect_from(ip("127.0.0.3"), plain).await.expect("tcp"));
    p.send_raw(b"PROXY TCP4 10.9.8.7 127.0.0.1 1 443\r\n").await;
    let reply = p.read_reply().await;
    assert!(
        reply
            .error()
            .is_some_and(|e| e.starts_with("ERR unknown command 'PROXY'")),
        "{reply:?}"
    );
    assert!(p.cmd_str(&["AUTH", "bob", "pw"]).await.is_ok());
    assert!(client_addr(&mut p).await.starts_with("127.0.0.3:"));
}

/// HAProxy (TCP mode) on a free port, connecting to `backend` from
/// [`LB`] with `send-proxy-v2`; stopped on drop.
struct Haproxy {
    child: Child,
    port: u16,
}

impl Haproxy {
    fn start(dir: &std::path::Path, backend: SocketAddr) -> Haproxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let cfg = format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend f\n  bind 127.0.0.1:{port}\n  default_backend b\n\
             backend b\n  server p {backend} send-proxy-v2 source {LB}\n"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (apt-get install haproxy)");
        Haproxy { child, port }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn haproxy_send_proxy_v2_in_front() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&config(&pki, &redis, false), pki.dir());
    let haproxy = Haproxy::start(pki.dir(), proxy.tls_addr());
    let front: SocketAddr = format!("127.0.0.1:{}", haproxy.port).parse().expect("addr");
    // HAProxy may take a moment to listen.
    let mut c = None;
    for _ in 0..50 {
        if let Ok(conn) = tls_after("127.0.0.3", front, &pki, b"").await {
            c = Some(conn);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = c.expect("through HAProxy");
    // The client's own address (127.0.0.3), not HAProxy's (127.0.0.2).
    assert!(client_addr(&mut c).await.starts_with("127.0.0.3:"));
    assert!(c.cmd_str(&["SET", "via", "haproxy"]).await.is_ok());
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.expect("redis");
    assert_eq!(
        direct.cmd_str(&["GET", "via"]).await.as_str(),
        Some("haproxy")
    );
    // 127.0.0.4 is outside server.allow: HAProxy's connection to the proxy
    // is closed right after the header.
    let refused = tls_after("127.0.0.4", front, &pki, b"").await;
    assert!(refused.is_err());
    assert!(proxy
        .wait_for_log(Duration::from_secs(5), |l| l
            .contains("not in server.allow")
            && l.contains("127.0.0.4"))
        .is_some());
}
