//! `[auth.token]`: short-lived JWTs as `AUTH` passwords. The signature is
//! checked with the jsonwebtoken crate against a key of the JWKS file (by
//! `kid`, or the only key); only asymmetric algorithms are accepted (RS256,
//! RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA): `alg: none` does
//! not parse and an HMAC algorithm is refused before any key is used, so a
//! public key can never serve as an HMAC secret. The claims (`exp`, `nbf`,
//! `iss`, `aud` and the user claim) are checked here, against a clock the
//! caller passes, with [`LEEWAY_S`] seconds of leeway.
//!
//! A token never appears in a log line, `ACL LOG` or a metric: errors name
//! what failed, never the token.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::TokenSettings;

/// Seconds a token stays valid past `exp` and before `nbf` (clock skew
/// between the issuer and the proxy).
pub const LEEWAY_S: u64 = 5;

/// The algorithms a token may be signed with.
const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was refused (for the WARN line; never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header and payload.
    Malformed,
    /// `alg` is `none`, an HMAC algorithm, or one the key does not allow.
    Algorithm,
    /// No key with the token's `kid` (or no `kid` and several keys).
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// `exp` is missing or not a number.
    NoExpiry,
    /// `exp` (plus leeway) has passed.
    Expired,
    /// `nbf` (minus leeway) is still ahead.
    NotYetValid,
    /// `iss` differs from `issuer`.
    Issuer,
    /// `aud` does not hold `audience`.
    Audience,
    /// The user claim differs from the `AUTH` user name.
    User,
}

impl TokenError {
    /// A few words for the WARN line.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed token",
            TokenError::Algorithm => "algorithm not accepted",
            TokenError::UnknownKey => "no such key (kid)",
            TokenError::Signature => "bad signature",
            TokenError::NoExpiry => "no exp claim",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not yet valid (nbf)",
            TokenError::Issuer => "wrong issuer",
            TokenError::Audience => "wrong audience",
            TokenError::User => "user claim does not match",
        }
    }
}

/// One usable key of the JWKS.
struct Key {
    kid: Option<String>,
    /// The key's own `alg`, when the JWKS names one.
    alg: Option<String>,
    decoding: DecodingKey,
}

/// The token verifier built from `[auth.token]` and its JWKS file.
pub struct TokenVerifier {
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
    user_claim: String,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("user_claim", &self.user_claim)
            .finish()
    }
}

impl TokenVerifier {
    /// Reads the JWKS file `settings.jwks`; an unreadable file, bad JSON, or
    /// no usable key (RSA, EC or OKP) is an error.
    pub fn load(settings: &TokenSettings) -> Result<TokenVerifier, String> {
        let text = std::fs::read_to_string(&settings.jwks)
            .map_err(|e| format!("auth.token.jwks: cannot read {}: {e}", show(&settings.jwks)))?;
        let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
            format!(
                "auth.token.jwks: {} is not a JWKS: {e}",
                show(&settings.jwks)
            )
        })?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                continue; // a shared secret: never accepted
            }
            let decoding = DecodingKey::from_jwk(jwk).map_err(|e| {
                format!(
                    "auth.token.jwks: {}: a key cannot be used: {e}",
                    show(&settings.jwks)
                )
            })?;
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg: jwk.common.key_algorithm.map(|a| format!("{a:?}")),
                decoding,
            });
        }
        if keys.is_empty() {
            return Err(format!(
                "auth.token.jwks: {} holds no RSA, EC or OKP public key",
                show(&settings.jwks)
            ));
        }
        Ok(TokenVerifier {
            keys,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            user_claim: settings.user_claim.clone(),
        })
    }

    /// Verifies `token` for the `AUTH` user `user` at `now` (Unix seconds);
    /// the token's `exp` (Unix seconds) when it is valid.
    pub fn verify(&self, token: &[u8], user: &[u8], now: u64) -> Result<u64, TokenError> {
        let token = std::str::from_utf8(token).map_err(|_| TokenError::Malformed)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(TokenError::Algorithm);
        }
        let key = self.key(header.kid.as_deref())?;
        if key
            .alg
            .as_deref()
            .is_some_and(|a| a != format!("{:?}", header.alg))
        {
            return Err(TokenError::Algorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::Crypto(_)
                | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => TokenError::Signature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
                _ => TokenError::Malformed,
            })?;
        self.check_claims(&data.claims, user, now)
    }

    /// The key for `kid`: that key, or without a `kid` the only key.
    fn key(&self, kid: Option<&str>) -> Result<&Key, TokenError> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(TokenError::UnknownKey),
            None if self.keys.len() == 1 => self.keys.first().ok_or(TokenError::UnknownKey),
            None => Err(TokenError::UnknownKey),
        }
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        user: &[u8],
        now: u64,
    ) -> Result<u64, TokenError> {
        let seconds = |name: &str| claims.get(name).and_then(Value::as_u64);
        let exp = seconds("exp").ok_or(TokenError::NoExpiry)?;
        if now > exp.saturating_add(LEEWAY_S) {
            return Err(TokenError::Expired);
        }
        if claims.contains_key("nbf") {
            let nbf = seconds("nbf").ok_or(TokenError::Malformed)?;
            if now.saturating_add(LEEWAY_S) < nbf {
                return Err(TokenError::NotYetValid);
            }
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(TokenError::Issuer);
            }
        }
        if let Some(audience) = &self.audience {
            let holds = match claims.get("aud") {
                Some(Value::String(a)) => a == audience,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !holds {
                return Err(TokenError::Audience);
            }
        }
        let named = claims.get(&self.user_claim).and_then(Value::as_str);
        if named.map(str::as_bytes) != Some(user) {
            return Err(TokenError::User);
        }
        Ok(exp.saturating_add(LEEWAY_S))
    }
}

/// True when `password` has a JWT's shape (three non-empty base64url parts,
/// the first a JSON object): such a password is tried as a token.
pub fn looks_like_token(password: &[u8]) -> bool {
    let mut parts = password.split(|&b| b == b'.');
    let b64url = |p: &[u8]| {
        !p.is_empty()
            && p.iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    };
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(h), Some(p), Some(s), None) if h.starts_with(b"eyJ") && b64url(h) && b64url(p) && (s.is_empty() || b64url(s))
    )
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
