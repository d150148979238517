//! The slot map: which master serves each of the 16384 hash slots, read from
//! `CLUSTER SHARDS` (Redis 7) or `CLUSTER SLOTS` (older servers).

use super::slot::SLOTS;
use crate::config::UpstreamAddr;
use crate::resp::value::Value;

/// No master known for a slot.
const NONE: u16 = u16::MAX;

/// A master of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    /// Where it is.
    pub addr: UpstreamAddr,
    /// Its node id (empty when the reply did not say).
    pub id: String,
}

/// Which master serves each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    owners: Vec<u16>,
    masters: Vec<Master>,
}

impl Default for SlotMap {
    fn default() -> Self {
        SlotMap {
            owners: vec![NONE; SLOTS],
            masters: Vec::new(),
        }
    }
}

impl SlotMap {
    /// The master serving `slot`, if one is known.
    pub fn owner(&self, slot: u16) -> Option<&Master> {
        let i = *self.owners.get(usize::from(slot))?;
        self.masters.get(usize::from(i))
    }

    /// The master serving `slot`, or for `None` (a keyless command) the
    /// first master.
    pub fn serving(&self, slot: Option<u16>) -> Option<&Master> {
        match slot {
            Some(s) => self.owner(s),
            None => self.masters.first(),
        }
    }

    /// The index (in [`SlotMap::masters`]) of the master serving `slot`.
    pub fn owner_index(&self, slot: u16) -> Option<usize> {
        let i = *self.owners.get(usize::from(slot))?;
        (i != NONE).then_some(usize::from(i))
    }

    /// Every master that serves a slot, in the order of their first slot.
    pub fn masters(&self) -> &[Master] {
        &self.masters
    }

    /// Contiguous slot ranges and their master's index in [`Self::masters`],
    /// in slot order (unserved slots left out).
    pub fn ranges(&self) -> Vec<(u16, u16, usize)> {
        let mut out: Vec<(u16, u16, usize)> = Vec::new();
        for (slot, &owner) in (0u16..).zip(&self.owners) {
            if owner == NONE {
                continue;
            }
            match out.last_mut() {
                Some(last) if usize::from(owner) == last.2 && last.1 + 1 == slot => last.1 = slot,
                _ => out.push((slot, slot, usize::from(owner))),
            }
        }
        out
    }

    /// True when every slot has a master.
    pub fn complete(&self) -> bool {
        !self.masters.is_empty() && self.owners.iter().all(|&o| o != NONE)
    }

    /// How many slots changed master from `self` to `next` (ignoring slots
    /// that had none).
    pub fn moved_slots(&self, next: &SlotMap) -> usize {
        (0..SLOTS as u16)
            .filter(|&s| match (self.owner(s), next.owner(s)) {
                (Some(a), Some(b)) => a.addr != b.addr,
                _ => false,
            })
            .count()
    }

    /// This map with `slot` served by the master at `addr` (a `MOVED`).
    pub fn with_owner(&self, slot: u16, addr: &UpstreamAddr) -> SlotMap {
        let mut next = self.clone();
        let i = match next.masters.iter().position(|m| &m.addr == addr) {
            Some(i) => i,
            None => {
                next.masters.push(Master {
                    addr: addr.clone(),
                    id: String::new(),
                });
                next.masters.len() - 1
            }
        };
        if let Some(o) = next.owners.get_mut(usize::from(slot)) {
            *o = u16::try_from(i).unwrap_or(NONE);
        }
        next
    }

    /// From a `CLUSTER SHARDS` reply (RESP2). `asked` stands in for a node
    /// that gives no address of its own; `tls` picks `tls-port` when given.
    pub fn from_shards(reply: &[u8], asked: &str, tls: bool) -> Option<SlotMap> {
        let mut ranges = Vec::new();
        for shard in Value::of(reply)?.items()? {
            let slots = shard.field("slots")?.items()?;
            let master = shard.field("nodes")?.items()?.iter().find(|n| {
                n.field("role").and_then(Value::text) == Some(b"master")
                    && n.field("health").and_then(Value::text) != Some(b"fail")
            });
            let Some(node) = master else { continue };
            let port = tls
                .then(|| node.field("tls-port").and_then(Value::int))
                .flatten()
                .or_else(|| node.field("port").and_then(Value::int))?;
            let host = node
                .field("endpoint")
                .or_else(|| node.field("ip"))
                .and_then(Value::text)
                .unwrap_or_default();
            let id = node.field("id").and_then(Value::text).unwrap_or_default();
            for pair in slots.chunks(2) {
                let (start, end) = (pair.first()?.int()?, pair.get(1)?.int()?);
                ranges.push((start, end, address(host, port, asked), id.to_vec()));
            }
        }
        Self::from_ranges(ranges)
    }

