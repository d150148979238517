//! Off the data path: a small development PKI made with rcgen.
//!
//! `portcullis gen-certs` and the test suite use it to make a CA, a server
//! certificate and client certificates (with the SANs the identity step in
//! [`crate::tls`] reads), plus CRLs. Nothing here is meant for production keys.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// Why making or writing certificates failed.
#[derive(Debug, thiserror::Error)]
pub enum CertGenError {
    /// rcgen refused the parameters or failed to sign.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A name cannot be put into a certificate or used as a file name.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Writing an output file or directory failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or directory that could not be written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A certificate just made could not be parsed back (should not happen).
    #[error("cannot parse generated certificate: {0}")]
    Parse(String),
}

/// A certificate authority: its self-signed certificate and signing key.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate (PEM, one `CERTIFICATE` block).
    pub cert_pem: String,
    /// The private key (PEM, PKCS#8).
    pub key_pem: String,
    /// The certificate's serial number (big-endian bytes), for CRLs.
    pub serial: Vec<u8>,
}

/// What goes into a client certificate.
#[derive(Debug, Clone)]
pub struct ClientSpec<'a> {
    /// Subject common name.
    pub cn: &'a str,
    /// URI subject alternative names (e.g. SPIFFE IDs).
    pub san_uri: Vec<&'a str>,
    /// DNS subject alternative names.
    pub san_dns: Vec<&'a str>,
    /// E-mail (rfc822Name) subject alternative names.
    pub san_email: Vec<&'a str>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl<'a> ClientSpec<'a> {
    /// A client certificate with common name `cn`, no SANs, valid from a day ago for a year.
    pub fn new(cn: &'a str) -> Self {
        let now = OffsetDateTime::now_utc();
        ClientSpec {
            cn,
            san_uri: Vec::new(),
            san_dns: Vec::new(),
            san_email: Vec::new(),
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(365),
        }
    }
}

/// Parameters shared by every certificate issued here.
fn leaf_params(
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params
}

/// Turns an ASCII string into the IA5 string rcgen wants in SANs.
fn ia5(value: &str) -> Result<rcgen::string::Ia5String, CertGenError> {
    rcgen::string::Ia5String::try_from(value).map_err(|_| CertGenError::InvalidName {
        name: value.to_string(),
        reason: "subject alternative names must be ASCII",
    })
}

/// Reads the serial number back out of a DER certificate.
fn serial_of(der: &[u8]) -> Result<Vec<u8>, CertGenError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| CertGenError::Parse(e.to_string()))?;
    Ok(cert.tbs_certificate.serial.to_bytes_be())
}

