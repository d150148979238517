//! One ACL user: flags, password digests and permission selectors.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A password as Redis stores it: the SHA-256 digest of the cleartext.
pub type PasswordDigest = [u8; 32];

/// SHA-256 of a cleartext password.
pub fn digest(password: &[u8]) -> PasswordDigest {
    Sha256::digest(password).into()
}

/// A set of permissions (Redis 7.0 "selector"). The root selector holds the
/// rules written outside parentheses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// `allkeys` / `~*`.
    pub all_keys: bool,
    /// `allchannels` / `&*`.
    pub all_channels: bool,
    /// `allcommands` / `+@all`.
    pub all_commands: bool,
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
    /// The root selector.
    pub root: Selector,
}

impl User {
    /// A new user as Redis creates one: off, no passwords, no keys, no channels, no commands.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            root: Selector::default(),
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

    /// True when the user may run every command on every key and channel.
    pub fn allows_everything(&self) -> bool {
        self.root.all_commands && self.root.all_keys && self.root.all_channels
    }
}
