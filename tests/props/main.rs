//! Property tests of the request and reply scanners against `redis-protocol`'s
//! decoders, whole and split anywhere.

mod reply_scanner;
mod request_scanner;
