//! The set of users, built from `[[users]]` and `[auth] acl_file`, and password checks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::rules::apply_rules;
use super::user::User;
use crate::config::{Config, RateSettings, ScriptPolicy};
use crate::edge::{looks_like_token, AuthMethod, TokenError, TokenVerifier};

/// Per-user settings from `[[users]]` that are not ACL rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserLimits {
    /// The user's `max_clients`.
    pub max_clients: Option<u32>,
    /// The user's `rate`.
    pub rate: Option<RateSettings>,
}

/// An immutable user set; replaced whole on reload.
#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<String, Arc<User>>,
    limits: HashMap<String, UserLimits>,
    /// `auth.scripts`, applied to every user inserted.
    scripts: ScriptPolicy,
    /// `[auth.token]` with its keys; `None` = tokens are off.
    tokens: Option<TokenVerifier>,
}

impl Users {
    /// Builds the users of `cfg`. Errors name the user and the rule, e.g.
    /// `users[1] "app": Error in ACL SETUSER modifier 'bogus': Syntax error`.
    pub fn from_config(cfg: &Config) -> Result<Users, Vec<String>> {
        let mut users = Users {
            scripts: cfg.auth.scripts,
            ..Users::default()
        };
        let mut errors = Vec::new();
        if let Some(settings) = &cfg.auth.token {
            match TokenVerifier::load(settings) {
                Ok(v) => users.tokens = Some(v),
                Err(e) => errors.push(e),
            }
        }
        for (i, entry) in cfg.users.iter().enumerate() {
            let mut user = User::new(&entry.name);
            if let Err(e) = apply_rules(&mut user, &entry.rules) {
                errors.push(format!("users[{i}] \"{}\": {e}", entry.name));
                continue;
            }
            user.access = entry.access.clone();
            user.enforce = entry.enforce;
            user.filter_listings = entry.filter_listings;
            let limits = UserLimits {
                max_clients: entry.max_clients,
                rate: entry.rate,
            };
            if let Err(e) = users.insert(user, limits) {
                errors.push(format!("users[{i}]: {e}"));
            }
        }
        if let Some(path) = &cfg.auth.acl_file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let where_ = path.display().to_string();
                    for (user, line_no) in parse_acl_file(&text, &where_, &mut errors) {
                        let name = user.name.clone();
                        if users.insert(user, UserLimits::default()).is_err() {
                            errors.push(format!(
                                "{where_}: Duplicate user '{name}' found on line {line_no}."
                            ));
                        }
                    }
                }
                Err(e) => errors.push(format!(
                    "auth.acl_file: cannot read {}: {e}",
                    path.display()
                )),
            }
        }
        errors.sort();
        if errors.is_empty() {
            Ok(users)
        } else {
            Err(errors)
        }
    }

    fn insert(&mut self, mut user: User, limits: UserLimits) -> Result<(), String> {
        if self.by_name.contains_key(&user.name) {
            return Err(format!("duplicate user \"{}\"", user.name));
        }
        user.restrict_scripts = self.scripts == ScriptPolicy::Restricted;
        self.limits.insert(user.name.clone(), limits);
        self.by_name.insert(user.name.clone(), Arc::new(user));
        Ok(())
    }

    /// The user called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<User>> {
        self.by_name.get(name)
    }

    /// The non-ACL settings of user `name`.
    pub fn limits(&self, name: &str) -> UserLimits {
        self.limits.get(name).copied().unwrap_or_default()
    }

    /// Every user name (unordered).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when no user is defined (every command then gets NOAUTH).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The user unauthenticated connections from `peer` act as: `default`,
    /// when it exists, is `on` and has `nopass` (Redis semantics), and its
    /// `allow_from` and `auth_methods` (as `password`) admit `peer`.
    pub fn implicit_default(&self, peer: IpAddr) -> Option<&Arc<User>> {
        self.by_name.get("default").filter(|u| {
            u.enabled && u.nopass && u.access.refuses(peer, AuthMethod::Password).is_none()
        })
    }

    /// True when a `default` user exists with `nopass` (on or off): Redis then
    /// refuses the one-argument `AUTH <password>` form with its own error.
    pub fn default_has_nopass(&self) -> bool {
        self.by_name.get("default").is_some_and(|u| u.nopass)
    }

    /// True when `password` is to be checked as a token: `[auth.token]` is on
    /// and it has a JWT's shape.
    pub fn is_token(&self, password: &[u8]) -> bool {
        self.tokens.is_some() && looks_like_token(password)
    }

    /// `AUTH <name> <token>`: the user (existing and `on`) and the time
    /// (Unix seconds) its token expires, or why it was refused.
    pub fn authenticate_token(
        &self,
        name: &[u8],
        token: &[u8],
        now: u64,
    ) -> Result<(Arc<User>, u64), &'static str> {
        let verifier = self.tokens.as_ref().ok_or("tokens are off")?;
        let expires = verifier
            .verify(token, name, now)
            .map_err(TokenError::as_str)?;
        let user = std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.by_name.get(n))
            .filter(|u| u.enabled)
            .ok_or("no such user, or user is off")?;
        Ok((Arc::clone(user), expires))
    }

    /// Redis's `ACLCheckUserCredentials`: the user exists, is `on`, and the
    /// password matches. An unknown name costs the same digest work.
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let user = std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.by_name.get(n));
        match user {
            Some(u) if u.password_matches(password) && u.enabled => Some(Arc::clone(u)),
            Some(_) => None,
            None => {
                let _ = super::user::digest(password);
                None
            }
        }
    }
}

