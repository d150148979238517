//! The TLS step in-process: `load_server_config` behind a tokio acceptor, real handshakes
//! with the test PKI, and the file errors `load_server_config` reports.

#[path = "tls_handshake/harness.rs"]
mod harness;
#[path = "tls_handshake/load_errors.rs"]
mod load_errors;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{client_config, tls_connect_config, TestPki};
use crate::support::{ALL_VERSIONS, TLS12_ONLY, TLS13_ONLY};
use portcullis::config::{ClientAuth, TlsSettings, TlsVersion};
use portcullis::tls::{load_server_config, peer_identity, PeerIdentity};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const HELLO: &[u8] = b"hello";

fn settings(pki: &TestPki, auth: ClientAuth) -> TlsSettings {
    TlsSettings {
        cert: pki.server_cert(),
        key: pki.server_key(),
        client_ca: Some(pki.ca_pem()),
        client_auth: auth,
        crl: Vec::new(),
        min_version: TlsVersion::Tls12,
    }
}

/// What the server saw: the peer's identity (None = no client cert), or the handshake error.
type ServerOutcome = Result<Option<PeerIdentity>, String>;

/// Accepts one connection with `settings`, says hello, waits for the client to close.
async fn serve_once(settings: &TlsSettings) -> (SocketAddr, JoinHandle<ServerOutcome>) {
    let config = load_server_config(settings).expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let identity = peer_identity(tls.get_ref().1);
        tls.write_all(HELLO).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        Ok(identity)
    });
    (addr, task)
}

/// Connects, then reads the hello. Err if the handshake or the first read fails
/// (with TLS 1.3 a rejected client certificate shows up only on the first read).
async fn client_outcome(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<(), String> {
    let mut tls = tls_connect_config(addr, config)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut buf = [0u8; 5];
    match tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut buf)).await {
        Err(_) => Err("read timed out".into()),
        Ok(Err(e)) => Err(format!("read: {e}")),
        Ok(Ok(_)) if buf == HELLO => {
            let _ = tls.shutdown().await;
            Ok(())
        }
        Ok(Ok(_)) => Err(format!("unexpected bytes {buf:?}")),
    }
}

/// Runs one handshake: `(client result, server result)`.
async fn handshake(
    settings: &TlsSettings,
    client: Arc<ClientConfig>,
) -> (Result<(), String>, ServerOutcome) {
    let (addr, server) = serve_once(settings).await;
    let client_result = client_outcome(addr, client).await;
    let server_result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server task finished")
        .expect("server task did not panic");
    (client_result, server_result)
}

fn as_client(pki: &TestPki, name: &str) -> Arc<ClientConfig> {
    let (cert, key) = pki.client(name);
    client_config(&pki.ca_pem(), Some((&cert, &key)), ALL_VERSIONS)
}

fn anonymous(pki: &TestPki) -> Arc<ClientConfig> {
    client_config(&pki.ca_pem(), None, ALL_VERSIONS)
}

/// Both sides failed, and the server's error mentions `reason`.
fn assert_rejected(
    (client, server): (Result<(), String>, ServerOutcome),
    what: &str,
    reason: &str,
) {
    assert!(client.is_err(), "{what}: client got through: {client:?}");
    match server {
        Ok(id) => panic!("{what}: server accepted {id:?}"),
        Err(e) => assert!(
            e.contains(reason),
            "{what}: want {reason:?}, server said {e:?}"
        ),
    }
}

#[tokio::test]
async fn good_client_cert_is_accepted_and_identified() {
    let pki = TestPki::new();
    let (client, server) = handshake(
        &settings(&pki, ClientAuth::Required),
        as_client(&pki, "alice"),
    )
    .await;
    client.unwrap();
    let identity = server.unwrap().expect("peer certificate");
    assert_eq!(identity.cn.as_deref(), Some("alice"));
    assert_eq!(identity.describe(), "cn=alice");

    let (client, server) = handshake(
        &settings(&pki, ClientAuth::Required),
        as_client(&pki, "spiffe"),
    )
    .await;
    client.unwrap();
    let identity = server.unwrap().expect("peer certificate");
    assert_eq!(identity.cn.as_deref(), Some("spiffe-client"));
    assert_eq!(identity.san_uri, ["spiffe://test/ns/web/sa/cache"]);
    assert_eq!(identity.san_dns, ["cache.test"]);
    assert_eq!(identity.san_email, ["cache@test.example"]);
}

