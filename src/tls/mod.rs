//! Step 1 of the data path: TLS.
//!
//! [`load_server_config`] turns the validated `[tls]` settings into a rustls
//! [`ServerConfig`] (certificate chain, key, protocol versions, client-certificate
//! verification with optional CRLs). After the handshake, [`PeerIdentity`] reads what
//! the verified client certificate says about its holder and picks the user name
//! that the connection task (`conn`) authenticates as.

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
    let key = PrivateKeyDer::from_pem_file(&s.key)
        .map_err(|e| TlsError::from_pem("tls.key", &s.key, e))?;
    let certified = certified_key(chain, key, s, &provider)?;

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
            let cas = read_certs("tls.client_ca", ca)?;
            client_ca_not_after = earliest_not_after(&cas);
            let verifier =
                client_verifier(ca, cas, &s.crl, auth == ClientAuth::Optional, &provider)?;
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

/// Loads the key with the provider and checks it belongs to the end-entity certificate.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    s: &TlsSettings,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey {
                path: s.key.clone(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            key: s.key.clone(),
            cert: s.cert.clone(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            path: s.cert.clone(),
            reason: certificate_problem(&e),
        }),
    }
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

/// Builds the client-certificate verifier from the CA bundle `cas` (read from
/// `ca`) and the CRL files.
fn client_verifier(
    ca: &Path,
    cas: Vec<CertificateDer<'static>>,
    crl_paths: &[std::path::PathBuf],
    optional: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in cas.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsError::BadCaBundle {
            path: ca.to_path_buf(),
            reason: format!("certificate #{}: {}", index + 1, certificate_problem(&e)),
        })?;
    }
    let roots = Arc::new(roots);

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