/// How Redis's `ACL LOAD` words a bad rule: the reason alone, with a full stop.
fn acl_file_reason(e: &super::rules::RulesError) -> String {
    match e {
        super::rules::RulesError::Rule { reason, .. } => format!("{reason}."),
        other => other.to_string(),
    }
}

/// Parses Redis ACL-file text (`user <name> <rule> ...` per line, split on single
/// spaces, no quoting, no comments). Errors are pushed as `FILE:LINE: message`.
/// Returns each user with its line number.
fn parse_acl_file(text: &str, file: &str, errors: &mut Vec<String>) -> Vec<(User, usize)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        if line.is_empty() {
            continue;
        }
        let mut tokens = line.split(' ').filter(|t| !t.is_empty());
        if tokens.next() != Some("user") {
            errors.push(format!(
                "{file}:{line_no} should start with user keyword followed by the username."
            ));
            continue;
        }
        let Some(name) = tokens.next() else {
            errors.push(format!(
                "{file}:{line_no} should start with user keyword followed by the username."
            ));
            continue;
        };
        if name.contains(|c: char| c.is_ascii_whitespace() || c == '\0') {
            errors.push(format!(
                "{file}:{line_no}: username '{name}' contains invalid characters."
            ));
            continue;
        }
        let mut user = User::new(name);
        let rest: Vec<&str> = tokens.collect();
        match apply_rules(&mut user, &rest.join(" ")) {
            Ok(()) => out.push((user, line_no)),
            Err(e) => errors.push(format!("{file}:{line_no}: {}", acl_file_reason(&e))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_file_lines() {
        let mut errors = Vec::new();
        let users = parse_acl_file(
            "user a on nopass ~* &* +@all\n\n  user b off\r\n# comment\nuser c bogus\n",
            "users.acl",
            &mut errors,
        );
        let names: Vec<_> = users.iter().map(|(u, l)| (u.name.as_str(), *l)).collect();
        assert_eq!(names, vec![("a", 1), ("b", 3)]);
        assert_eq!(
            errors,
            vec![
                "users.acl:4 should start with user keyword followed by the username.".to_string(),
                "users.acl:5: Syntax error.".to_string(),
            ]
        );
    }
}
