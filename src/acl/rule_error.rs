//! Why `ACL SETUSER` rules are refused, with Redis's texts (a leaf module for
//! [`super::rules`] and [`super::selector`]).

/// Why a rule was refused. `Display` is Redis's text (`ACLSetUserStringError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Redis `EINVAL`.
    #[error("Syntax error")]
    Syntax,
    /// Redis `ENOENT`.
    #[error("Unknown command or category name in ACL")]
    UnknownCommand,
    /// Redis `EEXIST`.
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    KeyAfterAll,
    /// Redis `EISDIR`.
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    ChannelAfterAll,
    /// Redis `ENODEV`.
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    /// Redis `EBADMSG`.
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    /// Redis `ECHILD`.
    #[error("Allowing first-arg of a subcommand is not supported")]
    FirstArgOfSubcommand,
}

/// A whole rule list failed: Redis's complete error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// One rule was refused.
    #[error("Error in ACL SETUSER modifier '{rule}': {reason}")]
    Rule {
        /// The rule as written (a merged selector for `(...)`).
        rule: String,
        /// Why.
        reason: RuleError,
    },
    /// A selector opened with `(` was never closed.
    #[error("Unmatched parenthesis in acl selector starting at '{0}'.")]
    UnmatchedParenthesis(String),
}
