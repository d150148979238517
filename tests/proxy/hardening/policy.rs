//! ACL checks that are stricter than Redis 7.0 because the upstream connection
//! runs as the proxy's all-powerful user: every GEORADIUS STORE key, and
//! scripts (`auth.scripts`).

use crate::support::*;

const TENANT: &str = "on >pw ~alice:* &alice:* +@all -@dangerous";

fn users(extra_auth: &str) -> String {
    format!(
        "[auth]\n{extra_auth}\n\n\
         [[users]]\nname = \"alice\"\nrules = \"{TENANT}\"\n\n\
         [[users]]\nname = \"admin\"\nrules = \"on >pw ~* &* +@all\"\n"
    )
}

/// The proxy, its upstream, and a client authenticated as `user`.
async fn start(extra_auth: &str) -> (TestPki, RedisServer, Proxy) {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(
        &base_config(&pki, &redis.addr(), &users(extra_auth)),
        pki.dir(),
    );
    (pki, redis, proxy)
}

async fn login(proxy: &Proxy, pki: &TestPki, user: &str) -> RespConn<impl AsyncReadWrite> {
    let mut c = resp_tls(proxy.tls_addr(), pki, Some("bob")).await;
    assert!(c.cmd_str(&["AUTH", user, "pw"]).await.is_ok());
    c
}

/// What `tokio` streams the helpers return have in common.
pub trait AsyncReadWrite: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> AsyncReadWrite for T {}

const KEY_DENIED: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

#[tokio::test]
async fn every_georadius_store_key_needs_write_access() {
    let (pki, redis, proxy) = start("").await;
    let mut alice = login(&proxy, &pki, "alice").await;
    let reply = alice
        .cmd_str(&["GEOADD", "alice:geo", "15", "37", "m1"])
        .await;
    assert_eq!(reply.as_int(), Some(1));
    let mut rng = Rng::new(11);
    let stores = ["STORE", "STOREDIST", "store", "StoreDist", "STORE\0x"];
    let mut denied = 0;
    for round in 0..60 {
        let by_member = round % 2 == 1;
        let mut args: Vec<Vec<u8>> = if by_member {
            ["GEORADIUSBYMEMBER", "alice:geo", "m1", "200", "km"]
                .map(|s| s.as_bytes().to_vec())
                .to_vec()
        } else {
            ["GEORADIUS", "alice:geo", "15", "37", "200", "km"]
                .map(|s| s.as_bytes().to_vec())
                .to_vec()
        };
        let mut foreign = false;
        for _ in 0..1 + rng.below(3) {
            let key = if rng.chance(40) {
                foreign = true;
                format!("bob:g{round}")
            } else {
                format!("alice:g{round}")
            };
            args.push(rng.pick(&stores).as_bytes().to_vec());
            args.push(key.into_bytes());
        }
        if rng.chance(30) {
            args.extend([b"COUNT".to_vec(), b"5".to_vec()]);
        }
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let reply = alice.cmd(&refs).await;
        if foreign {
            assert_eq!(reply.error(), Some(KEY_DENIED), "{args:?}");
            denied += 1;
        } else {
            assert!(!reply.is_error(), "{args:?}: {reply:?}");
        }
    }
    assert!(denied > 10);
    // Nothing of bob's was ever written upstream.
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    let keys = direct.cmd_str(&["KEYS", "bob:*"]).await;
    assert_eq!(keys.as_array().map(<[Reply]>::len), Some(0), "{keys:?}");
}

