use super::*;

fn scanner() -> RequestScanner {
    RequestScanner::new(ScanLimits::default())
}

/// Scans every command of `input` fed whole; returns the argument lists.
fn scan_all(input: &[u8], unauth: bool) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut s = scanner();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        match s.scan(&input[pos..], unauth)? {
            RequestScan::Complete(n) => {
                out.push(s.args(&input[pos..]).iter().map(<[u8]>::to_vec).collect());
                pos += n;
            }
            RequestScan::Incomplete => break,
        }
    }
    Ok(out)
}

fn err(input: &[u8]) -> ProtocolError {
    scan_all(input, false).expect_err("expected a protocol error")
}

fn args(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn multibulk_commands_and_pipelines() {
    let got = scan_all(
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
        false,
    );
    assert_eq!(
        got.unwrap(),
        vec![args(&["GET", "k"]), args(&["SET", "k", ""])]
    );
}

#[test]
fn command_length_covers_the_whole_command() {
    let mut s = scanner();
    let cmd = b"*1\r\n$4\r\nPING\r\n";
    let mut buf = cmd.to_vec();
    buf.extend_from_slice(b"*1\r\n");
    assert_eq!(s.scan(&buf, false), Ok(RequestScan::Complete(cmd.len())));
}

#[test]
fn byte_at_a_time_resumes() {
    let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\nPING\r\n";
    let mut s = scanner();
    let mut start = 0;
    let mut got = Vec::new();
    for end in 1..=input.len() {
        if let RequestScan::Complete(n) = s.scan(&input[start..end], false).unwrap() {
            got.push(
                s.args(&input[start..])
                    .iter()
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>(),
            );
            start += n;
        }
    }
    assert_eq!(got, vec![args(&["SET", "key", "value"]), args(&["PING"])]);
    assert_eq!(start, input.len());
}

#[test]
fn empty_commands_complete_with_no_arguments() {
    let empty: Vec<Vec<u8>> = Vec::new();
    let got = scan_all(b"*0\r\n*-10\r\n\r\n   \r\n", false).unwrap();
    assert_eq!(
        got,
        vec![empty.clone(), empty.clone(), empty.clone(), empty]
    );
}

#[test]
fn payload_terminator_is_skipped_like_redis() {
    assert_eq!(
        scan_all(b"*1\r\n$4\r\nPINGxy", false).unwrap(),
        vec![args(&["PING"])]
    );
    // The byte after '\r' in a header is not checked either.
    assert_eq!(
        scan_all(b"*1\rX$4\rYPING\r\n", false).unwrap(),
        vec![args(&["PING"])]
    );
}

#[test]
fn inline_commands() {
    assert_eq!(
        scan_all(b"SET k v\r\nGET  k\n", false).unwrap(),
        vec![args(&["SET", "k", "v"]), args(&["GET", "k"])]
    );
    assert_eq!(
        scan_all(b"set \"a b\" 'c\\'d' \"\\x41\\n\\q\" \"\"\r\n", false).unwrap(),
        vec![vec![
            b"set".to_vec(),
            b"a b".to_vec(),
            b"c'd".to_vec(),
            b"A\nq".to_vec(),
            vec![]
        ]]
    );
    // \v and \f separate only as leading blanks, not inside a word.
    assert_eq!(
        scan_all(b"\x0bab\x0bc d\n", false).unwrap(),
        vec![args(&["ab\x0bc", "d"])]
    );
    // Quotes inside a word start a quoted section of the same word.
    assert_eq!(
        scan_all(b"a\"b c\"\n", false).unwrap(),
        vec![args(&["ab c"])]
    );
}

#[test]
fn redis_protocol_tcl_cases() {
    use ProtocolError::*;
    assert_eq!(err(b"*3000000000\r\n"), InvalidMultibulkLength);
    assert_eq!(
        err(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
        ExpectedDollar(b'f')
    );
    assert_eq!(
        err(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n"),
        InvalidBulkLength
    );
    assert_eq!(
        err(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n"),
        InvalidBulkLength
    );
    assert_eq!(
        err(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n"),
        InvalidBulkLength
    );
    assert_eq!(err(b"*1\r\nfoo\r\n"), ExpectedDollar(b'f'));
    assert_eq!(
        err(b"set \"\"\"test-key\"\"\" test-value\r\nping\r\n"),
        UnbalancedQuotes
    );
    assert_eq!(err(b"set \"abc\r\n"), UnbalancedQuotes);
    assert_eq!(err(b"set 'abc\r\n"), UnbalancedQuotes);
    assert_eq!(err(b"*\r\n"), InvalidMultibulkLength);
    assert_eq!(err(b"*+1\r\n"), InvalidMultibulkLength);
    assert_eq!(err(b"*1\r\n$01\r\nx\r\n"), InvalidBulkLength);
}

#[test]
fn protocol_desync_regressions_end_in_an_error() {
    // "\x00", "*\x00", "$\x00" followed by endless 1 KiB lines (tests/unit/protocol.tcl).
    for (seq, want) in [
        (&b"\x00"[..], ProtocolError::TooBigInline),
        (b"*\x00", ProtocolError::TooBigMbulkCount),
        (b"$\x00", ProtocolError::TooBigInline),
    ] {
        let mut input = seq.to_vec();
        let mut s = scanner();
        let result = loop {
            input.extend_from_slice(&[b'A'; 1024]);
            input.push(b'\n');
            match s.scan(&input, false) {
                Ok(RequestScan::Incomplete) => assert!(input.len() < 200_000),
                other => break other,
            }
        };
        assert_eq!(result, Err(want));
    }
}

#[test]
fn bulk_header_without_cr_is_too_big() {
    let mut input = b"*1\r\n$".to_vec();
    input.extend(std::iter::repeat_n(b'1', 70_000));
    assert_eq!(err(&input), ProtocolError::TooBigBulkCount);
}

#[test]
fn error_replies_are_redis_texts() {
    assert_eq!(
        ProtocolError::InvalidBulkLength.reply(),
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(
        ProtocolError::ExpectedDollar(b'f').reply(),
        b"-ERR Protocol error: expected '$', got 'f'\r\n"
    );
    // A CR in the message becomes a space, as Redis sanitises error texts.
    assert_eq!(err(b"*1\r\n\r\n"), ProtocolError::ExpectedDollar(b'\r'));
    assert_eq!(
        ProtocolError::ExpectedDollar(b'\r').reply(),
        b"-ERR Protocol error: expected '$', got ' '\r\n"
    );
    assert_eq!(
        ProtocolError::ExpectedDollar(0xff).reply(),
        b"-ERR Protocol error: expected '$', got '\xff'\r\n"
    );
}

#[test]
fn configured_limits() {
    let limits = ScanLimits {
        max_bulk_len: 10,
        max_multibulk_len: 3,
        max_inline_len: 16,
        max_query_buffer: 64,
    };
    let run = |input: &[u8]| {
        let mut s = RequestScanner::new(limits);
        s.scan(input, false)
    };
    assert!(run(b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$10\r\n0123456789\r\n").is_ok());
    assert_eq!(run(b"*4\r\n"), Err(ProtocolError::InvalidMultibulkLength));
    assert_eq!(run(b"*1\r\n$11\r\n"), Err(ProtocolError::InvalidBulkLength));
    assert_eq!(run(b"0123456789abcdefg"), Err(ProtocolError::TooBigInline));
    assert_eq!(run(b"0123456789abcdef"), Ok(RequestScan::Incomplete));
    let mut big = b"*1\r\n$100\r\n".to_vec();
    big.resize(65, b'x');
    let mut s = RequestScanner::new(ScanLimits {
        max_bulk_len: 100,
        ..limits
    });
    assert_eq!(s.scan(&big, false), Err(ProtocolError::QueryBufferFull));
}

#[test]
fn unauthenticated_limits() {
    let mut s = scanner();
    let eleven = b"*11\r\n";
    assert_eq!(
        s.scan(eleven, true),
        Err(ProtocolError::UnauthenticatedMultibulkLength)
    );
    assert_eq!(s.scan(eleven, false), Ok(RequestScan::Incomplete));
    let mut s = scanner();
    assert_eq!(
        s.scan(b"*2\r\n$3\r\nSET\r\n$16385\r\n", true),
        Err(ProtocolError::UnauthenticatedBulkLength)
    );
    let mut s = scanner();
    assert_eq!(
        s.scan(b"*2\r\n$3\r\nSET\r\n$16384\r\n", true),
        Ok(RequestScan::Incomplete)
    );
}

#[test]
fn declared_length_is_never_allocated() {
    let mut s = scanner();
    assert_eq!(
        s.scan(b"*1048576\r\n$536870912\r\nab", false),
        Ok(RequestScan::Incomplete)
    );
    assert!(s.args.capacity() < 1024);
}

#[test]
fn the_scanner_is_reusable_after_any_error() {
    let limits = ScanLimits {
        max_query_buffer: 16,
        ..ScanLimits::default()
    };
    let mut s = RequestScanner::new(limits);
    assert_eq!(
        s.scan(b"*2\r\n$3\r\nSET\r\n$10\r\n0123", false),
        Err(ProtocolError::QueryBufferFull)
    );
    assert_eq!(
        s.scan(b"*1\r\n$4\r\nPING\r\n", false),
        Ok(RequestScan::Complete(14))
    );
    assert_eq!(
        s.scan(b"*1\r\nfoo\r\n", false),
        Err(ProtocolError::ExpectedDollar(b'f'))
    );
    assert_eq!(
        s.scan(b"*1\r\n$4\r\nPING\r\n", false),
        Ok(RequestScan::Complete(14))
    );
}

#[test]
fn pending_last_bulk_is_reported_only_inside_the_last_payload() {
    let mut s = RequestScanner::new(ScanLimits::default());
    let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc";
    assert_eq!(s.scan(buf, false), Ok(RequestScan::Incomplete));
    let start = buf.len() - 3;
    assert_eq!(s.pending_last_bulk(), Some((start, 100)));
    let args: Vec<&[u8]> = s.args(buf).iter().collect();
    assert_eq!(args, [&b"SET"[..], b"k"]);
    // Not the last argument yet, or only its header half read: nothing to report.
    s.reset();
    assert_eq!(
        s.scan(b"*3\r\n$3\r\nSET\r\n$1\r\nk", false),
        Ok(RequestScan::Incomplete)
    );
    assert_eq!(s.pending_last_bulk(), None);
    s.reset();
    assert_eq!(
        s.scan(b"*3\r\n$3\r\nSET\r\n$5\r\nab", false),
        Ok(RequestScan::Incomplete)
    );
    assert_eq!(s.pending_last_bulk(), None);
    s.reset();
    assert_eq!(
        s.scan(b"*2\r\n$3\r\nGET\r\n$10", false),
        Ok(RequestScan::Incomplete)
    );
    assert_eq!(s.pending_last_bulk(), None);
    s.reset();
    assert_eq!(s.scan(b"SET k abc", false), Ok(RequestScan::Incomplete));
    assert_eq!(s.pending_last_bulk(), None);
    // After a reset the next command scans from its own start.
    s.reset();
    assert_eq!(
        s.scan(b"*1\r\n$4\r\nPING\r\n", false),
        Ok(RequestScan::Complete(14))
    );
}
