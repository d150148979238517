//! `[auth.token]` through the built proxy: JWTs signed here with an RSA key
//! (made by openssl) and an EC key (made by rcgen), verified against a JWKS
//! file; every kind of bad token gets `WRONGPASS`; the token's expiry closes
//! a live connection unless a fresh `AUTH` came; tokens never reach a log.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::*;

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// The proxy's leeway on `exp` and `nbf` (`portcullis::edge::token::LEEWAY_S`).
const LEEWAY_S: u64 = 5;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An RSA key (openssl) and an EC P-256 key (rcgen), and their JWKS file.
struct Issuer {
    rsa_pem: Vec<u8>,
    ec_pem: String,
    ec_public_pem: String,
}

impl Issuer {
    fn new(dir: &std::path::Path) -> Issuer {
        let rsa_path = dir.join("issuer-rsa.pem");
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&rsa_path)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let modulus = Command::new("openssl")
            .args(["rsa", "-noout", "-modulus", "-in"])
            .arg(&rsa_path)
            .output()
            .expect("openssl rsa");
        let hex = String::from_utf8_lossy(&modulus.stdout);
        let hex = hex.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
        let point = ec.public_key_raw();
        let (x, y) = point[1..].split_at(32);
        let jwks = json!({"keys": [
            {"kty": "RSA", "n": b64(&n), "e": "AQAB", "kid": "rsa1", "alg": "RS256", "use": "sig"},
            {"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": "ec1"},
        ]});
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).expect("jwks");
        Issuer {
            rsa_pem: std::fs::read(&rsa_path).expect("rsa pem"),
            ec_pem: ec.serialize_pem(),
            ec_public_pem: ec.public_key_pem(),
        }
    }

    fn rsa(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa1".into());
        let key = EncodingKey::from_rsa_pem(&self.rsa_pem).expect("rsa key");
        encode(&header, claims, &key).expect("sign")
    }

    fn ec(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        let key = EncodingKey::from_ec_pem(self.ec_pem.as_bytes()).expect("ec key");
        encode(&header, claims, &key).expect("sign")
    }
}

fn claims(sub: &str, exp: u64) -> Value {
    json!({"sub": sub, "exp": exp, "iss": "https://idp.test", "aud": "portcullis"})
}

fn config(pki: &TestPki, redis: &RedisServer) -> String {
    let users = "[auth.token]\njwks = \"jwks.json\"\nissuer = \"https://idp.test\"\naudience = \"portcullis\"\n\n\
                 [[users]]\nname = \"svc\"\nrules = \"on >pw ~* &* +@all\"\n\n\
                 [[users]]\nname = \"robot\"\nrules = \"on >pw ~* &* +@all\"\nauth_methods = [\"token\"]\n\n\
                 [[users]]\nname = \"human\"\nrules = \"on >pw ~* &* +@all\"\nauth_methods = [\"password\"]\n";
    base_config_with_server(
        pki,
        &redis.addr(),
        "metrics_listen = \"127.0.0.1:0\"",
        users,
    )
}

#[tokio::test]
async fn tokens_authenticate_and_every_bad_one_is_refused() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let issuer = Issuer::new(pki.dir());
    let proxy = Proxy::start(&config(&pki, &redis), pki.dir());
    let mut c = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let t = now();

    let good_rsa = issuer.rsa(&claims("svc", t + 300));
    assert!(c.cmd_str(&["AUTH", "svc", &good_rsa]).await.is_ok());
    assert_eq!(c.cmd_str(&["ACL", "WHOAMI"]).await.as_str(), Some("svc"));
    let good_ec = issuer.ec("ec1", &claims("robot", t + 300));
    let hello = c.cmd_str(&["HELLO", "3", "AUTH", "robot", &good_ec]).await;
    assert!(hello.error().is_none(), "{hello:?}");
    assert_eq!(c.cmd_str(&["ACL", "WHOAMI"]).await.as_str(), Some("robot"));
    // A password for a token-only user; a token for a password-only user.
    let mut d = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert_eq!(
        d.cmd_str(&["AUTH", "robot", "pw"]).await.error(),
        Some(WRONGPASS)
    );
    let human = issuer.rsa(&claims("human", t + 300));
    assert_eq!(
        d.cmd_str(&["AUTH", "human", &human]).await.error(),
        Some(WRONGPASS)
    );
    assert!(d.cmd_str(&["AUTH", "human", "pw"]).await.is_ok());

    let with = |key: &str, value: Value| {
        let mut c = claims("svc", t + 300);
        c[key] = value;
        c
    };
    let parts: Vec<String> = good_rsa.split('.').map(str::to_owned).collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims("robot", t + 300).to_string().as_bytes()),
        parts[2]
    );
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("ec1".into());
    let hmac_with_public_key = encode(
        &hs,
        &claims("svc", t + 300),
        &EncodingKey::from_secret(issuer.ec_public_pem.as_bytes()),
    )
    .expect("hs256");
    let bad = [
        ("expired", issuer.rsa(&claims("svc", t - 60))),
        ("not yet valid", issuer.rsa(&with("nbf", json!(t + 120)))),
        (
            "wrong issuer",
            issuer.rsa(&with("iss", json!("https://evil.test"))),
        ),
        (
            "wrong audience",
            issuer.rsa(&with("aud", json!(["someone-else"]))),
        ),
        ("another user", issuer.rsa(&claims("robot", t + 300))),
        ("unknown kid", issuer.ec("ec9", &claims("svc", t + 300))),
        ("tampered", forged.replace("robot", "svc")),
        ("forged payload", forged),
        ("alg none", none),
        ("HS256 with the public key", hmac_with_public_key),
    ];
    let mut e = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    for (what, token) in &bad {
        let user = if *what == "forged payload" {
            "robot"
        } else {
            "svc"
        };
        assert_eq!(
            e.cmd_str(&["AUTH", user, token]).await.error(),
            Some(WRONGPASS),
            "{what}"
        );
    }
    assert_eq!(
        e.cmd_str(&["GET", "k"]).await.error(),
        Some("NOAUTH Authentication required.")
    );
    // Never a token in the logs or ACL LOG; the reason is there.
    let last = proxy.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("algorithm not accepted")
    });
    assert!(last.is_some());
    let logs = proxy.logs().join("\n");
    for (_, token) in &bad {
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(signature.is_empty() || !logs.contains(signature));
        assert!(!logs.contains(token.as_str()));
    }
    assert!(!logs.contains(&good_rsa) && !logs.contains(&good_ec));
    for reason in [
        "expired",
        "wrong issuer",
        "wrong audience",
        "bad signature",
        "no such key (kid)",
    ] {
        assert!(logs.contains(reason), "{reason}: {logs}");
    }
    let acl_log = format!("{:?}", c.cmd_str(&["ACL", "LOG"]).await);
    assert!(!acl_log.contains(&parts[2]));
    let failures = scrape(&proxy, "portcullis_auth_failures_total").await;
    assert_eq!(failures, (bad.len() + 2) as f64);
}