/// The reviewer's escapes, each refused with the NOPERM command text for the
/// script command itself, at top level and inside MULTI.
const ESCAPES: [&[&str]; 8] = [
    &["EVAL", "return redis.call('KEYS','*')", "0"],
    &["EVAL", "return redis.call('FLUSHDB')", "0"],
    &["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "alice:k"],
    &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
    &["SCRIPT", "LOAD", "return redis.call('SWAPDB', 0, 1)"],
    &[
        "FUNCTION",
        "LOAD",
        "#!lua name=steal\nredis.register_function('steal', function() return redis.call('GET', 'bob:secret') end)",
    ],
    &["FCALL", "steal", "0"],
    &["FCALL_RO", "steal", "0"],
];

fn script_denial(cmd: &[&str]) -> String {
    let name = match cmd[0] {
        "SCRIPT" | "FUNCTION" => format!("{}|{}", cmd[0], cmd[1]).to_ascii_lowercase(),
        other => other.to_ascii_lowercase(),
    };
    format!("NOPERM this user has no permissions to run the '{name}' command")
}

#[tokio::test]
async fn scripts_are_only_for_users_allowed_everything() {
    let (pki, redis, proxy) = start("").await;
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    assert!(direct.cmd_str(&["SET", "bob:secret", "s"]).await.is_ok());
    let mut alice = login(&proxy, &pki, "alice").await;
    for cmd in ESCAPES {
        let reply = alice.cmd_str(cmd).await;
        assert_eq!(reply.error(), Some(script_denial(cmd).as_str()), "{cmd:?}");
    }
    // Inside MULTI: refused at once, and EXEC aborts.
    assert!(alice.cmd_str(&["MULTI"]).await.is_ok());
    let reply = alice.cmd_str(ESCAPES[0]).await;
    assert_eq!(reply.error(), Some(script_denial(ESCAPES[0]).as_str()));
    assert_eq!(
        alice.cmd_str(&["EXEC"]).await.error(),
        Some("EXECABORT Transaction discarded because of previous errors.")
    );
    // ACL DRYRUN and ACL LOG say the same.
    let mut admin = login(&proxy, &pki, "admin").await;
    let dry = admin
        .cmd_str(&["ACL", "DRYRUN", "alice", "EVAL", "return 1", "0"])
        .await;
    assert_eq!(
        dry.as_str(),
        Some("This user has no permissions to run the 'eval' command")
    );
    let log = admin.cmd_str(&["ACL", "LOG", "1"]).await;
    let entry: Vec<String> = log.as_array().unwrap()[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(r.as_bytes().unwrap_or_default()).into_owned())
        .collect();
    let value = |name: &str| &entry[entry.iter().position(|f| f == name).unwrap() + 1];
    assert_eq!(
        (
            value("reason").as_str(),
            value("context").as_str(),
            value("object").as_str()
        ),
        ("command", "multi", "eval")
    );
    // The upstream ran none of it.
    assert_eq!(direct.cmd_str(&["DBSIZE"]).await.as_int(), Some(1));
    let functions = direct.cmd_str(&["FUNCTION", "LIST"]).await;
    assert_eq!(functions.as_array().map(<[Reply]>::len), Some(0));
    // A user whose selector allows everything may run scripts.
    let reply = admin
        .cmd_str(&["EVAL", "return redis.call('GET', 'bob:secret')", "0"])
        .await;
    assert_eq!(reply.as_str(), Some("s"));
    // `portcullis acl dryrun` answers from the same policy.
    let out = run_cli(&[
        "acl",
        "dryrun",
        "--config",
        proxy.config_path().to_str().unwrap(),
        "alice",
        "FCALL",
        "steal",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "This user has no permissions to run the 'fcall' command"
    );
}

#[tokio::test]
async fn scripts_acl_lets_the_acl_decide() {
    let (pki, _redis, proxy) = start("scripts = \"acl\"").await;
    let mut alice = login(&proxy, &pki, "alice").await;
    let reply = alice
        .cmd_str(&[
            "EVAL",
            "return redis.call('SET', KEYS[1], 'v')",
            "1",
            "alice:k",
        ])
        .await;
    assert!(reply.is_ok(), "{reply:?}");
    // The declared keys are still checked, as in Redis.
    let reply = alice.cmd_str(&["EVAL", "return 1", "1", "bob:k"]).await;
    assert_eq!(reply.error(), Some(KEY_DENIED));
}

#[test]
fn check_rejects_an_unknown_scripts_policy() {
    let pki = TestPki::new();
    let config = base_config(&pki, "127.0.0.1:1", &users("scripts = \"sometimes\""));
    let path = pki.dir().join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth.scripts"), "{err}");
}
