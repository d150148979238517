//! Step 0: `proxy.toml` -> validated [`Config`].
//!
//! Two stages (style item 9): the TOML text is deserialized into file structs
//! that mirror the file key for key and refuse unknown keys ([`file`]); then
//! `validate` applies defaults, resolves relative paths against the file's
//! directory and collects every semantic error. The result is the runtime
//! [`Config`] that everything after startup reads (and that a SIGHUP reload
//! swaps in whole).

mod error;
mod file;
mod keys;
mod net;
mod sections;
mod types;
mod upstream;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use types::*;

/// Reads and validates the configuration file at `path`.
///
/// Relative paths inside the file are relative to the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validates configuration `text` as if it had been read from `path`.
///
/// `path` names the file in syntax errors, and its parent directory is the
/// base for relative paths. Only `upstream.password_file` is read here;
/// certificates, keys and the acl file are left to the TLS and ACL modules.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let file: file::FileConfig = toml::from_str(text)
        .map_err(|err| ConfigError::from_toml(&err, text, &path.display().to_string()))?;
    validate::validate(file, path)
}
