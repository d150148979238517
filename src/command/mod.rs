//! Step 3a, command knowledge: Redis 7.0's command table (generated from a live
//! redis-server and committed), lookup by name, and key/channel extraction.
//!
//! The connection task looks a command up here to build the one typed view
//! that policy (`crate::acl`) sees.

mod types;
pub use types::*;

pub mod lookup;
pub mod role;
mod table;
pub use lookup::{by_id, by_name, is_container, resolve, Resolved};
pub use role::Role;
pub use table::{COMMANDS, REDIS_VERSION};
pub mod keys;
pub use keys::{
    acl_keys, command_channels, command_keys, needs_read, needs_write, ArgList, ChannelRef, KeyRef,
};
