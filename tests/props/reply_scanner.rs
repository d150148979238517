//! Property tests for the upstream-side reply scanner (`portcullis::resp::reply`), with
//! `redis_protocol` 6 as the reference decoder.
//!
//! Random RESP2 and RESP3 replies are concatenated into a stream; the scanner must find the
//! reference decoder's frame boundaries on the whole stream and on any split of it into reads,
//! also when the caller forwards and discards validated prefixes. Random bytes must never panic
//! and must give the same outcome whole and split.

use portcullis::resp::reply::{ReplyError, ReplyScan, ReplyScanner};
use proptest::prelude::*;
use redis_protocol::resp3::types::{
    FrameMap, FrameSet, OwnedFrame, Resp3Frame, VerbatimStringFormat,
};

/// What a scan of a stream found: each frame's end offset and type, then how it stopped.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<(usize, Option<u8>)>,
    /// `Ok(n)`: the last `n` bytes are an incomplete frame; `Err`: the scan failed.
    end: Result<usize, ReplyError>,
}

/// Scan the whole stream in one buffer.
fn scan_whole(stream: &[u8]) -> Outcome {
    scan_split(stream, &[stream.len().max(1)], &[0])
}

/// Scan the stream as reads of the sizes in `reads` (cycled). After each incomplete scan the
/// caller "forwards" a fraction `discards[i] / 255` of the validated prefix and drops it.
fn scan_split(stream: &[u8], reads: &[usize], discards: &[u8]) -> Outcome {
    let mut scanner = ReplyScanner::new();
    let mut buf: Vec<u8> = Vec::new();
    // Absolute offset of buf[0] in the stream.
    let mut base = 0;
    let mut arrived = 0;
    let mut frames = Vec::new();
    let mut turn = 0;
    while arrived < stream.len() {
        let read = reads[turn % reads.len()].max(1);
        let next = (arrived + read).min(stream.len());
        buf.extend_from_slice(&stream[arrived..next]);
        arrived = next;
        loop {
            match scanner.scan(&buf) {
                Ok(ReplyScan::Complete { len }) => {
                    assert!(len > 0 && len <= buf.len());
                    base += len;
                    frames.push((base, scanner.frame_type()));
                    buf.drain(..len);
                }
                Ok(ReplyScan::Incomplete) => {
                    let scanned = scanner.scanned();
                    assert!(scanned <= buf.len(), "{scanned} > {}", buf.len());
                    let fraction = usize::from(discards[turn % discards.len()]);
                    let forward = scanned * fraction / 255;
                    scanner.discard_prefix(forward);
                    buf.drain(..forward);
                    base += forward;
                    break;
                }
                Err(error) => {
                    return Outcome {
                        frames,
                        end: Err(error),
                    }
                }
            }
        }
        turn += 1;
    }
    // Frames already completed keep their absolute ends; the tail is what is left unframed.
    let framed_end = frames.last().map_or(0, |&(end, _)| end);
    Outcome {
        frames,
        end: Ok(stream.len() - framed_end),
    }
}

/// Frame ends found by a reference decoder on a stream of valid frames.
fn reference_ends(
    stream: &[u8],
    decode: impl Fn(&[u8]) -> Result<Option<usize>, String>,
) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        match decode(&stream[at..]) {
            Ok(Some(len)) => at += len,
            other => panic!("reference decoder at {at}: {other:?}"),
        }
        ends.push(at);
    }
    ends
}

fn resp2_reference(buf: &[u8]) -> Result<Option<usize>, String> {
    redis_protocol::resp2::decode::decode_range(buf)
        .map(|found| found.map(|(_, len)| len))
        .map_err(|e| format!("{e:?}"))
}

fn resp3_reference(buf: &[u8]) -> Result<Option<usize>, String> {
    redis_protocol::resp3::decode::complete::decode_range(buf)
        .map(|found| found.map(|(_, len)| len))
        .map_err(|e| format!("{e:?}"))
}

