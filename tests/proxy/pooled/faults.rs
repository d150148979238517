//! Faults on the shared connections: a client that stops reading beside
//! fast clients on the same connection, and the upstream killed and
//! restarted under load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::support::twin::ProxySide;

/// Bytes of replies a pooled client may leave unread in these tests.
const REPLY_LIMIT: usize = 8 << 20;

/// A client through the proxy, authenticated as `app`.
async fn client(ss: &SameStream) -> ProxySide {
    let mut c = resp_tls(ss.proxy.tls_addr(), &ss.pki, Some("bob")).await;
    assert!(c.cmd_str(&["AUTH", "app", "pw"]).await.is_ok());
    c
}

/// `rounds` round trips of SET/GET on keys of client `i`'s own, all answered right.
async fn fast_client(ss: &SameStream, i: usize, rounds: usize) {
    let mut c = client(ss).await;
    let key = format!("c:fast:{i}");
    for r in 0..rounds {
        let v = format!("{i}-{r}");
        assert!(c.cmd_str(&["SET", &key, &v]).await.is_ok());
        assert_eq!(c.cmd_str(&["GET", &key]).await.as_str(), Some(v.as_str()));
    }
}

/// Four fast clients at once (`first`.. as their numbers), 100 round trips each.
async fn fast_clients(ss: &SameStream, first: usize) {
    tokio::join!(
        fast_client(ss, first, 100),
        fast_client(ss, first + 1, 100),
        fast_client(ss, first + 2, 100),
        fast_client(ss, first + 3, 100),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_never_holds_up_the_others() {
    let ss = pooled(1, &format!("pool_reply_limit = {REPLY_LIMIT}")).await;
    let mut up = RespConn::connect_tcp(&ss.upstream.addr()).await.unwrap();
    let big = "b".repeat(6 << 20);
    assert!(up.cmd_str(&["SET", "c:big", &big]).await.is_ok());
    let medium = "m".repeat(40_000);
    assert!(up.cmd_str(&["SET", "c:medium", &medium]).await.is_ok());

    // A large reply pending (under the limit) while others go on.
    let mut slow = client(&ss).await;
    slow.send(&[b"GET", b"c:big"]).await;
    fast_clients(&ss, 0).await;
    let reply = slow.read_reply().await;
    assert_eq!(reply.as_bytes().map(<[u8]>::len), Some(big.len()));
    assert!(reply.as_bytes() == Some(big.as_bytes()));

    // Far more than the limit left unread: that client is closed, with the error
    // in place of the replies it did not take; the others never notice.
    let mut hog = client(&ss).await;
    let get = encode_command(&[b"GET", b"c:medium"]);
    hog.send_raw(&get.repeat(1000)).await;
    fast_clients(&ss, 10).await;
    let sample = "portcullis_limit_hits_total{limit=\"pool_reply_limit\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while scrape(&ss.proxy, sample).await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no pool_reply_limit hit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut whole = 0;
    let mut refused = 0;
    loop {
        match hog.try_read_reply().await {
            Ok(Reply::Bulk(Some(v))) if v == medium.as_bytes() => {
                assert_eq!(refused, 0, "a reply after the error");
                whole += 1;
            }
            Ok(Reply::Error(e)) => {
                assert_eq!(
                    e,
                    "ERR too many unread replies (upstream.pool_reply_limit); closing connection"
                );
                refused += 1;
            }
            Ok(other) => panic!("unexpected reply {other:?}"),
            Err(e) => {
                assert!(e.starts_with("connection closed"), "{e}");
                break;
            }
        }
    }
    assert_eq!(whole + refused, 1000, "every command answered once");
    assert!(refused > 0 && whole < 1000 - REPLY_LIMIT / medium.len());
    fast_client(&ss, 20, 10).await;
}

/// What a client may see for `SET key j`, `GET key`, `ECHO j` while the
/// upstream restarts: the right reply or one of the two errors (and `GET`
/// a null when the upstream restarted empty in between).
fn check_round(j: usize, replies: &[Reply]) -> Result<bool, String> {
    let lost = |r: &Reply| {
        matches!(
            r.error(),
            Some("ERR upstream connection lost" | "ERR upstream unavailable")
        )
    };
    let v = j.to_string();
    let ok = [
        replies[0].is_ok() || lost(&replies[0]),
        replies[1].as_str() == Some(&v) || replies[1].is_null() || lost(&replies[1]),
        replies[2].as_str() == Some(&v) || lost(&replies[2]),
    ];
    if ok.iter().all(|&b| b) {
        Ok(replies.iter().any(lost))
    } else {
        Err(format!("round {j}: {replies:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpinned_clients_stay_through_an_upstream_restart() {
    let mut ss = pooled(2, "").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut c = client(&ss).await;
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let key = format!("c:r:{i}");
            let (mut errors, mut rounds) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let v = rounds.to_string();
                let mut wire = encode_command(&[b"SET", key.as_bytes(), v.as_bytes()]);
                wire.extend(encode_command(&[b"GET", key.as_bytes()]));
                wire.extend(encode_command(&[b"ECHO", v.as_bytes()]));
                c.try_send_raw(&wire).await.map_err(|e| e.to_string())?;
                let mut replies = Vec::new();
                for _ in 0..3 {
                    replies.push(c.try_read_reply().await?);
                }
                errors += usize::from(check_round(rounds, &replies)?);
                rounds += 1;
            }
            Ok::<_, String>((errors, rounds, c))
        }));
    }
    // A pinned client is closed as in dedicated mode.
    let mut subscriber = client(&ss).await;
    subscriber.send(&[b"SUBSCRIBE", b"c:news"]).await;
    subscriber.read_reply().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ss.upstream.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ss.upstream.restart();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all_errors = 0;
    for task in tasks {
        let (errors, rounds, mut c) = task.await.expect("task").expect("client");
        all_errors += errors;
        assert!(rounds > 2, "only {rounds} rounds");
        assert_eq!(c.cmd_str(&["ECHO", "after"]).await.as_str(), Some("after"));
    }
    assert!(all_errors > 0, "no client noticed the restart");
    let closed = subscriber.read_raw_until_closed().await;
    assert!(closed.is_empty(), "{:?}", String::from_utf8_lossy(&closed));
    assert_eq!(upstream_connections(&ss, "pooled").await, 2.0);
}
