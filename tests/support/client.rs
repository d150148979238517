//! The client side of TLS for tests: rustls client configs and connects.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::pki::TestPki;
use super::resp::RespConn;

/// TLS 1.2 and 1.3.
pub const ALL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
/// TLS 1.2 only.
pub const TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
/// TLS 1.3 only.
pub const TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A client config trusting the CA bundle `ca`, presenting `identity` = `(cert, key)` if
/// given, speaking `versions`.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(cert.expect("CA pem")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .expect("read client cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("client cert pem");
            let key = PrivateKeyDer::from_pem_file(key).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth cert")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects to `addr` with `config`, server name `localhost`.
pub async fn tls_connect_config(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// A TCP connection to `addr` from the local address `from` (e.g. `127.0.0.2`,
/// another loopback address, to look like another client machine).
pub async fn tcp_connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// [`resp_tls`] from the local address `from`; panics if the handshake fails.
pub async fn resp_tls_from(
    from: IpAddr,
    addr: SocketAddr,
    pki: &TestPki,
    client: Option<&str>,
) -> RespConn<TlsStream<TcpStream>> {
    let paths = client.map(|name| pki.client(name));
    let identity = paths.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let config = client_config(&pki.ca_pem(), identity, ALL_VERSIONS);
    let tcp = tcp_connect_from(from, addr).await.expect("TCP connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS connect to {addr} from {from} as {client:?}: {e}"));
    RespConn::new(tls)
}

/// Connects with the pki's CA as roots, presenting client `client`'s certificate if `Some`.
pub async fn tls_connect(
    addr: SocketAddr,
    pki: &TestPki,
    client: Option<&str>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let paths = client.map(|name| pki.client(name));
    let identity = paths.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    tls_connect_config(addr, client_config(&pki.ca_pem(), identity, ALL_VERSIONS)).await
}

/// [`tls_connect`] wrapped in a [`RespConn`]; panics if the handshake fails.
pub async fn resp_tls(
    addr: SocketAddr,
    pki: &TestPki,
    client: Option<&str>,
) -> RespConn<TlsStream<TcpStream>> {
    let stream = tls_connect(addr, pki, client)
        .await
        .unwrap_or_else(|e| panic!("TLS connect to {addr} as {client:?}: {e}"));
    RespConn::new(stream)
}
