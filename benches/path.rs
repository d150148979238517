//! The proxy's per-command work in memory, with no sockets and no TLS:
//!
//! - `reply_scan`: the upstream-side reply scanner against `redis_protocol` 6's
//!   RESP2 decoder on the same buffer of replies (`+OK` and 16-byte bulks, as
//!   a SET/GET pipeline gets back; and 16 KiB bulks).
//! - `path`: client bytes -> forwarded bytes (scan, classify + ACL decision,
//!   copy) and upstream replies -> client bytes (scan, route through the reply
//!   slots), exactly the steps of `conn`'s loop, for a user with all keys and
//!   for users with 10 and 100 key patterns. Per-command time is the total
//!   divided by 10,000 commands; the ACL share is the difference between the
//!   users.
//!
//! ```text
//! cargo bench --bench path -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use portcullis::acl::Users;
use portcullis::conn::session::{Decision, Session};
use portcullis::conn::slots::{Emit, ReplySlots};
use portcullis::resp::reply::{ReplyScan, ReplyScanner};
use portcullis::resp::request::{RequestScan, RequestScanner, ScanLimits};
use redis_protocol::resp2::decode::decode_bytes_mut;

const COMMANDS: usize = 10_000;

fn push_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// 10,000 commands alternating SET app:<n> <16 B> and GET app:<n>, and the
/// replies Redis sends for them.
fn set_get() -> (Vec<u8>, Vec<u8>) {
    let (mut requests, mut replies) = (Vec::new(), Vec::new());
    for i in 0..COMMANDS {
        let key = format!("app:user:{}", i / 2);
        let value = format!("{:016x}", i / 2);
        if i % 2 == 0 {
            push_command(&mut requests, &[b"SET", key.as_bytes(), value.as_bytes()]);
            replies.extend_from_slice(b"+OK\r\n");
        } else {
            push_command(&mut requests, &[b"GET", key.as_bytes()]);
            replies.extend_from_slice(format!("$16\r\n{value}\r\n").as_bytes());
        }
    }
    (requests, replies)
}

/// A user set with `bench` holding `patterns` key patterns (the matching one
/// last), or all keys when `patterns` is 0.
fn users(patterns: usize) -> Users {
    let mut rules = String::from("on nopass &* +@all -@dangerous");
    if patterns == 0 {
        rules.push_str(" ~*");
    }
    for i in 0..patterns.saturating_sub(1) {
        rules.push_str(&format!(" ~tenant{i}:*:data"));
    }
    if patterns > 0 {
        rules.push_str(" ~app:*");
    }
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n\
         [upstream]\naddress = \"127.0.0.1:1\"\n[[users]]\nname = \"bench\"\nrules = \"{rules}\"\n"
    );
    let config = portcullis::config::parse(&text, Path::new("/tmp/proxy.toml")).expect("config");
    Users::from_config(&config).expect("users")
}

/// Client side: every command scanned, decided and copied to the upstream
/// buffer, a reply slot queued for it. Returns the forwarded byte count.
fn requests_in(
    buf: &[u8],
    scanner: &mut RequestScanner,
    session: &mut Session,
    users: &Users,
    slots: &mut ReplySlots,
    up_out: &mut Vec<u8>,
) -> usize {
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let Ok(RequestScan::Complete(len)) = scanner.scan(rest, false) else {
            panic!("scan at {pos}");
        };
        let decided = session.decide(scanner.args(rest), users, &Default::default());
        match decided.decision {
            Decision::Forward(kind) => {
                up_out.extend_from_slice(&rest[..len]);
                slots.push_upstream(kind, Emit::Pass);
            }
            other => panic!("not forwarded: {other:?}"),
        }
        pos += len;
    }
    up_out.len()
}

/// Upstream side: every reply framed and routed to the client buffer.
fn replies_out(buf: &[u8], slots: &mut ReplySlots, out: &mut BytesMut) -> usize {
    let mut scanner = ReplyScanner::new();
    let mut pos = 0;
    while pos < buf.len() {
        let Ok(ReplyScan::Complete { len }) = scanner.scan(&buf[pos..]) else {
            panic!("reply scan at {pos}");
        };
        let ty = scanner.frame_type().unwrap_or(0);
        slots
            .on_frame(&buf[pos..pos + len], ty, false, out)
            .expect("a slot for every reply");
        pos += len;
    }
    out.len()
}

