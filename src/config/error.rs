//! Everything that can be wrong with a configuration file.
//!
//! Each [`ConfigError`]'s `Display` is the exact line `portcullis check`
//! prints. Syntax and type errors carry `file:line:col`; semantic errors are
//! a sentence that starts with the key. No variant ever holds a password.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// One problem with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file as given.
        path: PathBuf,
        /// Why reading failed.
        source: io::Error,
    },
    /// TOML syntax, a value of the wrong type, an unknown or a missing key.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The configuration file as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The parser's message, on one line.
        message: String,
    },
    /// An address that does not have the expected form.
    #[error("{key}: {value:?} is not a valid address (expected {expected})")]
    BadAddress {
        /// The key, e.g. `server.listen`.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The accepted forms, e.g. `host:port`.
        expected: &'static str,
    },
    /// An entry of a list that does not have the expected form.
    #[error("{key}: {value:?} is not {expected}")]
    BadEntry {
        /// The key, e.g. `server.allow` or `users[0].auth_methods`.
        key: String,
        /// The entry as written.
        value: String,
        /// What an entry must be.
        expected: &'static str,
    },
    /// A `host:port` whose host name does not resolve.
    #[error("{key}: cannot resolve {value:?}: {reason}")]
    Unresolvable {
        /// The key, e.g. `server.listen`.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The resolver's answer.
        reason: String,
    },
    /// A string that is not one of the allowed choices.
    #[error("{key}: {value:?} is not one of {expected}")]
    BadChoice {
        /// The key, e.g. `tls.min_version`.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The allowed values, quoted, e.g. `"1.2", "1.3"`.
        expected: &'static str,
    },
    /// A number below its minimum (zero where zero makes no sense).
    #[error("{key}: must be at least {min}, got {value}")]
    TooSmall {
        /// The key, e.g. `limits.max_clients` or `users[0].rate.burst`.
        key: String,
        /// The smallest accepted value.
        min: u64,
        /// The value as written.
        value: u64,
    },
    /// A string or list that must not be empty.
    #[error("{key}: must not be empty")]
    Empty {
        /// The key, e.g. `tls.cert`.
        key: String,
    },
    /// A setting that only makes sense together with another one.
    #[error("{setting} needs {needs}")]
    Requires {
        /// The setting, e.g. `tls.client_auth = "required"`.
        setting: String,
        /// What it needs, e.g. `tls.client_ca`.
        needs: &'static str,
    },
    /// A plaintext listener on an address other hosts can reach.
    #[error(
        "{key}: {addr} is not a loopback address; set server.allow_plaintext_remote = true \
         to allow plaintext from other hosts"
    )]
    PlaintextRemote {
        /// Always `server.plaintext_listen`.
        key: &'static str,
        /// The address (and the name it came from, if any).
        addr: String,
    },
    /// The same address given to two different listeners.
    #[error("{key}: {addr} is already used by {other}")]
    AddressReused {
        /// The later listener's key.
        key: &'static str,
        /// The address.
        addr: String,
        /// The earlier listener's key.
        other: &'static str,
    },
    /// Both `password` and `password_file` in one section.
    #[error("{section}: set either password or password_file, not both")]
    PasswordTwice {
        /// `upstream` or `upstream.sentinel`.
        section: &'static str,
    },
    /// A `password_file` could not be read.
    #[error("{section}.password_file: cannot read {}: {source}", .path.display())]
    PasswordFile {
        /// `upstream` or `upstream.sentinel`.
        section: &'static str,
        /// The resolved path.
        path: PathBuf,
        /// Why reading failed.
        source: io::Error,
    },
    /// A `password_file` holds nothing but a newline, or nothing.
    #[error("{section}.password_file: {} is empty", .path.display())]
    PasswordFileEmpty {
        /// `upstream` or `upstream.sentinel`.
        section: &'static str,
        /// The resolved path.
        path: PathBuf,
    },
    /// A user name Redis would refuse (`ACL SETUSER` rejects the same names).
    #[error("{key}: user name {name:?} can't contain spaces or null characters")]
    BadUserName {
        /// Where the name was found, e.g. `users[2]` or `auth.cert_map`.
        key: String,
        /// The name as written.
        name: String,
    },
    /// A value that breaks a rule of its own, said in a sentence.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, e.g. `upstream.rename_commands.CONFIG`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Two `[[users]]` entries with the same name.
    #[error("users[{index}]: duplicate user name {name:?}")]
    DuplicateUser {
        /// 0-based position in `[[users]]`.
        index: usize,
        /// The repeated name.
        name: String,
    },
}

/// Every problem found, in file order where possible.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, one by one.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(err: ConfigError) -> Self {
        ConfigErrors(vec![err])
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl ConfigError {
    /// A TOML syntax or type error, located by the parser's byte span in `text`.
    pub(crate) fn from_toml(err: &toml::de::Error, text: &str, file: &str) -> Self {
        let offset = err.span().map_or(0, |span| span.start).min(text.len());
        let (line, column) = line_column(text, offset);
        let message = err
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        ConfigError::Syntax {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }
}

/// 1-based line and character column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    // Back off to a char boundary so slicing cannot panic.
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn line_column_counts_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 1), (1, 2));
        assert_eq!(line_column(text, 3), (2, 1));
        // 'é' is two bytes; the column counts characters.
        assert_eq!(line_column(text, 7), (2, 4));
        assert_eq!(line_column(text, 8), (3, 1));
        assert_eq!(line_column(text, 100), (3, 2));
    }
}