impl Authority {
    /// Makes a new self-signed CA (ECDSA P-256) named `common_name`, valid for ten years.
    pub fn new(common_name: &str) -> Result<Self, CertGenError> {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let issuer = CertifiedIssuer::self_signed(params, key)?;
        Ok(Authority { issuer })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Signs `params` with a fresh key pair.
    fn issue(&self, params: CertificateParams) -> Result<IssuedCert, CertGenError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            serial: serial_of(cert.der())?,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for `names` (IP literals become IP SANs, the rest DNS SANs),
    /// with the serverAuth extended key usage, valid from a day ago for a year.
    pub fn server(&self, names: &[&str]) -> Result<IssuedCert, CertGenError> {
        let now = OffsetDateTime::now_utc();
        let cn = names.first().copied().unwrap_or("portcullis server");
        let mut params = leaf_params(cn, now - Duration::days(1), now + Duration::days(365));
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(ia5(name)?),
            };
            params.subject_alt_names.push(san);
        }
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate as described by `spec`, with the clientAuth extended key usage.
    pub fn client(&self, spec: &ClientSpec) -> Result<IssuedCert, CertGenError> {
        let mut params = leaf_params(spec.cn, spec.not_before, spec.not_after);
        for uri in &spec.san_uri {
            params.subject_alt_names.push(SanType::URI(ia5(uri)?));
        }
        for dns in &spec.san_dns {
            params.subject_alt_names.push(SanType::DnsName(ia5(dns)?));
        }
        for email in &spec.san_email {
            params
                .subject_alt_names
                .push(SanType::Rfc822Name(ia5(email)?));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    /// A CRL (PEM) signed by this CA revoking the certificates with these serial numbers
    /// ([`IssuedCert::serial`]); valid from an hour ago for thirty days.
    pub fn crl(&self, revoked_serials: &[&[u8]]) -> Result<String, CertGenError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update: now + Duration::days(30),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: now - Duration::hours(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// Checks that a client name can be a file name and does not clobber the CA or server files.
fn check_client_name(name: &str) -> Result<(), CertGenError> {
    let reason = if name.is_empty() {
        Some("client names must not be empty")
    } else if name == "ca" || name == "server" {
        Some("\"ca\" and \"server\" are the CA and server file names")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        || name.starts_with('.')
    {
        Some("client names may contain only ASCII letters, digits, '-', '_', '.' and '@'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CertGenError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Writes `contents` to `path`; `secret` files get mode 0600.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), CertGenError> {
    let io_err = |source| CertGenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = if secret { 0o600 } else { 0o644 };
        options.mode(mode);
        let mut file = options.open(path).map_err(io_err)?;
        // `mode` applies only on creation; an existing file is tightened here.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err)?;
        file.write_all(contents.as_bytes()).map_err(io_err)
    }
    #[cfg(not(unix))]
    {
        let _ = secret;
        let mut file = options.open(path).map_err(io_err)?;
        file.write_all(contents.as_bytes()).map_err(io_err)
    }
}

/// Writes `ca.pem ca.key server.pem server.key` and `NAME.pem NAME.key` for each client
/// (CN = NAME) into `out` (created if missing). The server certificate is valid for
/// `localhost`, `127.0.0.1` and `::1`. Key files get mode 0600. Returns the written paths.
pub fn write_dev_pki(out: &Path, clients: &[String]) -> Result<Vec<PathBuf>, CertGenError> {
    for name in clients {
        check_client_name(name)?;
    }
    std::fs::create_dir_all(out).map_err(|source| CertGenError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let ca = Authority::new("portcullis dev CA")?;
    let server = ca.server(&["localhost", "127.0.0.1", "::1"])?;
    let mut files: Vec<(String, String, bool)> = vec![
        ("ca.pem".into(), ca.cert_pem(), false),
        ("ca.key".into(), ca.key_pem(), true),
        ("server.pem".into(), server.cert_pem, false),
        ("server.key".into(), server.key_pem, true),
    ];
    for name in clients {
        let issued = ca.client(&ClientSpec::new(name))?;
        files.push((format!("{name}.pem"), issued.cert_pem, false));
        files.push((format!("{name}.key"), issued.key_pem, true));
    }
    let mut written = Vec::with_capacity(files.len());
    for (file_name, contents, secret) in files {
        let path = out.join(file_name);
        write_file(&path, &contents, secret)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_cert_carries_cn_sans_and_serial() {
        let ca = Authority::new("test CA").unwrap();
        let mut spec = ClientSpec::new("svc");
        spec.san_uri = vec!["spiffe://t/a"];
        spec.san_dns = vec!["svc.test"];
        spec.san_email = vec!["svc@test.example"];
        let issued = ca.client(&spec).unwrap();
        assert!(issued.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(issued.key_pem.contains("PRIVATE KEY"));
        assert!(!issued.serial.is_empty());
        let crl = ca.crl(&[&issued.serial]).unwrap();
        assert!(crl.starts_with("-----BEGIN X509 CRL-----"));
    }

    #[test]
    fn rejects_bad_client_names() {
        for bad in ["", "ca", "server", "../x", "a/b", ".hidden"] {
            assert!(check_client_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_client_name("cache_app-1").is_ok());
    }

    #[test]
    fn writes_dev_pki_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let written = write_dev_pki(&out, &["alice".to_string()]).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "ca.key",
                "server.pem",
                "server.key",
                "alice.pem",
                "alice.key"
            ]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join("alice.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
