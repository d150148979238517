//! Property tests for the client-side request scanner (`portcullis::resp::request`).
//!
//! Streams of random valid commands (multibulk with binary, empty and 100 KiB arguments; inline
//! lines with words, quotes and escapes; empty commands and blank lines) must scan to exactly
//! the generated commands, whole or split into reads of any size, and multibulk commands must
//! decode the same with `redis_protocol` 6, the reference RESP2 decoder. Arbitrary bytes never
//! panic and scan the same whole and split; oversize inputs give exactly the expected
//! [`ProtocolError`]; a huge declared command does not allocate what it declares.

use portcullis::resp::request::{
    ProtocolError, RequestScan, RequestScanner, ScanLimits, UNAUTH_MAX_BULK, UNAUTH_MAX_MULTIBULK,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::RngSeed;
use redis_protocol::resp2::{decode::decode, types::OwnedFrame};

/// A complete command: its length in bytes and its arguments.
type Found = (usize, Vec<Vec<u8>>);

/// What a scan of a stream found: each command's length and arguments, then how it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    commands: Vec<Found>,
    /// `Ok(n)`: the stream ends with `n` bytes of an incomplete command; `Err`: the scan failed.
    end: Result<usize, ProtocolError>,
}

/// Scans `stream` arriving as reads of the sizes in `reads` (cycled; a 0 rescans the same
/// bytes), keeping the buffer start fixed while incomplete and dropping each complete command.
fn feed(stream: &[u8], reads: &[usize], limits: ScanLimits, unauth: bool) -> Outcome {
    let mut scanner = RequestScanner::new(limits);
    let (mut buf, mut commands) = (Vec::new(), Vec::new());
    let (mut arrived, mut turn) = (0, 0);
    loop {
        loop {
            match scanner.scan(&buf, unauth) {
                Ok(RequestScan::Complete(n)) => {
                    assert!(n > 0 && n <= buf.len(), "Complete({n}) of {}", buf.len());
                    let args = scanner.args(&buf);
                    let list: Vec<Vec<u8>> = args.iter().map(<[u8]>::to_vec).collect();
                    assert_eq!((args.len(), args.is_empty()), (list.len(), list.is_empty()));
                    for (i, arg) in list.iter().enumerate() {
                        assert_eq!(args.get(i), Some(arg.as_slice()));
                    }
                    assert_eq!(args.get(list.len()), None);
                    commands.push((n, list));
                    buf.drain(..n);
                }
                Ok(RequestScan::Incomplete) => break,
                Err(error) => {
                    let reply = error.reply();
                    assert!(
                        reply.starts_with(b"-ERR Protocol error: ") && reply.ends_with(b"\r\n")
                    );
                    assert!(!reply[..reply.len() - 2]
                        .iter()
                        .any(|b| matches!(b, b'\r' | b'\n')));
                    return Outcome {
                        commands,
                        end: Err(error),
                    };
                }
            }
        }
        if arrived == stream.len() {
            return Outcome {
                commands,
                end: Ok(buf.len()),
            };
        }
        let next = (arrived + reads[turn % reads.len()]).min(stream.len());
        turn += 1;
        buf.extend_from_slice(&stream[arrived..next]);
        arrived = next;
    }
}

/// [`feed`] of the whole stream in one read.
fn whole(stream: &[u8], limits: ScanLimits, unauth: bool) -> Outcome {
    feed(stream, &[stream.len()], limits, unauth)
}

/// One generated command.
#[derive(Debug, Clone)]
enum Command {
    /// `*<n>` and its bulk arguments (`*0` when empty).
    Multibulk(Vec<Vec<u8>>),
    /// `*-1`: a null array, which Redis ignores like `*0`.
    NullArray,
    /// One inline line, its line end included, and the arguments Redis decodes from it.
    Inline { line: Vec<u8>, args: Vec<Vec<u8>> },
}

impl Command {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Multibulk(args) => {
                out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
                for arg in args {
                    out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                    out.extend_from_slice(arg);
                    out.extend_from_slice(b"\r\n");
                }
            }
            Command::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Command::Inline { line, .. } => out.extend_from_slice(line),
        }
    }

    fn args(&self) -> &[Vec<u8>] {
        match self {
            Command::Multibulk(args) | Command::Inline { args, .. } => args,
            Command::NullArray => &[],
        }
    }
}