fn bench_reply_scan(c: &mut Criterion) {
    let (_, small) = set_get();
    let mut big = Vec::new();
    let value = vec![b'v'; 16 * 1024];
    for _ in 0..1000 {
        big.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
        big.extend_from_slice(&value);
        big.extend_from_slice(b"\r\n");
    }
    for (name, buf, frames) in [("ok_and_16b", small, COMMANDS), ("bulk_16kib", big, 1000)] {
        let mut group = c.benchmark_group(format!("reply_scan/{name}"));
        group.throughput(Throughput::Elements(frames as u64));
        group.bench_function("portcullis", |b| {
            b.iter(|| {
                let mut scanner = ReplyScanner::new();
                let (mut pos, mut n) = (0, 0);
                while pos < buf.len() {
                    match scanner.scan(black_box(&buf[pos..])) {
                        Ok(ReplyScan::Complete { len }) => pos += len,
                        other => panic!("{other:?}"),
                    }
                    n += 1;
                }
                assert_eq!(n, frames);
            })
        });
        group.bench_function("redis-protocol", |b| {
            b.iter_batched(
                || BytesMut::from(&buf[..]),
                |mut bytes| {
                    let mut n = 0;
                    while !bytes.is_empty() {
                        match decode_bytes_mut(&mut bytes) {
                            Ok(Some(frame)) => {
                                black_box(&frame);
                            }
                            other => panic!("{other:?}"),
                        }
                        n += 1;
                    }
                    assert_eq!(n, frames);
                    bytes
                },
                BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

fn bench_path(c: &mut Criterion) {
    let (requests, replies) = set_get();
    let mut group = c.benchmark_group("path");
    group.throughput(Throughput::Elements(COMMANDS as u64));
    for patterns in [0, 10, 100] {
        let users = users(patterns);
        let user = Arc::clone(users.get("bench").expect("bench user"));
        let label = if patterns == 0 {
            "allkeys".to_string()
        } else {
            format!("{patterns}_patterns")
        };
        let mut scanner = RequestScanner::new(ScanLimits::default());
        let mut session = Session::new(Some(Arc::clone(&user)));
        let (mut up_out, mut out) = (Vec::new(), BytesMut::new());
        group.bench_function(format!("requests/{label}"), |b| {
            b.iter(|| {
                up_out.clear();
                let mut slots = ReplySlots::new();
                requests_in(
                    &requests,
                    &mut scanner,
                    &mut session,
                    &users,
                    &mut slots,
                    &mut up_out,
                )
            })
        });
        group.bench_function(format!("round_trip/{label}"), |b| {
            b.iter(|| {
                up_out.clear();
                out.clear();
                let mut slots = ReplySlots::new();
                requests_in(
                    &requests,
                    &mut scanner,
                    &mut session,
                    &users,
                    &mut slots,
                    &mut up_out,
                );
                replies_out(&replies, &mut slots, &mut out)
            })
        });
    }
    group.finish();
}

/// Command lookup alone: the names of a typical mix (upper and lower case, a
/// container's subcommand, an unknown name), resolved like `argv[0..2]`.
fn bench_lookup(c: &mut Criterion) {
    let names: [(&[u8], Option<&[u8]>); 8] = [
        (b"GET", Some(b"k")),
        (b"set", Some(b"k")),
        (b"HSET", Some(b"h")),
        (b"zrangebyscore", Some(b"z")),
        (b"EXPIRE", Some(b"k")),
        (b"client", Some(b"setname")),
        (b"CONFIG", Some(b"GET")),
        (b"nosuchcmd", None),
    ];
    let mut group = c.benchmark_group("lookup");
    group.throughput(Throughput::Elements(names.len() as u64));
    group.bench_function("resolve_mix", |b| {
        b.iter(|| {
            for (argv0, argv1) in names {
                black_box(portcullis::command::resolve(black_box(argv0), argv1));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_reply_scan, bench_path, bench_lookup);
criterion_main!(benches);
