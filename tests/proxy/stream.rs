//! Large requests stream through instead of being buffered whole.
//! (`idle_timeout_s` is tested in-process, on a paused clock: `in_process::conn`.)

use std::time::Duration;

use crate::support::*;

const USERS: &str = "[[users]]\nname = \"alice\"\nrules = \"on ~* &* +@all\"\n\n\
    [[users]]\nname = \"carol\"\nrules = \"on ~allowed:* &* +@all\"\n";

fn value(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Sends `bytes` in 256 KiB writes.
async fn send_chunked<S>(conn: &mut RespConn<S>, bytes: &[u8])
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for chunk in bytes.chunks(256 * 1024) {
        conn.send_raw(chunk).await;
    }
}

#[tokio::test]
async fn a_value_larger_than_the_query_buffer_streams_through_to_redis() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    // 4 MiB of query buffer: a 24 MiB SET only works if it is not buffered whole.
    let extra = format!("[limits]\nmax_query_buffer = 4194304\n\n{USERS}");
    let proxy = Proxy::start(&base_config(&pki, &redis.addr(), &extra), pki.dir());
    let mut carol = resp_tls(proxy.tls_addr(), &pki, Some("carol")).await;
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let hwm_before = proc_status_kib(proxy.pid(), "VmHWM");

    let big = value(24 << 20);
    let mut cmd = encode_command(&[b"SET", b"big", &big]);
    cmd.extend(encode_command(&[b"ECHO", b"after"]));
    let writer = async {
        send_chunked(&mut alice, &cmd).await;
        (alice.read_reply().await, alice.read_reply().await)
    };
    let bystander = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        carol.cmd_str(&["SET", "allowed:x", "1"]).await
    };
    let ((set, echo), other) = tokio::join!(writer, bystander);
    assert!(set.is_ok(), "{set:?}");
    assert_eq!(echo, Reply::Bulk(Some(b"after".to_vec())));
    assert!(other.is_ok());
    let grew = proc_status_kib(proxy.pid(), "VmHWM").saturating_sub(hwm_before);
    assert!(
        grew < 16 * 1024,
        "peak RSS grew {grew} KiB for a 24 MiB value"
    );
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    assert_eq!(
        direct.cmd_str(&["GET", "big"]).await,
        Reply::Bulk(Some(big))
    );

    // A big value whose key is refused: NOPERM at once, the value is dropped as
    // it arrives, and the connection carries on.
    let denied = value(6 << 20);
    let mut cmd = encode_command(&[b"SET", b"secret:k", &denied]);
    cmd.extend(encode_command(&[b"RPUSH", b"allowed:l", &denied]));
    cmd.extend(encode_command(&[b"ECHO", b"still here"]));
    send_chunked(&mut carol, &cmd).await;
    assert_eq!(
        carol.read_reply().await,
        Reply::Error(
            "NOPERM this user has no permissions to access one of the keys used as arguments"
                .into()
        )
    );
    assert_eq!(carol.read_reply().await, Reply::Int(1));
    assert_eq!(
        carol.read_reply().await,
        Reply::Bulk(Some(b"still here".to_vec()))
    );
    assert_eq!(direct.cmd_str(&["EXISTS", "secret:k"]).await, Reply::Int(0));
    assert_eq!(
        direct.cmd_str(&["LINDEX", "allowed:l", "0"]).await,
        Reply::Bulk(Some(denied))
    );

    // Where the big argument is a key, the command is buffered, and the query
    // buffer limit applies.
    let mut cmd = encode_command(&[b"MSET", &value(5 << 20), b"v"]);
    cmd.truncate(cmd.len() - 10);
    let mut greedy = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let _ = greedy.try_send_raw(&cmd).await;
    assert_eq!(
        greedy.read_raw_until_closed().await,
        b"-ERR Protocol error: query buffer limit exceeded\r\n"
    );
}
