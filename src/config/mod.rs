//! Step 0: `proxy.toml` -> validated [`Config`].

mod types;
pub use types::*;