/// Check the scanner against the reference on `stream`, whole and split.
fn check_stream(
    stream: &[u8],
    types: &[u8],
    reference: &[usize],
    reads: &[usize],
    discards: &[u8],
) -> Result<(), TestCaseError> {
    let expected: Vec<_> = reference
        .iter()
        .zip(types)
        .map(|(&end, &ty)| (end, Some(ty)))
        .collect();
    let whole = scan_whole(stream);
    prop_assert_eq!(&whole.frames, &expected);
    prop_assert_eq!(whole.end, Ok(0));
    prop_assert_eq!(scan_split(stream, reads, discards), scan_whole(stream));
    prop_assert_eq!(scan_split(stream, reads, &[0]), scan_whole(stream));
    if stream.len() <= 20_000 {
        prop_assert_eq!(scan_split(stream, &[1], discards), scan_whole(stream));
    }
    // A stream cut short ends incomplete after the frames that fit.
    let cut = stream.len() / 2;
    let short = scan_split(&stream[..cut], reads, discards);
    let fitting: Vec<_> = expected
        .iter()
        .copied()
        .filter(|&(e, _)| e <= cut)
        .collect();
    prop_assert_eq!(short.frames, fitting);
    Ok(())
}

/// Text for simple strings and errors: printable bytes, lone CR and LF, never CRLF.
fn line_text() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\r'), 1 => Just(b'\n')],
        0..12,
    )
    .prop_filter("no CRLF inside a line", |text| {
        !text.windows(2).any(|pair| pair == b"\r\n")
    })
}

/// Blob payloads: mostly small, sometimes empty, now and then large.
fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..24),
        1 => Just(Vec::new()),
        1 => (any::<u8>(), 1_000usize..70_000).prop_map(|(byte, len)| vec![byte; len]),
    ]
}

/// A RESP2 reply, encoded by hand (the `redis_protocol` encoder has no `*-1`); the
/// reference decoder checks every stream built from it.
#[derive(Debug, Clone)]
enum Resp2 {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Vec<u8>),
    NullBulk,
    NullArray,
    Array(Vec<Resp2>),
}

impl Resp2 {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Simple(text) => line(out, b'+', text),
            Self::Error(text) => line(out, b'-', text),
            Self::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Self::Bulk(data) => {
                line(out, b'$', data.len().to_string().as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Self::NullBulk => out.extend_from_slice(b"$-1\r\n"),
            Self::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Self::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                items.iter().for_each(|item| item.encode(out));
            }
        }
    }
}

fn line(out: &mut Vec<u8>, ty: u8, content: &[u8]) {
    out.push(ty);
    out.extend_from_slice(content);
    out.extend_from_slice(b"\r\n");
}

fn resp2() -> impl Strategy<Value = Resp2> {
    let leaf = prop_oneof![
        line_text().prop_map(Resp2::Simple),
        line_text().prop_map(Resp2::Error),
        any::<i64>().prop_map(Resp2::Integer),
        blob().prop_map(Resp2::Bulk),
        Just(Resp2::NullBulk),
        Just(Resp2::NullArray),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(Resp2::Array)
    })
}

/// RESP3 frames that can be map keys and set members in `redis_protocol`.
fn resp3_key() -> impl Strategy<Value = OwnedFrame> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12).prop_map(|data| OwnedFrame::BlobString {
            data,
            attributes: None
        }),
        line_text().prop_map(|data| OwnedFrame::SimpleString {
            data,
            attributes: None
        }),
        any::<i64>().prop_map(|data| OwnedFrame::Number {
            data,
            attributes: None
        }),
        any::<bool>().prop_map(|data| OwnedFrame::Boolean {
            data,
            attributes: None
        }),
    ]
}

