//! Every limit the IMAP server enforces, in one place. Each constant says where its
//! number comes from.

use std::time::Duration;

/// Longest command line (one line between literals), CRLF included. RFC 9051 §4 sets no
/// limit; RFC 7162 §4 asks servers to accept at least 8192 octets. Dovecot uses 64 KiB.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// Default largest literal (the message size limit for APPEND): 50 MiB.
pub const DEFAULT_MAX_LITERAL_SIZE: usize = 50 * 1024 * 1024;

/// Largest literal before authentication: enough for LOGIN with literal user name and
/// password (and an ID or AUTHENTICATE in literal form), far too small for a message. An
/// anonymous client never makes the server buffer more (issue 13: `APPEND {52428800}` was
/// answered `+` before login).
pub const PRE_AUTH_MAX_LITERAL: usize = 8 * 1024;

/// Largest whole command (lines plus literals) before authentication.
pub const PRE_AUTH_MAX_COMMAND: usize = 64 * 1024;

/// A whole command (lines plus literals) may exceed the literal limit by this much
/// ("max literal + 64 KiB", as imap-next/Dovecot do).
pub const MAX_COMMAND_OVERHEAD: usize = 64 * 1024;

/// Memory all IMAP sessions together may hold for literals being received (APPEND), by
/// default; raised so that one literal of the largest size always fits. A literal that does
/// not fit waits up to 30 s for others to finish, then gets `NO [UNAVAILABLE]` (or `BYE` when
/// it is non-synchronizing and already on its way).
pub const DEFAULT_LITERAL_MEMORY_BUDGET: usize = 128 * 1024 * 1024;
/// How long a literal waits for room in that budget.
pub const LITERAL_MEMORY_WAIT: Duration = Duration::from_secs(30);

/// Longest tag we accept (Stalwart uses 128; real clients use < 20).
pub const MAX_TAG_LEN: usize = 64;

/// Deepest nesting of SEARCH parentheses / NOT / OR (recursion guard).
pub const MAX_SEARCH_DEPTH: usize = 32;

/// Most literals inside one command (APPEND has one; LOGIN two; anything more is abuse).
pub const MAX_LITERALS_PER_COMMAND: usize = 64;

/// Commands per second per connection before the session is slowed down (token bucket
/// refill rate); the bucket holds [`COMMAND_BURST`] commands. A busy real client stays far
/// below this (a full mbsync run is a few hundred commands); it only slows a flood.
pub const COMMANDS_PER_SECOND: u32 = 1000;
/// Burst size of the command token bucket (a pipelining client sends many at once).
pub const COMMAND_BURST: u32 = 2000;

/// Bad (syntax-error) commands tolerated before `* BYE` (like rustls' temper counters:
/// a real client makes a few mistakes, a scanner makes many).
pub const MAX_BAD_COMMANDS: u32 = 20;

/// Failed LOGIN/AUTHENTICATE attempts per connection before `* BYE`.
pub const MAX_AUTH_FAILURES: u32 = 5;

/// Autologout timer. RFC 9051 §5.4: at least 30 minutes of inactivity.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Autologout before login is much shorter (RFC 9051 §5.4 allows this for unauthenticated
/// sessions). Counted from the connection, not from the last byte: a client that sends a
/// byte now and then is still logged out this long after it connected (issue 13, item 16).
pub const PRE_AUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// An IDLE is ended by the server after this long; clients re-issue IDLE every
/// ≤29 minutes anyway (RFC 2177 §3).
pub const MAX_IDLE_DURATION: Duration = Duration::from_secs(30 * 60);

/// Items in an ID parameter list (RFC 2971 §3.3: at most 30 field-value pairs).
pub const MAX_ID_FIELDS: usize = 30;

/// Longest mailbox name (bytes, UTF-8).
pub const MAX_MAILBOX_NAME_LEN: usize = 1024;

/// Default connections per remote IP and in total.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 50;
pub const DEFAULT_MAX_CONNECTIONS: usize = 5000;

/// Largest write buffer we build before flushing (responses are streamed message by
/// message; this caps a single FETCH response batch).
pub const OUTPUT_FLUSH_THRESHOLD: usize = 256 * 1024;
