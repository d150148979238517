//! Fuzz target for the client-side request scanner (`portcullis::resp::request`).
//!
//! Input: a 6-byte header (flags, then four limit seeds, then a count `n`), `n % 32` control
//! bytes (one read each: `byte % 64 + 1` bytes), then the client's stream. Flags: bit 0
//! unauthenticated; bits 1-4 use small `max_inline_len`, `max_query_buffer`, `max_bulk_len`,
//! `max_multibulk_len` from the seeds. Properties: no panic; the split scan finds the same
//! commands (lengths and arguments) and the same error as one whole-buffer scan. The limits
//! Redis checks against what is buffered so far (header or inline line too long, query buffer
//! full) may fire earlier when split; then the split commands are a prefix of the whole ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::resp::request::{ProtocolError, RequestScan, RequestScanner, ScanLimits};

/// Commands found (length, arguments) and the error that stopped the scan, if any.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    commands: Vec<(usize, Vec<Vec<u8>>)>,
    error: Option<ProtocolError>,
}

/// Scan `stream` as reads described by `control` (cycled; empty: one read of everything).
fn scan(stream: &[u8], control: &[u8], limits: ScanLimits, unauthenticated: bool) -> Outcome {
    let mut scanner = RequestScanner::new(limits);
    let mut buf = Vec::new();
    let (mut arrived, mut turn) = (0, 0);
    let mut commands = Vec::new();
    while arrived < stream.len() {
        let read = control
            .get(turn % control.len().max(1))
            .map_or(stream.len(), |&b| usize::from(b % 64) + 1);
        let next = (arrived + read).min(stream.len());
        buf.extend_from_slice(&stream[arrived..next]);
        arrived = next;
        turn += 1;
        loop {
            match scanner.scan(&buf, unauthenticated) {
                Ok(RequestScan::Complete(len)) => {
                    assert!(
                        len > 0 && len <= buf.len(),
                        "Complete({len}) of {}",
                        buf.len()
                    );
                    let args = scanner.args(&buf);
                    let list: Vec<Vec<u8>> = args.iter().map(<[u8]>::to_vec).collect();
                    assert_eq!(list.len(), args.len());
                    for (i, arg) in list.iter().enumerate() {
                        assert_eq!(args.get(i), Some(arg.as_slice()));
                    }
                    assert_eq!(args.get(list.len()), None);
                    commands.push((len, list));
                    buf.drain(..len);
                }
                Ok(RequestScan::Incomplete) => break,
                Err(error) => {
                    let _ = error.reply();
                    return Outcome {
                        commands,
                        error: Some(error),
                    };
                }
            }
        }
    }
    Outcome {
        commands,
        error: None,
    }
}

/// Errors that depend on how many bytes were buffered when the scan ran.
fn depends_on_reads(error: &Option<ProtocolError>) -> bool {
    matches!(
        error,
        Some(
            ProtocolError::TooBigMbulkCount
                | ProtocolError::TooBigBulkCount
                | ProtocolError::TooBigInline
                | ProtocolError::QueryBufferFull
        )
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((header, rest)) = data.split_first_chunk::<6>() else {
        return;
    };
    let [flags, inline, query, bulk, mbulk, n] = *header;
    let pick = |bit: u8, small: u64, large: u64| if flags & bit != 0 { small } else { large };
    let limits = ScanLimits {
        max_inline_len: pick(2, 4 + u64::from(inline % 64), 64 * 1024) as usize,
        max_query_buffer: pick(4, 16 + u64::from(query), 1 << 30) as usize,
        max_bulk_len: pick(8, u64::from(bulk % 64), 512 * 1024 * 1024),
        max_multibulk_len: pick(16, u64::from(mbulk % 16), 1024 * 1024),
    };
    let unauthenticated = flags & 1 != 0;
    let (control, stream) = rest.split_at(usize::from(n % 32).min(rest.len()));
    let whole = scan(stream, &[], limits, unauthenticated);
    let split = scan(stream, control, limits, unauthenticated);
    if depends_on_reads(&split.error) && split != whole {
        assert!(
            whole.commands.starts_with(&split.commands),
            "split {control:02x?}: {split:?} vs whole {whole:?}"
        );
    } else {
        assert_eq!(whole, split, "split {control:02x?}");
    }
});
