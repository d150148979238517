//! `rename_commands`: the upstream's own names for commands its redis.conf
//! renamed. Clients, the ACL, logs and metrics use the real names; only the
//! bytes that go upstream carry the upstream's name (the command name
//! argument alone is rewritten). A command renamed to `""` does not exist
//! upstream: clients get Redis's unknown-command reply and it is never sent.

use std::collections::BTreeMap;

use crate::command::{by_name, CommandSpec, COMMANDS};
use crate::resp::request::Args;

/// What the upstream calls a command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Upstream {
    /// By another name.
    Named(Vec<u8>),
    /// It has no such command.
    Missing,
}

/// The upstream's names for renamed top-level commands, by command id.
#[derive(Debug, Clone, Default)]
pub struct Renames {
    by_id: Vec<Option<Upstream>>,
}

impl Renames {
    /// From `upstream.rename_commands` (real name, lowercase -> upstream name).
    pub fn new(map: &BTreeMap<String, String>) -> Self {
        if map.is_empty() {
            return Renames::default();
        }
        let mut by_id = vec![None; COMMANDS.len()];
        for (name, to) in map {
            if let Some(cmd) = by_name(name.as_bytes()) {
                by_id[usize::from(cmd.id)] = Some(if to.is_empty() {
                    Upstream::Missing
                } else {
                    Upstream::Named(to.as_bytes().to_vec())
                });
            }
        }
        Renames { by_id }
    }

    /// True when nothing is renamed.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The upstream's name for the top-level command `cmd` belongs to, when renamed.
    fn of(&self, cmd: &CommandSpec) -> Option<&Upstream> {
        let top = cmd.parent.unwrap_or(cmd.id);
        self.by_id.get(usize::from(top))?.as_ref()
    }

    /// True when the upstream does not have `cmd` (or its container).
    pub fn missing(&self, cmd: &CommandSpec) -> bool {
        self.of(cmd) == Some(&Upstream::Missing)
    }

    /// The upstream's name for `cmd`, when it differs from the real one.
    pub fn upstream_name(&self, cmd: &CommandSpec) -> Option<&[u8]> {
        match self.of(cmd)? {
            Upstream::Named(name) => Some(name),
            Upstream::Missing => None,
        }
    }

    /// A command the proxy sends itself (`AUTH`, `CLIENT ID`, `DISCARD`...) as
    /// RESP, in the upstream's name; `None` when the upstream does not have it.
    pub fn command(&self, args: &[&[u8]]) -> Option<Vec<u8>> {
        let mut args = args.to_vec();
        if let Some(cmd) = args.first().and_then(|name| by_name(name)) {
            if self.missing(cmd) {
                return None;
            }
            if let Some(name) = self.upstream_name(cmd) {
                args[0] = name;
            }
        }
        Some(crate::resp::encode::command(&args))
    }

    /// `command` (a client's, or the front of one still arriving, or one the
    /// proxy wrote) as the upstream must get it: `None` when it goes as it is;
    /// else a multibulk command with only its name argument replaced, or an
    /// inline one (`inline_args`: its arguments) written as multibulk.
    pub fn rewrite(&self, command: &[u8], inline_args: Option<Args<'_>>) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        if command.first() == Some(&b'*') {
            let name = multibulk_name(command)?;
            let new = by_name(name).and_then(|cmd| self.upstream_name(cmd))?;
            Self::rename_multibulk(command, new, &mut out).then_some(out)
        } else {
            let args = inline_args?;
            let new = by_name(args.get(0)?).and_then(|cmd| self.upstream_name(cmd))?;
            let mut all: Vec<&[u8]> = vec![new];
            all.extend(args.iter().skip(1));
            Some(crate::resp::encode::command(&all))
        }
    }

    /// `command` (one multibulk command, or its front) with its name argument
    /// replaced by `name`: everything before and after the name is kept as it is.
    fn rename_multibulk(command: &[u8], name: &[u8], out: &mut Vec<u8>) -> bool {
        // `*<n>\r\n$<len>\r\n<name>\r\n...`
        let Some(first) = memchr::memmem::find(command, b"\r\n") else {
            return false;
        };
        let header = &command[first + 2..];
        let Some(len_end) = memchr::memmem::find(header, b"\r\n") else {
            return false;
        };
        let Some(len) = header
            .get(1..len_end)
            .and_then(|l| std::str::from_utf8(l).ok())
            .and_then(|l| l.parse::<usize>().ok())
        else {
            return false;
        };
        let name_start = first + 2 + len_end + 2;
        let Some(rest) = command.get(name_start + len..) else {
            return false;
        };
        out.extend_from_slice(&command[..first + 2]);
        out.extend_from_slice(format!("${}\r\n", name.len()).as_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(rest);
        true
    }
}

/// The first argument of a multibulk command.
fn multibulk_name(command: &[u8]) -> Option<&[u8]> {
    let first = memchr::memmem::find(command, b"\r\n")?;
    let header = command.get(first + 2..)?;
    let len_end = memchr::memmem::find(header, b"\r\n")?;
    let len: usize = std::str::from_utf8(header.get(1..len_end)?)
        .ok()?
        .parse()
        .ok()?;
    header.get(len_end + 2..len_end + 2 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renames() -> Renames {
        let map = [
            ("config", "MGMT_CONFIG"),
            ("flushall", "FX"),
            ("shutdown", ""),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        Renames::new(&map)
    }

    #[test]
    fn names_and_missing_commands() {
        let r = renames();
        let cmd = |n: &str| by_name(n.as_bytes()).unwrap();
        assert_eq!(
            r.upstream_name(cmd("config|get")),
            Some(&b"MGMT_CONFIG"[..])
        );
        assert_eq!(r.upstream_name(cmd("FlushAll")), Some(&b"FX"[..]));
        assert!(r.missing(cmd("shutdown")) && !r.missing(cmd("get")));
        assert_eq!(r.upstream_name(cmd("get")), None);
        assert_eq!(r.command(&[b"SHUTDOWN"]), None);
        assert_eq!(
            r.command(&[b"flushall", b"ASYNC"]).unwrap(),
            b"*2\r\n$2\r\nFX\r\n$5\r\nASYNC\r\n"
        );
        assert!(Renames::default().is_empty() && !r.is_empty());
    }

    #[test]
    fn only_the_name_argument_is_rewritten() {
        let r = renames();
        let command = b"*3\r\n$6\r\nConFig\r\n$3\r\nGET\r\n$2\r\n*x\r\n";
        assert_eq!(
            r.rewrite(command, None).unwrap(),
            b"*3\r\n$11\r\nMGMT_CONFIG\r\n$3\r\nGET\r\n$2\r\n*x\r\n"
        );
        // The front of a large command still arriving.
        assert_eq!(
            r.rewrite(b"*2\r\n$8\r\nFLUSHALL\r\n$5\r\nAS", None)
                .unwrap(),
            b"*2\r\n$2\r\nFX\r\n$5\r\nAS"
        );
        assert_eq!(r.rewrite(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", None), None);
        assert_eq!(Renames::default().rewrite(command, None), None);
    }
}
