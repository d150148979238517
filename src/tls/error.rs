//! Errors of the TLS setup step: each names the configuration key and the file.

use std::path::{Path, PathBuf};

/// Why the TLS server configuration could not be built.
///
/// Every message starts with the `proxy.toml` key (`tls.cert`, `tls.key`, ...) and
/// names the file, so an operator can fix it without reading code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The file could not be opened or read.
    #[error("{key}: cannot read {}: {reason}", path.display())]
    Read {
        /// The configuration key (`tls.cert`, `tls.key`, `tls.client_ca`, `tls.crl`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not well-formed PEM.
    #[error("{key}: {} is not valid PEM: {reason}", path.display())]
    BadPem {
        /// The configuration key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM reader found wrong.
        reason: String,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("{key}: no certificate found in {}", path.display())]
    NoCertificate {
        /// The configuration key (`tls.cert` or `tls.client_ca`).
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A certificate of ours cannot be parsed.
    #[error("{key}: bad certificate in {}: {reason}", path.display())]
    BadCertificate {
        /// The configuration key (`tls.cert`, `upstream.tls.cert`).
        key: &'static str,
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file holds no private key block.
    #[error(
        "{key}: no private key found in {} (expected a PKCS#8, PKCS#1 or SEC1 PEM key)",
        path.display()
    )]
    NoKey {
        /// The configuration key (`tls.key`, `upstream.tls.key`).
        key: &'static str,
        /// The key file.
        path: PathBuf,
    },
    /// The private key cannot be used.
    #[error("{key}: unusable private key in {}: {reason}", path.display())]
    BadKey {
        /// The configuration key (`tls.key`, `upstream.tls.key`).
        key: &'static str,
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key is not the one of the certificate.
    #[error(
        "{setting}: private key in {} does not match the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The configuration key (`tls.key`, `upstream.tls.key`).
        setting: &'static str,
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// A CA bundle holds a certificate that cannot be a trust anchor.
    #[error("{key}: bad CA bundle {}: {reason}", path.display())]
    BadCaBundle {
        /// The configuration key (`tls.client_ca`, `upstream.tls.ca`).
        key: &'static str,
        /// The CA bundle file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A CRL file is empty or holds a CRL that cannot be parsed.
    #[error("tls.crl: bad CRL {}: {reason}", path.display())]
    BadCrl {
        /// The CRL file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the assembled configuration (not expected with valid files).
    #[error("tls: {0}")]
    Config(String),
}

impl TlsError {
    /// Maps a PEM reading error for `path` (configuration key `key`) to a [`TlsError`].
    pub(crate) fn from_pem(
        key: &'static str,
        path: &Path,
        err: rustls_pki_types::pem::Error,
    ) -> Self {
        use rustls_pki_types::pem::Error as Pem;
        let path = path.to_path_buf();
        match err {
            Pem::Io(e) => TlsError::Read {
                key,
                path,
                reason: io_reason(&e),
            },
            Pem::NoItemsFound if key.ends_with(".key") => TlsError::NoKey { key, path },
            Pem::NoItemsFound if key == "tls.crl" => TlsError::BadCrl {
                path,
                reason: "no X509 CRL block found".into(),
            },
            Pem::NoItemsFound => TlsError::NoCertificate { key, path },
            other => TlsError::BadPem {
                key,
                path,
                reason: other.to_string(),
            },
        }
    }
}

/// An I/O error's message without the trailing ` (os error N)`.
fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}
