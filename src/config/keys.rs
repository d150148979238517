//! Small checks of single keys shared by every section (a leaf module).

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use crate::edge::SourceList;

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

/// A source-address list at `key` (`None` when absent); an empty list or an
/// entry that is neither a CIDR network nor an address is an error.
pub(crate) fn source_list(
    key: &str,
    values: Option<&[String]>,
    errors: &mut Vec<ConfigError>,
) -> Option<SourceList> {
    let values = values?;
    if values.is_empty() {
        errors.push(ConfigError::Empty {
            key: key.to_owned(),
        });
        return None;
    }
    match SourceList::parse(values) {
        Ok(list) => Some(list),
        Err(bad) => {
            errors.extend(bad.into_iter().map(|value| ConfigError::BadEntry {
                key: key.to_owned(),
                value,
                expected: "a CIDR network or an IP address (10.0.5.0/24, 2001:db8::/32, 127.0.0.1)",
            }));
            None
        }
    }
}

/// One of a fixed set of strings at `key`: its value in `options`, `default`
/// when absent, an error (`expected` lists the choices) when unknown.
pub(crate) fn choice<T: Copy>(
    key: &'static str,
    value: Option<&str>,
    options: &[(&str, T)],
    default: T,
    expected: &'static str,
    errors: &mut Vec<ConfigError>,
) -> T {
    let Some(value) = value else {
        return default;
    };
    match options.iter().find(|(name, _)| *name == value) {
        Some(&(_, v)) => v,
        None => {
            errors.push(ConfigError::BadChoice {
                key,
                value: value.to_owned(),
                expected,
            });
            default
        }
    }
}
