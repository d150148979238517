//! RESP scanning: [`request`] finds client commands, [`reply`] finds upstream reply frames.

pub mod encode;
pub mod num;
pub mod reply;
pub mod request;
pub mod value;
