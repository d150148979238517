//! One Redis 7.0 ACL selector: allowed commands (a bitset over the command
//! table), first-arg exceptions, key patterns with read/write permissions,
//! and channel patterns. Applying a selector rule is Redis's `ACLSetSelector`.

use crate::command::{self, CommandSpec, COMMANDS};

use super::rule_error::RuleError;

/// Words of the command bitset (one bit per table entry).
const WORDS: usize = COMMANDS.len().div_ceil(64);

/// Read permission on a key pattern.
pub const PERM_READ: u8 = 1;
/// Write permission on a key pattern.
pub const PERM_WRITE: u8 = 2;

/// A `~`/`%R~`/`%W~`/`%RW~` key pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    /// The glob.
    pub pattern: Vec<u8>,
    /// `PERM_READ | PERM_WRITE` bits.
    pub perms: u8,
}

/// A set of permissions; the root selector holds the rules outside parentheses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// `allkeys` / `~*`.
    pub all_keys: bool,
    /// Key patterns in the order added.
    pub keys: Vec<KeyPattern>,
    /// `allchannels` / `&*`.
    pub all_channels: bool,
    /// Channel patterns in the order added.
    pub channels: Vec<Vec<u8>>,
    /// `allcommands` / `+@all` and no `-` since.
    pub all_commands: bool,
    allowed: [u64; WORDS],
    /// Deprecated first-arg exceptions: command id -> allowed first arguments.
    pub first_args: Vec<(u16, Vec<Vec<u8>>)>,
}

impl Default for Selector {
    /// A new selector: no commands, no keys, no channels (`acl-pubsub-default` is `resetchannels`).
    fn default() -> Self {
        Selector {
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
            all_commands: false,
            allowed: [0; WORDS],
            first_args: Vec::new(),
        }
    }
}

/// Redis's `ACLStringHasSpaces`: whitespace (C `isspace`) or NUL.
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0))
}

impl Selector {
    /// True when command `id`'s bit is set.
    pub fn allows_id(&self, id: u16) -> bool {
        let i = usize::from(id);
        self.allowed
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set_bit(&mut self, id: u16, on: bool) {
        let i = usize::from(id);
        if let Some(w) = self.allowed.get_mut(i / 64) {
            if on {
                *w |= 1 << (i % 64);
            } else {
                *w &= !(1 << (i % 64));
            }
        }
        if !on {
            self.all_commands = false;
        }
    }

    /// Redis's `ACLChangeSelectorPerm`: the command, its first-args reset, and
    /// (for a container) every subcommand.
    fn change_perm(&mut self, cmd: &CommandSpec, on: bool) {
        self.set_bit(cmd.id, on);
        self.first_args.retain(|(id, _)| *id != cmd.id);
        for &sub in cmd.subcommands {
            self.set_bit(sub, on);
        }
    }

    fn set_all_commands(&mut self, on: bool) {
        self.allowed = [if on { u64::MAX } else { 0 }; WORDS];
        self.all_commands = on;
        self.first_args.clear();
    }

    /// True when this selector allows every command, key (read and write) and channel.
    pub fn allows_everything(&self) -> bool {
        let all_keys = self.all_keys
            || self
                .keys
                .iter()
                .any(|k| k.perms == PERM_READ | PERM_WRITE && k.pattern == b"*");
        let all_channels = self.all_channels || self.channels.iter().any(|c| c == b"*");
        self.all_commands && all_keys && all_channels
    }

    /// Applies one selector rule, like Redis's `ACLSetSelector`.
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let eq = |s: &str| op.eq_ignore_ascii_case(s.as_bytes());
        if eq("allkeys") || op == b"~*" {
            self.all_keys = true;
            self.keys.clear();
        } else if eq("resetkeys") {
            self.all_keys = false;
            self.keys.clear();
        } else if eq("allchannels") || op == b"&*" {
            self.all_channels = true;
            self.channels.clear();
        } else if eq("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if eq("allcommands") || eq("+@all") {
            self.set_all_commands(true);
        } else if eq("nocommands") || eq("-@all") {
            self.set_all_commands(false);
        } else if op.first() == Some(&b'~') || op.first() == Some(&b'%') {
            self.add_key_pattern(op)?;
        } else if op.first() == Some(&b'&') {
            if self.all_channels {
                return Err(RuleError::ChannelAfterAll);
            }
            let pat = &op[1..];
            if has_spaces(pat) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pat) {
                self.channels.push(pat.to_vec());
            }
            self.all_channels = false;
        } else if let Some(cat) = op.strip_prefix(b"+@").or_else(|| op.strip_prefix(b"-@")) {
            let on = op[0] == b'+';
            let index = std::str::from_utf8(cat)
                .ok()
                .and_then(command::category_index)
                .ok_or(RuleError::UnknownCommand)?;
            for cmd in COMMANDS.iter().filter(|c| c.in_category(index)) {
                self.change_perm(cmd, on);
            }
        } else if let Some(name) = op.strip_prefix(b"+") {
            self.allow_command(name)?;
        } else if let Some(name) = op.strip_prefix(b"-") {
            let cmd = command::by_name(name).ok_or(RuleError::UnknownCommand)?;
            self.change_perm(cmd, false);
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// `+cmd`, `+container|sub`, or the deprecated `+cmd|firstarg`.
    fn allow_command(&mut self, name: &[u8]) -> Result<(), RuleError> {
        let Some(bar) = name.iter().rposition(|&b| b == b'|') else {
            let cmd = command::by_name(name).ok_or(RuleError::UnknownCommand)?;
            self.change_perm(cmd, true);
            return Ok(());
        };
        let (base, sub) = (&name[..bar], &name[bar + 1..]);
        let cmd = command::by_name(base).ok_or(RuleError::UnknownCommand)?;
        if cmd.parent.is_some() {
            return Err(RuleError::FirstArgOfSubcommand);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if !cmd.subcommands.is_empty() {
            let subcmd = command::by_name(name).ok_or(RuleError::UnknownCommand)?;
            self.change_perm(subcmd, true);
            return Ok(());
        }
        match self.first_args.iter_mut().find(|(id, _)| *id == cmd.id) {
            Some((_, list)) => {
                if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                    list.push(sub.to_vec());
                }
            }
            None => self.first_args.push((cmd.id, vec![sub.to_vec()])),
        }
        Ok(())
    }

    /// `~pat` and `%<R|W...>~pat`.
    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if self.all_keys {
            return Err(RuleError::KeyAfterAll);
        }
        let (perms, offset) = if op[0] == b'%' {
            let mut perms = 0u8;
            let mut offset = 1;
            while offset < op.len() {
                match op[offset].to_ascii_uppercase() {
                    b'R' if perms & PERM_READ == 0 => perms |= PERM_READ,
                    b'W' if perms & PERM_WRITE == 0 => perms |= PERM_WRITE,
                    b'~' => {
                        offset += 1;
                        break;
                    }
                    _ => return Err(RuleError::Syntax),
                }
                offset += 1;
            }
            // Debian's fix for CVE-2024-31227: `%~pat` and a bare `%` are refused.
            if perms == 0 {
                return Err(RuleError::Syntax);
            }
            (perms, offset)
        } else {
            (PERM_READ | PERM_WRITE, 1)
        };
        let pattern = op.get(offset..).unwrap_or_default();
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        match self.keys.iter_mut().find(|k| k.pattern == pattern) {
            Some(existing) => existing.perms |= perms,
            None => self.keys.push(KeyPattern {
                pattern: pattern.to_vec(),
                perms,
            }),
        }
        self.all_keys = false;
        Ok(())
    }
}
