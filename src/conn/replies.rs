//! The replies the proxy writes itself, with Redis's exact texts where Redis
//! has one (a leaf module: everything that answers locally uses it).

/// `+OK`.
pub const OK: &[u8] = b"+OK\r\n";
/// `RESET`'s reply.
pub const RESET: &[u8] = b"+RESET\r\n";
/// A command before authentication.
pub const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
/// Failed AUTH / HELLO AUTH.
pub const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
/// `AUTH pw` while `default` has nopass.
pub const AUTH_NO_DEFAULT_PASSWORD: &[u8] = b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n";
/// `AUTH` with too many arguments.
pub const SYNTAX: &[u8] = b"-ERR syntax error\r\n";
/// `HELLO` before authentication without `AUTH`.
pub const HELLO_NOAUTH: &[u8] = b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";
/// `HELLO` with a version other than 2 or 3.
pub const NOPROTO: &[u8] = b"-NOPROTO unsupported protocol version\r\n";
/// `HELLO` with a version that is not a number.
pub const HELLO_BAD_VERSION: &[u8] = b"-ERR Protocol version is not an integer or out of range\r\n";
/// A command the proxy cannot run inside MULTI (it is answered by the proxy).
pub const NOT_IN_MULTI: &[u8] = b"-ERR Command not allowed inside a transaction\r\n";
/// EXEC after a command was refused inside MULTI.
pub const EXECABORT: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
/// Upstream could not be reached.
pub const UPSTREAM_UNAVAILABLE: &[u8] = b"-ERR upstream unavailable\r\n";
/// Upstream connection lost with this command in flight.
pub const UPSTREAM_LOST: &[u8] = b"-ERR upstream connection lost\r\n";
/// A pooled client closed for not reading its replies.
pub const REPLY_LIMIT: &[u8] =
    b"-ERR too many unread replies (upstream.pool_reply_limit); closing connection\r\n";
/// In flight when the proxy's shutdown grace ran out.
pub const SHUTTING_DOWN: &[u8] = b"-ERR proxy shutting down\r\n";
/// `HELLO ... SETNAME` with a name Redis refuses.
pub const BAD_CLIENT_NAME: &[u8] =
    b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n";
/// A connection cap is full (Redis's maxclients text); the connection closes.
pub const MAX_CLIENTS: &[u8] = b"-ERR max number of clients reached\r\n";
/// A command over its user's rate with `rate_mode = "reject"`.
pub const RATE_LIMITED: &[u8] = b"-ERR rate limit exceeded\r\n";

/// `KEYS`, `SCAN` or `RANDOMKEY` inside `MULTI` for a user with
/// `filter_listings` (the reply would be inside `EXEC`'s, unfiltered).
pub const LISTING_IN_MULTI: &[u8] =
    b"-ERR KEYS, SCAN and RANDOMKEY are not available inside MULTI for this user (filter_listings)\r\n";
