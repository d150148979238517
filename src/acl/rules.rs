//! The Redis 7.0 `ACL SETUSER` rule language, applied left to right
//! (Redis's `ACLSetUser`; selector rules are in [`super::selector`]).

pub use super::rule_error::{RuleError, RulesError};
use super::selector::Selector;
use super::user::User;

/// Redis's `ACLMergeSelectorArguments`: a token starting with `(` but not ending
/// with `)` starts a selector that runs, joined by single spaces, to the next
/// token ending with `)`. Such a token also *restarts* a selector that is already
/// open (Redis drops the unfinished one), and an unclosed selector is reported
/// by its last start.
pub fn merge_selector_args<'a>(
    tokens: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, RulesError> {
    let mut out = Vec::new();
    let mut open: Option<(String, &str)> = None;
    for tok in tokens {
        if tok.starts_with('(') && !tok.ends_with(')') {
            open = Some((tok.to_string(), tok));
            continue;
        }
        if let Some((sel, _)) = open.as_mut() {
            sel.push(' ');
            sel.push_str(tok);
            if tok.ends_with(')') {
                if let Some((sel, _)) = open.take() {
                    out.push(sel);
                }
            }
            continue;
        }
        out.push(tok.to_string());
    }
    match open {
        Some((_, start)) => Err(RulesError::UnmatchedParenthesis(start.to_string())),
        None => Ok(out),
    }
}

/// Applies `rules` (split on whitespace, selectors merged) to `user`, left to
/// right. Like `ACL SETUSER`, all or nothing: on error `user` is unchanged.
pub fn apply_rules(user: &mut User, rules: &str) -> Result<(), RulesError> {
    // Redis reads many rules as C strings and would silently cut them at a NUL;
    // a configuration should not depend on that, so NUL is refused outright.
    if let Some(token) = rules.split_ascii_whitespace().find(|t| t.contains('\0')) {
        return Err(RulesError::Rule {
            rule: token.replace('\0', "\\0"),
            reason: RuleError::Syntax,
        });
    }
    let ops = merge_selector_args(rules.split_ascii_whitespace())?;
    let mut draft = user.clone();
    for op in &ops {
        apply_rule(&mut draft, op.as_bytes()).map_err(|reason| RulesError::Rule {
            rule: op.clone(),
            reason,
        })?;
    }
    *user = draft;
    Ok(())
}

/// Applies one rule, like Redis's `ACLSetUser`.
pub fn apply_rule(user: &mut User, op: &[u8]) -> Result<(), RuleError> {
    let eq = |s: &str| op.eq_ignore_ascii_case(s.as_bytes());
    match op.first() {
        None => return Ok(()),
        Some(b'>') => add_digest(user, super::user::digest(&op[1..])),
        Some(b'#') => add_digest(user, parse_hash(&op[1..])?),
        Some(b'<') => remove_digest(user, super::user::digest(&op[1..]))?,
        Some(b'!') => remove_digest(user, parse_hash(&op[1..])?)?,
        Some(b'(') if op.ends_with(b")") => {
            user.selectors.push(selector_from(&op[1..op.len() - 1])?)
        }
        _ if eq("on") => user.enabled = true,
        _ if eq("off") => user.enabled = false,
        _ if eq("nopass") => {
            user.nopass = true;
            user.passwords.clear();
        }
        _ if eq("resetpass") => {
            user.nopass = false;
            user.passwords.clear();
        }
        _ if eq("sanitize-payload") => {
            user.skip_sanitize_payload = false;
            user.sanitize_payload = true;
        }
        _ if eq("skip-sanitize-payload") => {
            user.skip_sanitize_payload = true;
            user.sanitize_payload = false;
        }
        _ if eq("clearselectors") => user.selectors.truncate(1),
        _ if eq("reset") => {
            let name = std::mem::take(&mut user.name);
            *user = User::new(&name);
            user.sanitize_payload = true;
        }
        _ => user.root_mut().apply(op)?,
    }
    Ok(())
}

/// `(...)`: a new selector from the rules inside, split like `sdssplitargs`.
fn selector_from(inside: &[u8]) -> Result<Selector, RuleError> {
    let mut sel = Selector::default();
    // Unbalanced quotes make Redis's sdssplitargs return nothing: an empty selector.
    let ops = crate::resp::request::split_args_owned(inside).unwrap_or_default();
    for op in ops {
        sel.apply(&op)?;
    }
    Ok(sel)
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
fn parse_hash(hex: &[u8]) -> Result<[u8; 32], RuleError> {
    if hex.len() != 64 || !hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(RuleError::BadHash);
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16).unwrap_or(0);
        let lo = (pair[1] as char).to_digit(16).unwrap_or(0);
        out[i] = (hi * 16 + lo) as u8;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
