//! Configuration of the IMAP server (the binary fills it from its TOML file).

use crate::limits;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Name in the greeting.
    pub hostname: String,
    /// Largest APPEND literal (message size limit); larger gets `NO [TOOBIG]`.
    pub max_literal_size: usize,
    /// Autologout after this long without a command (RFC 9051 §5.4: at least 30 min).
    pub idle_timeout: Duration,
    /// Autologout before authentication, counted from the connection.
    pub pre_auth_timeout: Duration,
    /// Longest IDLE before the server ends it with `* BYE`.
    pub max_idle_duration: Duration,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    /// Networks exempt from `max_connections_per_ip` (`[limits] trusted_networks`).
    pub trusted_networks: Vec<bulwark_net::IpNet>,
    /// Allow LOGIN/AUTHENTICATE without TLS when the peer is on a loopback address.
    pub allow_plaintext_auth_on_loopback: bool,
    /// Commands per second per connection (token bucket refill rate).
    pub commands_per_second: u32,
    /// Memory all sessions together may hold for literals being received (APPEND); at least
    /// one literal of `max_literal_size` always fits.
    pub literal_memory_budget: usize,
    /// How long a literal waits for room in that budget before it is refused.
    pub literal_memory_wait: Duration,
    /// Storage quotas (RFC 9208; `[quota]`).
    pub quota: bulwark_core::quota::QuotaPolicy,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            hostname: "localhost".into(),
            max_literal_size: limits::DEFAULT_MAX_LITERAL_SIZE,
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT,
            pre_auth_timeout: limits::PRE_AUTH_TIMEOUT,
            max_idle_duration: limits::MAX_IDLE_DURATION,
            max_connections_per_ip: limits::DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            trusted_networks: Vec::new(),
            allow_plaintext_auth_on_loopback: false,
            commands_per_second: limits::COMMANDS_PER_SECOND,
            literal_memory_budget: limits::DEFAULT_LITERAL_MEMORY_BUDGET,
            literal_memory_wait: limits::LITERAL_MEMORY_WAIT,
            quota: bulwark_core::quota::QuotaPolicy::default(),
        }
    }
}
