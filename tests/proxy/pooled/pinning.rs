//! Clients that take server-side state beside clients that do not, through a
//! pool of one shared connection, each step done the same way through the
//! proxy and straight to Redis ([`Twin`]) with the replies compared.

use super::*;

/// A pooled proxy with one shared connection and two clients `a` and `b`.
async fn two_clients() -> (SameStream, Twin, Twin) {
    let ss = pooled(1, "").await;
    let a = Twin::connect(&ss, "a", "app").await;
    let b = Twin::connect(&ss, "b", "app").await;
    (ss, a, b)
}

#[tokio::test]
async fn multi_is_isolated_from_other_clients() {
    let (ss, mut a, mut b) = two_clients().await;
    a.cmd(&["SET", "c:m", "0"]).await;
    assert!(a.cmd(&["MULTI"]).await.is_ok());
    assert_eq!(a.cmd(&["INCR", "c:m"]).await.as_str(), Some("QUEUED"));
    assert_eq!(upstream_connections(&ss, "pinned").await, 1.0);
    assert_eq!(b.cmd(&["GET", "c:m"]).await.as_str(), Some("0"));
    b.cmd(&["SET", "c:m", "10"]).await;
    let exec = a.cmd(&["EXEC"]).await;
    assert_eq!(exec, Reply::Array(Some(vec![Reply::Int(11)])));
    assert_eq!(b.cmd(&["GET", "c:m"]).await.as_str(), Some("11"));
    // The state is gone: back to the pool within a second or so.
    let pinned = wait_connections(&ss, "pinned", 0.0, Duration::from_secs(5)).await;
    assert_eq!(pinned, 0.0);
    assert_eq!(a.cmd(&["INCR", "c:m"]).await.as_int(), Some(12));
    assert_eq!(upstream_connections(&ss, "pooled").await, 1.0);
    assert!(connected_clients(&ss.upstream.addr()).await <= 1);
}

#[tokio::test]
async fn watch_sees_another_clients_write() {
    let (ss, mut a, mut b) = two_clients().await;
    assert!(a.cmd(&["WATCH", "c:w"]).await.is_ok());
    b.cmd(&["SET", "c:w", "theirs"]).await;
    a.cmd(&["MULTI"]).await;
    a.cmd(&["SET", "c:w", "mine"]).await;
    assert!(a.cmd(&["EXEC"]).await.is_null(), "the watched key changed");
    assert_eq!(a.cmd(&["GET", "c:w"]).await.as_str(), Some("theirs"));
    // EXEC without MULTI keeps watched keys (Redis does): still pinned.
    a.cmd(&["WATCH", "c:w"]).await;
    a.cmd(&["EXEC"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(upstream_connections(&ss, "pinned").await, 1.0);
    b.cmd(&["SET", "c:w", "again"]).await;
    a.cmd(&["MULTI"]).await;
    a.cmd(&["GET", "c:w"]).await;
    assert!(a.cmd(&["EXEC"]).await.is_null(), "still watched");
}

#[tokio::test]
async fn a_blocked_client_does_not_delay_the_others() {
    let (ss, mut a, mut b) = two_clients().await;
    // Blocks forever: on the one shared connection it would stop `b` too.
    a.send(&["BLPOP", "c:q", "0"]).await;
    for i in 0..50 {
        let v = i.to_string();
        b.cmd(&["SET", "c:b", &v]).await;
        assert_eq!(b.cmd(&["GET", "c:b"]).await.as_str(), Some(v.as_str()));
    }
    assert_eq!(upstream_connections(&ss, "pinned").await, 1.0);
    assert_eq!(b.cmd(&["LPUSH", "c:q", "job"]).await.as_int(), Some(1));
    let popped = a.read().await;
    assert_eq!(
        popped,
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"c:q".to_vec())),
            Reply::Bulk(Some(b"job".to_vec()))
        ]))
    );
    let pinned = wait_connections(&ss, "pinned", 0.0, Duration::from_secs(5)).await;
    assert_eq!(pinned, 0.0, "a blocking command pins only until its reply");
}