fn resp3_leaf() -> impl Strategy<Value = OwnedFrame> {
    let text = "[ -~]{0,12}";
    prop_oneof![
        resp3_key(),
        blob().prop_map(|data| OwnedFrame::BlobString {
            data,
            attributes: None
        }),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(|data| OwnedFrame::BlobError {
            data,
            attributes: None
        }),
        text.prop_map(|data| OwnedFrame::SimpleError {
            data,
            attributes: None
        }),
        Just(OwnedFrame::Null),
        prop_oneof![
            any::<f64>().prop_filter("NaN is never equal", |x| !x.is_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
        ]
        .prop_map(|data| OwnedFrame::Double {
            data,
            attributes: None
        }),
        "-?[1-9][0-9]{0,60}".prop_map(|digits| OwnedFrame::BigNumber {
            data: digits.into_bytes(),
            attributes: None
        }),
        (
            prop::collection::vec(any::<u8>(), 0..24),
            prop_oneof![
                Just(VerbatimStringFormat::Text),
                Just(VerbatimStringFormat::Markdown)
            ]
        )
            .prop_map(|(data, format)| OwnedFrame::VerbatimString {
                data,
                format,
                attributes: None
            }),
    ]
}

/// Maybe put an attribute (0 to 2 pairs) in front of a frame.
fn with_attributes(frame: impl Strategy<Value = OwnedFrame>) -> impl Strategy<Value = OwnedFrame> {
    (
        frame,
        prop::option::weighted(
            0.2,
            prop::collection::vec((resp3_key(), resp3_leaf()), 0..3),
        ),
    )
        .prop_map(|(mut frame, attributes)| {
            if let Some(pairs) = attributes {
                // Null cannot carry attributes in redis_protocol.
                let _ = frame.add_attributes(pairs.into_iter().collect());
            }
            frame
        })
}

/// A RESP3 reply as Redis sends one: pushes only at the top level (a push that
/// Redis writes while building another reply stands between its elements, never
/// as one of them: see `pushes_between_elements_are_not_elements`).
fn resp3() -> impl Strategy<Value = OwnedFrame> {
    prop_oneof![
        4 => resp3_nested(),
        1 => prop::collection::vec(resp3_nested(), 0..6).prop_map(|data| OwnedFrame::Push {
            data,
            attributes: None
        }),
    ]
}

fn resp3_nested() -> impl Strategy<Value = OwnedFrame> {
    with_attributes(resp3_leaf()).prop_recursive(4, 48, 6, |inner| {
        with_attributes(prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|data| OwnedFrame::Array {
                data,
                attributes: None
            }),
            prop::collection::vec((resp3_key(), inner), 0..4).prop_map(|pairs| {
                OwnedFrame::Map {
                    data: pairs.into_iter().collect::<FrameMap<_, _>>(),
                    attributes: None,
                }
            }),
            prop::collection::vec(resp3_key(), 0..6).prop_map(|members| OwnedFrame::Set {
                data: members.into_iter().collect::<FrameSet<_>>(),
                attributes: None,
            }),
        ])
    })
}

fn encode_resp3(frame: &OwnedFrame, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + frame.encode_len(false), 0);
    let written = redis_protocol::resp3::encode::complete::encode(&mut out[start..], frame, false)
        .expect("redis_protocol encodes its own frames");
    out.truncate(start + written);
}

/// Sizes of reads and fractions forwarded, for the split runs.
fn splits() -> impl Strategy<Value = (Vec<usize>, Vec<u8>)> {
    (
        prop::collection::vec(
            prop_oneof![4 => 1usize..8, 2 => 1usize..64, 1 => 1usize..5000],
            1..16,
        ),
        prop::collection::vec(any::<u8>(), 1..8),
    )
}

