//! Feeds arbitrary bytes through the ManageSieve command parser (bulwark-managesieve), in
//! pieces of a size the first byte picks, and through the sans-I/O session, answering its
//! events from the input itself. Must never panic; the parser must never hold more than its
//! limits, every response must end in CRLF.
#![no_main]

use bulwark_managesieve::command::{Arg, Parsed, Parser};
use bulwark_managesieve::limits::{MAX_LINE, MAX_LITERAL};
use bulwark_managesieve::{AuthOutcome, Event, ScriptOp, ScriptResult, Session, SessionConfig};
use bulwark_sieve::ScriptError;
use bulwark_store::AccountId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control >> 3) + 1;

    let mut parser = Parser::new();
    for part in input.chunks(chunk) {
        parser.feed(part);
        while let Some(p) = parser.next_parsed() {
            if let Parsed::Line(args) = p {
                for a in args {
                    if let Arg::Str(s) = a {
                        assert!(s.len() <= MAX_LITERAL.max(MAX_LINE));
                    }
                }
            }
        }
        assert!(parser.buffered() <= MAX_LINE + MAX_LITERAL + chunk);
    }

    let cfg = SessionConfig {
        implementation: "fuzz".into(),
        tls_available: control & 0x01 != 0,
        plaintext_auth_allowed: control & 0x02 != 0,
    };
    let mut session = Session::new(cfg, control & 0x04 != 0);
    let mut answer = control;
    for part in input.chunks(chunk) {
        session.feed(part);
        while let Some(event) = session.poll_event() {
            answer = answer.wrapping_mul(31).wrapping_add(7);
            match event {
                Event::StartTls => session.tls_established(),
                Event::Authenticate { username, .. } => session.auth_result(match answer % 5 {
                    0 | 1 => AuthOutcome::Success {
                        account: AccountId(1),
                        owner: username,
                    },
                    2 => AuthOutcome::InvalidCredentials,
                    3 => AuthOutcome::Throttled {
                        retry_after_secs: 3,
                    },
                    _ => AuthOutcome::Unavailable,
                }),
                Event::Script { op, .. } => session.script_result(match (op, answer % 4) {
                    (_, 0) => ScriptResult::Failed(ScriptError::NotFound("x".into())),
                    (_, 1) => ScriptResult::Failed(ScriptError::Invalid("line 1: x\r\ny".into())),
                    (ScriptOp::List, _) => {
                        ScriptResult::List(vec![("a\"b".into(), true), ("c\r\n".into(), false)])
                    }
                    (ScriptOp::Get(_), _) => {
                        ScriptResult::Script(Some(String::from_utf8_lossy(input).into_owned()))
                    }
                    _ => ScriptResult::Done,
                }),
                Event::Close => {}
            }
        }
        let out = session.take_output();
        assert!(out.is_empty() || out.ends_with(b"\r\n"), "response without CRLF");
    }
    bulwark_managesieve::fuzz_session(input);
});
