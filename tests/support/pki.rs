//! A test PKI made at test time with `portcullis::certgen`, written into a tempdir.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use portcullis::certgen::{Authority, ClientSpec, IssuedCert};
use time::{Duration, OffsetDateTime};

/// CA, server certificate and client certificates in a temporary directory.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca: Authority,
    issued: HashMap<String, IssuedCert>,
}

impl TestPki {
    /// Makes the whole PKI. Its clients, signed by its CA unless noted: `alice`,
    /// `bob`, `carol` (CN = name); `spiffe` (CN `spiffe-client`, SAN URI
    /// `spiffe://test/ns/web/sa/cache`, SAN DNS `cache.test`, SAN e-mail
    /// `cache@test.example`); `intruder` (CN `alice`, signed by another CA);
    /// `expired` (CN `alice`, valid from 30 days ago until yesterday).
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir for pki");
        let ca = Authority::new("portcullis test CA").expect("CA");
        let other_ca = Authority::new("intruder CA").expect("intruder CA");
        let mut pki = TestPki {
            dir,
            ca,
            issued: HashMap::new(),
        };
        pki.write("ca.pem", &pki.ca.cert_pem());
        pki.write("ca.key", &pki.ca.key_pem());
        pki.write("intruder-ca.pem", &other_ca.cert_pem());
        let server = pki
            .ca
            .server(&["localhost", "127.0.0.1"])
            .expect("server cert");
        pki.write("server.pem", &server.cert_pem);
        pki.write("server.key", &server.key_pem);

        for name in ["alice", "bob", "carol"] {
            let issued = pki.ca.client(&ClientSpec::new(name)).expect("client");
            pki.add_issued(name, issued);
        }
        let mut spiffe = ClientSpec::new("spiffe-client");
        spiffe.san_uri = vec!["spiffe://test/ns/web/sa/cache"];
        spiffe.san_dns = vec!["cache.test"];
        spiffe.san_email = vec!["cache@test.example"];
        let issued = pki.ca.client(&spiffe).expect("spiffe client");
        pki.add_issued("spiffe", issued);

        let intruder = other_ca
            .client(&ClientSpec::new("alice"))
            .expect("intruder");
        pki.add_issued("intruder", intruder);

        let now = OffsetDateTime::now_utc();
        let mut expired = ClientSpec::new("alice");
        expired.not_before = now - Duration::days(30);
        expired.not_after = now - Duration::days(1);
        let issued = pki.ca.client(&expired).expect("expired");
        pki.add_issued("expired", issued);
        pki
    }

    fn write(&self, file: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, contents).expect("write pki file");
        path
    }

    /// Adds (or replaces) a client `name` with its files `NAME.pem` / `NAME.key`.
    pub fn add_issued(&mut self, name: &str, issued: IssuedCert) {
        self.write(&format!("{name}.pem"), &issued.cert_pem);
        self.write(&format!("{name}.key"), &issued.key_pem);
        self.issued.insert(name.to_string(), issued);
    }

    /// Issues one more client certificate from the test CA and stores it as `name`.
    pub fn add_client(&mut self, name: &str, spec: &ClientSpec) -> (PathBuf, PathBuf) {
        let issued = self.ca.client(spec).expect("client cert");
        self.add_issued(name, issued);
        self.client(name)
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The test CA.
    pub fn authority(&self) -> &Authority {
        &self.ca
    }

    /// The CA certificate (`ca.pem`).
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The other CA that signed `intruder` (`intruder-ca.pem`).
    pub fn intruder_ca_pem(&self) -> PathBuf {
        self.dir.path().join("intruder-ca.pem")
    }

    /// The server certificate (`server.pem`, for `localhost` and `127.0.0.1`).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server key (`server.key`).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// `(cert, key)` paths of a client; panics for an unknown name.
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        assert!(self.issued.contains_key(name), "no test client {name:?}");
        (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}.key")),
        )
    }

    /// The issued certificate of a client (PEMs and serial).
    pub fn issued(&self, name: &str) -> &IssuedCert {
        self.issued
            .get(name)
            .unwrap_or_else(|| panic!("no test client {name:?}"))
    }

    /// Writes `file` (in the pki dir): a CRL from the test CA revoking these clients.
    pub fn write_crl(&self, file: &str, revoked: &[&str]) -> PathBuf {
        let serials: Vec<&[u8]> = revoked
            .iter()
            .map(|name| self.issued(name).serial.as_slice())
            .collect();
        let crl = self.ca.crl(&serials).expect("crl");
        self.write(file, &crl)
    }
}
