//! Limits of Sieve scripts (named here, listed in the README).

/// Largest script (bytes of source); a larger PUTSCRIPT gets `NO (QUOTA/MAXSIZE)`.
pub const MAX_SCRIPT_SIZE: usize = 64 * 1024;
/// Scripts one account may keep (`NO (QUOTA/MAXSCRIPTS)` beyond).
pub const MAX_SCRIPTS: usize = 32;
/// Longest script name (characters, RFC 5804 §1.6 allows any Unicode without controls).
pub const MAX_NAME_CHARS: usize = 128;
/// Instructions one run may execute before it is stopped (then the message is kept).
pub const CPU_LIMIT: usize = 100_000;
/// `include` nesting depth (RFC 6609) and redirects per message.
pub const MAX_NESTED_INCLUDES: usize = 3;
pub const MAX_REDIRECTS: usize = 4;
/// Messages a run may send (redirects, vacation replies, notifications).
pub const MAX_OUT_MESSAGES: usize = 5;
