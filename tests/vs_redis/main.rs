//! Redis is the oracle: generated cases compared with a real redis-server
//! (ACL rules and decisions, ACL LIST/GETUSER, key extraction and what commands
//! really touch, glob matching, the request scanner, the command table).

#[path = "../support/mod.rs"]
#[allow(dead_code, unused_imports)] // each binary uses part of it
mod support;

mod acl;
mod acl_describe;
mod command_table;
mod glob;
mod keys;
mod keys_touched;
mod scanner;
