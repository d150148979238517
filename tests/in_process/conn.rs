//! The connection task in-process: `portcullis::conn::serve` over an in-memory
//! client stream (`tokio::io::duplex`), a real redis-server behind it, and the
//! server's signals and clock in the test's hands: idle timeout on a paused
//! clock, drain and abort without waiting for a grace period, reload without a
//! signal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis::conn::{self, ClientIdentity, Shared, Shutdown};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;

use crate::support::*;

const USERS: &str = "[[users]]\nname = \"alice\"\nrules = \"on >pw ~* &* +@all\"\n\n\
                     [[users]]\nname = \"bob\"\nrules = \"on >pw ~* &* +@all\"\n";

struct InProcess {
    _pki: TestPki,
    redis: RedisServer,
    config: PathBuf,
    shared: Arc<Shared>,
    shutdown: Shutdown,
}

impl InProcess {
    fn start(extra: &str) -> InProcess {
        let pki = TestPki::new();
        let redis = RedisServer::start();
        let text = base_config(&pki, &redis.addr(), &format!("{extra}\n{USERS}"));
        let config = pki.dir().join("proxy.toml");
        std::fs::write(&config, &text).unwrap();
        let parsed = portcullis::config::load(&config).expect("config");
        let prepared = portcullis::server::prepare(parsed).expect("prepare");
        InProcess {
            _pki: pki,
            redis,
            config,
            shared: prepared.shared,
            shutdown: Shutdown::default(),
        }
    }

    /// A client whose certificate names `user`, served by its own task.
    fn client(&self, user: &str) -> (RespConn<DuplexStream>, JoinHandle<()>) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let live = self.shared.live();
        let identity = ClientIdentity {
            addr: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:6380".parse().unwrap(),
            cert_user: live.users.get(user).cloned(),
            identity: Some(format!("cn={user}")),
        };
        let task = tokio::spawn(conn::serve(
            theirs,
            identity,
            Arc::clone(&self.shared),
            live,
            self.shutdown.clone(),
        ));
        (RespConn::new(ours), task)
    }
}

/// Reads until the task closed the client's stream.
async fn closed(c: &mut RespConn<DuplexStream>) -> Vec<u8> {
    c.read_raw_until_closed().await
}

#[tokio::test]
async fn idle_timeout_closes_only_idle_clients() {
    let p = InProcess::start("[limits]\nidle_timeout_s = 5\n");
    let (mut idle, _) = p.client("alice");
    let (mut blocked, _) = p.client("alice");
    let (mut subscribed, _) = p.client("bob");
    // Every upstream connection is opened before the clock stops.
    assert_eq!(idle.cmd_str(&["PING"]).await.as_str(), Some("PONG"));
    assert_eq!(blocked.cmd_str(&["PING"]).await.as_str(), Some("PONG"));
    blocked.send(&[b"BLPOP", b"q", b"0"]).await;
    subscribed.send(&[b"SUBSCRIBE", b"c"]).await;
    subscribed.read_reply().await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(4)).await;
    // Activity moves the deadline. (Answered by the proxy: a round trip to
    // redis-server, a real process, would let the stopped clock jump ahead.)
    assert_eq!(
        idle.cmd_str(&["ACL", "WHOAMI"]).await.as_str(),
        Some("alice")
    );
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(
        idle.cmd_str(&["ACL", "WHOAMI"]).await.as_str(),
        Some("alice")
    );
    let before = tokio::time::Instant::now();
    // Nothing sent now: closed 5 s (of the stopped clock) later, without a reply.
    assert_eq!(closed(&mut idle).await, b"");
    let waited = tokio::time::Instant::now() - before;
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    tokio::time::resume();
    // The blocked and the subscribed clients are still served.
    let mut direct = RespConn::connect_tcp(&p.redis.addr()).await.unwrap();
    assert_eq!(direct.cmd_str(&["RPUSH", "q", "x"]).await.as_int(), Some(1));
    let popped = blocked.read_reply().await;
    assert_eq!(popped.as_array().map(<[Reply]>::len), Some(2), "{popped:?}");
    assert_eq!(
        direct.cmd_str(&["PUBLISH", "c", "m"]).await.as_int(),
        Some(1)
    );
    let message = subscribed.read_reply().await;
    let kind = message
        .as_array()
        .and_then(|m| m[0].as_bytes().map(<[u8]>::to_vec));
    assert_eq!(kind.as_deref(), Some(&b"message"[..]), "{message:?}");
}

#[tokio::test]
async fn drain_finishes_in_flight_work_and_abort_answers_it() {
    let p = InProcess::start("");
    let (mut idle, idle_task) = p.client("alice");
    let (mut blocked, blocked_task) = p.client("bob");
    assert_eq!(idle.cmd_str(&["PING"]).await.as_str(), Some("PONG"));
    blocked.send(&[b"BLPOP", b"q", b"0"]).await;
    // The BLPOP is upstream once its connection's id shows in CLIENT LIST.
    let mut direct = RespConn::connect_tcp(&p.redis.addr()).await.unwrap();
    let mut upstream = false;
    for _ in 0..1000 {
        let list = direct.cmd_str(&["CLIENT", "LIST"]).await;
        upstream = String::from_utf8_lossy(list.as_bytes().unwrap()).contains("cmd=blpop");
        if upstream {
            break;
        }
    }
    assert!(upstream, "the BLPOP never reached the upstream");
    p.shutdown.drain.cancel();
    // Nothing in flight: closed at once, with nothing more said.
    assert_eq!(closed(&mut idle).await, b"");
    idle_task.await.unwrap();
    assert!(!blocked_task.is_finished());
    p.shutdown.abort.cancel();
    assert_eq!(closed(&mut blocked).await, b"-ERR proxy shutting down\r\n");
    blocked_task.await.unwrap();
}

#[tokio::test]
async fn a_reload_closes_a_removed_users_connection_and_keeps_the_others() {
    let p = InProcess::start("");
    let (mut alice, _) = p.client("alice");
    let (mut bob, bob_task) = p.client("bob");
    assert!(alice.cmd_str(&["SET", "k", "1"]).await.is_ok());
    assert!(bob.cmd_str(&["SET", "k", "2"]).await.is_ok());
    // alice opens a transaction under her old rules.
    assert!(alice.cmd_str(&["MULTI"]).await.is_ok());
    assert_eq!(
        alice.cmd_str(&["SET", "k", "3"]).await.as_str(),
        Some("QUEUED")
    );
    let text = std::fs::read_to_string(&p.config).unwrap();
    let without_bob = text
        .replace(
            "[[users]]\nname = \"bob\"\nrules = \"on >pw ~* &* +@all\"\n",
            "",
        )
        .replace(
            "rules = \"on >pw ~* &* +@all\"",
            "rules = \"on >pw ~k &* +@all\"",
        );
    std::fs::write(&p.config, without_bob).unwrap();
    portcullis::server::reload(&p.shared, &p.config).expect("reload");
    // bob is gone: his idle connection is closed with no reply owed.
    assert_eq!(closed(&mut bob).await, b"");
    bob_task.await.unwrap();
    // alice stays; her transaction was checked under the old rules.
    assert_eq!(
        alice.cmd_str(&["EXEC"]).await.error(),
        Some("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(alice.cmd_str(&["GET", "k"]).await.as_str(), Some("2"));
}
