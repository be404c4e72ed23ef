//! IMAP4rev2 (RFC 9051) server with IMAP4rev1 (RFC 3501) compatibility.
//!
//! * `message` — rendering of stored messages: ENVELOPE, BODYSTRUCTURE, BODY[section],
//!   BINARY, and the matching helpers SEARCH needs (owned separately from the session).
//! * the rest — parser, session state machine, server shell (being written).

pub mod message;
