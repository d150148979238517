//! Where a connection is in its life, and why it ends.

use std::time::Duration;

/// Why a connection stops taking commands. One place in the connection task
/// ([`super::Conn::close`]) matches on it to decide the replies still owed,
/// the log line and the metric.
#[derive(Debug)]
pub enum Close {
    /// The client closed its side: what is in flight is still answered.
    ClientEof,
    /// Reading from or writing to the client failed.
    ClientIo(std::io::Error),
    /// `QUIT`, a refused authentication (a user's connection cap), or
    /// malformed input: the reply is queued, commands after it are not run.
    Requested,
    /// The upstream connection is gone (or sent what cannot be routed):
    /// commands in flight get an error reply.
    UpstreamLost(String),
    /// `idle_timeout_s` passed with nothing happening.
    Idle,
    /// A reload removed the user or changed a subscriber's channels.
    Reload {
        /// The user the connection ran as.
        user: Option<String>,
        /// What changed.
        reason: &'static str,
    },
    /// The server drains (SIGTERM): what is in flight is still answered.
    Drain,
    /// The token the client authenticated with expired (and no fresh `AUTH`
    /// came): what is in flight is still answered.
    TokenExpired,
    /// The shutdown grace is over: what is in flight gets an error reply.
    Aborted,
    /// Pooled mode: the client did not read its replies (more than
    /// `upstream.pool_reply_limit` bytes waited); what is in flight gets an
    /// error reply.
    ReplyLimit,
}

impl Close {
    /// True when the replies of commands already received are still awaited
    /// before the connection ends.
    pub fn answers_in_flight(&self) -> bool {
        matches!(
            self,
            Close::ClientEof | Close::Requested | Close::Drain | Close::TokenExpired
        )
    }

    /// How long queued replies may take to reach the client once it ends.
    pub fn flush_limit(&self) -> Duration {
        match self {
            Close::Reload { .. } | Close::Aborted => Duration::from_secs(1),
            _ => Duration::from_secs(2),
        }
    }
}

/// A connection's phase.
#[derive(Debug, Default)]
pub enum Phase {
    /// Taking commands.
    #[default]
    Open,
    /// Taking no more commands; ends once its owed replies are written.
    Closing(Close),
}

impl Phase {
    /// True while commands are read and run.
    pub fn open(&self) -> bool {
        matches!(self, Phase::Open)
    }
}
