//! Unit tests: every type, every error, resumption, linear work, no length-sized memory,
//! and pub/sub classification.

use super::*;

/// Scan `buf` in one call with a fresh scanner.
fn scan_once(buf: &[u8]) -> Result<ReplyScan, ReplyError> {
    ReplyScanner::new().scan(buf)
}

/// Assert that `frame` is exactly one complete frame of type `ty`, also when fed one byte
/// at a time, and that no proper prefix is complete.
fn assert_frame(frame: &[u8], ty: u8) {
    let mut whole = ReplyScanner::new();
    let mut with_tail = frame.to_vec();
    with_tail.extend_from_slice(b"+next\r\n");
    assert_eq!(
        whole.scan(&with_tail),
        Ok(ReplyScan::Complete { len: frame.len() }),
        "{:?}",
        String::from_utf8_lossy(frame)
    );
    assert_eq!(whole.frame_type(), Some(ty));
    let mut bytewise = ReplyScanner::new();
    for end in 0..frame.len() {
        assert_eq!(bytewise.scan(&frame[..end]), Ok(ReplyScan::Incomplete));
        assert!(bytewise.scanned() <= end);
    }
    assert_eq!(
        bytewise.scan(frame),
        Ok(ReplyScan::Complete { len: frame.len() })
    );
    assert_eq!(bytewise.frame_type(), Some(ty));
}

#[test]
fn resp2_types() {
    assert_frame(b"+OK\r\n", b'+');
    assert_frame(b"+\r\n", b'+');
    assert_frame(b"-ERR unknown command\r\n", b'-');
    assert_frame(b":0\r\n", b':');
    assert_frame(b":-12345\r\n", b':');
    assert_frame(b"$0\r\n\r\n", b'$');
    assert_frame(b"$5\r\nhello\r\n", b'$');
    assert_frame(b"$4\r\na\r\nb\r\n", b'$');
    assert_frame(b"$-1\r\n", b'$');
    assert_frame(b"*-1\r\n", b'*');
    assert_frame(b"*0\r\n", b'*');
    assert_frame(b"*2\r\n$1\r\na\r\n:1\r\n", b'*');
    assert_frame(b"*2\r\n*1\r\n+a\r\n*0\r\n", b'*');
    assert_frame(b"*3\r\n$-1\r\n*-1\r\n*1\r\n*1\r\n:1\r\n", b'*');
}