/// The stream of `commands` and what a scan of it must find.
fn encode(commands: &[Command]) -> (Vec<u8>, Vec<Found>) {
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for command in commands {
        let start = stream.len();
        command.encode(&mut stream);
        expected.push((stream.len() - start, command.args().to_vec()));
    }
    (stream, expected)
}

/// A pseudo-random argument of `len` bytes (cheaper than a 100 KiB proptest vector), with a
/// `\r\n` every 4093 bytes.
fn big_arg(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut arg: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for i in (0..len.saturating_sub(1)).step_by(4093) {
        arg[i..i + 2].copy_from_slice(b"\r\n");
    }
    arg
}

/// A short binary bulk argument: random, empty, holding `\r\n`, or looking like RESP.
fn small_arg() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        12 => vec(any::<u8>(), 0..24),
        2 => Just(Vec::new()),
        2 => (vec(any::<u8>(), 0..8), vec(any::<u8>(), 0..8))
            .prop_map(|(a, b)| [&a[..], b"\r\n", &b[..]].concat()),
        2 => vec(select(&b"*$\r\n-0123456789"[..]), 1..16),
    ]
    .boxed()
}

/// A bulk argument, now and then a 100 KiB one.
fn any_arg() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        80 => small_arg(),
        1 => (any::<u64>(), 0usize..16).prop_map(|(seed, extra)| big_arg(seed, 100 * 1024 + extra)),
    ]
    .boxed()
}

/// `byte`, or `instead` when it is one of `special`.
fn avoid(byte: u8, special: &[u8], instead: u8) -> u8 {
    if special.contains(&byte) {
        instead
    } else {
        byte
    }
}

/// An unquoted inline word: raw bytes and decoded bytes are the same.
fn word() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    vec(any::<u8>(), 1..12).prop_map(|w| {
        let w: Vec<u8> = w
            .into_iter()
            .map(|b| avoid(b, b"\0 \t\r\n\x0b\x0c\"'*", b'w'))
            .collect();
        (w.clone(), w)
    })
}

/// One piece of a double-quoted string: a plain byte or an escape, raw and decoded.
fn dq_piece() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let named: &[(&[u8], u8)] = &[
        (b"\\n", b'\n'),
        (b"\\r", b'\r'),
        (b"\\t", b'\t'),
        (b"\\b", 8),
        (b"\\a", 7),
        (b"\\\"", b'"'),
        (b"\\\\", b'\\'),
    ];
    prop_oneof![
        6 => any::<u8>().prop_map(|b| avoid(b, b"\0\n\"\\", b'q')).prop_map(|b| (vec![b], vec![b])),
        2 => select(named).prop_map(|(raw, b)| (raw.to_vec(), vec![b])),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(b, upper)| {
            let raw = if upper { format!("\\x{b:02X}") } else { format!("\\x{b:02x}") };
            (raw.into_bytes(), vec![b])
        }),
        1 => any::<u8>().prop_map(|c| avoid(c, b"\0\nxnrtba", b'z')).prop_map(|c| (vec![b'\\', c], vec![c])),
    ]
}

/// One piece of a single-quoted string: a plain byte, `\'`, or a backslash kept as is.
fn sq_piece() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    prop_oneof![
        6 => any::<u8>().prop_map(|b| avoid(b, b"\0\n'\\", b's')).prop_map(|b| (vec![b], vec![b])),
        1 => Just((b"\\'".to_vec(), b"'".to_vec())),
        1 => any::<u8>().prop_map(|c| avoid(c, b"\0\n'\\", b'k')).prop_map(|c| (vec![b'\\', c], vec![b'\\', c])),
    ]
}

/// A quoted inline argument built from `pieces`.
fn quoted(
    quote: u8,
    pieces: impl Strategy<Value = (Vec<u8>, Vec<u8>)>,
) -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    vec(pieces, 0..8).prop_map(move |pieces| {
        let mut raw = vec![quote];
        let mut decoded = Vec::new();
        for (r, d) in pieces {
            raw.extend(r);
            decoded.extend(d);
        }
        raw.push(quote);
        (raw, decoded)
    })
}

