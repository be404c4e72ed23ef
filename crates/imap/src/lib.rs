//! IMAP4rev2 (RFC 9051) server with IMAP4rev1 (RFC 3501) compatibility.
//!
//! * [`parser`] — our own sans-I/O command parser (framing, literals, limits).
//! * `session` — the per-connection state machine (calls the async store, never a socket).
//! * `server` — the thin tokio shell: sockets, TLS, timeouts, connection limits.
//! * [`message`] — rendering of stored messages: ENVELOPE, BODYSTRUCTURE, BODY[section],
//!   BINARY, and the matching helpers SEARCH needs (owned separately from the session).
//!
//! # Invariants
//! * A connection runs one command at a time; responses of a command are complete before
//!   the next command is parsed (pipelined input waits in the parser's buffer).
//! * EXPUNGE/VANISHED is never sent while responding to FETCH, STORE or SEARCH
//!   (RFC 9051 §7.5.1); other sessions' changes are reported at the end of other commands,
//!   on NOOP/CHECK, and at once while IDLE.
//! * The session's sequence numbers change only when it sends EXISTS or EXPUNGE/VANISHED.
//! * APPEND/STORE/COPY/MOVE/EXPUNGE answer `OK` only after the store call returned
//!   (the store commits durably before returning).
//! * No panic on input: every parse failure becomes `BAD` with words; limits live in
//!   [`limits`].

mod config;
mod feed;
pub mod imapurl;
pub mod limits;
pub mod message;
pub(crate) mod objectid;
pub mod parser;
pub mod response;
mod server;
#[cfg(test)]
mod server_tests;
pub mod session;

pub use config::ImapConfig;
pub use server::ImapServer;
pub use session::{Next, Session};
