//! Feeds arbitrary bytes through the sans-I/O POP3 session (bulwark-pop3), in pieces,
//! answering its events from the input itself, and checks the byte-stuffing round trip of
//! the input as a message. Must never panic; every reply must end in CRLF, and a message
//! read back (unstuffed) must equal the input with CRLF line endings.
#![no_main]

use bulwark_pop3::stuff::{DotStuffer, crlf_normalized, unstuff, wire_size};
use bulwark_pop3::{
    AuthOutcome, Event, Maildrop, MaildropMessage, RetrieveFailure, Session, SessionConfig,
};
use bulwark_store::{AccountId, BlobHash, EmailId, MailboxId, Uid};
use libfuzzer_sys::fuzz_target;

fn maildrop() -> Maildrop {
    Maildrop {
        account: AccountId(1),
        mailbox: MailboxId(1),
        uid_validity: 7,
        messages: (1..=3)
            .map(|i| MaildropMessage {
                uid: Uid(i),
                email: EmailId(i64::from(i)),
                blob: BlobHash(format!("b{i}")),
                size: u64::from(i) * 100,
            })
            .collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    // The input as a stored message: streamed in pieces, read back exactly.
    let piece = usize::from(control) + 2;
    let mut stuffer = DotStuffer::new(input.to_vec());
    let mut wire = Vec::new();
    while !stuffer.is_finished() {
        let mut out = Vec::new();
        stuffer.fill(&mut out, piece);
        assert!(out.len() <= piece + 8, "piece of {} for limit {piece}", out.len());
        wire.extend_from_slice(&out);
    }
    let normalized = crlf_normalized(input);
    assert_eq!(unstuff(&wire).as_deref(), Some(normalized.as_slice()));
    assert_eq!(wire_size(input), normalized.len() as u64);

    // The input as commands.
    let cfg = SessionConfig {
        hostname: "mail.example.test".into(),
        tls_available: control & 0x01 != 0,
        plaintext_auth_allowed: control & 0x02 != 0,
    };
    let mut session = Session::new(cfg, control & 0x04 != 0);
    let chunk = usize::from(control >> 4) * 5 + 1;
    let mut answer = control;
    for part in input.chunks(chunk) {
        session.feed(part);
        loop {
            while let Some(event) = session.poll_event() {
                answer = answer.wrapping_mul(31).wrapping_add(7);
                match event {
                    Event::StartTls => session.tls_established(),
                    Event::Authenticate { .. } => session.auth_result(match answer % 6 {
                        0 | 1 => AuthOutcome::Success(maildrop()),
                        2 => AuthOutcome::InvalidCredentials,
                        5 => AuthOutcome::AppPasswordRequired,
                        3 => AuthOutcome::Throttled {
                            retry_after_secs: 3,
                        },
                        _ => AuthOutcome::Unavailable,
                    }),
                    Event::Retrieve { .. } => session.retrieved(match answer % 4 {
                        0 => Err(RetrieveFailure::Gone),
                        1 => Err(RetrieveFailure::Unavailable),
                        _ => Ok(input.to_vec()),
                    }),
                    Event::Update(_) => session.update_result(answer % 3 != 0),
                    Event::Close => {}
                }
            }
            let out = session.take_output();
            if out.is_empty() {
                break;
            }
            assert!(out.ends_with(b"\r\n"), "reply without CRLF: {out:?}");
        }
    }
});
