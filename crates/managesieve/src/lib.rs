//! ManageSieve server (RFC 5804): the account's Sieve scripts over the network, for
//! Thunderbird's Sieve add-on, `sieve-connect` and the like. STARTTLS, SASL PLAIN (only over
//! TLS unless the loopback exemption), every RFC 5804 command, over `bulwark_sieve::scripts`
//! (the one API every protocol uses for scripts).
//!
//! * [`command`] — the incremental command parser (pure).
//! * [`session`] — the sans-I/O state machine: bytes in, responses and events out.
//! * `server` — the thin tokio shell: sockets, TLS, timeouts, connection limits, the store
//!   and the shared authenticator.
//!
//! # Invariants
//! * No panic on input: every bad line becomes `NO` with words; limits live in [`limits`].
//! * A script larger than allowed is never held in memory (the literal is discarded).
//! * One command at a time.

pub mod command;
pub mod limits;
mod server;
pub mod session;

pub use server::{ManageSieveConfig, ManageSieveServer};
pub use session::{AuthOutcome, Event, ScriptOp, ScriptResult, Session, SessionConfig};

/// For the fuzz target: the parser and the session on arbitrary bytes (answering every
/// event with a fixed result).
pub fn fuzz_session(data: &[u8]) {
    let cfg = SessionConfig {
        implementation: "fuzz".into(),
        tls_available: true,
        plaintext_auth_allowed: true,
    };
    let mut s = Session::new(cfg, false);
    for chunk in data.chunks(97) {
        s.feed(chunk);
        while let Some(e) = s.poll_event() {
            match e {
                Event::Close => return,
                Event::StartTls => s.tls_established(),
                Event::Authenticate { username, .. } => s.auth_result(AuthOutcome::Success {
                    account: bulwark_store::AccountId(1),
                    owner: username,
                }),
                Event::Script { op, .. } => s.script_result(match op {
                    ScriptOp::List => ScriptResult::List(vec![("a".into(), true)]),
                    ScriptOp::Get(_) => ScriptResult::Script(Some("keep;".into())),
                    _ => ScriptResult::Done,
                }),
            }
        }
        let _ = s.take_output();
    }
}
