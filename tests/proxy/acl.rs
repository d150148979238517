//! The Redis 7.0 ACL enforced through the built proxy: the same users are
//! created in a real redis-server, and the proxy's replies must equal Redis's.

use crate::support::*;

/// The users, as proxy.toml rules and as `ACL SETUSER` arguments for Redis.
const RULES: [(&str, &str); 3] = [
    (
        "reader",
        "on >pw ~cache:* &news:* +@read +@connection -@dangerous +publish +subscribe",
    ),
    (
        "writer",
        "on >pw %W~cache:* %R~ro:* +@all -@dangerous (~other:* +get)",
    ),
    ("admin", "on >pw ~* &* +@all"),
];

fn users_toml() -> String {
    RULES
        .iter()
        .map(|(n, r)| format!("[[users]]\nname = \"{n}\"\nrules = \"{r}\"\n"))
        .collect()
}

struct Env {
    pki: TestPki,
    redis: RedisServer,
    proxy: Proxy,
}

async fn env() -> Env {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&base_config(&pki, &redis.addr(), &users_toml()), pki.dir());
    Env { pki, redis, proxy }
}

/// A connection straight to Redis, logged in as `user` (created there with the same rules).
async fn redis_as(redis: &RedisServer, user: &str) -> RespConn<tokio::net::TcpStream> {
    let mut admin = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    for (name, rules) in RULES {
        let mut cmd: Vec<&[u8]> = vec![b"ACL", b"SETUSER", name.as_bytes(), b"reset"];
        let merged =
            portcullis::acl::rules::merge_selector_args(rules.split_ascii_whitespace()).unwrap();
        cmd.extend(merged.iter().map(|s| s.as_bytes()));
        assert!(admin.cmd(&cmd).await.is_ok());
    }
    let mut conn = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    assert!(conn.cmd_str(&["AUTH", user, "pw"]).await.is_ok());
    conn
}

/// Sends the same pipeline to the proxy (as `user`) and to Redis (as `user`), compares every reply.
async fn same_as_redis(e: &Env, user: &str, commands: &[&[&str]]) {
    let mut proxy = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert!(proxy.cmd_str(&["AUTH", user, "pw"]).await.is_ok());
    let mut redis = redis_as(&e.redis, user).await;
    let mut pipeline = Vec::new();
    for c in commands {
        let args: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
        pipeline.extend(encode_command(&args));
    }
    proxy.send_raw(&pipeline).await;
    redis.send_raw(&pipeline).await;
    for c in commands {
        let (p, r) = (proxy.read_reply().await, redis.read_reply().await);
        assert_eq!(p, r, "{user}: {c:?}");
    }
}

#[tokio::test]
async fn denials_match_redis_in_pipeline_position() {
    let e = env().await;
    same_as_redis(
        &e,
        "reader",
        &[
            &["GET", "cache:a"],
            &["GET", "secret"],
            &["SET", "cache:a", "1"],
            &["MGET", "cache:a", "cache:b", "x"],
            &["PUBLISH", "news:1", "m"],
            &["PUBLISH", "sport", "m"],
            &["KEYS", "*"],
            &["CONFIG", "GET", "maxmemory"],
            &["NOSUCH", "a", "b"],
            &["CONFIG", "NOSUCH"],
            &["GET"],
            &["ACL", "WHOAMI"],
            &["PING"],
        ],
    )
    .await;
    same_as_redis(
        &e,
        "writer",
        &[
            &["SET", "cache:a", "1"],
            &["GET", "cache:a"],
            &["GET", "ro:x"],
            &["SET", "ro:x", "1"],
            &["GET", "other:1"],
            &["SET", "other:1", "v"],
            &["SORT", "cache:l", "BY", "w*"],
            &["SORT", "cache:l", "BY", "nosort"],
            &["FLUSHALL"],
        ],
    )
    .await;
    // Stricter than Redis (`auth.scripts = "restricted"`): a user whose
    // selectors do not allow everything runs no script, whatever its keys.
    let mut writer = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert!(writer.cmd_str(&["AUTH", "writer", "pw"]).await.is_ok());
    let reply = writer.cmd_str(&["EVAL", "return 1", "1", "secret"]).await;
    assert_eq!(
        reply.error(),
        Some("NOPERM this user has no permissions to run the 'eval' command")
    );
}

