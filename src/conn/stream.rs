//! Large requests stream through. A command whose last argument is a large
//! bulk (a big `SET`, `APPEND`, `RPUSH`, `PUBLISH` payload...) is decided
//! once its other arguments are in, with a placeholder for the missing one;
//! the argument's bytes are then passed on (forwarded, or dropped after a
//! refusal) as they arrive, so the proxy never holds more than about
//! [`STREAM_REQUEST_MIN`] of it. Anything that cannot be decided that way
//! (the big argument is a key or channel, or the session itself answers the
//! command) is buffered whole as before, up to `max_query_buffer`.

use std::ops::Range;

use crate::command::{acl_keys, command_channels, resolve, Resolved, Role};
use crate::resp::request::{Args, RequestScanner};

/// Bytes of one incomplete command held before it is decided early. The
/// client must really have sent this much before the upstream sees the
/// command's declared length.
pub const STREAM_REQUEST_MIN: usize = 1 << 20;

/// Stands in for the missing last argument while deciding. Longer than any
/// keyword and not a number, so option and `numkeys` parsing treat it as the
/// real (huge) argument would be treated; it is never a key or channel.
const PLACEHOLDER: [u8; 64] = [0; 64];

/// An incomplete command that can be decided now.
#[derive(Debug)]
pub struct Early {
    src: Vec<u8>,
    ranges: Vec<Range<usize>>,
    /// Bytes of the command not yet received (the rest of the payload and its `\r\n`).
    pub remaining: usize,
}

impl Early {
    /// The command's arguments, the placeholder last.
    pub fn args(&self) -> Args<'_> {
        Args::new(&self.src, &self.ranges)
    }
}

/// The rest of a command already decided: pass this many bytes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passthrough {
    /// Bytes still to come.
    pub remaining: usize,
    /// Forward them (the command was forwarded) or drop them (it was answered).
    pub forward: bool,
}

/// After the scanner returned `Incomplete` on `buf` (the command's bytes so
/// far): the command with a placeholder for its last argument, when that
/// argument is a large bulk still arriving and nothing about the decision
/// depends on its content.
pub fn early(scanner: &RequestScanner, buf: &[u8]) -> Option<Early> {
    let (start, len) = scanner.pending_last_bulk()?;
    let before = scanner.args(buf);
    let last = before.len();
    // The name and a subcommand or first argument are never the placeholder.
    if last < 2 || buf.len() < STREAM_REQUEST_MIN {
        return None;
    }
    let Resolved::Found(cmd) = resolve(before.get(0)?, before.get(1)) else {
        return None;
    };
    if Role::of(cmd).needs_whole_command() {
        return None;
    }
    let mut src = Vec::with_capacity(before.iter().map(<[u8]>::len).sum::<usize>() + 64);
    let mut ranges = Vec::with_capacity(last + 1);
    for arg in before.iter().chain([&PLACEHOLDER[..]]) {
        let at = src.len();
        src.extend_from_slice(arg);
        ranges.push(at..src.len());
    }
    let early = Early {
        src,
        ranges,
        remaining: (start + len + 2).checked_sub(buf.len())?,
    };
    let args = early.args();
    let (mut keys, mut channels) = (Vec::new(), Vec::new());
    acl_keys(cmd, &args, &mut keys);
    command_channels(cmd, &args, &mut channels);
    let touches_last =
        keys.iter().any(|k| k.index == last) || channels.iter().any(|c| c.index == last);
    (!touches_last).then_some(early)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::request::{RequestScan, ScanLimits};

    /// The header of `args` followed by a last bulk of `len` declared bytes,
    /// of which `have` arrived.
    fn partial(args: &[&str], len: usize, have: usize) -> Vec<u8> {
        let mut b = format!("*{}\r\n", args.len() + 1).into_bytes();
        for a in args {
            b.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        b.extend_from_slice(format!("${len}\r\n").as_bytes());
        b.resize(b.len() + have, b'x');
        b
    }

    fn try_early(args: &[&str], len: usize, have: usize) -> Option<Early> {
        let buf = partial(args, len, have);
        let mut s = RequestScanner::new(ScanLimits::default());
        assert_eq!(s.scan(&buf, false), Ok(RequestScan::Incomplete));
        early(&s, &buf)
    }

    const BIG: usize = 8 << 20;

    #[test]
    fn a_big_value_last_is_decided_early_with_the_rest_to_come() {
        let have = STREAM_REQUEST_MIN;
        for args in [
            &["SET", "k"][..],
            &["APPEND", "k"],
            &["RPUSH", "list"],
            &["HSET", "h", "field"],
            &["PUBLISH", "chan"],
            &["SETRANGE", "k", "10"],
            &["XADD", "s", "*", "f"],
            &["SET", "k", "v", "GET", "EX"],
        ] {
            let e = try_early(args, BIG, have).unwrap_or_else(|| panic!("{args:?}"));
            let header = partial(args, BIG, 0).len();
            assert_eq!(e.remaining, header + BIG + 2 - (header + have), "{args:?}");
            let got: Vec<&[u8]> = e.args().iter().collect();
            assert_eq!(got.len(), args.len() + 1);
            assert_eq!(got.last(), Some(&&PLACEHOLDER[..]));
        }
    }

    #[test]
    fn not_decided_early_when_the_missing_argument_matters() {
        let have = STREAM_REQUEST_MIN;
        for args in [
            // The big argument is a key or a channel.
            &["GET"][..],
            &["MSET", "k1", "v1"],
            &["SUBSCRIBE", "a"],
            &["PUBLISH"],
            &["ZUNIONSTORE", "dst", "2", "a"],
            // The command name, or a subcommand / first argument.
            &["ECHO"],
            &["CONFIG", "SET", "maxmemory"][..1],
            // Answered or rewritten by the proxy.
            &["AUTH", "user"],
            &["HELLO", "3", "AUTH", "u"],
            &["CLIENT", "SETNAME"],
            &["ACL", "DRYRUN", "u"],
            &["SORT", "k", "BY"],
            // Not a known command.
            &["NOSUCHCMD", "a"],
        ] {
            assert!(try_early(args, BIG, have).is_none(), "{args:?}");
        }
    }

    #[test]
    fn not_decided_early_before_enough_bytes_arrived() {
        assert!(try_early(&["SET", "k"], BIG, 1000).is_none());
        assert!(try_early(&["SET", "k"], 400_000_000, 16).is_none());
        assert!(try_early(&["SET", "k"], BIG, STREAM_REQUEST_MIN).is_some());
    }
}
