//! Step 3, policy: users, their rules, and authentication.
//!
//! [`rules`] applies Redis 7.0 `ACL SETUSER` rules to a [`User`]; [`users`] builds
//! the user set from the configuration and authenticates passwords. The
//! connection task asks [`Users`] who a client is and whether it may proceed.

pub mod check;
pub mod describe;
pub mod glob;
pub mod log;
pub mod rule_error;
pub mod rules;
pub mod selector;
pub mod user;
pub mod users;

pub use rules::{RuleError, RulesError};
pub use user::User;
pub use users::Users;