#[tokio::test]
async fn expiry_closes_the_connection_unless_a_fresh_auth_came() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let issuer = Issuer::new(pki.dir());
    let proxy = Proxy::start(&config(&pki, &redis), pki.dir());
    let t = now();
    let short = issuer.rsa(&claims("svc", t + 1));
    let mut expiring = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let mut renewed = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let mut by_password = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let start = Instant::now();
    for c in [&mut expiring, &mut renewed, &mut by_password] {
        assert!(c.cmd_str(&["AUTH", "svc", &short]).await.is_ok());
    }
    // Before the deadline: fresh credentials for two of them.
    let long = issuer.rsa(&claims("svc", t + 600));
    assert!(renewed.cmd_str(&["AUTH", "svc", &long]).await.is_ok());
    assert!(by_password.cmd_str(&["AUTH", "svc", "pw"]).await.is_ok());
    // A blocking command in flight at the deadline still gets its reply.
    expiring
        .send_raw(&encode_command(&[b"BLPOP", b"tokens:list", b"0"]))
        .await;
    let mut pusher = RespConn::connect_tcp(&redis.addr()).await.expect("redis");
    let deadline_in = Duration::from_secs(t + 1 + LEEWAY_S).saturating_sub(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    );
    tokio::time::sleep(deadline_in + Duration::from_millis(300)).await;
    // The deadline has passed; the reply in flight is still delivered, then
    // the connection ends.
    assert_eq!(
        pusher.cmd_str(&["RPUSH", "tokens:list", "x"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        expiring.read_reply().await,
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"tokens:list".to_vec())),
            Reply::Bulk(Some(b"x".to_vec()))
        ]))
    );
    assert_eq!(expiring.read_raw_until_closed().await, b"");
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(LEEWAY_S), "{elapsed:?}");
    for c in [&mut renewed, &mut by_password] {
        assert_eq!(c.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
    }
    assert_eq!(scrape(&proxy, "portcullis_token_expiries_total").await, 1.0);
    assert!(proxy
        .wait_for_log(Duration::from_secs(5), |l| l.contains("token expired"))
        .is_some());
}

#[tokio::test]
async fn a_replaced_jwks_file_is_taken_without_a_signal() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let issuer = Issuer::new(pki.dir());
    let proxy = Proxy::start(&config(&pki, &redis), pki.dir());
    let t = now();
    let mut c = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let old_key = issuer.rsa(&claims("svc", t + 300));
    assert!(c.cmd_str(&["AUTH", "svc", &old_key]).await.is_ok());
    // The issuer rotates: a new key set replaces the file (by rename).
    let next_dir = tempfile::tempdir().expect("dir");
    let next = Issuer::new(next_dir.path());
    let tmp = pki.dir().join("jwks.json.tmp");
    std::fs::copy(next_dir.path().join("jwks.json"), &tmp).expect("copy");
    std::fs::rename(&tmp, pki.dir().join("jwks.json")).expect("rename");
    let reloaded = proxy.wait_for_log(std::time::Duration::from_secs(5), |l| {
        l.contains("configuration reloaded")
    });
    assert!(reloaded.is_some(), "{}", proxy.logs().join("\n"));
    let new_key = next.rsa(&claims("svc", t + 300));
    let mut d = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert!(d.cmd_str(&["AUTH", "svc", &new_key]).await.is_ok());
    assert_eq!(
        d.cmd_str(&["AUTH", "svc", &old_key]).await.error(),
        Some(WRONGPASS)
    );
    // The connection that authenticated before goes on.
    assert_eq!(c.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
}