/// An inline command (possibly a blank line): optional indent, arguments separated by spaces
/// and tabs, optional trailing blanks, `\r\n` or `\n`.
fn inline_command() -> impl Strategy<Value = Command> {
    let token =
        prop_oneof![3 => word(), 1 => quoted(b'"', dq_piece()), 1 => quoted(b'\'', sq_piece())];
    let blanks = vec(select(&b" \t"[..]), 0..3);
    (0usize..3, vec((token, blanks), 0..6), any::<bool>()).prop_map(|(indent, tokens, crlf)| {
        let mut line = vec![b' '; indent];
        let mut args = Vec::new();
        let count = tokens.len();
        for (i, ((raw, decoded), mut blanks)) in tokens.into_iter().enumerate() {
            if blanks.is_empty() && i + 1 < count {
                blanks.push(b' ');
            }
            line.extend(raw);
            line.extend(blanks);
            args.push(decoded);
        }
        line.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        Command::Inline { line, args }
    })
}

/// Any valid command, with bulk arguments drawn from `arg`.
fn command(arg: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Command> {
    prop_oneof![
        6 => prop_oneof![9 => vec(arg.clone(), 1..6), 1 => vec(arg, 9..14)].prop_map(Command::Multibulk),
        1 => Just(Command::Multibulk(Vec::new())),
        1 => Just(Command::NullArray),
        4 => inline_command(),
    ]
}

/// Read sizes: one byte, tiny with rescans (0), small, or large.
fn reads() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1]),
        vec(0usize..8, 1..16),
        vec(1usize..64, 1..16),
        vec(1usize..8192, 1..8),
    ]
    .prop_map(|mut reads| {
        if reads.iter().all(|&n| n == 0) {
            reads.push(1);
        }
        reads
    })
}

/// Random bytes, or random concatenations of RESP-ish fragments.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    let fragments: &[&[u8]] = &[
        b"*", b"$", b"\r\n", b"\r", b"\n", b"0", b"1", b"3", b"-1", b"12", b"\"", b"'", b"\\",
        b"\\x4", b" ", b"a", b"\0", b"*1\r\n", b"*2\r\n", b"$3\r\n", b"$0\r\n", b"GET", b"*-1\r\n",
    ];
    prop_oneof![
        vec(any::<u8>(), 0..256),
        vec(select(fragments), 0..64).prop_map(|f| f.concat()),
    ]
}

/// What an unauthenticated scan of `commands` must find: Redis's pre-auth limits cut it short.
fn expected_unauthenticated(commands: &[Command], expected: &[Found]) -> Outcome {
    let mut found = Vec::new();
    for (command, exp) in commands.iter().zip(expected) {
        if let Command::Multibulk(args) = command {
            let error = if args.len() as i64 > UNAUTH_MAX_MULTIBULK {
                Some(ProtocolError::UnauthenticatedMultibulkLength)
            } else if args.iter().any(|a| a.len() as i64 > UNAUTH_MAX_BULK) {
                Some(ProtocolError::UnauthenticatedBulkLength)
            } else {
                None
            };
            if let Some(error) = error {
                return Outcome {
                    commands: found,
                    end: Err(error),
                };
            }
        }
        found.push(exp.clone());
    }
    Outcome {
        commands: found,
        end: Ok(0),
    }
}

/// Tight limits for the oversize cases.
const SMALL: ScanLimits = ScanLimits {
    max_bulk_len: 64,
    max_multibulk_len: 8,
    max_inline_len: 32,
    max_query_buffer: 256,
};

