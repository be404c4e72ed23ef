//! Every limit the ManageSieve server enforces, in one place.

use std::time::Duration;

/// Longest command outside its literals (CRLF included). RFC 5804 sets none; a command is a
/// verb and at most two short strings (script names are at most
/// [`bulwark_sieve::limits::MAX_NAME_CHARS`] characters, 4 bytes each when quoted).
pub const MAX_LINE: usize = 8 * 1024;

/// Largest literal kept in memory: a script ([`bulwark_sieve::limits::MAX_SCRIPT_SIZE`]) plus
/// a little (line endings a client may add). A larger literal is read and thrown away, and
/// the command answered `NO (QUOTA/MAXSIZE)` (RFC 5804 §2.6) without buffering it.
pub const MAX_LITERAL: usize = bulwark_sieve::limits::MAX_SCRIPT_SIZE + 4 * 1024;

/// Largest literal the server reads (and discards) at all before it gives up with `BYE`.
pub const MAX_DISCARDED_LITERAL: u64 = 16 * 1024 * 1024;

/// Malformed, unknown or refused commands tolerated before `BYE`.
pub const MAX_BAD_COMMANDS: u32 = 10;

/// Failed AUTHENTICATE attempts per connection before `BYE` (the shared login throttle
/// counts across connections too).
pub const MAX_AUTH_FAILURES: u32 = 3;

/// Longest SASL response line (a base64 PLAIN response).
pub const MAX_SASL_RESPONSE: usize = 12 * 1024;

/// Logout after this long without a command (RFC 5804 sets none; as IMAP's 30 minutes).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Default connections per remote IP and in total (the binary passes its `[limits]`).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 20;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
