//! Step 3a, finding a command: [`CommandSpec`] by id, by full name, or the way Redis's
//! `lookupCommand` resolves `argv[0]` (and `argv[1]` for a container such as `CONFIG`).
//!
//! Names match ASCII case-insensitively, without allocating: the name is lowercased into a
//! stack buffer of [`MAX_NAME_LEN`] bytes and looked up in [`NameIndex`], a small
//! open-addressing table of (hash, id) built on first use. Longer names are simply not found
//! (no Redis 7.0 name comes close).
//!
//! Why not a binary search of the sorted table: under load (TLS, many connections) each of
//! its ~9 steps touched a different `CommandSpec` and name string, mostly cache misses; in
//! cluster mode (several lookups per command) it took 29% of the proxy's CPU at `-P 16`
//! (perf, `benches/e2e_cluster.sh`). The index is 8 KiB and a lookup touches one entry, the
//! name it verifies and the spec the caller reads next.

use std::sync::LazyLock;

use super::table::COMMANDS;
use super::types::CommandSpec;

/// The longest full name (`parent|sub` included) that can be found.
pub const MAX_NAME_LEN: usize = 64;

/// The entry with id `id`.
pub fn by_id(id: u16) -> Option<&'static CommandSpec> {
    COMMANDS.get(usize::from(id))
}

/// The entry with full name `full_name` (`get`, `CONFIG|SET`), any ASCII case.
pub fn by_name(full_name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; MAX_NAME_LEN];
    find(lowercase_into(&mut buf, &[full_name])?)
}

/// What Redis's `lookupCommand` makes of a command's first arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// A command, or a container's subcommand.
    Found(&'static CommandSpec),
    /// `argv[0]` is not a command (`unknown command '...'`).
    UnknownCommand,
    /// `argv[0]` is this container but `argv[1]` is not one of its subcommands
    /// (`unknown subcommand '...'. Try CONFIG HELP.`).
    UnknownSubcommand(&'static CommandSpec),
}

/// Resolves a command like Redis's `lookupCommand` on argv: `argv0` must be a top-level
/// command (`config|set` as `argv0` is unknown); a container with `argv1` present resolves
/// `argv1` as its subcommand; a container alone (argc 1) is the container itself.
pub fn resolve(argv0: &[u8], argv1: Option<&[u8]>) -> Resolved {
    let Some(base) = by_name(argv0).filter(|c| c.parent.is_none()) else {
        return Resolved::UnknownCommand;
    };
    match argv1 {
        Some(sub) if is_container(base) => {
            let mut buf = [0u8; MAX_NAME_LEN];
            let found = lowercase_into(&mut buf, &[base.name.as_bytes(), b"|", sub])
                .and_then(find)
                .filter(|s| s.parent == Some(base.id));
            match found {
                Some(spec) => Resolved::Found(spec),
                None => Resolved::UnknownSubcommand(base),
            }
        }
        _ => Resolved::Found(base),
    }
}

/// True for a command with subcommands (`config`, `client`, ...).
pub fn is_container(spec: &CommandSpec) -> bool {
    !spec.subcommands.is_empty()
}

/// The entry with exactly the lowercase full name `name`.
fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    INDEX.find(name)
}

/// Full names → ids: linear probing over a power-of-two table kept under half full.
struct NameIndex {
    entries: Box<[IndexEntry]>,
    mask: usize,
}

#[derive(Clone, Copy)]
struct IndexEntry {
    hash: u32,
    /// [`EMPTY`] for a free entry.
    id: u16,
}

const EMPTY: u16 = u16::MAX;

static INDEX: LazyLock<NameIndex> = LazyLock::new(NameIndex::build);

impl NameIndex {
    fn build() -> NameIndex {
        let size = (COMMANDS.len() * 2).next_power_of_two();
        let mask = size - 1;
        let mut entries = vec![IndexEntry { hash: 0, id: EMPTY }; size].into_boxed_slice();
        for cmd in &COMMANDS {
            let hash = name_hash(cmd.name.as_bytes());
            let mut i = hash as usize & mask;
            while entries.get(i).is_some_and(|e| e.id != EMPTY) {
                i = (i + 1) & mask;
            }
            if let Some(e) = entries.get_mut(i) {
                *e = IndexEntry { hash, id: cmd.id };
            }
        }
        NameIndex { entries, mask }
    }

