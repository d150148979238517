//! Fuzz target for the upstream-side reply scanner (`portcullis::resp::reply`).
//!
//! Input: one byte `n`, then `n % 32` control bytes, then the stream. Each control byte is one
//! read (low 6 bits + 1 bytes) and how much of the validated prefix the caller forwards and
//! discards after an incomplete scan (top 2 bits, in thirds). Properties: no panic; the split
//! scan finds the same frames (ends and types) and the same error as one whole-buffer scan;
//! each frame scanned alone is one complete frame; `pubsub_kind` never panics on a frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::resp::reply::{pubsub_kind, ReplyError, ReplyScan, ReplyScanner};

/// Frames found (absolute end, type) and the error that stopped the scan, if any.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<(usize, Option<u8>)>,
    error: Option<ReplyError>,
}

/// Scan `stream` as reads described by `control` (cycled; empty: one read of everything).
fn scan(stream: &[u8], control: &[u8]) -> Outcome {
    let mut scanner = ReplyScanner::new();
    let mut buf = Vec::new();
    let (mut base, mut arrived, mut turn) = (0, 0, 0);
    let mut frames = Vec::new();
    while arrived < stream.len() {
        let byte = control.get(turn % control.len().max(1)).copied();
        let read = byte.map_or(stream.len(), |b| usize::from(b & 0x3f) + 1);
        let next = (arrived + read).min(stream.len());
        buf.extend_from_slice(&stream[arrived..next]);
        arrived = next;
        turn += 1;
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
                    assert!(scanned <= buf.len());
                    let thirds = usize::from(byte.unwrap_or(0) >> 6).min(3);
                    let forward = scanned * thirds / 3;
                    scanner.discard_prefix(forward);
                    buf.drain(..forward);
                    base += forward;
                    break;
                }
                Err(error) => {
                    return Outcome {
                        frames,
                        error: Some(error),
                    }
                }
            }
        }
    }
    Outcome {
        frames,
        error: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (control, stream) = rest.split_at(usize::from(n % 32).min(rest.len()));
    let whole = scan(stream, &[]);
    let split = scan(stream, control);
    assert_eq!(whole, split, "split {control:02x?}");

    let mut start = 0;
    for &(end, ty) in &whole.frames {
        let frame = &stream[start..end];
        let mut alone = ReplyScanner::new();
        assert_eq!(
            alone.scan(frame),
            Ok(ReplyScan::Complete { len: frame.len() })
        );
        assert_eq!(alone.frame_type(), ty);
        if pubsub_kind(frame).is_some() {
            assert!(matches!(ty, Some(b'*' | b'>')), "{ty:?}");
        }
        start = end;
    }
});
