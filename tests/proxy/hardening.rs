//! Regression tests for the holes an adversarial review found (issue 11), each
//! compared with a real Redis where Redis is the reference, with generated
//! variants where the class allows. See the interface's "Hardening" section.
//!
//! - `replies`: pushes inside aggregates, keywords with NUL bytes, HELLO
//!   options, CLIENT REPLY in MULTI and with pub/sub, RESP2's pub/sub context;
//!   generated conversations through [`crate::support::SameStream`].
//! - `policy`: repeated GEORADIUS STORE keys, scripts under `auth.scripts`.
//! - `visibility`: escaped log fields, CLIENT INFO/LIST, the ACL LOG merge.

#[path = "hardening/policy.rs"]
mod policy;
#[path = "hardening/replies.rs"]
mod replies;
#[path = "hardening/visibility.rs"]
mod visibility;