/// Valid commands under [`SMALL`] and before authentication, with their arguments.
const SMALL_VALID: &[(&[u8], &[&[u8]])] = &[
    (b"*1\r\n$4\r\nPING\r\n", &[b"PING"]),
    (b"PING\r\n", &[b"PING"]),
    (b"*0\r\n", &[]),
    (b"\r\n", &[]),
    (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", &[b"GET", b"k"]),
];

/// An input near a limit: the limits, whether unauthenticated, the bytes, and how the scan
/// must end (`Ok(n)`: incomplete with `n` bytes held; `Err`: that error).
type LimitCase = (ScanLimits, bool, Vec<u8>, Result<usize, ProtocolError>);

/// `*<count>\r\n` (count 1..=7) then fewer than `count` valid one-byte arguments.
fn open_multibulk() -> impl Strategy<Value = Vec<u8>> + Clone {
    (0usize..3, 1usize..5).prop_map(|(done, more)| {
        let mut s = format!("*{}\r\n", done + more).into_bytes();
        (0..done).for_each(|_| s.extend_from_slice(b"$1\r\na\r\n"));
        s
    })
}

/// The first `cut` bytes of `*8` with eight 60-byte arguments (540 bytes in all).
fn cut_multibulk() -> impl Strategy<Value = (Vec<u8>, usize)> {
    vec(any::<u8>(), 8 * 60).prop_map(|payload| {
        let mut s = b"*8\r\n".to_vec();
        for chunk in payload.chunks(60) {
            s.extend_from_slice(b"$60\r\n");
            s.extend_from_slice(chunk);
            s.extend_from_slice(b"\r\n");
        }
        let len = s.len();
        (s, len)
    })
}

/// An inline line of `len` bytes without a newline.
fn open_inline(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), len).prop_map(|mut line| {
        line.iter_mut().for_each(|b| *b = avoid(*b, b"\n", b'n'));
        line[0] = avoid(line[0], b"*", b'x');
        line
    })
}

/// An input breaking one limit, and the error it must give.
fn over_limit() -> impl Strategy<Value = LimitCase> {
    use ProtocolError::*;
    let dflt = ScanLimits::default();
    let bad_count = prop_oneof![
        (9u64..).prop_map(|n| n.to_string()),
        "-?0[0-9]{1,5}|\\+[0-9]{1,3}|[1-9][0-9]{19,23}|[a-z ]{0,8}|-",
    ];
    let bad_len = prop_oneof![
        (65u64..).prop_map(|n| n.to_string()),
        "-[1-9][0-9]{0,5}|0[0-9]{1,3}|\\+1|[1-9][0-9]{19,23}|[a-z ]{0,4}",
    ];
    let args = open_multibulk();
    let case = |limits, unauth, input: Vec<u8>, error| (limits, unauth, input, Err(error));
    prop_oneof![
        bad_count.prop_map(move |n| case(SMALL, false, format!("*{n}\r\n").into_bytes(), InvalidMultibulkLength)),
        (11u64..=1 << 20).prop_map(move |n| case(dflt, true, format!("*{n}\r\n").into_bytes(), UnauthenticatedMultibulkLength)),
        ((1u64 << 20) + 1..=i32::MAX as u64).prop_map(move |n| case(dflt, true, format!("*{n}\r\n").into_bytes(), InvalidMultibulkLength)),
        "[0-9a-z ]{32,120}".prop_map(move |s| case(SMALL, false, format!("*{s}").into_bytes(), TooBigMbulkCount)),
        (args.clone(), bad_len).prop_map(move |(a, n)| case(SMALL, false, [a, format!("${n}\r\n").into_bytes()].concat(), InvalidBulkLength)),
        (16385u64..=512 << 20).prop_map(move |n| case(dflt, true, format!("*2\r\n${n}\r\n").into_bytes(), UnauthenticatedBulkLength)),
        ((512u64 << 20) + 1..).prop_map(move |n| case(dflt, true, format!("*2\r\n${n}\r\n").into_bytes(), InvalidBulkLength)),
        (args.clone(), "[0-9a-z ]{32,120}").prop_map(move |(a, s)| case(SMALL, false, [a, format!("${s}").into_bytes()].concat(), TooBigBulkCount)),
        (args, any::<u8>().prop_map(|b| avoid(b, b"$\0", b'%'))).prop_map(move |(a, b)| case(SMALL, false, [a, vec![b], b"3\r\nabc\r\n".to_vec()].concat(), ExpectedDollar(b))),
        open_inline(33..200).prop_map(move |line| case(SMALL, false, line, TooBigInline)),
        "[a-z]{1,5}[ \t]+(\"[a-z ]{0,5}|'[a-z ]{0,5}|\"[a-z]{0,3}\\\\|\"[a-z ]{0,3}\"[a-z'\"]{1,3}|'[a-z ]{0,3}'[a-z'\"]{1,3})(\r\n|\n)"
            .prop_map(move |line| case(dflt, false, line.into_bytes(), UnbalancedQuotes)),
        (cut_multibulk(), 257usize..540).prop_map(move |((mut s, len), cut)| {
            s.truncate(cut.min(len - 1));
            case(SMALL, false, s, QueryBufferFull)
        }),
    ]
}

