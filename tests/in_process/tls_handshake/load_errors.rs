//! `load_server_config` errors name the key and the file; every key format loads.

use std::path::{Path, PathBuf};

use portcullis::config::{ClientAuth, TlsSettings, TlsVersion};
use portcullis::tls::{load_server_config, TlsError};

use super::{as_client, handshake, settings};
use crate::support::TestPki;

fn load_err(s: &TlsSettings) -> TlsError {
    match load_server_config(s) {
        Ok(_) => panic!("load_server_config accepted {s:?}"),
        Err(e) => e,
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

const GARBAGE_CERT: &str =
    "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n";
/// Valid PEM and base64, but the DER inside is nonsense.
const NONSENSE_DER_CERT: &str =
    "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
const NONSENSE_DER_CRL: &str =
    "-----BEGIN X509 CRL-----\nAAECAwQFBgcICQ==\n-----END X509 CRL-----\n";

#[test]
fn missing_files_are_named() {
    let pki = TestPki::new();
    let missing = pki.dir().join("nope.pem");
    for key in ["tls.cert", "tls.key", "tls.client_ca", "tls.crl"] {
        let mut s = settings(&pki, ClientAuth::Required);
        match key {
            "tls.cert" => s.cert = missing.clone(),
            "tls.key" => s.key = missing.clone(),
            "tls.client_ca" => s.client_ca = Some(missing.clone()),
            _ => s.crl = vec![missing.clone()],
        }
        let err = load_err(&s);
        assert_eq!(
            err.to_string(),
            format!(
                "{key}: cannot read {}: No such file or directory",
                missing.display()
            )
        );
    }
}

#[test]
fn key_mismatch_is_reported() {
    let pki = TestPki::new();
    let mut s = settings(&pki, ClientAuth::Required);
    s.key = pki.client("alice").1;
    let err = load_err(&s);
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("tls.key: "), "{text}");
    assert!(text.contains(&s.key.display().to_string()), "{text}");
    assert!(text.contains(&s.cert.display().to_string()), "{text}");
    assert!(text.contains("does not match"), "{text}");
}

#[test]
fn bad_pem_contents_are_named() {
    let pki = TestPki::new();
    let dir = pki.dir();
    let garbage = write(dir, "garbage.pem", GARBAGE_CERT);
    let empty = write(dir, "empty.pem", "just some text\n");
    let nonsense = write(dir, "nonsense.pem", NONSENSE_DER_CERT);
    let nonsense_crl = write(dir, "nonsense.crl", NONSENSE_DER_CRL);
    let base = || settings(&pki, ClientAuth::Required);
    let mut cases: Vec<(TlsSettings, &str, &Path)> = Vec::new();

    let mut s = base();
    s.cert = garbage.clone();
    cases.push((s, "tls.cert: ", &garbage));
    let mut s = base();
    s.cert = empty.clone();
    cases.push((s, "tls.cert: no certificate found in", &empty));
    let mut s = base();
    s.cert = nonsense.clone();
    cases.push((s, "tls.cert: bad certificate in", &nonsense));
    let mut s = base();
    s.key = empty.clone();
    cases.push((s, "tls.key: no private key found in", &empty));
    let mut s = base();
    s.key = garbage.clone();
    cases.push((s, "tls.key: ", &garbage));
    let mut s = base();
    s.client_ca = Some(empty.clone());
    cases.push((s, "tls.client_ca: no certificate found in", &empty));
    let mut s = base();
    s.client_ca = Some(nonsense.clone());
    cases.push((s, "tls.client_ca: bad CA bundle", &nonsense));
    let mut s = base();
    s.crl = vec![empty.clone()];
    cases.push((s, "tls.crl: bad CRL", &empty));
    let mut s = base();
    s.crl = vec![pki.write_crl("good.crl", &[]), nonsense_crl.clone()];
    cases.push((s, "tls.crl: bad CRL", &nonsense_crl));

    for (s, prefix, file) in cases {
        let text = load_err(&s).to_string();
        assert!(text.starts_with(prefix), "want {prefix:?}, got {text:?}");
        assert!(
            text.contains(&file.display().to_string()),
            "file not named: {text}"
        );
    }
}

#[test]
fn good_files_load() {
    let pki = TestPki::new();
    let mut s = settings(&pki, ClientAuth::Optional);
    s.crl = vec![pki.write_crl("empty.crl", &[])];
    s.min_version = TlsVersion::Tls13;
    load_server_config(&s).unwrap();
}

/// Runs `openssl ARGS...`; false (test skipped) when the openssl CLI is missing.
fn openssl(args: &[&str]) -> bool {
    match std::process::Command::new("openssl").args(args).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        Err(_) => {
            eprintln!("openssl CLI not found; skipping");
            false
        }
    }
}

#[tokio::test]
async fn sec1_and_pkcs1_keys_load() {
    let pki = TestPki::new();
    let dir = pki.dir();
    let sec1 = dir.join("server.sec1.key");
    let key = pki.server_key();
    if !openssl(&[
        "ec",
        "-in",
        key.to_str().unwrap(),
        "-out",
        sec1.to_str().unwrap(),
    ]) {
        return;
    }
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    let mut s = settings(&pki, ClientAuth::Required);
    s.key = sec1;
    let (client, server) = handshake(&s, as_client(&pki, "alice")).await;
    client.unwrap();
    assert_eq!(server.unwrap().unwrap().cn.as_deref(), Some("alice"));

    let (rsa_cert, rsa_key) = (dir.join("rsa.pem"), dir.join("rsa.key"));
    let rsa_pkcs1 = dir.join("rsa.pkcs1.key");
    let (c, k, k1) = (
        rsa_cert.to_str().unwrap(),
        rsa_key.to_str().unwrap(),
        rsa_pkcs1.to_str().unwrap(),
    );
    assert!(openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        k,
        "-out",
        c,
        "-subj",
        "/CN=localhost",
        "-days",
        "1",
    ]));
    assert!(openssl(&["rsa", "-in", k, "-traditional", "-out", k1]));
    assert!(std::fs::read_to_string(&rsa_pkcs1)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    s.cert = rsa_cert;
    s.key = rsa_pkcs1;
    load_server_config(&s).unwrap();
    // The RSA key does not belong to the ECDSA server certificate.
    s.cert = pki.server_cert();
    assert!(matches!(load_err(&s), TlsError::KeyMismatch { .. }));
}
