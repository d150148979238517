//! Step 3, the per-client task: read -> scan -> policy -> forward; reply slots.

pub mod session;
pub mod slots;
