//! The Redis 7.0 `ACL SETUSER` rule language, applied left to right.
//!
//! Issue 2 scope: user flags, passwords and the allow-all / deny-all forms of
//! keys, channels and commands. Patterns, command and category rules and
//! selectors are recognised by their syntax and reported as not supported yet,
//! so a configuration that needs them fails closed at startup.

use super::user::{Selector, User};

/// Why a rule was refused. `Display` is Redis's text (`ACLSetUserStringError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Redis `EINVAL`.
    #[error("Syntax error")]
    Syntax,
    /// Redis `EBADMSG`.
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    /// Redis `ENODEV`.
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    /// A valid Redis rule this build does not enforce yet.
    #[error("this rule is not supported by this version of portcullis yet")]
    Unsupported,
}

/// Applies every rule of `rules` (split on whitespace) to `user`, left to right.
/// On error returns the offending rule and the reason.
pub fn apply_rules<'a>(user: &mut User, rules: &'a str) -> Result<(), (&'a str, RuleError)> {
    for rule in rules.split_ascii_whitespace() {
        apply_rule(user, rule).map_err(|e| (rule, e))?;
    }
    Ok(())
}

/// Applies one rule, like Redis's `ACLSetUser`.
pub fn apply_rule(user: &mut User, rule: &str) -> Result<(), RuleError> {
    let lower = rule.to_ascii_lowercase();
    match lower.as_str() {
        "" => Ok(()),
        "on" => {
            user.enabled = true;
            Ok(())
        }
        "off" => {
            user.enabled = false;
            Ok(())
        }
        "nopass" => {
            user.nopass = true;
            user.passwords.clear();
            Ok(())
        }
        "resetpass" => {
            user.nopass = false;
            user.passwords.clear();
            Ok(())
        }
        "reset" => {
            user.nopass = false;
            user.passwords.clear();
            user.enabled = false;
            user.root = Selector::default();
            Ok(())
        }
        _ => apply_password_rule(user, rule)
            .unwrap_or_else(|| apply_selector_rule(&mut user.root, rule)),
    }
}

/// `>pw`, `<pw`, `#hash`, `!hash`; `None` when `rule` is none of those.
fn apply_password_rule(user: &mut User, rule: &str) -> Option<Result<(), RuleError>> {
    let (op, rest) = rule.split_at_checked(1)?;
    let result = match op {
        ">" => {
            add_digest(user, super::user::digest(rest.as_bytes()));
            Ok(())
        }
        "#" => parse_hash(rest).map(|d| add_digest(user, d)),
        "<" => remove_digest(user, super::user::digest(rest.as_bytes())),
        "!" => parse_hash(rest).and_then(|d| remove_digest(user, d)),
        _ => return None,
    };
    Some(result)
}

fn add_digest(user: &mut User, d: [u8; 32]) {
    if !user.passwords.contains(&d) {
        user.passwords.push(d);
    }
    user.nopass = false;
}

fn remove_digest(user: &mut User, d: [u8; 32]) -> Result<(), RuleError> {
    let before = user.passwords.len();
    user.passwords.retain(|p| *p != d);
    if user.passwords.len() == before {
        return Err(RuleError::NoSuchPassword);
    }
    Ok(())
}

/// A 64-character lowercase hex SHA-256 digest.
fn parse_hash(hex: &str) -> Result<[u8; 32], RuleError> {
    let b = hex.as_bytes();
    if b.len() != 64 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(RuleError::BadHash);
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16).unwrap_or(0);
        let lo = (pair[1] as char).to_digit(16).unwrap_or(0);
        out[i] = (hi * 16 + lo) as u8;
    }
    Ok(out)
}

/// Rules Redis applies to a selector (`ACLSetSelector`).
fn apply_selector_rule(sel: &mut Selector, rule: &str) -> Result<(), RuleError> {
    let lower = rule.to_ascii_lowercase();
    match lower.as_str() {
        "allkeys" | "~*" => sel.all_keys = true,
        "resetkeys" => sel.all_keys = false,
        "allchannels" | "&*" => sel.all_channels = true,
        "resetchannels" => sel.all_channels = false,
        "allcommands" | "+@all" => sel.all_commands = true,
        "nocommands" | "-@all" => sel.all_commands = false,
        _ => {
            let first = rule.as_bytes()[0];
            return Err(match first {
                b'~' | b'%' | b'&' | b'+' | b'-' | b'(' => RuleError::Unsupported,
                _ => RuleError::Syntax,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &str) -> Result<User, (String, RuleError)> {
        let mut u = User::new("u");
        apply_rules(&mut u, rules).map_err(|(r, e)| (r.to_string(), e))?;
        Ok(u)
    }

    #[test]
    fn flags_and_passwords() {
        let u = user("on >secret ~* &* +@all").unwrap();
        assert!(u.enabled && !u.nopass && u.allows_everything());
        assert!(u.password_matches(b"secret"));
        assert!(!u.password_matches(b"Secret"));
        let u = user("on >a nopass").unwrap();
        assert!(u.nopass && u.passwords.is_empty() && u.password_matches(b"anything"));
        let u = user("nopass >a").unwrap();
        assert!(!u.nopass && !u.password_matches(b"b"));
        let u = user(">a >b <a").unwrap();
        assert!(!u.password_matches(b"a") && u.password_matches(b"b"));
        let u = user("on >a resetpass").unwrap();
        assert!(!u.password_matches(b"a") && !u.nopass);
        let u = user("ON Off").unwrap();
        assert!(!u.enabled);
        let u = user("on >a ~* &* +@all reset").unwrap();
        assert_eq!(u, User::new("u"));
    }

    #[test]
    fn hashes() {
        let h = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"; // "secret"
        let u = user(&format!("#{h}")).unwrap();
        assert!(u.password_matches(b"secret"));
        assert!(user(&format!("#{h} !{h}")).unwrap().passwords.is_empty());
        assert_eq!(user("#abc").unwrap_err().1, RuleError::BadHash);
        assert_eq!(
            user(&format!("#{}", h.to_uppercase())).unwrap_err().1,
            RuleError::BadHash
        );
        assert_eq!(user("<nothere").unwrap_err().1, RuleError::NoSuchPassword);
    }

    #[test]
    fn errors_name_the_rule() {
        assert_eq!(
            user("on bogus").unwrap_err(),
            ("bogus".to_string(), RuleError::Syntax)
        );
        assert_eq!(user("~foo:*").unwrap_err().1, RuleError::Unsupported);
        assert_eq!(
            RuleError::BadHash.to_string(),
            "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
        );
    }
}
