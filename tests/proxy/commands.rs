//! End to end through the built proxy, over real TLS, to a real redis-server:
//! identity and AUTH, forwarding, pipelines, big values, partial input, RESP3,
//! transactions, pub/sub, blocking commands, CLIENT REPLY, MONITOR.

use std::time::Duration;

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `alice` is authenticated by her certificate; `carol` has a password; `bob` has no user.
const USERS: &str = r#"
[[users]]
name = "alice"
rules = "on ~* &* +@all"

[[users]]
name = "carol"
rules = "on >carolpw ~* &* +@all"
"#;

struct Env {
    pki: TestPki,
    redis: RedisServer,
    proxy: Proxy,
}

fn env_with(redis: RedisServer, users: &str) -> Env {
    let pki = TestPki::new();
    let config = base_config(&pki, &redis.upstream_address(), users);
    let proxy = Proxy::start(&config, pki.dir());
    Env { pki, redis, proxy }
}

fn env() -> Env {
    env_with(RedisServer::start(), USERS)
}

fn err(text: &str) -> Reply {
    Reply::Error(text.to_string())
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Some(text.as_bytes().to_vec()))
}

#[tokio::test]
async fn set_through_the_proxy_lands_upstream() {
    let e = env();
    let mut alice = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    assert!(alice.cmd_str(&["SET", "k", "v"]).await.is_ok());
    assert_eq!(alice.cmd_str(&["GET", "k"]).await, bulk("v"));
    let mut direct = RespConn::connect_tcp(&e.redis.addr()).await.unwrap();
    assert_eq!(direct.cmd_str(&["GET", "k"]).await, bulk("v"));
}

