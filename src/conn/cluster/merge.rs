//! Replies of a command sent to several masters, made one (pure): sums,
//! concatenations, `MGET` in the client's key order, the first reply; and
//! `SCAN` cursors that name the master they continue on.

use super::route::Combine;
use crate::resp::encode;
use crate::resp::num::string2ll;
use crate::resp::value::{array_elements, Value};

/// Bits of a client's `SCAN` cursor that hold the master's index.
const NODE_BITS: u32 = 10;

/// The one reply for the parts' replies (in part order). `positions[i]`
/// are the client's key positions part `i` answers (`MGET`); `total` its keys.
/// The first error among the parts wins.
pub fn combine(how: Combine, replies: &[&[u8]], positions: &[Vec<usize>], total: usize) -> Vec<u8> {
    if let Some(error) = replies.iter().find(|r| r.first() == Some(&b'-')) {
        return error.to_vec();
    }
    let bad = || b"-ERR bad reply from a cluster node\r\n".to_vec();
    match how {
        Combine::First => replies.first().map_or_else(bad, |r| r.to_vec()),
        Combine::Sum => {
            let mut sum = 0i64;
            for r in replies {
                match Value::of(r) {
                    Some(Value::Int(n)) => sum = sum.saturating_add(n),
                    _ => return bad(),
                }
            }
            format!(":{sum}\r\n").into_bytes()
        }
        Combine::Concat => {
            let mut items = Vec::new();
            for r in replies {
                match array_elements(r) {
                    Some(e) => items.extend(e),
                    None => return bad(),
                }
            }
            array_of(&items)
        }
        Combine::Mget => {
            let mut items: Vec<&[u8]> = vec![b"$-1\r\n"; total];
            for (r, pos) in replies.iter().zip(positions) {
                let Some(elements) = array_elements(r).filter(|e| e.len() == pos.len()) else {
                    return bad();
                };
                for (e, &p) in elements.into_iter().zip(pos) {
                    if let Some(slot) = items.get_mut(p) {
                        *slot = e;
                    }
                }
            }
            array_of(&items)
        }
    }
}

fn array_of(items: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode::header(&mut out, b'*', items.len());
    for i in items {
        out.extend_from_slice(i);
    }
    out
}

/// A client's `SCAN` cursor: (master index, that master's cursor).
pub fn scan_cursor(arg: &[u8]) -> Option<(usize, u64)> {
    let c: u64 = std::str::from_utf8(arg).ok()?.parse().ok()?;
    Some(((c & ((1 << NODE_BITS) - 1)) as usize, c >> NODE_BITS))
}

/// The `SCAN` reply of master `index` (of `masters`) for the client: its
/// cursor made the client's (the next master from 0 when this one is done;
/// 0 after the last). `None` when the reply is not a `SCAN` reply.
pub fn scan_reply(reply: &[u8], index: usize, masters: usize) -> Option<Vec<u8>> {
    let elements = array_elements(reply)?;
    let (cursor, keys) = match elements.as_slice() {
        [c, k] => (Value::of(c)?.text().and_then(string2ll)?, *k),
        _ => return None,
    };
    let cursor = u64::try_from(cursor).ok()?;
    let next = if cursor != 0 {
        cursor.checked_mul(1 << NODE_BITS)? | index as u64
    } else if index + 1 < masters {
        (index + 1) as u64
    } else {
        0
    };
    let mut out = b"*2\r\n".to_vec();
    encode::bulk(&mut out, next.to_string().as_bytes());
    out.extend_from_slice(keys);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combines() {
        let sum = combine(Combine::Sum, &[b":2\r\n", b":3\r\n"], &[], 0);
        assert_eq!(sum, b":5\r\n");
        let err = combine(Combine::Sum, &[b":2\r\n", b"-ERR x\r\n"], &[], 0);
        assert_eq!(err, b"-ERR x\r\n");
        let keys = combine(
            Combine::Concat,
            &[
                b"*1\r\n$1\r\na\r\n",
                b"*0\r\n",
                b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
            ],
            &[],
            0,
        );
        assert_eq!(keys, b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
        let mget = combine(
            Combine::Mget,
            &[b"*2\r\n$1\r\na\r\n$-1\r\n", b"*1\r\n$1\r\nb\r\n"],
            &[vec![0, 2], vec![1]],
            3,
        );
        assert_eq!(mget, b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n");
        assert_eq!(
            combine(Combine::First, &[b"+OK\r\n", b"+OK\r\n"], &[], 0),
            b"+OK\r\n"
        );
    }

    #[test]
    fn scan_cursors_walk_master_after_master() {
        assert_eq!(scan_cursor(b"0"), Some((0, 0)));
        let reply = b"*2\r\n$2\r\n17\r\n*1\r\n$1\r\nk\r\n";
        let out = scan_reply(reply, 2, 3).unwrap();
        let (next, _) = Value::parse(&out[4..]).unwrap();
        let next = next.text().unwrap().to_vec();
        assert_eq!(scan_cursor(&next), Some((2, 17)));
        let done = scan_reply(b"*2\r\n$1\r\n0\r\n*0\r\n", 1, 3).unwrap();
        assert_eq!(done, b"*2\r\n$1\r\n2\r\n*0\r\n");
        let last = scan_reply(b"*2\r\n$1\r\n0\r\n*0\r\n", 2, 3).unwrap();
        assert_eq!(last, b"*2\r\n$1\r\n0\r\n*0\r\n");
        assert_eq!(scan_cursor(b"x"), None);
    }
}