/// Bytes that look like RESP often enough to reach deep states.
fn resp_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"+-:$*_,#(!=%~>|;.?\r\n0123456789tf".to_vec()),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn resp2_boundaries_match_reference(
        replies in prop::collection::vec(resp2(), 1..6),
        (reads, discards) in splits(),
    ) {
        let mut stream = Vec::new();
        let mut types = Vec::new();
        for reply in &replies {
            let start = stream.len();
            reply.encode(&mut stream);
            types.push(stream[start]);
        }
        let reference = reference_ends(&stream, resp2_reference);
        check_stream(&stream, &types, &reference, &reads, &discards)?;
    }

    #[test]
    fn resp3_boundaries_match_reference(
        replies in prop::collection::vec(resp3(), 1..6),
        (reads, discards) in splits(),
    ) {
        let mut stream = Vec::new();
        let mut types = Vec::new();
        for reply in &replies {
            encode_resp3(reply, &mut stream);
            types.push(reply.kind().to_byte());
        }
        let reference = reference_ends(&stream, resp3_reference);
        check_stream(&stream, &types, &reference, &reads, &discards)?;
    }

    /// Pushes written between an aggregate's elements (Redis delivering a
    /// message while it builds a reply) pass in place: the aggregate is still
    /// one frame, ending where it ends without them plus their bytes.
    #[test]
    fn pushes_between_elements_are_not_elements(
        elements in prop::collection::vec((resp3_nested(), prop::option::weighted(0.4, resp3_nested())), 1..6),
        tail_push in prop::option::of(resp3_nested()),
        (reads, discards) in splits(),
    ) {
        let push = |inner: &OwnedFrame, out: &mut Vec<u8>| {
            let frame = OwnedFrame::Push { data: vec![inner.clone()], attributes: None };
            encode_resp3(&frame, out);
        };
        let mut stream = format!("*{}\r\n", elements.len()).into_bytes();
        for (element, before) in &elements {
            if let Some(p) = before {
                push(p, &mut stream);
            }
            encode_resp3(element, &mut stream);
        }
        let end = stream.len();
        // A push right after the aggregate is a frame of its own.
        let mut types = vec![b'*'];
        let mut ends = vec![end];
        if let Some(p) = &tail_push {
            push(p, &mut stream);
            types.push(b'>');
            ends.push(stream.len());
        }
        check_stream(&stream, &types, &ends, &reads, &discards)?;
    }

    #[test]
    fn random_bytes_never_panic_and_split_agrees(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..400), resp_like_bytes()],
        (reads, discards) in splits(),
    ) {
        let whole = scan_whole(&bytes);
        prop_assert_eq!(scan_split(&bytes, &reads, &discards), whole);
        prop_assert_eq!(scan_split(&bytes, &[1], &[0]), scan_whole(&bytes));
    }

    #[test]
    fn valid_prefix_then_garbage_agrees(
        reply in resp2(),
        garbage in resp_like_bytes(),
        (reads, discards) in splits(),
    ) {
        let mut stream = Vec::new();
        reply.encode(&mut stream);
        let first = stream.len();
        stream.extend_from_slice(&garbage);
        let whole = scan_whole(&stream);
        prop_assert_eq!(whole.frames.first().map(|&(end, _)| end), Some(first));
        prop_assert_eq!(scan_split(&stream, &reads, &discards), whole);
    }
}

#[test]
fn huge_declared_bulk_is_just_counted() {
    let mut scanner = ReplyScanner::new();
    let head = b"$2000000000\r\n0123456789";
    assert_eq!(scanner.scan(head), Ok(ReplyScan::Incomplete));
    assert_eq!(scanner.frame_type(), Some(b'$'));
    // The payload received so far is validated and may be forwarded.
    assert_eq!(scanner.scanned(), head.len());
    scanner.discard_prefix(head.len());
    assert_eq!(scanner.scan(b"more"), Ok(ReplyScan::Incomplete));
    assert_eq!(scanner.scanned(), 4);
}

#[test]
fn streamed_resp3_is_rejected() {
    for input in [
        &b"$?\r\n;4\r\nabcd\r\n;0\r\n"[..],
        b"*?\r\n:1\r\n.\r\n",
        b"%?\r\n",
    ] {
        assert_eq!(
            ReplyScanner::new().scan(input),
            Err(ReplyError::UnsupportedStreamed)
        );
    }
}
