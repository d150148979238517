//! Tokens signed here with keys made here (EC P-256 and Ed25519; RSA keys
//! come from openssl in the integration tests).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
use serde_json::json;

use super::*;

const NOW: u64 = 1_800_000_000;

struct Keys {
    ec: KeyPair,
    ed: KeyPair,
    dir: tempfile::TempDir,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Keys {
    fn new() -> Keys {
        let ec = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ec key");
        let ed = KeyPair::generate_for(&PKCS_ED25519).expect("ed key");
        let point = ec.public_key_raw();
        let (x, y) = point[1..].split_at(32);
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": "ec1", "alg": "ES256"},
            {"kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key_raw()), "kid": "ed1"},
            {"kty": "oct", "k": b64(b"shared secret"), "kid": "hmac"},
        ]});
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).expect("write jwks");
        Keys { ec, ed, dir }
    }

    fn verifier(&self, issuer: Option<&str>, audience: Option<&str>) -> TokenVerifier {
        TokenVerifier::load(&TokenSettings {
            jwks: self.dir.path().join("jwks.json"),
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
            user_claim: "sub".into(),
        })
        .expect("verifier")
    }

    fn sign(&self, alg: Algorithm, kid: Option<&str>, claims: &serde_json::Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        let key = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(self.ed.serialize_pem().as_bytes()),
            _ => EncodingKey::from_ec_pem(self.ec.serialize_pem().as_bytes()),
        }
        .expect("encoding key");
        encode(&header, claims, &key).expect("sign")
    }
}

fn claims(sub: &str, exp: u64) -> serde_json::Value {
    json!({"sub": sub, "exp": exp, "nbf": NOW - 10, "iss": "https://idp", "aud": ["x", "portcullis"]})
}

#[test]
fn valid_tokens_name_their_expiry_with_leeway() {
    let k = Keys::new();
    let v = k.verifier(Some("https://idp"), Some("portcullis"));
    let es = k.sign(Algorithm::ES256, Some("ec1"), &claims("alice", NOW + 60));
    assert!(looks_like_token(es.as_bytes()));
    assert_eq!(
        v.verify(es.as_bytes(), b"alice", NOW),
        Ok(NOW + 60 + LEEWAY_S)
    );
    let ed = k.sign(Algorithm::EdDSA, Some("ed1"), &claims("alice", NOW + 60));
    assert_eq!(
        v.verify(ed.as_bytes(), b"alice", NOW),
        Ok(NOW + 60 + LEEWAY_S)
    );
    // A single string audience; no issuer or audience configured.
    let single = json!({"sub": "alice", "exp": NOW + 1, "aud": "portcullis"});
    let t = k.sign(Algorithm::ES256, Some("ec1"), &single);
    assert!(v.verify(t.as_bytes(), b"alice", NOW).is_err());
    assert!(k
        .verifier(None, Some("portcullis"))
        .verify(t.as_bytes(), b"alice", NOW)
        .is_ok());
    // Leeway: valid until exp + LEEWAY_S, and from nbf - LEEWAY_S.
    let t = k.sign(Algorithm::ES256, Some("ec1"), &claims("alice", NOW));
    assert!(v.verify(t.as_bytes(), b"alice", NOW + LEEWAY_S).is_ok());
    assert_eq!(
        v.verify(t.as_bytes(), b"alice", NOW + LEEWAY_S + 1),
        Err(TokenError::Expired)
    );
    let later = json!({"sub": "alice", "exp": NOW + 100, "nbf": NOW + 20, "iss": "https://idp", "aud": "portcullis"});
    let t = k.sign(Algorithm::ES256, Some("ec1"), &later);
    assert_eq!(
        v.verify(t.as_bytes(), b"alice", NOW),
        Err(TokenError::NotYetValid)
    );
    assert!(v.verify(t.as_bytes(), b"alice", NOW + 15).is_ok());
}

