//! Client-certificate identity: what a verified certificate says about its holder,
//! and which portcullis user that makes it (handed to the connection task).

use std::collections::HashMap;

use x509_parser::extensions::GeneralName;

use crate::config::CertUserField;
use crate::logsafe::Escaped;

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject distinguished name, RFC 4514 style (`CN=alice,O=Example`).
    pub subject: String,
    /// The first common name of the subject, if any.
    pub cn: Option<String>,
    /// URI subject alternative names, in certificate order.
    pub san_uri: Vec<String>,
    /// DNS subject alternative names, in certificate order.
    pub san_dns: Vec<String>,
    /// E-mail (rfc822Name) subject alternative names, in certificate order.
    pub san_email: Vec<String>,
}

impl PeerIdentity {
    /// Parses a DER certificate; `None` if it cannot be parsed.
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let mut identity = PeerIdentity {
            subject: subject.to_string(),
            cn: subject
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string),
            ..PeerIdentity::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => identity.san_uri.push((*uri).to_string()),
                    GeneralName::DNSName(dns) => identity.san_dns.push((*dns).to_string()),
                    GeneralName::RFC822Name(email) => identity.san_email.push((*email).to_string()),
                    _ => {}
                }
            }
        }
        Some(identity)
    }

    /// The user this certificate names.
    ///
    /// `cert_map` first: every value (SAN URIs, then SAN DNS names, SAN e-mails, then the
    /// CN) is looked up in `map`, and the first hit wins. Otherwise the first value of the
    /// `field` (`None` for [`CertUserField::None`] or when the certificate lacks it).
    pub fn user_name<'a>(
        &'a self,
        field: CertUserField,
        map: &'a HashMap<String, String>,
    ) -> Option<&'a str> {
        if !map.is_empty() {
            let mapped = self
                .san_uri
                .iter()
                .chain(&self.san_dns)
                .chain(&self.san_email)
                .chain(self.cn.iter())
                .find_map(|value| map.get(value));
            if let Some(user) = mapped {
                return Some(user.as_str());
            }
        }
        match field {
            CertUserField::Cn => self.cn.as_deref(),
            CertUserField::SanUri => self.san_uri.first().map(String::as_str),
            CertUserField::SanDns => self.san_dns.first().map(String::as_str),
            CertUserField::SanEmail => self.san_email.first().map(String::as_str),
            CertUserField::None => None,
        }
    }

    /// Short text for logs: CN and SANs (`cn=alice uri=spiffe://... dns=a.test`),
    /// each value escaped ([`crate::logsafe`]): a certificate can hold newlines
    /// and terminal escapes.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.cn {
            Some(cn) => parts.push(format!("cn={}", Escaped(cn))),
            None => parts.push(format!("subject={}", Escaped(&self.subject))),
        }
        let sans = [
            ("uri", &self.san_uri),
            ("dns", &self.san_dns),
            ("email", &self.san_email),
        ];
        for (label, values) in sans {
            for value in values {
                parts.push(format!("{label}={}", Escaped(value)));
            }
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certgen::{Authority, ClientSpec};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    fn identity_of(spec: &ClientSpec) -> PeerIdentity {
        let ca = Authority::new("identity test CA").unwrap();
        let issued = ca.client(spec).unwrap();
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        PeerIdentity::from_der(der.as_ref()).unwrap()
    }

    fn spiffe() -> PeerIdentity {
        let mut spec = ClientSpec::new("spiffe-client");
        spec.san_uri = vec!["spiffe://test/ns/web/sa/cache", "spiffe://test/second"];
        spec.san_dns = vec!["cache.test", "other.test"];
        spec.san_email = vec!["cache@test.example"];
        identity_of(&spec)
    }

    #[test]
    fn extracts_cn_and_subject() {
        let id = identity_of(&ClientSpec::new("alice"));
        assert_eq!(id.cn.as_deref(), Some("alice"));
        assert_eq!(id.subject, "CN=alice");
        assert!(id.san_uri.is_empty() && id.san_dns.is_empty() && id.san_email.is_empty());
    }

    #[test]
    fn extracts_sans_in_order() {
        let id = spiffe();
        assert_eq!(id.cn.as_deref(), Some("spiffe-client"));
        assert_eq!(
            id.san_uri,
            ["spiffe://test/ns/web/sa/cache", "spiffe://test/second"]
        );
        assert_eq!(id.san_dns, ["cache.test", "other.test"]);
        assert_eq!(id.san_email, ["cache@test.example"]);
    }

    #[test]
    fn garbage_is_not_an_identity() {
        assert_eq!(PeerIdentity::from_der(b"not a certificate"), None);
    }

    #[test]
    fn user_from_each_field() {
        let id = spiffe();
        let empty = HashMap::new();
        assert_eq!(
            id.user_name(CertUserField::Cn, &empty),
            Some("spiffe-client")
        );
        assert_eq!(
            id.user_name(CertUserField::SanUri, &empty),
            Some("spiffe://test/ns/web/sa/cache")
        );
        assert_eq!(
            id.user_name(CertUserField::SanDns, &empty),
            Some("cache.test")
        );
        assert_eq!(
            id.user_name(CertUserField::SanEmail, &empty),
            Some("cache@test.example")
        );
        assert_eq!(id.user_name(CertUserField::None, &empty), None);
    }

    #[test]
    fn missing_field_gives_no_user() {
        let id = identity_of(&ClientSpec::new("alice"));
        let empty = HashMap::new();
        assert_eq!(id.user_name(CertUserField::SanUri, &empty), None);
        assert_eq!(id.user_name(CertUserField::SanEmail, &empty), None);
    }

    #[test]
    fn cert_map_wins_in_field_order() {
        let id = spiffe();
        let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // CN mapped, but a SAN DNS mapping comes first.
        let m = map(&[("spiffe-client", "by_cn"), ("other.test", "by_dns")]);
        assert_eq!(id.user_name(CertUserField::Cn, &m), Some("by_dns"));
        // A URI mapping beats everything, even with cert_user = none.
        let m = map(&[
            ("cache@test.example", "by_email"),
            ("spiffe://test/second", "by_uri"),
        ]);
        assert_eq!(id.user_name(CertUserField::None, &m), Some("by_uri"));
        // Only the CN mapped.
        let m = map(&[("spiffe-client", "by_cn")]);
        assert_eq!(id.user_name(CertUserField::SanDns, &m), Some("by_cn"));
        // No hit: falls back to the field.
        let m = map(&[("nobody", "x")]);
        assert_eq!(id.user_name(CertUserField::SanDns, &m), Some("cache.test"));
    }

    #[test]
    fn describe_lists_cn_and_sans() {
        let text = spiffe().describe();
        assert_eq!(
            text,
            "cn=spiffe-client uri=spiffe://test/ns/web/sa/cache uri=spiffe://test/second \
             dns=cache.test dns=other.test email=cache@test.example"
        );
        assert_eq!(identity_of(&ClientSpec::new("bob")).describe(), "cn=bob");
    }
}