#[tokio::test]
async fn denied_command_inside_multi_aborts_exec_like_redis() {
    let e = env().await;
    same_as_redis(
        &e,
        "reader",
        &[
            &["MULTI"],
            &["GET", "cache:a"],
            &["SET", "cache:a", "1"],
            &["EXEC"],
            &["GET", "cache:a"],
            &["EXEC"],
            &["EXEC", "extra"],
        ],
    )
    .await;
}

#[tokio::test]
async fn acl_dryrun_and_friends_match_redis() {
    let e = env().await;
    same_as_redis(
        &e,
        "admin",
        &[
            &["ACL", "DRYRUN", "reader", "GET", "cache:x"],
            &["ACL", "DRYRUN", "reader", "GET", "nope"],
            &["ACL", "DRYRUN", "reader", "SET", "cache:x", "1"],
            &["ACL", "DRYRUN", "reader", "PUBLISH", "sport", "m"],
            &["ACL", "DRYRUN", "writer", "GET", "other:1"],
            &["ACL", "DRYRUN", "writer", "NOSUCH"],
            &["ACL", "DRYRUN", "writer", "GET"],
            &["ACL", "DRYRUN", "nobody", "GET", "a"],
            &["ACL", "CAT"],
            &["ACL", "CAT", "nosuch"],
            &["ACL", "WHOAMI"],
        ],
    )
    .await;
}

#[tokio::test]
async fn unauthenticated_unknown_command_is_reported_before_noauth() {
    let e = env().await;
    let mut bob = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert_eq!(
        bob.cmd_str(&["NOSUCH"]).await,
        Reply::Error("ERR unknown command 'NOSUCH', with args beginning with: ".into())
    );
    assert_eq!(
        bob.cmd_str(&["GET"]).await,
        Reply::Error("ERR wrong number of arguments for 'get' command".into())
    );
    assert_eq!(
        bob.cmd_str(&["GET", "a"]).await,
        Reply::Error("NOAUTH Authentication required.".into())
    );
}

#[tokio::test]
async fn subscribe_to_a_forbidden_channel_is_refused_whole() {
    let e = env().await;
    let mut proxy = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert!(proxy.cmd_str(&["AUTH", "reader", "pw"]).await.is_ok());
    assert_eq!(
        proxy.cmd_str(&["SUBSCRIBE", "news:1", "sport"]).await,
        Reply::Error(
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .into()
        )
    );
    assert_eq!(proxy.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
    let mut admin = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert!(admin.cmd_str(&["AUTH", "admin", "pw"]).await.is_ok());
    assert_eq!(
        admin
            .cmd_str(&["ACL", "SETUSER", "x"])
            .await
            .error()
            .map(|e| e.starts_with("ERR ACL SETUSER is not available")),
        Some(true)
    );
}

#[test]
fn acl_dryrun_cli_prints_what_acl_dryrun_answers() {
    let pki = TestPki::new();
    let path = pki.dir().join("proxy.toml");
    std::fs::write(&path, base_config(&pki, "127.0.0.1:1", &users_toml())).unwrap();
    let config = path.to_string_lossy();
    for (args, out, code) in [
        (&["reader", "GET", "cache:1"][..], "OK", 0),
        (
            &["reader", "GET", "x"],
            "This user has no permissions to access the 'x' key",
            1,
        ),
        (
            &["reader", "SET", "cache:1", "v"],
            "This user has no permissions to run the 'set' command",
            1,
        ),
        (
            &["reader", "GET"],
            "ERR wrong number of arguments for 'get' command",
            2,
        ),
        (&["nobody", "GET", "a"], "ERR User 'nobody' not found", 2),
    ] {
        let mut cli = vec!["acl", "dryrun", "--config", &config];
        cli.extend_from_slice(args);
        let o = run_cli(&cli);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim_end(),
            out,
            "{args:?}"
        );
        assert_eq!(o.status.code(), Some(code), "{args:?}");
    }
}

