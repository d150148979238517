//! Edge policy (step 1b, between accept and the session): which source
//! addresses may connect at all, and who may become which user, from where
//! and by which method.

pub mod access;
pub mod proxy_header;
pub mod sources;
pub mod token;

pub use access::{Access, AccessRule, AuthMethod, AuthMethods};
pub use proxy_header::{read_proxy_header, ProxyHeaderError};
pub use sources::SourceList;
pub use token::{looks_like_token, TokenError, TokenVerifier};
