//! Redis Cluster hash slots: CRC16 (XMODEM, as Redis's `crc16.c`) of the key,
//! or of its hash tag (the bytes between the first `{` and the next `}`, when
//! not empty), modulo 16384.

use crc::{Crc, CRC_16_XMODEM};

/// The number of hash slots.
pub const SLOTS: usize = 16384;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// The hash slot of `key`.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    CRC16.checksum(hashed) & (SLOTS as u16 - 1)
}

/// The hash tag of `key`, if it has a non-empty one.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = memchr::memchr(b'{', key)?;
    let rest = &key[open + 1..];
    let close = memchr::memchr(b'}', rest)?;
    (close > 0).then(|| &rest[..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.0.
        for (key, slot) in [
            (&b"foo"[..], 12182),
            (b"bar", 5061),
            (b"", 0),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
            (b"123456789", 12739),
        ] {
            assert_eq!(key_slot(key), slot, "{}", key.escape_ascii());
        }
    }
}