/// An input exactly at (or under) one limit: accepted, and still incomplete.
fn at_limit() -> impl Strategy<Value = LimitCase> {
    let dflt = ScanLimits::default();
    let args = open_multibulk();
    let case = |limits, unauth, input: Vec<u8>| {
        let held = input.len();
        (limits, unauth, input, Ok(held))
    };
    prop_oneof![
        (1u64..=8).prop_map(move |n| case(SMALL, false, format!("*{n}\r\n").into_bytes())),
        (1u64..=10).prop_map(move |n| case(dflt, true, format!("*{n}\r\n").into_bytes())),
        "[0-9a-z ]{0,31}".prop_map(move |s| case(SMALL, false, format!("*{s}").into_bytes())),
        (args.clone(), 0u64..=64).prop_map(move |(a, n)| case(
            SMALL,
            false,
            [a, format!("${n}\r\n").into_bytes()].concat()
        )),
        (1u64..=16384).prop_map(move |n| case(dflt, true, format!("*2\r\n${n}\r\n").into_bytes())),
        (args, "[0-9a-z ]{0,31}").prop_map(move |(a, s)| case(
            SMALL,
            false,
            [a, format!("${s}").into_bytes()].concat()
        )),
        open_inline(1..33).prop_map(move |line| case(SMALL, false, line)),
        (cut_multibulk(), 4usize..=256).prop_map(move |((mut s, _), cut)| {
            s.truncate(cut);
            case(SMALL, false, s)
        }),
    ]
}

