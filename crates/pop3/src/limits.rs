//! Every limit the POP3 server enforces, in one place. Each constant says where its number
//! comes from.

use std::time::Duration;

/// Longest command line, CRLF included. RFC 2449 §4: "Keywords and arguments ... the
/// maximum length of a command line is 255 octets, including the terminating CRLF".
pub const MAX_COMMAND_LINE: usize = 255;

/// Longest SASL response line after `+ ` (RFC 5034 §4 lifts the 255-octet limit for these:
/// "the client response ... may be longer"). Same as the SMTP server's AUTH line.
pub const MAX_AUTH_LINE: usize = 12288;

/// Unknown, malformed or overlong commands tolerated before the server closes the connection
/// (a real client makes a few mistakes, a scanner makes many).
pub const MAX_BAD_COMMANDS: u32 = 10;

/// Failed USER/PASS or AUTH attempts per connection before the server closes it (the shared
/// login throttle counts across connections too).
pub const MAX_AUTH_FAILURES: u32 = 3;

/// Autologout timer. RFC 1939 §3: "If a POP3 server has an inactivity autologout timer, ...
/// such a timer MUST be of at least 10 minutes' duration."
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Largest piece of a RETR/TOP response handed to the socket at once: a large message is
/// streamed, so the session holds the stored message once plus this much of its wire form.
pub const OUTPUT_CHUNK: usize = 64 * 1024;

/// Default connections per remote IP and in total (the binary passes its `[limits]`).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 20;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;

/// Commands per second per connection before the session is slowed down (token bucket refill
/// rate); the bucket holds [`COMMAND_BURST`]. A real client's whole session is a few hundred
/// commands; this only slows a flood.
pub const COMMANDS_PER_SECOND: u32 = 500;
/// Burst size of the command token bucket (a pipelining client sends many at once).
pub const COMMAND_BURST: u32 = 1000;