#[test]
fn resp3_types() {
    assert_frame(b"_\r\n", b'_');
    assert_frame(b",3.14\r\n", b',');
    assert_frame(b",-inf\r\n", b',');
    assert_frame(b"#t\r\n", b'#');
    assert_frame(b"#f\r\n", b'#');
    assert_frame(b"(3492890328409238509324850943850943825024385\r\n", b'(');
    assert_frame(b"!21\r\nSYNTAX invalid syntax\r\n", b'!');
    assert_frame(b"=15\r\ntxt:Some string\r\n", b'=');
    assert_frame(b"=4\r\ntxt:\r\n", b'=');
    assert_frame(b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", b'%');
    assert_frame(b"%0\r\n", b'%');
    assert_frame(b"~3\r\n+a\r\n+b\r\n#t\r\n", b'~');
    assert_frame(b">3\r\n+message\r\n+ch\r\n+hi\r\n", b'>');
    assert_frame(b"*2\r\n%1\r\n_\r\n~1\r\n,1\r\n>0\r\n:1\r\n", b'*');
}

/// Redis 7.0 writes a pub/sub message to a subscribed RESP3 client while it
/// builds another reply (`PUBLISH` to its own channel inside `EXEC`): the push
/// sits between the aggregate's header and its elements and is not one of them.
#[test]
fn a_push_inside_an_aggregate_is_not_an_element() {
    let exec = b"*2\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n:1\r\n+OK\r\n";
    assert_frame(exec, b'*');
    // Split anywhere, the frame still ends at the same place.
    for cut in 1..exec.len() {
        let mut scanner = ReplyScanner::new();
        assert_eq!(
            scanner.scan(&exec[..cut]),
            Ok(ReplyScan::Incomplete),
            "{cut}"
        );
        assert_eq!(
            scanner.scan(exec),
            Ok(ReplyScan::Complete { len: exec.len() }),
            "{cut}"
        );
    }
    // Pushes nested deeper, empty ones, several in a row, in maps and sets.
    assert_frame(b"*1\r\n>0\r\n>1\r\n+p\r\n:1\r\n", b'*');
    assert_frame(b"%1\r\n>1\r\n+p\r\n+k\r\n>0\r\n+v\r\n", b'%');
    assert_frame(b"*1\r\n~1\r\n>2\r\n>1\r\n+a\r\n+b\r\n+c\r\n+d\r\n", b'*');
    let mut scanner = ReplyScanner::new();
    assert_eq!(
        scanner.scan(b"*1\r\n>1\r\n:1\r\n"),
        Ok(ReplyScan::Incomplete)
    );
}

#[test]
fn line_content_runs_to_first_crlf() {
    assert_frame(b"+a\rb\nc\r\n", b'+');
    assert_frame(b"-\r\r\n", b'-');
    // A CR that is the last byte read so far is re-examined when more arrives.
    let mut scanner = ReplyScanner::new();
    assert_eq!(scanner.scan(b"+ab\r"), Ok(ReplyScan::Incomplete));
    assert_eq!(scanner.scan(b"+ab\rx"), Ok(ReplyScan::Incomplete));
    assert_eq!(
        scanner.scan(b"+ab\rx\r\n"),
        Ok(ReplyScan::Complete { len: 7 })
    );
}

#[test]
fn attributes() {
    // Top level: the attribute is part of the value's frame; the type is the value's.
    assert_frame(b"|1\r\n+key\r\n+val\r\n:5\r\n", b':');
    assert_frame(b"|0\r\n$1\r\nx\r\n", b'$');
    assert_frame(b"|1\r\n+a\r\n|1\r\n+b\r\n+c\r\n+d\r\n*0\r\n", b'*');
    // Inside an aggregate: not an element.
    assert_frame(b"*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n", b'*');
    assert_frame(b"*1\r\n:1\r\n", b'*');
    assert_frame(
        b"%1\r\n|1\r\n+k\r\n*1\r\n+v\r\n+key\r\n|0\r\n*1\r\n|1\r\n+a\r\n+b\r\n+v\r\n",
        b'%',
    );
    let mut scanner = ReplyScanner::new();
    assert_eq!(
        scanner.scan(b"|1\r\n+k\r\n+v\r\n"),
        Ok(ReplyScan::Incomplete)
    );
    assert_eq!(scanner.frame_type(), None);
    assert_eq!(scanner.scanned(), 12);
}

#[test]
fn frames_back_to_back() {
    let stream = b"+OK\r\n$3\r\nfoo\r\n>2\r\n+pubsub\r\n:1\r\n_\r\n";
    let mut scanner = ReplyScanner::new();
    let mut at = 0;
    let mut seen = Vec::new();
    while at < stream.len() {
        match scanner.scan(&stream[at..]) {
            Ok(ReplyScan::Complete { len }) => {
                seen.push((len, scanner.frame_type()));
                at += len;
            }
            other => panic!("{other:?}"),
        }
    }
    let expected = [(5, b'+'), (9, b'$'), (17, b'>'), (3, b'_')];
    let expected: Vec<_> = expected.iter().map(|&(l, t)| (l, Some(t))).collect();
    assert_eq!(seen, expected);
    assert_eq!(scanner.scan(b""), Ok(ReplyScan::Incomplete));
    assert_eq!(scanner.frame_type(), None);
}

#[test]
fn errors() {
    use ReplyError::*;
    let cases: &[(&[u8], ReplyError)] = &[
        (b"@x\r\n", InvalidType(b'@')),
        (b"\r\n", InvalidType(b'\r')),
        (b"H\r\n", InvalidType(b'H')),
        (b"*1\r\nX\r\n", InvalidType(b'X')),
        (b"$?\r\n", UnsupportedStreamed),
        (b"*?\r\n", UnsupportedStreamed),
        (b"%?\r\n", UnsupportedStreamed),
        (b"~?\r\n", UnsupportedStreamed),
        (b";4\r\nabcd\r\n", UnsupportedStreamed),
        (b".\r\n", UnsupportedStreamed),
        (b"*1\r\n;0\r\n", UnsupportedStreamed),
        (b"$\r\n", InvalidLength),
        (b"$-2\r\n", InvalidLength),
        (b"$+1\r\n", InvalidLength),
        (b"$01\r\n", InvalidLength),
        (b"$-0\r\n", InvalidLength),
        (b"$ 1\r\n", InvalidLength),
        (b"$1 \r\n", InvalidLength),
        (b"$1a\r\n", InvalidLength),
        (b"$9223372036854775808\r\n", InvalidLength),
        (b"$99999999999999999999\r\n", InvalidLength),
        (b"$123456789012345678901234", InvalidLength),
        (b"%-1\r\n", InvalidLength),
        (b"~-1\r\n", InvalidLength),
        (b">-1\r\n", InvalidLength),
        (b"|-1\r\n", InvalidLength),
        (b"!-1\r\n", InvalidLength),
        (b"=-1\r\n", InvalidLength),
        (b"=3\r\ntxt\r\n", InvalidLength),
        (b"$1\r\nab\r\n", InvalidTerminator),
        (b"$1\r\na\rx", InvalidTerminator),
        (b"$1\r\na\n\r", InvalidTerminator),
        (b"_x\r\n", InvalidValue(b'_')),
        (b"_\rx", InvalidValue(b'_')),
        (b"#x\r\n", InvalidValue(b'#')),
        (b"#\r\n", InvalidValue(b'#')),
        (b"#tt\r\n", InvalidValue(b'#')),
    ];
    for (input, error) in cases {
        assert_eq!(
            scan_once(input),
            Err(*error),
            "{:?}",
            String::from_utf8_lossy(input)
        );
        // The same error when the input arrives one byte at a time.
        let mut scanner = ReplyScanner::new();
        let found = (1..=input.len()).find_map(|end| scanner.scan(&input[..end]).err());
        assert_eq!(found, Some(*error), "{:?}", String::from_utf8_lossy(input));
    }
    // Errors display.
    assert!(InvalidValue(b'#').to_string().contains('#'));
}

#[test]
fn too_deep() {
    let mut deep = b"*1\r\n".repeat(MAX_DEPTH);
    deep.extend_from_slice(b"+x\r\n");
    assert_eq!(
        scan_once(&deep),
        Ok(ReplyScan::Complete { len: deep.len() })
    );
    let mut deeper = b"*1\r\n".repeat(MAX_DEPTH + 1);
    deeper.extend_from_slice(b"+x\r\n");
    assert_eq!(scan_once(&deeper), Err(ReplyError::TooDeep));
}

#[test]
fn scanned_and_discard_prefix() {
    let mut scanner = ReplyScanner::new();
    let frame = b"*2\r\n$10\r\n0123456789\r\n+ok\r\n";
    assert_eq!(scanner.scan(&frame[..2]), Ok(ReplyScan::Incomplete));
    assert_eq!(scanner.scanned(), 0);
    assert_eq!(scanner.scan(&frame[..6]), Ok(ReplyScan::Incomplete));
    assert_eq!(scanner.scanned(), 4);
    assert_eq!(scanner.frame_type(), Some(b'*'));
    // Inside the payload, the bytes received so far are validated.
    assert_eq!(scanner.scan(&frame[..13]), Ok(ReplyScan::Incomplete));
    assert_eq!(scanner.scanned(), 13);
    scanner.discard_prefix(13);
    let rest = &frame[13..];
    assert_eq!(scanner.scan(&rest[..10]), Ok(ReplyScan::Incomplete));
    // Up to the start of the incomplete `+ok` line.
    assert_eq!(scanner.scanned(), 8);
    scanner.discard_prefix(100); // clamped to scanned()
    assert_eq!(scanner.scanned(), 0);
    assert_eq!(scanner.scan(&rest[8..]), Ok(ReplyScan::Complete { len: 5 }));
    assert_eq!(scanner.frame_type(), Some(b'*'));
}

#[test]
fn declared_length_allocates_nothing() {
    let mut scanner = ReplyScanner::new();
    assert_eq!(
        scanner.scan(b"$2000000000\r\n0123456789"),
        Ok(ReplyScan::Incomplete)
    );
    assert_eq!(scanner.scanned(), 23);
    assert_eq!(scanner.heap_bytes(), 0);
    let mut scanner = ReplyScanner::new();
    assert_eq!(
        scanner.scan(b"*2000000000\r\n%2000000000\r\n:1\r\n"),
        Ok(ReplyScan::Incomplete)
    );
    assert!(scanner.heap_bytes() <= 256, "{}", scanner.heap_bytes());
}

#[test]
fn million_elements_in_chunks_is_linear() {
    const ELEMENTS: usize = 1_000_000;
    let mut stream = format!("*{ELEMENTS}\r\n").into_bytes();
    for i in 0..ELEMENTS {
        match i % 3 {
            0 => stream.extend_from_slice(b":1\r\n"),
            1 => stream.extend_from_slice(b"$3\r\nabc\r\n"),
            _ => stream.extend_from_slice(b"+simple string\r\n"),
        }
    }
    let mut scanner = ReplyScanner::new();
    let mut buffered = 0;
    let mut calls = 0u64;
    let result = loop {
        buffered = (buffered + 4096).min(stream.len());
        calls += 1;
        match scanner.scan(&stream[..buffered]) {
            Ok(ReplyScan::Incomplete) => assert!(buffered < stream.len()),
            other => break other,
        }
    };
    assert_eq!(result, Ok(ReplyScan::Complete { len: stream.len() }));
    let bound = 2 * stream.len() as u64 + 8 * calls;
    assert!(scanner.steps <= bound, "{} > {bound}", scanner.steps);
}

/// A frame and what `pubsub_kind` must say about it.
type PubSubCase = (&'static [u8], Option<(PubSubKind, Option<i64>)>);

#[test]
fn pubsub_resp2() {
    use PubSubKind::*;
    let cases: &[PubSubCase] = &[
        (
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            Some((Message, None)),
        ),
        (
            b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$0\r\n\r\n",
            Some((PMessage, None)),
        ),
        (
            b"*3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$1\r\nm\r\n",
            Some((SMessage, None)),
        ),
        (
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
            Some((Subscribe, Some(1))),
        ),
        (
            b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
            Some((Unsubscribe, Some(0))),
        ),
        (
            b"*3\r\n$10\r\npsubscribe\r\n$2\r\nc*\r\n:2\r\n",
            Some((PSubscribe, Some(2))),
        ),
        (
            b"*3\r\n$12\r\npunsubscribe\r\n$2\r\nc*\r\n:1\r\n",
            Some((PUnsubscribe, Some(1))),
        ),
        (
            b"*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n",
            Some((SSubscribe, Some(1))),
        ),
        (
            b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n",
            Some((SUnsubscribe, Some(0))),
        ),
        (
            b"*3\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n:7\r\n",
            Some((Subscribe, Some(7))),
        ),
        (
            b"*3\r\n+subscribe\r\n$2\r\nch\r\n:3\r\n",
            Some((Subscribe, Some(3))),
        ),
        (
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n$1\r\n1\r\n",
            Some((Subscribe, None)),
        ),
        // Not pub/sub frames.
        (b"*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n", None),
        (b"*3\r\n$7\r\nmessages\r\n$2\r\nch\r\n$2\r\nhi\r\n", None),
        (b"*3\r\n:7\r\n$2\r\nch\r\n$2\r\nhi\r\n", None),
        (b"$7\r\nmessage\r\n", None),
        (b"+message\r\n", None),
        (b"*-1\r\n", None),
        (b"*0\r\n", None),
        (b"", None),
        (b"*3\r\n$9\r\nsubscr", None),
    ];
    for (frame, expected) in cases {
        assert_eq!(
            pubsub_kind(frame),
            *expected,
            "{:?}",
            String::from_utf8_lossy(frame)
        );
    }
}

#[test]
fn pubsub_resp3() {
    use PubSubKind::*;
    let cases: &[PubSubCase] = &[
        (
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            Some((Message, None)),
        ),
        (b">3\r\n+message\r\n+ch\r\n+hi\r\n", Some((Message, None))),
        (
            b">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            Some((PMessage, None)),
        ),
        (
            b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
            Some((Subscribe, Some(1))),
        ),
        (
            b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n",
            Some((Unsubscribe, Some(0))),
        ),
        (
            b">3\r\n$12\r\nSUnsubscribe\r\n$1\r\ns\r\n:-1\r\n",
            Some((SUnsubscribe, Some(-1))),
        ),
        (
            b"|1\r\n+k\r\n+v\r\n>3\r\n$9\r\nsubscribe\r\n|0\r\n$2\r\nch\r\n:1\r\n",
            Some((Subscribe, Some(1))),
        ),
        (
            b">3\r\n$9\r\nsubscribe\r\n*1\r\n$2\r\nch\r\n|1\r\n+k\r\n+v\r\n:4\r\n",
            Some((Subscribe, Some(4))),
        ),
        (
            b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n,1\r\n",
            Some((Subscribe, None)),
        ),
        (b"%1\r\n$7\r\nmessage\r\n$2\r\nch\r\n", None),
        (b"~3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", None),
        (b">3\r\n!7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", None),
        (b">2\r\n+invalidate\r\n*1\r\n$3\r\nkey\r\n", None),
        // Found by fuzzing: a push nested in an attribute is no element of it
        // (as the scanner counts), so what follows the attribute here is `+x`.
        (
            b"|1\r\n>0\r\n|0\r\n+k\r\n*3\r\n+subscribe\r\n+c\r\n:1\r\n+x\r\n",
            None,
        ),
        (
            b">3\r\n>1\r\n+p\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:2\r\n",
            Some((Subscribe, Some(2))),
        ),
    ];
    for (frame, expected) in cases {
        assert_eq!(
            pubsub_kind(frame),
            *expected,
            "{:?}",
            String::from_utf8_lossy(frame)
        );
    }
    assert!(Unsubscribe.is_subscription_change());
    assert!(!SMessage.is_subscription_change());
}
