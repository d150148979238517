//! Small checks of single keys shared by every section (a leaf module).

use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// `value` relative to `base` (the config file's directory) unless absolute.
pub(crate) fn resolve_path(base: &Path, value: &str) -> PathBuf {
    base.join(value)
}

/// A path-valued key: must not be empty, resolved against `base`.
pub(crate) fn path_key(
    key: &str,
    value: &str,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> PathBuf {
    if value.is_empty() {
        errors.push(ConfigError::Empty {
            key: key.to_owned(),
        });
    }
    resolve_path(base, value)
}

/// A number that must be at least 1; `default` when absent.
pub(crate) fn nonzero<T: Copy + Default + PartialEq>(
    key: &str,
    value: Option<T>,
    default: T,
    errors: &mut Vec<ConfigError>,
) -> T {
    match value {
        Some(v) if v == T::default() => {
            errors.push(ConfigError::TooSmall {
                key: key.to_owned(),
                min: 1,
                value: 0,
            });
            default
        }
        Some(v) => v,
        None => default,
    }
}
