//! Redis is the oracle for the request scanner: generated inline lines and
//! multibulk headers go to a real redis-server and to the scanner, and both must
//! see the same arguments or the same protocol error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{parse_reply, RedisServer, Reply, Rng};
use portcullis::resp::request::{RequestScan, RequestScanner, ScanLimits};

/// Sends `input` on a fresh connection and collects replies until the server
/// closes, or (when `wanted` replies are expected and the server should stay
/// open) until that many arrived and nothing more came for a short while.
fn redis_replies(addr: &str, input: &[u8], wanted: Option<usize>) -> (Vec<Reply>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(input).unwrap();
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let enough = wanted.is_some_and(|n| replies.len() >= n);
        let wait = if enough { 50 } else { 5000 };
        s.set_read_timeout(Some(Duration::from_millis(wait)))
            .unwrap();
        match s.read(&mut chunk) {
            Ok(0) => return (replies, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (replies, true),
            Err(_) => return (replies, false),
        }
        let mut used = 0;
        while let Ok(Some((r, n))) = parse_reply(&buf[used..]) {
            replies.push(r);
            used += n;
        }
        buf.drain(..used);
    }
}

/// Redis 7.0's own limits (proto-max-bulk-len 512 MB, multibulk up to INT_MAX).
fn redis_limits() -> ScanLimits {
    ScanLimits {
        max_multibulk_len: i32::MAX as u64,
        ..ScanLimits::default()
    }
}

/// What the scanner makes of `input`: complete commands, then an error reply or nothing.
fn scan(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
    let mut scanner = RequestScanner::new(redis_limits());
    let mut pos = 0;
    let mut commands = Vec::new();
    while pos < input.len() {
        match scanner.scan(&input[pos..], false) {
            Ok(RequestScan::Complete(n)) => {
                let args = scanner.args(&input[pos..]);
                commands.push(args.iter().map(<[u8]>::to_vec).collect());
                pos += n;
            }
            Ok(RequestScan::Incomplete) => break,
            Err(e) => {
                let text = String::from_utf8_lossy(&e.reply()).trim_end().to_string();
                return (commands, Some(text[1..].to_string()));
            }
        }
    }
    (commands, None)
}

#[test]
fn inline_splitting_matches_redis() {
    let redis = RedisServer::start();
    let seed = 0x5eed_0001_u64;
    let mut rng = Rng(seed);
    let tokens: &[&str] = &[
        "a", "b", " ", "  ", "\t", "\"", "'", "\\", "x", "4", "1", "n", "\\x41", "\\n", "\\'",
        "\"\"", "''", "\x0b", "z\"q\"", "\"a b\"", "'c d'",
    ];
    for case in 0..400 {
        let mut line = String::from("RPUSH l ");
        for _ in 0..(rng.next() % 6 + 1) {
            let token: &str = rng.pick(tokens);
            line.push_str(token);
        }
        let mut input = line.clone().into_bytes();
        input.extend_from_slice(b"\r\nLRANGE l 0 -1\r\nDEL l\r\n");
        let (commands, error) = scan(&input);
        let wanted = error.is_none().then_some(3);
        let (replies, _) = redis_replies(&redis.addr(), &input, wanted);
        let ctx = format!("seed {seed:#x} case {case}: {line:?}");
        match error {
            Some(e) => {
                assert_eq!(replies, vec![Reply::Error(e)], "{ctx}");
                continue;
            }
            None => assert_eq!(commands.len(), 3, "{ctx}"),
        }
        let values: Vec<Reply> = commands[0][2..]
            .iter()
            .map(|v| Reply::Bulk(Some(v.clone())))
            .collect();
        let expected_list = if values.is_empty() {
            Vec::new()
        } else {
            values
        };
        assert_eq!(
            replies.get(1),
            Some(&Reply::Array(Some(expected_list))),
            "{ctx}: {replies:?}"
        );
    }
}

#[test]
fn multibulk_headers_match_redis() {
    let redis = RedisServer::start();
    let counts = [
        "1",
        "2",
        "01",
        "+2",
        "-1",
        "0",
        "2 ",
        " 2",
        "",
        "x",
        "3000000000",
        "99999999999999999999",
    ];
    let lens = [
        "4",
        "04",
        "+4",
        "-1",
        "4 ",
        "",
        "x",
        "-0",
        "2000000000",
        "5",
    ];
    let firsts = ["$", "%", "*", "\r", "f"];
    for count in counts {
        for len in lens {
            for first in firsts {
                let input = format!(
                    "*{count}\r\n$4\r\nECHO\r\n{first}{len}\r\nabcd\r\n*1\r\n$4\r\nPING\r\n"
                );
                let (commands, error) = scan(input.as_bytes());
                let answered = commands.iter().filter(|c| !c.is_empty()).count();
                let wanted = error.is_none().then_some(answered);
                let (replies, closed) = redis_replies(&redis.addr(), input.as_bytes(), wanted);
                let ctx = format!(
                    "{input:?}: redis {replies:?} closed={closed}, scanner {commands:?} {error:?}"
                );
                if let Some(e) = error {
                    assert!(closed, "{ctx}");
                    assert_eq!(replies.last(), Some(&Reply::Error(e)), "{ctx}");
                } else {
                    // No error: every command Redis answered, the scanner found (commands
                    // with no arguments get no reply from Redis).
                    assert_eq!(replies.len(), answered, "{ctx}");
                    assert!(!closed, "{ctx}");
                }
            }
        }
    }
}
