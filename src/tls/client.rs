//! TLS on the upstream hop: the rustls client configuration every upstream
//! connection (data servers and sentinels) uses when `[upstream.tls]` is set.
//! TLS 1.2 and 1.3; the server's chain is verified against the configured CA
//! bundle and its name against `server_name` or the address's host (an IP
//! address against the certificate's IP SANs); an optional client certificate
//! for servers with `tls-auth-clients yes`.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::{
    certified_key, crypto_provider, earliest_not_after, read_certs, roots, TlsError, TlsFiles,
};
use crate::config::UpstreamTlsSettings;

/// `[upstream.tls]`.
const UPSTREAM_FILES: TlsFiles = TlsFiles {
    cert: "upstream.tls.cert",
    key: "upstream.tls.key",
    ca: "upstream.tls.ca",
};

/// A loaded `[upstream.tls]`.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Makes client TLS connections with the configuration.
    pub connector: TlsConnector,
    /// The name every server is verified against (`server_name`); `None`: each
    /// address's own host.
    pub server_name: Option<ServerName<'static>>,
    /// notAfter (Unix seconds) of the client certificate, when one is configured.
    pub client_not_after: Option<i64>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("client_not_after", &self.client_not_after)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// The name to verify (and send as SNI) for a server whose address has `host`.
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, String> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?}: {e}"))
    }
}

/// Reads `[upstream.tls]`: the CA bundle, the optional client certificate and key.
pub fn load_upstream(s: &UpstreamTlsSettings) -> Result<UpstreamTls, TlsError> {
    let provider = crypto_provider();
    let roots = roots(UPSTREAM_FILES.ca, &s.ca)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let (config, client_not_after) = match (&s.cert, &s.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(UPSTREAM_FILES.cert, cert)?;
            let not_after = earliest_not_after(&chain);
            let certified = certified_key(&UPSTREAM_FILES, chain, cert, key, &provider)?;
            let resolver = rustls::sign::SingleCertAndKey::from(certified);
            (
                builder.with_client_cert_resolver(Arc::new(resolver)),
                not_after,
            )
        }
        _ => (builder.with_no_client_auth(), None),
    };
    let server_name = match &s.server_name {
        Some(name) => Some(
            ServerName::try_from(name.clone())
                .map_err(|e| TlsError::Config(format!("upstream.tls.server_name {name:?}: {e}")))?,
        ),
        None => None,
    };
    Ok(UpstreamTls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
        client_not_after,
    })
}
