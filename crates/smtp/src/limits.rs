//! Every SMTP limit in one place, each with where its number comes from.

use std::time::{Duration, Instant};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF. Real clients send
/// longer ones (many ESMTP parameters, long AUTH initial responses), so we are lenient up to
/// this many octets before answering `500 5.5.2 Line too long`. 4096 is also smtp-proto's cap.
pub const MAX_COMMAND_LINE: usize = 4096;

/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF. We do not enforce it
/// inside message content (many senders exceed it); the message size limit bounds memory.
pub const RFC_TEXT_LINE: usize = 1000;

/// RFC 4954 §4: an AUTH response line may be longer than a command line (base64 of the
/// credentials); 12288 is what RFC 4954 §4 suggests servers accept.
pub const MAX_AUTH_LINE: usize = 12288;

/// Default message size limit advertised with SIZE (RFC 1870): 25 MiB, as most providers.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 25 * 1024 * 1024;

/// RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients per transaction.
pub const DEFAULT_MAX_RECIPIENTS: usize = 100;

/// Syntax errors, unknown commands and other 5xx replies before the session is closed with
/// `421` (Postfix `smtpd_hard_error_limit` defaults to 20).
pub const MAX_BAD_COMMANDS: u32 = 20;

/// Failed AUTH attempts on one connection before it is closed (per-IP/account throttling in
/// bulwark-auth applies across connections as well).
pub const MAX_AUTH_FAILURES: u32 = 3;

/// RFC 5321 §4.5.3.2.7: the server timeout should be at least 5 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Time allowed for a TLS handshake (implicit TLS or after STARTTLS).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections from one IP / in total (defaults; the binary may override from config).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 20;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;

/// Command rate per connection: a bucket of this many commands refilled at this rate; a client
/// that exceeds it is slowed down (not disconnected). Pipelining clients send bursts of ~100
/// RCPTs, so the burst is generous.
pub const COMMAND_BURST: u32 = 200;
pub const COMMANDS_PER_SECOND: u32 = 50;

/// Bytes read from the socket at a time; with the line cap this bounds a session's buffers.
pub const READ_CHUNK: usize = 64 * 1024;

/// Memory all SMTP sessions together may hold for message bodies being received (DATA and
/// BDAT), by default; raised to the message size limit when that is larger, so one message of
/// the maximum size always fits. Beyond it, DATA and BDAT get `452 4.3.1` (issue 13: ten
/// unfinished 46 MB DATA bodies held 449 MiB).
pub const DEFAULT_BODY_MEMORY_BUDGET: usize = 128 * 1024 * 1024;

/// Bodies up to this size may use the whole budget; the part of a body beyond it only three
/// quarters, so the last quarter stays free for ordinary mail while big bodies fill the rest.
pub const SMALL_BODY: usize = 1024 * 1024;

/// What DATA reserves from that budget before answering 354; the body grows from there.
pub const FIRST_BODY_RESERVATION: usize = 64 * 1024;

/// Default lifetime of queued outbound mail before it bounces (5 days, as Postfix
/// `maximal_queue_lifetime`).
pub const DEFAULT_QUEUE_LIFETIME_SECS: i64 = 5 * 24 * 3600;

/// Token bucket for the per-connection command rate. Pure: the caller passes the time.
#[derive(Debug, Clone)]
pub struct CommandBudget {
    tokens: f64,
    last: Instant,
    burst: f64,
    per_second: f64,
}

impl CommandBudget {
    pub fn new(now: Instant) -> Self {
        Self::with_rate(now, COMMAND_BURST, COMMANDS_PER_SECOND)
    }

    pub fn with_rate(now: Instant, burst: u32, per_second: u32) -> Self {
        CommandBudget {
            tokens: f64::from(burst),
            last: now,
            burst: f64::from(burst),
            per_second: f64::from(per_second.max(1)),
        }
    }

    /// Spends `commands` tokens; returns how long to wait before serving more when the bucket
    /// went negative.
    pub fn spend(&mut self, commands: u32, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.tokens -= f64::from(commands);
        if self.tokens >= 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-self.tokens / self.per_second))
        }
    }
}

/// RFC 4865 `max-future-release-interval`: the longest hold (the same as JMAP's
/// `maxDelayedSend`).
pub const MAX_FUTURE_RELEASE_SECS: i64 = bulwark_core::held::MAX_HOLD_SECS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_budget_allows_a_burst_then_asks_to_wait_and_refills() {
        let t0 = Instant::now();
        let mut b = CommandBudget::with_rate(t0, 10, 10);
        assert_eq!(b.spend(10, t0), None);
        let wait = b.spend(5, t0).expect("over budget");
        assert!(wait >= Duration::from_millis(490) && wait <= Duration::from_millis(510));
        // After two seconds the bucket is full again (capped at the burst).
        assert_eq!(b.spend(10, t0 + Duration::from_secs(2)), None);
    }
}