    fn find(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        let hash = name_hash(name);
        let mut i = hash as usize & self.mask;
        loop {
            let entry = self.entries.get(i)?;
            if entry.id == EMPTY {
                return None;
            }
            if entry.hash == hash {
                let cmd = by_id(entry.id)?;
                if cmd.name.as_bytes() == name {
                    return Some(cmd);
                }
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// FNV-1a, 32 bits: names are short, and the table only needs them spread.
fn name_hash(name: &[u8]) -> u32 {
    name.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Concatenates `parts` into `buf`, ASCII-lowercased; `None` if it does not fit.
fn lowercase_into<'a>(buf: &'a mut [u8; MAX_NAME_LEN], parts: &[&[u8]]) -> Option<&'a [u8]> {
    let mut len = 0;
    for part in parts {
        let end = len + part.len();
        let dst = buf.get_mut(len..end)?;
        for (d, s) in dst.iter_mut().zip(part.iter()) {
            *d = s.to_ascii_lowercase();
        }
        len = end;
    }
    buf.get(..len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GeT`-style alternating case.
    fn mixed_case(name: &str) -> Vec<u8> {
        name.bytes()
            .enumerate()
            .map(|(i, b)| {
                if i % 2 == 0 {
                    b.to_ascii_uppercase()
                } else {
                    b
                }
            })
            .collect()
    }

    fn name_of(r: Resolved) -> String {
        match r {
            Resolved::Found(s) => format!("found {}", s.name),
            Resolved::UnknownCommand => "unknown command".into(),
            Resolved::UnknownSubcommand(s) => format!("unknown subcommand of {}", s.name),
        }
    }

    #[test]
    fn every_entry_is_found_by_id_and_by_name_in_any_case() {
        assert!(!COMMANDS.is_empty());
        for (i, spec) in COMMANDS.iter().enumerate() {
            let id = u16::try_from(i).expect("ids fit u16");
            assert_eq!(by_id(id), Some(spec));
            assert_eq!(by_name(spec.name.as_bytes()), Some(spec), "{}", spec.name);
            let upper = spec.name.to_ascii_uppercase();
            assert_eq!(by_name(upper.as_bytes()), Some(spec), "{upper}");
            let mixed = mixed_case(spec.name);
            assert_eq!(by_name(&mixed), Some(spec), "{}", spec.name);
        }
        assert_eq!(by_id(u16::try_from(COMMANDS.len()).expect("fits")), None);
        assert_eq!(by_id(u16::MAX), None);
    }

    #[test]
    fn every_entry_resolves_from_argv() {
        for spec in &COMMANDS {
            let resolved = match spec.parent.and_then(by_id) {
                Some(parent) => {
                    let sub = &spec.name[parent.name.len() + 1..];
                    resolve(&mixed_case(parent.name), Some(&mixed_case(sub)))
                }
                None => resolve(spec.name.to_ascii_uppercase().as_bytes(), None),
            };
            assert_eq!(resolved, Resolved::Found(spec), "{}", spec.name);
        }
    }

    #[test]
    fn unknown_names_are_not_found() {
        for name in [
            &b""[..],
            b"nosuchcommand",
            b"ge",
            b"gett",
            b"get ",
            b"config|",
            b"config|nope",
            b"|get",
            b"g\xc3\xa9t",
            b"get\0",
        ] {
            assert_eq!(by_name(name), None, "{:?}", String::from_utf8_lossy(name));
        }
        let long = [b'a'; MAX_NAME_LEN + 1];
        assert_eq!(by_name(&long), None);
        assert_eq!(by_name(&long[..MAX_NAME_LEN]), None);
    }

    #[test]
    fn subcommands_resolve_like_lookup_command() {
        let r = |a: &str, b: Option<&str>| name_of(resolve(a.as_bytes(), b.map(str::as_bytes)));
        assert_eq!(r("GET", None), "found get");
        assert_eq!(r("get", Some("k")), "found get");
        assert_eq!(r("CONFIG", None), "found config");
        assert_eq!(r("config", Some("SET")), "found config|set");
        assert_eq!(r("Client", Some("No-Evict")), "found client|no-evict");
        assert_eq!(r("config", Some("nope")), "unknown subcommand of config");
        assert_eq!(r("config", Some("")), "unknown subcommand of config");
        assert_eq!(r("config", Some("get|x")), "unknown subcommand of config");
        let long = "x".repeat(MAX_NAME_LEN);
        assert_eq!(r("config", Some(&long)), "unknown subcommand of config");
        assert_eq!(r("nope", None), "unknown command");
        assert_eq!(r("nope", Some("set")), "unknown command");
        assert_eq!(r("config|set", None), "unknown command");
        assert_eq!(r("CONFIG|SET", Some("x")), "unknown command");
    }

    #[test]
    fn containers_are_the_commands_with_subcommands() {
        let spec = |n: &str| by_name(n.as_bytes()).expect(n);
        assert!(is_container(spec("config")));
        assert!(is_container(spec("client")));
        assert!(!is_container(spec("get")));
        assert!(!is_container(spec("config|set")));
        for s in &COMMANDS {
            assert_eq!(is_container(s), !s.subcommands.is_empty());
            if is_container(s) {
                assert_eq!(s.parent, None, "{}", s.name);
            }
        }
    }
}