#[tokio::test]
async fn missing_client_cert_fails_when_required() {
    let pki = TestPki::new();
    let s = settings(&pki, ClientAuth::Required);
    for versions in [TLS13_ONLY, TLS12_ONLY] {
        let client = client_config(&pki.ca_pem(), None, versions);
        let outcome = handshake(&s, client).await;
        assert_rejected(
            outcome,
            &format!("no cert, {versions:?}"),
            "no certificates",
        );
    }
}

#[tokio::test]
async fn foreign_ca_cert_is_rejected() {
    let pki = TestPki::new();
    for auth in [ClientAuth::Required, ClientAuth::Optional] {
        let outcome = handshake(&settings(&pki, auth), as_client(&pki, "intruder")).await;
        assert_rejected(outcome, &format!("intruder, {auth:?}"), "UnknownIssuer");
    }
}

#[tokio::test]
async fn expired_cert_is_rejected() {
    let pki = TestPki::new();
    let outcome = handshake(
        &settings(&pki, ClientAuth::Required),
        as_client(&pki, "expired"),
    )
    .await;
    assert_rejected(outcome, "expired", "certificate expired");
}

#[tokio::test]
async fn revoked_cert_is_rejected_with_crl() {
    let pki = TestPki::new();
    let crl = pki.write_crl("revoked.crl", &["bob"]);
    let mut s = settings(&pki, ClientAuth::Required);
    s.crl = vec![crl];
    let outcome = handshake(&s, as_client(&pki, "bob")).await;
    assert_rejected(outcome, "revoked bob", "Revoked");

    let (client, server) = handshake(&s, as_client(&pki, "alice")).await;
    client.unwrap();
    assert_eq!(server.unwrap().unwrap().cn.as_deref(), Some("alice"));

    // Without the CRL, bob is fine.
    let (client, server) = handshake(
        &settings(&pki, ClientAuth::Required),
        as_client(&pki, "bob"),
    )
    .await;
    client.unwrap();
    assert_eq!(server.unwrap().unwrap().cn.as_deref(), Some("bob"));
}

#[tokio::test]
async fn optional_mode_accepts_with_and_without_cert() {
    let pki = TestPki::new();
    let s = settings(&pki, ClientAuth::Optional);
    let (client, server) = handshake(&s, anonymous(&pki)).await;
    client.unwrap();
    assert_eq!(server.unwrap(), None);

    let (client, server) = handshake(&s, as_client(&pki, "carol")).await;
    client.unwrap();
    assert_eq!(server.unwrap().unwrap().cn.as_deref(), Some("carol"));

    let outcome = handshake(&s, as_client(&pki, "expired")).await;
    assert_rejected(outcome, "expired in optional mode", "certificate expired");
}

#[tokio::test]
async fn no_client_cert_is_asked_without_ca_or_with_auth_none() {
    let pki = TestPki::new();
    let mut without_ca = settings(&pki, ClientAuth::Required);
    without_ca.client_ca = None;
    let auth_none = settings(&pki, ClientAuth::None);
    for s in [without_ca, auth_none] {
        let (client, server) = handshake(&s, anonymous(&pki)).await;
        client.unwrap();
        assert_eq!(server.unwrap(), None);
        // A client holding a certificate is not asked for it either.
        let (client, server) = handshake(&s, as_client(&pki, "intruder")).await;
        client.unwrap();
        assert_eq!(server.unwrap(), None);
    }
}

#[tokio::test]
async fn min_version_13_rejects_tls12_client() {
    let pki = TestPki::new();
    let (cert, key) = pki.client("alice");
    let tls12 = client_config(&pki.ca_pem(), Some((&cert, &key)), TLS12_ONLY);
    let mut s = settings(&pki, ClientAuth::Required);

    let (client, server) = handshake(&s, tls12.clone()).await;
    client.unwrap();
    server.unwrap().unwrap();

    s.min_version = TlsVersion::Tls13;
    let outcome = handshake(&s, tls12).await;
    assert_rejected(
        outcome,
        "TLS 1.2 client against min_version 1.3",
        "Tls12NotOfferedOrEnabled",
    );

    let tls13 = client_config(&pki.ca_pem(), Some((&cert, &key)), TLS13_ONLY);
    let (client, server) = handshake(&s, tls13).await;
    client.unwrap();
    server.unwrap().unwrap();
}
