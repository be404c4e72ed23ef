//! Bulwark's SMTP server: inbound MX (port 25) and submission (587 STARTTLS, 465 implicit TLS).
//!
//! RFC 5321 with SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
//! ENHANCEDSTATUSCODES (RFC 2034/3463), STARTTLS (RFC 3207), CHUNKING/BDAT (RFC 3030),
//! PIPELINING (RFC 2920) and AUTH PLAIN/LOGIN (RFC 4954, RFC 4616).
//!
//! # Layout
//! * [`session`] — the sans-I/O state machine (never imports tokio; no clock, no store).
//! * [`wire`] — the only user of `smtp-proto` (command grammar, DATA/BDAT receivers).
//! * [`reply`] — every reply code and text. [`limits`] — every limit. [`trace`] — Received.
//! * [`authres`] — `Authentication-Results` on inbound MX mail; `postmaster` — RFC 5321 §4.5.1.
//! * [`server`] — the tokio shell: sockets, TLS, timers, store and auth calls.
//!
//! # Invariants
//! * `250` to end-of-data only after `Store::deliver`/`queue_enqueue` returned `Ok`
//!   (RFC 5321 §4.2.5 and Bulwark's durability contract); a store error is `451 4.3.0`.
//! * Input sent before a TLS handshake is never interpreted after it (RFC 3207 §4.2).
//! * DATA ends only at `<CRLF>.<CRLF>`; bodies with a bare CR or LF are refused with `554 5.6.0`
//!   (RFC 5321 §2.3.8), so no smuggled second message can be stored or relayed.
//! * A malformed or out-of-order command consumes exactly its line and gets one reply; after
//!   [`limits::MAX_BAD_COMMANDS`] failures the session ends with `421`.
//! * No panics on input: every buffer is capped, every error is a reply.

pub mod authres;
pub mod limits;
mod postmaster;
pub mod reply;
pub mod server;
pub mod session;
pub mod trace;
pub mod wire;

pub use server::{SmtpConfig, SmtpServer};
pub use session::{
    AuthOutcome, Delivery, DeliveryFailure, Event, ListenerKind, RecipientVerdict, Session,
    SessionConfig,
};