/// 512 cases by default; a fixed seed unless `PROPTEST_RNG_SEED` is set; no regression files.
fn config() -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: std::env::var_os("PROPTEST_CASES").map_or(512, |_| base.cases),
        failure_persistence: None,
        rng_seed: match base.rng_seed {
            RngSeed::Random => RngSeed::Fixed(0x706f_7274_6375_6c6c),
            fixed => fixed,
        },
        ..base
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_streams_scan_to_the_generated_commands(
        commands in vec(command(any_arg()), 0..12),
        reads in reads(),
    ) {
        let (stream, expected) = encode(&commands);
        let dflt = ScanLimits::default();
        let found = whole(&stream, dflt, false);
        prop_assert_eq!(&found, &Outcome { commands: expected.clone(), end: Ok(0) });
        prop_assert_eq!(&feed(&stream, &reads, dflt, false), &found);
        if stream.len() <= 8192 {
            prop_assert_eq!(&feed(&stream, &[1], dflt, false), &found);
        }
        let unauth = expected_unauthenticated(&commands, &expected);
        prop_assert_eq!(&whole(&stream, dflt, true), &unauth);
        prop_assert_eq!(&feed(&stream, &reads, dflt, true), &unauth);
    }

    #[test]
    fn multibulk_commands_match_redis_protocol(commands in vec(command(any_arg()), 1..12)) {
        let (stream, expected) = encode(&commands);
        let mut at = 0;
        for (command, (len, args)) in commands.iter().zip(&expected) {
            if !matches!(command, Command::Inline { .. }) {
                let (frame, consumed) = decode(&stream[at..]).expect("reference error").expect("reference incomplete");
                let reference: Vec<Vec<u8>> = match frame {
                    OwnedFrame::Array(items) => items.into_iter().map(|f| match f {
                        OwnedFrame::BulkString(b) => b,
                        other => panic!("reference decoded {other:?}"),
                    }).collect(),
                    OwnedFrame::Null => Vec::new(),
                    other => panic!("reference decoded {other:?}"),
                };
                prop_assert_eq!(consumed, *len);
                prop_assert_eq!(&reference, args);
            }
            at += len;
        }
        prop_assert_eq!(whole(&stream, ScanLimits::default(), false).commands, expected);
    }

    #[test]
    fn arbitrary_bytes_scan_the_same_whole_and_split(bytes in noise(), reads in reads(), unauth: bool) {
        let dflt = ScanLimits::default();
        let found = whole(&bytes, dflt, unauth);
        prop_assert_eq!(&feed(&bytes, &reads, dflt, unauth), &found);
        prop_assert_eq!(&feed(&bytes, &[1], dflt, unauth), &found);
    }

    #[test]
    fn arbitrary_bytes_after_valid_commands(
        commands in vec(command(small_arg()), 0..6),
        tail in noise(),
        reads in reads(),
    ) {
        let (mut stream, expected) = encode(&commands);
        stream.extend_from_slice(&tail);
        let dflt = ScanLimits::default();
        let found = whole(&stream, dflt, false);
        prop_assert!(found.commands.starts_with(&expected), "{:?} vs {:?}", found, expected);
        prop_assert_eq!(&feed(&stream, &reads, dflt, false), &found);
        prop_assert_eq!(&feed(&stream, &[1], dflt, false), &found);
    }

    #[test]
    fn inputs_at_and_over_the_limits_end_as_expected(
        (limits, unauth, input, end) in prop_oneof![over_limit(), at_limit()],
        prefix in vec(select(SMALL_VALID), 0..3),
        reads in reads(),
    ) {
        let mut stream: Vec<u8> = prefix.iter().flat_map(|(raw, _)| raw.iter().copied()).collect();
        stream.extend_from_slice(&input);
        let want = Outcome {
            commands: prefix.iter().map(|(raw, args)| (raw.len(), args.iter().map(|a| a.to_vec()).collect())).collect(),
            end,
        };
        prop_assert_eq!(&whole(&stream, limits, unauth), &want);
        prop_assert_eq!(&feed(&stream, &reads, limits, unauth), &want);
    }
}

/// Environment variable that makes [`rss_probe`] run (in a child process of its own).
const RSS_PROBE: &str = "PORTCULLIS_RSS_PROBE";

/// A field of `/proc/self/status`, in KiB.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).expect(field);
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect(field)
}

/// Declares `*1048576` then `$536870912` and sends a few KiB: memory must stay flat. Runs in
/// a child process so other tests' allocations do not blur the numbers.
#[test]
fn declared_sizes_are_not_allocated() {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "request_scanner::rss_probe",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RSS_PROBE, "1")
        .output()
        .expect("run the probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("rss probe:"),
        "the probe did not run: {stdout}"
    );
}

/// The body of [`declared_sizes_are_not_allocated`]; a no-op unless [`RSS_PROBE`] is set.
#[test]
fn rss_probe() {
    if std::env::var_os(RSS_PROBE).is_none() {
        return;
    }
    let mut scanner = RequestScanner::new(ScanLimits::default());
    let mut buf = Vec::with_capacity(8192);
    buf.extend_from_slice(b"*1048576\r\n$536870912\r\n");
    let (rss, size) = (proc_status_kib("VmRSS:"), proc_status_kib("VmSize:"));
    assert_eq!(scanner.scan(&buf, false), Ok(RequestScan::Incomplete));
    for i in 0..4096u32 {
        buf.push(i as u8);
        assert_eq!(scanner.scan(&buf, false), Ok(RequestScan::Incomplete));
    }
    let rss_growth = proc_status_kib("VmRSS:").saturating_sub(rss);
    let size_growth = proc_status_kib("VmSize:").saturating_sub(size);
    println!("rss probe: VmRSS +{rss_growth} KiB, VmSize +{size_growth} KiB");
    assert!(rss_growth < 16 * 1024, "VmRSS grew {rss_growth} KiB");
    // A reservation by the declared sizes (16 MiB of ranges, or 512 MiB) would show here.
    assert!(size_growth < 8 * 1024, "VmSize grew {size_growth} KiB");
}