    /// From a `CLUSTER SLOTS` reply (RESP2).
    pub fn from_slots(reply: &[u8], asked: &str) -> Option<SlotMap> {
        let mut ranges = Vec::new();
        for range in Value::of(reply)?.items()? {
            let r = range.items()?;
            let (start, end) = (r.first()?.int()?, r.get(1)?.int()?);
            let master = r.get(2)?.items()?;
            let host = master.first()?.text().unwrap_or_default();
            let port = master.get(1)?.int()?;
            let id = master.get(2).and_then(Value::text).unwrap_or_default();
            ranges.push((start, end, address(host, port, asked), id.to_vec()));
        }
        Self::from_ranges(ranges)
    }

    fn from_ranges(mut ranges: Vec<(i64, i64, String, Vec<u8>)>) -> Option<SlotMap> {
        ranges.sort();
        let mut map = SlotMap::default();
        for (start, end, addr, id) in ranges {
            let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
            if start > end || end >= SLOTS {
                return None;
            }
            let addr = UpstreamAddr::Tcp(addr);
            let i = match map.masters.iter().position(|m| m.addr == addr) {
                Some(i) => i,
                None => {
                    map.masters.push(Master {
                        addr,
                        id: String::from_utf8_lossy(&id).into_owned(),
                    });
                    map.masters.len() - 1
                }
            };
            let i = u16::try_from(i).ok()?;
            map.owners[start..=end].fill(i);
        }
        Some(map)
    }
}

/// `host:port`, with the host of the node asked when the reply gives none
/// (Redis answers `""` or `?` for its own address when it does not know it).
fn address(host: &[u8], port: i64, asked: &str) -> String {
    let host = String::from_utf8_lossy(host);
    let host = match host.as_ref() {
        "" | "?" => asked.rsplit_once(':').map_or(asked, |(h, _)| h).to_string(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_string(),
    };
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::encode;

    fn bulk(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode::bulk(&mut out, s.as_bytes());
        out
    }

    fn int(n: i64) -> Vec<u8> {
        format!(":{n}\r\n").into_bytes()
    }

    fn array(items: Vec<Vec<u8>>) -> Vec<u8> {
        let mut out = format!("*{}\r\n", items.len()).into_bytes();
        for i in items {
            out.extend(i);
        }
        out
    }

    fn node(id: &str, port: i64, role: &str) -> Vec<u8> {
        array(vec![
            bulk("id"),
            bulk(id),
            bulk("port"),
            int(port),
            bulk("ip"),
            bulk("127.0.0.1"),
            bulk("endpoint"),
            bulk("127.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("health"),
            bulk("online"),
        ])
    }

    #[test]
    fn shards_and_slots_give_the_same_map() {
        let shards = array(vec![
            array(vec![
                bulk("slots"),
                array(vec![int(0), int(5460)]),
                bulk("nodes"),
                array(vec![node("a", 7000, "master"), node("b", 7003, "replica")]),
            ]),
            array(vec![
                bulk("slots"),
                array(vec![int(5461), int(10922), int(16000), int(16383)]),
                bulk("nodes"),
                array(vec![node("c", 7001, "master")]),
            ]),
            array(vec![
                bulk("slots"),
                array(vec![int(10923), int(15999)]),
                bulk("nodes"),
                array(vec![node("d", 7002, "master")]),
            ]),
        ]);
        let map = SlotMap::from_shards(&shards, "127.0.0.1:7000", false).unwrap();
        assert!(map.complete());
        assert_eq!(
            map.owner(100).unwrap().addr,
            UpstreamAddr::Tcp("127.0.0.1:7000".into())
        );
        assert_eq!(map.owner(16383).unwrap().id, "c");
        assert_eq!(map.masters().len(), 3);

        let slot = |s: i64, e: i64, port: i64, id: &str| {
            array(vec![
                int(s),
                int(e),
                array(vec![bulk(""), int(port), bulk(id)]),
                array(vec![bulk("127.0.0.1"), int(port + 3), bulk("r")]),
            ])
        };
        let slots = array(vec![
            slot(0, 5460, 7000, "a"),
            slot(5461, 10922, 7001, "c"),
            slot(10923, 15999, 7002, "d"),
            slot(16000, 16383, 7001, "c"),
        ]);
        let from_slots = SlotMap::from_slots(&slots, "127.0.0.1:7000").unwrap();
        assert_eq!(from_slots, map);
        assert_eq!(map.moved_slots(&from_slots), 0);
        let moved = map.with_owner(0, &UpstreamAddr::Tcp("127.0.0.1:7002".into()));
        assert_eq!(map.moved_slots(&moved), 1);
    }

    #[test]
    fn incomplete_and_bad_replies() {
        let partial = array(vec![array(vec![
            int(0),
            int(100),
            array(vec![bulk("10.0.0.1"), int(7000)]),
        ])]);
        let map = SlotMap::from_slots(&partial, "x:1").unwrap();
        assert!(!map.complete());
        assert!(map.owner(101).is_none());
        assert!(SlotMap::from_slots(b"-ERR unknown\r\n", "x:1").is_none());
        let bad = array(vec![array(vec![
            int(10),
            int(16384),
            array(vec![bulk("h"), int(1)]),
        ])]);
        assert!(SlotMap::from_slots(&bad, "x:1").is_none());
    }
}
