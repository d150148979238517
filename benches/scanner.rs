//! Request-scanner throughput: portcullis's [`RequestScanner`] against `redis_protocol` 6's
//! RESP2 decoder (`decode_bytes_mut`) on the same pipelined buffers.
//!
//! Workloads: `get_set_16b`, 10,000 commands alternating `SET key:<n> <16-byte value>` and
//! `GET key:<n>`; `set_16kib`, 1,000 `SET key:<n> <16 KiB value>`. Both sides visit every
//! command and sum its argument lengths. Criterion reports bytes/s; after it, a summary gives
//! commands/s and the ours/theirs ratio from the median of 50 runs of each, timed here.
//!
//! ```text
//! cargo bench --bench scanner -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput};
use portcullis::resp::request::{RequestScan, RequestScanner, ScanLimits};
use redis_protocol::resp2::{decode::decode_bytes_mut, types::BytesFrame};

/// Runs per side for the summary's own timing.
const SUMMARY_RUNS: usize = 50;

/// One pipelined buffer of commands.
struct Workload {
    name: &'static str,
    buf: Vec<u8>,
    commands: usize,
}

/// Appends one multibulk command.
fn push_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// (a) 10,000 commands alternating `SET key:<n> <16-byte value>` and `GET key:<n>`.
fn get_set_16b() -> Workload {
    let mut buf = Vec::new();
    let commands = 10_000;
    for i in 0..commands {
        let n = i / 2;
        let key = format!("key:{n}");
        if i % 2 == 0 {
            let value = format!("{:016x}", (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            push_command(&mut buf, &[b"SET", key.as_bytes(), value.as_bytes()]);
        } else {
            push_command(&mut buf, &[b"GET", key.as_bytes()]);
        }
    }
    Workload {
        name: "get_set_16b",
        buf,
        commands,
    }
}

/// (b) 1,000 `SET key:<n> <16 KiB value>`.
fn set_16kib() -> Workload {
    let mut buf = Vec::new();
    let commands = 1_000;
    for n in 0..commands {
        let key = format!("key:{n}");
        let value: Vec<u8> = (0..16 * 1024).map(|i| (i * 31 + n) as u8).collect();
        push_command(&mut buf, &[b"SET", key.as_bytes(), &value]);
    }
    Workload {
        name: "set_16kib",
        buf,
        commands,
    }
}

/// Ours: scan, touch every argument, advance. Returns (commands, argument bytes).
fn scan_ours(scanner: &mut RequestScanner, buf: &[u8]) -> (usize, usize) {
    let (mut pos, mut commands, mut arg_bytes) = (0, 0, 0);
    while pos < buf.len() {
        let rest = &buf[pos..];
        match scanner.scan(rest, false) {
            Ok(RequestScan::Complete(n)) => {
                for arg in scanner.args(rest).iter() {
                    arg_bytes += black_box(arg).len();
                }
                commands += 1;
                pos += n;
            }
            other => panic!("scanner at {pos}: {other:?}"),
        }
    }
    (commands, arg_bytes)
}

/// Theirs: decode frames until the buffer is consumed. Returns (commands, argument bytes).
fn decode_theirs(buf: &mut BytesMut) -> (usize, usize) {
    let (mut commands, mut arg_bytes) = (0, 0);
    while !buf.is_empty() {
        match decode_bytes_mut(buf) {
            Ok(Some((BytesFrame::Array(args), _, _))) => {
                for arg in &args {
                    if let BytesFrame::BulkString(b) = arg {
                        arg_bytes += black_box(b).len();
                    }
                }
                commands += 1;
            }
            other => panic!("redis-protocol: {other:?}"),
        }
    }
    (commands, arg_bytes)
}

fn new_scanner() -> RequestScanner {
    RequestScanner::new(ScanLimits::default())
}

/// Both sides must see the same commands before they are timed.
fn check_agreement(w: &Workload) {
    let ours = scan_ours(&mut new_scanner(), &w.buf);
    let theirs = decode_theirs(&mut BytesMut::from(&w.buf[..]));
    assert_eq!(ours, theirs, "{}: ours vs redis-protocol", w.name);
    assert_eq!(ours.0, w.commands, "{}", w.name);
}

fn bench_workload(c: &mut Criterion, w: &Workload) {
    let mut group = c.benchmark_group(w.name);
    group.throughput(Throughput::Bytes(w.buf.len() as u64));
    group.bench_function("portcullis", |b| {
        let mut scanner = new_scanner();
        b.iter(|| scan_ours(&mut scanner, black_box(&w.buf)));
    });
    group.bench_function("redis-protocol", |b| {
        // The clone is setup; the buffer is returned so its drop is not timed either.
        b.iter_batched(
            || BytesMut::from(&w.buf[..]),
            |mut buf| (decode_theirs(&mut buf), buf),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

/// Median of `SUMMARY_RUNS` timings.
fn median(mut run: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..SUMMARY_RUNS).map(|_| run()).collect();
    times.sort();
    times[SUMMARY_RUNS / 2]
}

/// Prints bytes/s, commands/s and ours/theirs for each workload, from our own timing.
fn summary(workloads: &[Workload]) {
    eprintln!("\nSummary (median of {SUMMARY_RUNS} runs each; GiB/s as criterion prints them):");
    for w in workloads {
        let mut scanner = new_scanner();
        let ours = median(|| {
            let start = Instant::now();
            black_box(scan_ours(&mut scanner, black_box(&w.buf)));
            start.elapsed()
        });
        let theirs = median(|| {
            let mut buf = BytesMut::from(&w.buf[..]);
            let start = Instant::now();
            let found = decode_theirs(&mut buf);
            let elapsed = start.elapsed();
            black_box((found, buf));
            elapsed
        });
        let rate = |d: Duration| {
            let secs = d.as_secs_f64();
            let gib_s = w.buf.len() as f64 / secs / f64::from(1u32 << 30);
            format!(
                "{d:>10.2?}  {gib_s:6.2} GiB/s  {:>7.2} M commands/s",
                w.commands as f64 / secs / 1e6
            )
        };
        eprintln!(
            "  {} ({} commands, {} bytes):",
            w.name,
            w.commands,
            w.buf.len()
        );
        eprintln!("    portcullis      {}", rate(ours));
        eprintln!("    redis-protocol  {}", rate(theirs));
        eprintln!(
            "    ours/theirs throughput: {:.2}x",
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    }
}

fn main() {
    let workloads = [get_set_16b(), set_16kib()];
    workloads.iter().for_each(check_agreement);
    let mut criterion = Criterion::default().configure_from_args();
    for w in &workloads {
        bench_workload(&mut criterion, w);
    }
    criterion.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` runs each benchmark once, no summary.
    if std::env::args().any(|a| a == "--bench") {
        summary(&workloads);
    }
}
