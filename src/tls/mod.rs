//! Step 1 of the data path: TLS.
//!
//! [`load_server_config`] turns the validated `[tls]` settings into a rustls
//! [`ServerConfig`] (certificate chain, key, protocol versions, client-certificate
//! verification with optional CRLs). After the handshake, [`PeerIdentity`] reads what
//! the verified client certificate says about its holder and picks the user name
//! that the connection task (`conn`) authenticates as.

mod client;
mod error;
mod identity;

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::config::{ClientAuth, TlsSettings, TlsVersion};

pub use client::{load_upstream, UpstreamTls};
pub use error::TlsError;
pub use identity::PeerIdentity;

/// The crypto provider portcullis uses everywhere (`ring`).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A loaded `[tls]`: the rustls configuration, and the notAfter (Unix seconds) of
/// what it was built from, for the certificate-expiry metric.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The rustls server configuration.
    pub config: Arc<ServerConfig>,
    /// Earliest notAfter in the server chain.
    pub server_not_after: Option<i64>,
    /// Earliest notAfter in the client CA bundle (when one is used).
    pub client_ca_not_after: Option<i64>,
}

/// Builds the rustls server configuration from the `[tls]` settings.
///
/// Reads the certificate chain, the private key (PKCS#8, PKCS#1 or SEC1), and, when
/// `client_ca` is set and `client_auth` is not `none`, the CA bundle and CRLs. Every
/// error names the configuration key and the file. No ALPN; rustls's default session
/// cache and TLS 1.3 tickets are kept.
pub fn load_server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    load_server(s).map(|t| t.config)
}

/// [`load_server_config`], plus the expiry of the certificates it read (each file
/// is read once).
pub fn load_server(s: &TlsSettings) -> Result<ServerTls, TlsError> {
    let provider = crypto_provider();
    let chain = read_certs("tls.cert", &s.cert)?;
    let server_not_after = earliest_not_after(&chain);
    let certified = certified_key(&SERVER_FILES, chain, &s.cert, &s.key, &provider)?;

    let versions: &[&'static rustls::SupportedProtocolVersion] = match s.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;

    let mut client_ca_not_after = None;
    let builder = match (&s.client_ca, s.client_auth) {
        (None, _) | (Some(_), ClientAuth::None) => builder.with_no_client_auth(),
        (Some(ca), auth) => {
            client_ca_not_after = earliest_not_after(&read_certs(SERVER_FILES.ca, ca)?);
            let verifier = client_verifier(ca, &s.crl, auth == ClientAuth::Optional, &provider)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    Ok(ServerTls {
        config: Arc::new(config),
        server_not_after,
        client_ca_not_after,
    })
}

/// The configuration keys a TLS setup reads its files from (for error messages).
pub(crate) struct TlsFiles {
    /// The certificate chain.
    cert: &'static str,
    /// Its private key.
    key: &'static str,
    /// The CA bundle that verifies the peer.
    ca: &'static str,
}

/// `[tls]`.
const SERVER_FILES: TlsFiles = TlsFiles {
    cert: "tls.cert",
    key: "tls.key",
    ca: "tls.client_ca",
};

/// The earliest notAfter (Unix seconds) among `certs`; `None` if none parses.
fn earliest_not_after(certs: &[CertificateDer<'_>]) -> Option<i64> {
    certs
        .iter()
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            Some(cert.validity().not_after.timestamp())
        })
        .min()
}

/// The verified client certificate's identity of an established server connection,
/// or `None` when the client sent no certificate (or it cannot be parsed).
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<PeerIdentity> {
    conn.peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| PeerIdentity::from_der(cert.as_ref()))
}

/// Reads every `CERTIFICATE` block of a PEM file; at least one is required.
fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::from_pem(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::from_pem(key, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads the key at `key_path` and checks it belongs to the end-entity
/// certificate of `chain` (read from `cert_path`).
fn certified_key(
    files: &TlsFiles,
    chain: Vec<CertificateDer<'static>>,
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| TlsError::from_pem(files.key, key_path, e))?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey {
                key: files.key,
                path: key_path.to_path_buf(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            setting: files.key,
            key: key_path.to_path_buf(),
            cert: cert_path.to_path_buf(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            key: files.cert,
            path: cert_path.to_path_buf(),
            reason: certificate_problem(&e),
        }),
    }
}

/// The trust anchors of a CA bundle (read from `path`, configuration key `key`).
fn roots(key: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in read_certs(key, path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsError::BadCaBundle {
            key,
            path: path.to_path_buf(),
            reason: format!("certificate #{}: {}", index + 1, certificate_problem(&e)),
        })?;
    }
    Ok(roots)
}

/// Says what is wrong with a certificate of ours (rustls words it as if it were a peer's).
fn certificate_problem(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding) => {
            "not a parsable X.509 certificate".to_string()
        }
        rustls::Error::InvalidCertificate(other) => format!("{other:?}"),
        other => other.to_string(),
    }
}

/// Builds the client-certificate verifier from the CA bundle `ca` and the CRL files.
fn client_verifier(
    ca: &Path,
    crl_paths: &[std::path::PathBuf],
    optional: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let roots = Arc::new(roots(SERVER_FILES.ca, ca)?);

    let mut crls = Vec::new();
    for path in crl_paths {
        let these = read_crls(path)?;
        // Build once per file so a bad CRL is reported with its own file name.
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(these.iter().cloned())
            .build()
            .map_err(|e| TlsError::BadCrl {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        crls.extend(these);
    }

    let mut builder =
        WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).with_crls(crls);
    if optional {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| TlsError::BadCaBundle {
        key: SERVER_FILES.ca,
        path: ca.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads every `X509 CRL` block of a PEM file; at least one is required.
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| TlsError::from_pem("tls.crl", path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::from_pem("tls.crl", path, e))?;
    if crls.is_empty() {
        return Err(TlsError::BadCrl {
            path: path.to_path_buf(),
            reason: "no X509 CRL block found".into(),
        });
    }
    Ok(crls)
}
