//! Cluster mode, client side: where each command goes ([`route`]), how the
//! replies of a command sent to several masters become one ([`merge`]), the
//! `CLUSTER` replies of a one-node cluster ([`local`]), and the router that
//! keeps a client's replies in order across masters and follows redirects
//! ([`router`]).

pub mod link;
pub mod local;
pub mod merge;
pub mod route;
pub mod router;
