//! Label types: the public [`Limit`] and [`CommandResult`] enums and the
//! private label sets of each family.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// A limit or protection that refused, delayed or closed something; the
/// `limit` label of `portcullis_limit_hits_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `server.max_clients` reached: connection refused.
    MaxClients,
    /// Per-source-IP connection cap reached.
    MaxClientsPerIp,
    /// A user's own connection cap reached.
    UserMaxClients,
    /// Per-source-IP connection rate exceeded.
    ConnRatePerIp,
    /// Too many authentication failures from one source IP.
    AuthFailuresPerIp,
    /// A command rejected by the per-user rate limit.
    RateReject,
    /// A command delayed by the per-user rate limit.
    RateDelay,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// A client closed for being idle too long.
    IdleTimeout,
    /// A bulk string longer than the configured maximum.
    MaxBulkLen,
    /// A multibulk with more elements than the configured maximum.
    MaxMultibulkLen,
    /// An inline command longer than the configured maximum.
    MaxInlineLen,
    /// A client's unparsed input grew past the query buffer limit.
    MaxQueryBuffer,
    /// A bulk string too long for a client that has not authenticated.
    UnauthBulkLen,
    /// A multibulk too long for a client that has not authenticated.
    UnauthMultibulkLen,
    /// A client closed for a RESP protocol error.
    ProtocolError,
    /// A pooled client closed for not reading its replies (`upstream.pool_reply_limit`).
    PoolReplyLimit,
    /// A peer outside `server.allow`, closed at accept.
    Allow,
    /// A peer in `server.proxy_protocol_from` that sent no valid PROXY header in time.
    ProxyHeader,
}

impl Limit {
    /// Every variant, in declaration order (`Limit::ALL[l as usize] == l`).
    pub const ALL: [Limit; 19] = [
        Limit::MaxClients,
        Limit::MaxClientsPerIp,
        Limit::UserMaxClients,
        Limit::ConnRatePerIp,
        Limit::AuthFailuresPerIp,
        Limit::RateReject,
        Limit::RateDelay,
        Limit::HandshakeTimeout,
        Limit::IdleTimeout,
        Limit::MaxBulkLen,
        Limit::MaxMultibulkLen,
        Limit::MaxInlineLen,
        Limit::MaxQueryBuffer,
        Limit::UnauthBulkLen,
        Limit::UnauthMultibulkLen,
        Limit::ProtocolError,
        Limit::PoolReplyLimit,
        Limit::Allow,
        Limit::ProxyHeader,
    ];

    /// The snake_case label value, e.g. `"max_clients_per_ip"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MaxClients => "max_clients",
            Limit::MaxClientsPerIp => "max_clients_per_ip",
            Limit::UserMaxClients => "user_max_clients",
            Limit::ConnRatePerIp => "conn_rate_per_ip",
            Limit::AuthFailuresPerIp => "auth_failures_per_ip",
            Limit::RateReject => "rate_reject",
            Limit::RateDelay => "rate_delay",
            Limit::HandshakeTimeout => "handshake_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::MaxBulkLen => "max_bulk_len",
            Limit::MaxMultibulkLen => "max_multibulk_len",
            Limit::MaxInlineLen => "max_inline_len",
            Limit::MaxQueryBuffer => "max_query_buffer",
            Limit::UnauthBulkLen => "unauth_bulk_len",
            Limit::UnauthMultibulkLen => "unauth_multibulk_len",
            Limit::ProtocolError => "protocol_error",
            Limit::PoolReplyLimit => "pool_reply_limit",
            Limit::Allow => "allow",
            Limit::ProxyHeader => "proxy_header",
        }
    }
}

impl EncodeLabelValue for Limit {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// What became of one client command; the `result` label of
/// `portcullis_commands_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandResult {
    /// Sent to the upstream.
    Forwarded,
    /// Refused by the ACL: command or subcommand not allowed.
    DeniedCommand,
    /// Refused by the ACL: a key pattern did not match.
    DeniedKey,
    /// Refused by the ACL: a channel pattern did not match.
    DeniedChannel,
    /// Refused by the per-user rate limit.
    RateLimited,
    /// Answered by the proxy itself (AUTH, HELLO, ACL WHOAMI, ...).
    Local,
    /// Shadow mode (`enforce = false`): the ACL would refuse the command; forwarded.
    ShadowDeniedCommand,
    /// Shadow mode: a key pattern would not match; forwarded.
    ShadowDeniedKey,
    /// Shadow mode: a channel pattern would not match; forwarded.
    ShadowDeniedChannel,
}

impl CommandResult {
    /// Every variant, in declaration order (`ALL[r as usize] == r`).
    pub const ALL: [CommandResult; 9] = [
        CommandResult::Forwarded,
        CommandResult::DeniedCommand,
        CommandResult::DeniedKey,
        CommandResult::DeniedChannel,
        CommandResult::RateLimited,
        CommandResult::Local,
        CommandResult::ShadowDeniedCommand,
        CommandResult::ShadowDeniedKey,
        CommandResult::ShadowDeniedChannel,
    ];

    /// The snake_case label value, e.g. `"denied_key"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandResult::Forwarded => "forwarded",
            CommandResult::DeniedCommand => "denied_command",
            CommandResult::DeniedKey => "denied_key",
            CommandResult::DeniedChannel => "denied_channel",
            CommandResult::RateLimited => "rate_limited",
            CommandResult::Local => "local",
            CommandResult::ShadowDeniedCommand => "shadow_denied_command",
            CommandResult::ShadowDeniedKey => "shadow_denied_key",
            CommandResult::ShadowDeniedChannel => "shadow_denied_channel",
        }
    }
}

impl EncodeLabelValue for CommandResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// A free-form label value, escaped on output.
///
/// `prometheus-client`'s text encoder writes label values verbatim, so a `"`,
/// `\` or newline in a user name would otherwise corrupt the exposition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Text(pub(super) Box<str>);

impl EncodeLabelValue for Text {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let mut rest = &*self.0;
        while let Some(at) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..at])?;
            encoder.write_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[at + 1..];
        }
        encoder.write_str(rest)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct LimitLabels {
    pub(super) limit: Limit,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct CommandLabels {
    pub(super) user: Text,
    pub(super) result: CommandResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReasonLabels {
    pub(super) reason: Text,
}

/// What an upstream connection serves; the `kind` label of
/// `portcullis_upstream_connections`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamKind {
    /// A client's own connection in dedicated mode.
    Dedicated,
    /// A shared connection of the pool.
    Pooled,
    /// A pooled client's own connection while it holds server-side state.
    Pinned,
}

impl UpstreamKind {
    /// Every variant, in declaration order.
    pub const ALL: [UpstreamKind; 3] = [
        UpstreamKind::Dedicated,
        UpstreamKind::Pooled,
        UpstreamKind::Pinned,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Dedicated => "dedicated",
            UpstreamKind::Pooled => "pooled",
            UpstreamKind::Pinned => "pinned",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct KindLabels {
    pub(super) kind: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReloadLabels {
    pub(super) result: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct CertLabels {
    pub(super) cert: Text,
}