/// The first five fields (count, reason, context, object, username) of each ACL LOG entry.
fn log_fields(reply: &Reply) -> Vec<Vec<Reply>> {
    let Reply::Array(Some(entries)) = reply else {
        panic!("ACL LOG reply: {reply:?}")
    };
    entries
        .iter()
        .map(|e| match e {
            Reply::Array(Some(kv)) => {
                assert_eq!(kv.len(), 14, "{kv:?}");
                kv[..10].to_vec()
            }
            other => panic!("entry: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn acl_log_records_denials_and_auth_failures_like_redis() {
    let e = env().await;
    let script: &[&[&str]] = &[
        &["GET", "secret"],
        &["GET", "secret"],
        &["SET", "cache:a", "1"],
        &["PUBLISH", "sport", "m"],
        &["MULTI"],
        &["GET", "secret"],
        &["DISCARD"],
        &["AUTH", "reader", "wrong"],
    ];
    same_as_redis(&e, "reader", script).await;
    let mut proxy_admin = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert!(proxy_admin.cmd_str(&["AUTH", "admin", "pw"]).await.is_ok());
    let mut redis_admin = redis_as(&e.redis, "admin").await;
    let ours = log_fields(&proxy_admin.cmd_str(&["ACL", "LOG"]).await);
    let theirs = log_fields(&redis_admin.cmd_str(&["ACL", "LOG"]).await);
    assert_eq!(ours, theirs);
    assert!(proxy_admin.cmd_str(&["ACL", "LOG", "RESET"]).await.is_ok());
    assert_eq!(
        proxy_admin.cmd_str(&["ACL", "LOG"]).await,
        Reply::Array(Some(vec![]))
    );
}

#[tokio::test]
async fn acl_file_users_work_and_bad_files_are_refused_with_redis_texts() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    std::fs::write(
        pki.dir().join("users.acl"),
        "user filer on >pw ~f:* +get\n\n",
    )
    .unwrap();
    let auth = "[auth]\nacl_file = \"users.acl\"\n";
    let proxy = Proxy::start(
        &base_config(&pki, &redis.addr(), &format!("{auth}{}", users_toml())),
        pki.dir(),
    );
    let mut c = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    assert!(c.cmd_str(&["AUTH", "filer", "pw"]).await.is_ok());
    assert_eq!(c.cmd_str(&["GET", "f:1"]).await, Reply::Bulk(None));
    assert!(c.cmd_str(&["GET", "x"]).await.is_error());

    let bad = pki.dir().join("bad.acl");
    std::fs::write(
        &bad,
        "user a on nopass ~* +@all\n# comment\nuser b bogus\nuser a on\n",
    )
    .unwrap();
    let path = pki.dir().join("bad.toml");
    let text = base_config(&pki, "127.0.0.1:1", "[auth]\nacl_file = \"bad.acl\"\n");
    std::fs::write(&path, text).unwrap();
    let out = run_cli(&["check", "--config", &path.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = bad.display();
    for line in [
        format!("{f}:2 should start with user keyword followed by the username."),
        format!("{f}:3: Syntax error."),
        format!("{f}: Duplicate user 'a' found on line 4."),
    ] {
        assert!(stderr.contains(&line), "{stderr:?} lacks {line:?}");
    }
}

#[tokio::test]
async fn denials_and_auth_failures_are_logged_without_secrets() {
    let e = env().await;
    let mut c = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert!(c
        .cmd_str(&["AUTH", "reader", "hunter2-wrong"])
        .await
        .is_error());
    assert!(c.cmd_str(&["AUTH", "reader", "pw"]).await.is_ok());
    assert!(c
        .cmd_str(&["SET", "cache:a", "top-secret-value"])
        .await
        .is_error());
    let denial = e
        .proxy
        .wait_for_log(std::time::Duration::from_secs(5), |l| {
            l.contains("ACL denied")
        })
        .expect("a WARN line for the denial");
    for needle in [
        "WARN",
        "\"peer\":\"127.0.0.1:",
        "\"identity\":\"cn=bob",
        "\"user\":\"reader\"",
        "\"command\":\"set\"",
        "\"reason\":\"command\"",
    ] {
        assert!(denial.contains(needle), "{denial} lacks {needle}");
    }
    let auth = e
        .proxy
        .wait_for_log(std::time::Duration::from_secs(5), |l| {
            l.contains("authentication failed")
        })
        .expect("a WARN line for the auth failure");
    for needle in [
        "\"peer\":\"127.0.0.1:",
        "\"identity\":\"cn=bob",
        "\"user\":\"reader\"",
        "\"command\":\"auth\"",
        "\"reason\":\"auth\"",
    ] {
        assert!(auth.contains(needle), "{auth} lacks {needle}");
    }
    let all = e.proxy.logs().join("\n");
    assert!(
        !all.contains("hunter2") && !all.contains("top-secret-value"),
        "secret in logs"
    );
}
