//! One ACL user: flags, password digests and permission selectors.

use crate::edge::Access;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::selector::Selector;

/// A password as Redis stores it: the SHA-256 digest of the cleartext.
pub type PasswordDigest = [u8; 32];

/// SHA-256 of a cleartext password.
pub fn digest(password: &[u8]) -> PasswordDigest {
    Sha256::digest(password).into()
}

/// An ACL user, built by applying rules left to right to [`User::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name (no whitespace or NUL).
    pub name: String,
    /// `on` / `off`.
    pub enabled: bool,
    /// `nopass`: any password authenticates.
    pub nopass: bool,
    /// SHA-256 digests of the accepted passwords, no duplicates.
    pub passwords: Vec<PasswordDigest>,
    /// `skip-sanitize-payload` (kept for `ACL LIST`; the proxy never restores payloads).
    pub skip_sanitize_payload: bool,
    /// `sanitize-payload` (set by it and by `reset`; shown by `ACL LIST`).
    pub sanitize_payload: bool,
    /// The root selector first, then `(...)` selectors in the order added.
    pub selectors: Vec<Selector>,
    /// `auth.scripts = "restricted"` applies: scripts and code loading only
    /// when [`User::allows_everything`]. Not a rule: `ACL LIST` never shows it.
    pub restrict_scripts: bool,
    /// `allow_from` and `auth_methods` from `[[users]]` (not rules either).
    pub access: Access,
    /// `enforce` from `[[users]]`: false = shadow mode, denials are logged and
    /// counted but the command is forwarded.
    pub enforce: bool,
    /// `filter_listings` from `[[users]]`: KEYS, SCAN and RANDOMKEY replies
    /// keep only the keys this user may read.
    pub filter_listings: bool,
}

impl User {
    /// A new user as Redis creates one: off, no passwords, no keys, no channels, no commands.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            skip_sanitize_payload: false,
            sanitize_payload: false,
            selectors: vec![Selector::default()],
            restrict_scripts: false,
            access: Access::default(),
            enforce: true,
            filter_listings: false,
        }
    }

    /// True when `password` authenticates this user (ignores `on`/`off`).
    /// The comparison runs over every stored digest in constant time.
    pub fn password_matches(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let given = digest(password);
        let mut found = subtle::Choice::from(0);
        for stored in &self.passwords {
            found |= stored.ct_eq(&given);
        }
        found.into()
    }

    /// The root selector.
    pub fn root(&self) -> &Selector {
        &self.selectors[0]
    }

    /// The root selector, mutably.
    pub fn root_mut(&mut self) -> &mut Selector {
        &mut self.selectors[0]
    }

    /// True when one selector allows every command on every key (then commands
    /// missing from the proxy's table, e.g. module commands, are forwarded).
    pub fn allows_unknown_commands(&self) -> bool {
        self.selectors.iter().any(|s| s.all_commands && s.all_keys)
    }

    /// True when one selector allows every command on every key (read and
    /// write) and every channel: what a script may need, since its inner
    /// calls are not checked.
    pub fn allows_everything(&self) -> bool {
        self.selectors.iter().any(Selector::allows_everything)
    }
}
