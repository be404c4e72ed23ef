//! Bulwark's durable outbound queue.
//!
//! Messages for remote recipients are stored by the SMTP submission path with
//! [`Store::queue_enqueue`](bulwark_store::Store::queue_enqueue); a [`QueueWorker`] leases due
//! entries, delivers them (to the configured relay, or to each domain's MX hosts found with
//! the node's resolver, `bulwark-dns`), retries transient failures with exponential back-off and, once an
//! entry has failed recipients and none pending, sends one RFC 3464 bounce to the sender.
//!
//! * STARTTLS is used whenever a server offers it, without certificate checks (opportunistic,
//!   RFC 7435); a host whose handshake fails is retried in cleartext.
//! * A recipient domain with an MTA-STS policy in `enforce` mode (RFC 8461, [`sts`]) gets its
//!   mail only through the MX hosts its policy lists, over STARTTLS with a certificate
//!   verified for the host name — never in cleartext; otherwise the entry waits and retries.
//! * Several nodes may share one queue: entries are leased (`lease_secs`) before delivery and
//!   released by the write-back; the lease must outlast one attempt of one entry.

mod client;
pub mod dsn;
mod mx;
pub mod reply;
mod sts;
mod table;
mod worker;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use dsn::build_dsn;
pub use mx::{MAX_ADDRS_PER_HOST, MAX_MX_HOSTS};
pub use table::format_queue_table;
pub use worker::{MAX_IDLE, MAX_JITTER_SECS, QueueWorker, retry_delay, retry_jitter};

use std::time::Duration;

/// Default lifetime of a bounce in the queue (seconds).
pub const DEFAULT_DSN_LIFETIME_SECS: i64 = 5 * 24 * 3600;

/// How the worker delivers. [`Default`] gives production values (port 25, MX lookup through
/// the system resolver, STARTTLS when offered).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Our name in EHLO, in `Reporting-MTA` and as the bounce sender's domain.
    pub hostname: String,
    /// Smarthost `host:port` (or `ip:port`); when set every message goes there, no MX lookup.
    pub relay: Option<String>,
    /// Lease owner name; unique per node.
    pub node_id: String,
    /// How long a leased entry belongs to this node (must outlast one delivery attempt).
    pub lease_secs: i64,
    /// First retry delay; doubles per attempt up to `retry_max_secs`.
    pub retry_base_secs: i64,
    pub retry_max_secs: i64,
    /// Entries delivered at the same time.
    pub max_parallel: usize,
    /// Entries leased per pass.
    pub batch_size: usize,
    pub connect_timeout: Duration,
    /// Limit for each command reply, including the final reply to DATA.
    pub command_timeout: Duration,
    /// Port of MX hosts (25; tests use another).
    pub smtp_port: u16,
    /// The node's resolver for MX/A/AAAA lookups (`[dns]`); `None`: one on the system's
    /// name servers.
    pub resolver: Option<bulwark_dns::Resolver>,
    /// Use STARTTLS when offered (opportunistic).
    pub starttls: bool,
    /// Apply recipient domains' MTA-STS policies (RFC 8461): for a domain in `enforce` mode
    /// only its listed MX hosts are used, over TLS with a verified certificate.
    pub mta_sts: bool,
    /// Extra CA certificates (PEM) trusted for verified TLS, besides the system's roots.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// How long a bounce to a remote sender is retried.
    pub dsn_lifetime_secs: i64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            hostname: "localhost".into(),
            relay: None,
            node_id: "local".into(),
            lease_secs: 900,
            retry_base_secs: 60,
            retry_max_secs: 4 * 3600,
            max_parallel: 8,
            batch_size: 64,
            connect_timeout: Duration::from_secs(30),
            // RFC 5321 §4.5.3.2 suggests 5 minutes for MAIL/RCPT and 10 for the end of DATA.
            command_timeout: Duration::from_secs(300),
            smtp_port: 25,
            resolver: None,
            starttls: true,
            mta_sts: true,
            tls_ca_file: None,
            dsn_lifetime_secs: DEFAULT_DSN_LIFETIME_SECS,
        }
    }
}