#[test]
fn every_wrong_claim_is_refused_with_its_reason() {
    let k = Keys::new();
    let v = k.verifier(Some("https://idp"), Some("portcullis"));
    let sign = |c: &serde_json::Value| k.sign(Algorithm::ES256, Some("ec1"), c);
    let with = |key: &str, value: serde_json::Value| {
        let mut c = claims("alice", NOW + 60);
        c[key] = value;
        c
    };
    let cases = [
        (with("iss", json!("https://evil")), TokenError::Issuer),
        (with("aud", json!(["other"])), TokenError::Audience),
        (with("sub", json!("bob")), TokenError::User),
        (with("exp", json!("tomorrow")), TokenError::NoExpiry),
        (with("nbf", json!("soon")), TokenError::Malformed),
    ];
    for (c, want) in cases {
        assert_eq!(
            v.verify(sign(&c).as_bytes(), b"alice", NOW),
            Err(want),
            "{c}"
        );
    }
    let mut no_exp = claims("alice", 0);
    no_exp.as_object_mut().map(|o| o.remove("exp"));
    assert_eq!(
        v.verify(sign(&no_exp).as_bytes(), b"alice", NOW),
        Err(TokenError::NoExpiry)
    );
    let good = sign(&claims("alice", NOW + 60));
    assert_eq!(
        v.verify(good.as_bytes(), b"bob", NOW),
        Err(TokenError::User)
    );
}

#[test]
fn keys_algorithms_and_tampering() {
    let k = Keys::new();
    let v = k.verifier(None, None);
    let c = claims("alice", NOW + 60);
    // Unknown kid; no kid with several keys.
    let t = k.sign(Algorithm::ES256, Some("nope"), &c);
    assert_eq!(
        v.verify(t.as_bytes(), b"alice", NOW),
        Err(TokenError::UnknownKey)
    );
    let t = k.sign(Algorithm::ES256, None, &c);
    assert_eq!(
        v.verify(t.as_bytes(), b"alice", NOW),
        Err(TokenError::UnknownKey)
    );
    // The EC key under the Ed25519 key's kid: the signature does not verify.
    let t = k.sign(Algorithm::ES256, Some("ed1"), &c);
    assert!(v.verify(t.as_bytes(), b"alice", NOW).is_err());
    // A header naming another alg than the key's JWKS entry.
    let t = k.sign(Algorithm::ES256, Some("ec1"), &c);
    let rest = t.split_once('.').map_or("", |(_, r)| r);
    let relabelled = format!("{}.{rest}", b64(br#"{"alg":"ES384","kid":"ec1"}"#));
    assert_eq!(
        v.verify(relabelled.as_bytes(), b"alice", NOW),
        Err(TokenError::Algorithm)
    );
    // HMAC, even with the shared-secret key of the JWKS or the public key as secret.
    for secret in [&b"shared secret"[..], k.ec.public_key_pem().as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("ec1".into());
        let t = encode(&header, &c, &EncodingKey::from_secret(secret)).expect("sign");
        assert_eq!(
            v.verify(t.as_bytes(), b"alice", NOW),
            Err(TokenError::Algorithm)
        );
    }
    // alg: none.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(c.to_string().as_bytes())
    );
    assert!(looks_like_token(none.as_bytes()));
    assert_eq!(
        v.verify(none.as_bytes(), b"alice", NOW),
        Err(TokenError::Malformed)
    );
    // A payload changed after signing.
    let good = k.sign(Algorithm::ES256, Some("ec1"), &c);
    let parts: Vec<&str> = good.split('.').collect();
    let forged = claims("root", NOW + 60);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        v.verify(tampered.as_bytes(), b"root", NOW),
        Err(TokenError::Signature)
    );
    assert_eq!(
        v.verify(b"not a token", b"alice", NOW),
        Err(TokenError::Malformed)
    );
}

#[test]
fn what_looks_like_a_token() {
    assert!(looks_like_token(b"eyJhbGciOi.eyJzdWIi.c2ln"));
    assert!(!looks_like_token(b"secret"));
    assert!(!looks_like_token(b"eyJ.a"));
    assert!(!looks_like_token(b"eyJa.b.c.d"));
    assert!(!looks_like_token(b"abc.def.ghi"));
    assert!(!looks_like_token(b"eyJa..c"));
    assert!(!looks_like_token(b"eyJa.b c.d"));
}

#[test]
fn a_jwks_without_usable_keys_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = |name: &str| TokenSettings {
        jwks: dir.path().join(name),
        issuer: None,
        audience: None,
        user_claim: "sub".into(),
    };
    let load = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write");
        TokenVerifier::load(&settings(name))
            .map(|_| ())
            .expect_err(name)
    };
    assert!(load("empty.json", r#"{"keys": []}"#).contains("holds no RSA, EC or OKP public key"));
    assert!(load(
        "hmac.json",
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#
    )
    .contains("no RSA"));
    assert!(load("bad.json", "{").contains("is not a JWKS"));
    let missing = TokenVerifier::load(&settings("missing.json"))
        .map(|_| ())
        .expect_err("missing");
    assert!(
        missing.starts_with("auth.token.jwks: cannot read"),
        "{missing}"
    );
}