#[tokio::test]
async fn unknown_certificate_user_must_auth() {
    let e = env();
    let mut bob = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert_eq!(
        bob.cmd_str(&["GET", "k"]).await,
        err("NOAUTH Authentication required.")
    );
    assert_eq!(
        bob.cmd_str(&["AUTH", "carol", "nope"]).await,
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        bob.cmd_str(&["AUTH", "nopw"]).await,
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert!(bob.cmd_str(&["AUTH", "carol", "carolpw"]).await.is_ok());
    assert!(bob.cmd_str(&["SET", "k", "1"]).await.is_ok());
    // The client's credentials never reach the upstream.
    let mut direct = RespConn::connect_tcp(&e.redis.addr()).await.unwrap();
    let info = direct.cmd_str(&["INFO", "commandstats"]).await;
    assert!(
        !info.as_str().unwrap_or("").contains("cmdstat_auth"),
        "{info:?}"
    );
}

#[tokio::test]
async fn no_users_means_every_command_is_noauth() {
    let e = env_with(RedisServer::start(), "");
    let mut alice = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    for cmd in [&["GET", "k"][..], &["PING"], &["SET", "a", "b"]] {
        assert_eq!(
            alice.cmd_str(cmd).await,
            err("NOAUTH Authentication required.")
        );
    }
    assert_eq!(
        alice.cmd_str(&["AUTH", "default", "x"]).await,
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
}

#[tokio::test]
async fn default_nopass_user_serves_unauthenticated_clients() {
    let users = "[[users]]\nname = \"default\"\nrules = \"on nopass ~* &* +@all\"\n";
    let e = env_with(RedisServer::start(), users);
    let mut bob = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert_eq!(bob.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
    assert_eq!(
        bob.cmd_str(&["AUTH", "x"]).await,
        err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
    );
}

#[tokio::test]
async fn hello_3_switches_the_upstream_to_resp3() {
    let e = env();
    let mut bob = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    let hello = bob.cmd_str(&["HELLO", "3"]).await;
    assert!(
        hello
            .error()
            .unwrap_or("")
            .starts_with("NOAUTH HELLO must be called"),
        "{hello:?}"
    );
    let hello = bob
        .cmd_str(&["HELLO", "3", "AUTH", "carol", "carolpw", "SETNAME", "bob"])
        .await;
    let Reply::Map(fields) = hello else {
        panic!("HELLO 3 reply is not a map: {hello:?}")
    };
    assert!(
        fields.contains(&(bulk("proto"), Reply::Int(3))),
        "{fields:?}"
    );
    bob.cmd_str(&["HSET", "h", "f", "v"]).await;
    assert_eq!(
        bob.cmd_str(&["HGETALL", "h"]).await,
        Reply::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(bob.cmd_str(&["CLIENT", "GETNAME"]).await, bulk("bob"));
    assert_eq!(
        bob.cmd_str(&["HELLO", "4"]).await,
        err("NOPROTO unsupported protocol version")
    );
}

#[tokio::test]
async fn pipeline_of_100k_commands_mixing_local_and_upstream_replies_stays_in_order() {
    // 10,000 failed AUTHs from one address: the brute-force throttle is off here
    // (proxy_limits.rs tests it).
    let users =
        format!("[limits]\nauth_failures_per_ip = {{ ops_per_sec = 0, burst = 1 }}\n{USERS}");
    let e = env_with(RedisServer::start(), &users);
    let stream = tls_connect(e.proxy.tls_addr(), &e.pki, Some("bob"))
        .await
        .unwrap();
    let (mut r, mut w) = tokio::io::split(stream);
    const N: usize = 100_000;
    let expected: Vec<Reply> = (0..N)
        .map(|i| match i % 10 {
            0 => err("WRONGPASS invalid username-password pair or user is disabled."),
            _ if i < 3 => err("NOAUTH Authentication required."),
            _ => bulk(&i.to_string()),
        })
        .collect();
    let writer = tokio::spawn(async move {
        let mut buf = Vec::new();
        for i in 0..N {
            let cmd = match i % 10 {
                0 => encode_command(&[b"AUTH", b"carol", b"wrong"]),
                _ if i == 3 => {
                    buf.extend(encode_command(&[b"AUTH", b"carol", b"carolpw"]));
                    encode_command(&[b"ECHO", i.to_string().as_bytes()])
                }
                _ => encode_command(&[b"ECHO", i.to_string().as_bytes()]),
            };
            buf.extend(cmd);
            if buf.len() > 64 * 1024 {
                w.write_all(&buf).await.unwrap();
                buf.clear();
            }
        }
        w.write_all(&buf).await.unwrap();
        w.flush().await.unwrap();
        w
    });
    let mut got = Vec::with_capacity(N + 1);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while got.len() < N + 1 {
        let n = tokio::time::timeout(Duration::from_secs(30), r.read(&mut chunk))
            .await
            .expect("replies stalled")
            .unwrap();
        assert!(n > 0, "proxy closed after {} replies", got.len());
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some((reply, len)) = parse_reply(&buf[used..]).unwrap() {
            got.push(reply);
            used += len;
        }
        buf.drain(..used);
    }
    let _w = writer.await.unwrap();
    // The one AUTH carol carolpw (sent before command 3) answered +OK in its place.
    assert!(got.remove(3).is_ok());
    for (i, (g, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, want, "reply {i}");
    }
}

#[tokio::test]
async fn a_64_mib_value_round_trips() {
    let e = env();
    let mut alice = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    let value: Vec<u8> = (0..64 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    assert!(alice.cmd(&[b"SET", b"big", &value]).await.is_ok());
    assert_eq!(
        alice.cmd_str(&["STRLEN", "big"]).await,
        Reply::Int(value.len() as i64)
    );
    let got = alice.cmd_str(&["GET", "big"]).await;
    assert!(got.as_bytes() == Some(&value[..]), "GET big differs");
}

#[tokio::test]
async fn commands_fed_one_byte_at_a_time() {
    let e = env();
    let mut alice = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    let mut input = encode_command(&[b"SET", b"slow", b"value"]);
    input.extend_from_slice(b"GET slow\r\n");
    input.extend(encode_command(&[b"STRLEN", b"slow"]));
    for b in &input {
        alice.send_raw(std::slice::from_ref(b)).await;
    }
    assert!(alice.read_reply().await.is_ok());
    assert_eq!(alice.read_reply().await, bulk("value"));
    assert_eq!(alice.read_reply().await, Reply::Int(5));
}

#[tokio::test]
async fn inline_commands_with_quotes() {
    let e = env();
    let mut alice = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    alice
        .send_raw(b"SET \"a key\" 'x y'\r\nGET \"a key\"\r\n\r\nPING\n")
        .await;
    assert!(alice.read_reply().await.is_ok());
    assert_eq!(alice.read_reply().await, bulk("x y"));
    assert_eq!(alice.read_reply().await, Reply::Simple("PONG".into()));
}

#[tokio::test]
async fn multi_exec_and_watch() {
    let e = env();
    let mut alice = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    assert!(alice.cmd_str(&["WATCH", "w"]).await.is_ok());
    assert!(alice.cmd_str(&["MULTI"]).await.is_ok());
    assert_eq!(
        alice.cmd_str(&["SET", "w", "1"]).await,
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        alice.cmd_str(&["INCR", "w"]).await,
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        alice.cmd_str(&["EXEC"]).await,
        Reply::Array(Some(vec![Reply::Simple("OK".into()), Reply::Int(2)]))
    );
    // AUTH inside MULTI is refused and the transaction aborts.
    assert!(alice.cmd_str(&["MULTI"]).await.is_ok());
    assert_eq!(
        alice.cmd_str(&["AUTH", "carol", "carolpw"]).await,
        err("ERR Command not allowed inside a transaction")
    );
    assert_eq!(
        alice.cmd_str(&["SET", "w", "9"]).await,
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        alice.cmd_str(&["EXEC"]).await,
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(alice.cmd_str(&["GET", "w"]).await, bulk("2"));
}

#[tokio::test]
async fn subscribe_and_publish_across_two_clients() {
    let e = env();
    let mut sub = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    let mut publisher = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    sub.send(&[b"SUBSCRIBE", b"news", b"sport"]).await;
    for (ch, n) in [("news", 1), ("sport", 2)] {
        assert_eq!(
            sub.read_reply().await,
            Reply::Array(Some(vec![bulk("subscribe"), bulk(ch), Reply::Int(n)]))
        );
    }
    assert_eq!(
        publisher.cmd_str(&["PUBLISH", "news", "hello"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        sub.read_reply().await,
        Reply::Array(Some(vec![bulk("message"), bulk("news"), bulk("hello")]))
    );
    // PING in subscribed mode, then a message, then unsubscribing from everything.
    sub.send(&[b"PING"]).await;
    assert_eq!(
        sub.read_reply().await,
        Reply::Array(Some(vec![bulk("pong"), bulk("")]))
    );
    assert_eq!(
        publisher.cmd_str(&["PUBLISH", "sport", "goal"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        sub.read_reply().await,
        Reply::Array(Some(vec![bulk("message"), bulk("sport"), bulk("goal")]))
    );
    sub.send(&[b"UNSUBSCRIBE"]).await;
    let mut left = Vec::new();
    for _ in 0..2 {
        let Reply::Array(Some(items)) = sub.read_reply().await else {
            panic!("not an array")
        };
        assert_eq!(items[0], bulk("unsubscribe"));
        left.push(items[2].clone());
    }
    assert_eq!(left, vec![Reply::Int(1), Reply::Int(0)]);
    assert_eq!(sub.cmd_str(&["GET", "nothing"]).await, Reply::Bulk(None));
}

#[tokio::test]
async fn resp3_pubsub_pushes() {
    let e = env();
    let mut sub = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    let mut publisher = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    assert!(matches!(sub.cmd_str(&["HELLO", "3"]).await, Reply::Map(_)));
    sub.send(&[b"SUBSCRIBE", b"ch"]).await;
    assert_eq!(
        sub.read_reply().await,
        Reply::Push(vec![bulk("subscribe"), bulk("ch"), Reply::Int(1)])
    );
    // RESP3 allows any command while subscribed.
    assert!(sub.cmd_str(&["SET", "x", "1"]).await.is_ok());
    assert_eq!(
        publisher.cmd_str(&["PUBLISH", "ch", "m"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        sub.read_reply().await,
        Reply::Push(vec![bulk("message"), bulk("ch"), bulk("m")])
    );
    assert_eq!(sub.cmd_str(&["GET", "x"]).await, bulk("1"));
}

#[tokio::test]
async fn blpop_is_woken_by_another_client() {
    let e = env();
    let mut waiter = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    let mut pusher = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    waiter.send(&[b"BLPOP", b"queue", b"10"]).await;
    waiter.send(&[b"ECHO", b"after"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        pusher.cmd_str(&["RPUSH", "queue", "job"]).await,
        Reply::Int(1)
    );
    assert_eq!(
        waiter.read_reply().await,
        Reply::Array(Some(vec![bulk("queue"), bulk("job")]))
    );
    assert_eq!(waiter.read_reply().await, bulk("after"));
}

#[tokio::test]
async fn client_reply_off_and_skip_hide_local_and_upstream_replies() {
    let e = env();
    let mut bob = resp_tls(e.proxy.tls_addr(), &e.pki, Some("bob")).await;
    assert!(bob.cmd_str(&["AUTH", "carol", "carolpw"]).await.is_ok());
    bob.send(&[b"CLIENT", b"REPLY", b"OFF"]).await;
    bob.send(&[b"SET", b"r", b"1"]).await;
    bob.send(&[b"AUTH", b"carol", b"wrong"]).await;
    bob.send(&[b"INCR", b"r"]).await;
    assert!(bob.cmd_str(&["CLIENT", "REPLY", "ON"]).await.is_ok());
    bob.send(&[b"CLIENT", b"REPLY", b"SKIP"]).await;
    bob.send(&[b"INCR", b"r"]).await;
    assert_eq!(bob.cmd_str(&["GET", "r"]).await, bulk("3"));
}

#[tokio::test]
async fn monitor_streams_other_clients_commands() {
    let e = env();
    let mut mon = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    let mut other = resp_tls(e.proxy.tls_addr(), &e.pki, Some("alice")).await;
    assert!(mon.cmd_str(&["MONITOR"]).await.is_ok());
    assert!(other.cmd_str(&["SET", "watched", "1"]).await.is_ok());
    // The other client's new upstream connection first asks for its client
    // id (for CLIENT LIST), then runs the SET.
    let line = mon.read_reply().await;
    assert!(
        line.as_str().unwrap_or("").ends_with("\"CLIENT\" \"ID\""),
        "{line:?}"
    );
    let line = mon.read_reply().await;
    assert!(
        line.as_str()
            .unwrap_or("")
            .contains("\"SET\" \"watched\" \"1\""),
        "{line:?}"
    );
}

#[tokio::test]
async fn unix_socket_upstream_with_proxy_auth_survives_reset() {
    let redis = RedisServer::start_unix_with(&["--requirepass", "upstream-secret"]);
    let pki = TestPki::new();
    let config = base_config(&pki, &redis.upstream_address(), USERS).replace(
        "[upstream]\n",
        "[upstream]\npassword = \"upstream-secret\"\n",
    );
    let proxy = Proxy::start(&config, pki.dir());
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert!(alice.cmd_str(&["SET", "u", "1"]).await.is_ok());
    assert_eq!(
        alice.cmd_str(&["RESET"]).await,
        Reply::Simple("RESET".into())
    );
    assert_eq!(alice.cmd_str(&["GET", "u"]).await, bulk("1"));
}
