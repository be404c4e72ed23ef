//! POP3 server: RFC 1939 (USER/PASS, STAT, LIST, RETR, DELE, NOOP, RSET, QUIT, UIDL, TOP),
//! STLS (RFC 2595), SASL PLAIN (RFC 5034, RFC 4616), CAPA, PIPELINING and response codes
//! (RFC 2449 RESP-CODES, RFC 3206 AUTH-RESP-CODE `[AUTH]`, `[SYS/TEMP]`).
//!
//! * [`command`] — parsing of one command line (pure).
//! * [`stuff`] — the byte-stuffed wire form of a message for RETR/TOP, streamed in pieces.
//! * [`session`] — the sans-I/O state machine (AUTHORIZATION → TRANSACTION → UPDATE):
//!   bytes in, replies and events out; its module docs say what the maildrop is and how
//!   deletion and concurrent sessions work.
//! * `server` — the thin tokio shell: sockets, TLS, timeouts, connection limits, the store
//!   and the shared authenticator.
//!
//! # Invariants
//! * Nothing is deleted before QUIT, and QUIT answers `+OK` only after the store applied it.
//! * One command at a time: a reply (a whole RETR body included) is complete before the
//!   next pipelined command runs.
//! * No panic on input: every bad line becomes `-ERR` with words; limits live in [`limits`].

pub mod command;
pub mod limits;
mod server;
pub mod session;
pub mod stuff;

pub use server::{Pop3Config, Pop3Server};
pub use session::{
    AuthOutcome, Event, Maildrop, MaildropMessage, RetrieveFailure, Session, SessionConfig, Update,
};