#[tokio::test]
async fn subscribers_get_messages_and_return_after_the_last_unsubscribe() {
    let (ss, mut a, mut b) = two_clients().await;
    a.cmd(&["SUBSCRIBE", "c:ch", "c:other"]).await;
    a.read().await;
    assert_eq!(b.cmd(&["PUBLISH", "c:ch", "hi"]).await.as_int(), Some(1));
    let message = a.read().await;
    assert_eq!(message.as_array().map(<[Reply]>::len), Some(3));
    a.cmd(&["UNSUBSCRIBE", "c:ch"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        upstream_connections(&ss, "pinned").await,
        1.0,
        "still subscribed"
    );
    a.cmd(&["UNSUBSCRIBE"]).await;
    a.cmd(&["GET", "c:x"]).await;
    let pinned = wait_connections(&ss, "pinned", 0.0, Duration::from_secs(5)).await;
    assert_eq!(pinned, 0.0);
    assert_eq!(b.cmd(&["PUBLISH", "c:ch", "gone"]).await.as_int(), Some(0));
}

#[tokio::test]
async fn select_of_another_database_pins_until_select_0() {
    let (ss, mut a, mut b) = two_clients().await;
    assert!(a.cmd(&["SELECT", "1"]).await.is_ok());
    a.cmd(&["SET", "c:s", "in-1"]).await;
    assert!(b.cmd(&["GET", "c:s"]).await.is_null(), "b is in database 0");
    assert_eq!(a.cmd(&["GET", "c:s"]).await.as_str(), Some("in-1"));
    b.cmd(&["SET", "c:s", "in-0"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(upstream_connections(&ss, "pinned").await, 1.0);
    assert_eq!(a.cmd(&["GET", "c:s"]).await.as_str(), Some("in-1"));
    assert!(a.cmd(&["SELECT", "0"]).await.is_ok());
    assert_eq!(a.cmd(&["GET", "c:s"]).await.as_str(), Some("in-0"));
    let pinned = wait_connections(&ss, "pinned", 0.0, Duration::from_secs(5)).await;
    assert_eq!(pinned, 0.0);
    assert_eq!(a.cmd(&["GET", "c:s"]).await.as_str(), Some("in-0"));
    // A SELECT inside a discarded transaction never ran.
    a.cmd(&["SELECT", "1"]).await;
    a.cmd(&["MULTI"]).await;
    a.cmd(&["SELECT", "0"]).await;
    a.cmd(&["DISCARD"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.cmd(&["GET", "c:s"]).await.as_str(), Some("in-1"));
}

#[tokio::test]
async fn a_resp3_client_beside_resp2_clients() {
    let (ss, mut a, mut b) = two_clients().await;
    let hello = a.cmd(&["HELLO", "3"]).await;
    assert!(matches!(hello, Reply::Map(_)), "{hello:?}");
    assert_eq!(a.cmd(&["GET", "c:none"]).await, Reply::Null);
    assert_eq!(b.cmd(&["GET", "c:none"]).await, Reply::Bulk(None));
    a.cmd(&["HSET", "c:h", "f", "v"]).await;
    assert!(matches!(a.cmd(&["HGETALL", "c:h"]).await, Reply::Map(_)));
    assert!(matches!(b.cmd(&["HGETALL", "c:h"]).await, Reply::Array(_)));
    a.cmd(&["CLIENT", "TRACKING", "ON"]).await;
    a.cmd(&["GET", "c:h2"]).await;
    b.cmd(&["SET", "c:h2", "x"]).await;
    assert!(
        matches!(a.read().await, Reply::Push(_)),
        "invalidation push"
    );
    assert_eq!(upstream_connections(&ss, "pinned").await, 1.0);
}

#[tokio::test]
async fn client_names_belong_to_pinned_clients() {
    let (ss, mut a, mut b) = two_clients().await;
    assert!(a.cmd(&["CLIENT", "SETNAME", "alpha"]).await.is_ok());
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]).await.as_str(), Some("alpha"));
    assert!(b.cmd(&["CLIENT", "GETNAME"]).await.is_null());
    let hello = b.cmd(&["HELLO", "2", "SETNAME", "beta"]).await;
    assert!(matches!(hello, Reply::Array(_)), "{hello:?}");
    assert_eq!(b.cmd(&["CLIENT", "GETNAME"]).await.as_str(), Some("beta"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        upstream_connections(&ss, "pinned").await,
        2.0,
        "names are for life"
    );
    let mut c = Twin::connect(&ss, "c", "app").await;
    assert!(c.cmd(&["CLIENT", "GETNAME"]).await.is_null());
}
