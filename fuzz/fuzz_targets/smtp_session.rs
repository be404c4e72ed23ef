//! Feeds arbitrary bytes through the sans-I/O SMTP session (bulwark-smtp), in pieces, for
//! every listener kind, answering its events from the input itself. Must never panic; every
//! reply must be a well-formed line.
#![no_main]

use bulwark_smtp::{
    AuthOutcome, DeliveryFailure, Event, ListenerKind, RecipientVerdict, Session, SessionConfig,
};
use bulwark_store::AccountId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let kind = match control % 3 {
        0 => ListenerKind::Mx,
        1 => ListenerKind::Submission,
        _ => ListenerKind::Submissions,
    };
    let cfg = SessionConfig {
        hostname: "mx.example.test".into(),
        kind,
        max_message_size: 4096,
        max_recipients: 5,
        tls_available: control & 0x04 != 0,
        plaintext_auth_allowed: control & 0x08 != 0,
        // RFC 4865 HOLDFOR/HOLDUNTIL parsed and checked on the submission kinds.
        future_release: (control & 0x10 != 0).then_some(1_800_000_000),
    };
    let peer = "192.0.2.1".parse().expect("valid literal");
    let mut session =
        Session::new(cfg, peer, kind == ListenerKind::Submissions, "FUZZ".into());
    // Chunk sizes vary with the control byte so framing across reads is exercised.
    let chunk = usize::from(control >> 4) * 7 + 1;
    let mut answer = control;
    for piece in input.chunks(chunk) {
        session.feed(piece);
        while let Some(event) = session.poll_event() {
            answer = answer.wrapping_mul(31).wrapping_add(7);
            match event {
                Event::StartTls => session.tls_established(),
                Event::Authenticate { .. } => session.auth_result(match answer % 4 {
                    0 => AuthOutcome::Success {
                        account: AccountId(1),
                        addresses: vec!["alice@example.test".into()],
                    },
                    1 => AuthOutcome::InvalidCredentials,
                    2 => AuthOutcome::Throttled,
                    _ => AuthOutcome::Unavailable,
                }),
                Event::CheckRecipient { .. } => session.recipient_resolved(match answer % 4 {
                    0 => RecipientVerdict::Local(AccountId(1)),
                    1 => RecipientVerdict::UnknownUser,
                    2 => RecipientVerdict::Remote,
                    _ => RecipientVerdict::TemporaryFailure,
                }),
                Event::Deliver(d) => {
                    let _ = d.local_message(0);
                    let _ = d.relay_message(0);
                    session.delivery_result(match answer % 3 {
                        0 => Ok(()),
                        1 => Err(DeliveryFailure::Temporary("x".into())),
                        _ => Err(DeliveryFailure::Permanent("y".into())),
                    });
                }
                Event::Close => {}
            }
        }
        let out = session.take_output();
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit));
            assert_eq!(line.last(), Some(&b'\r'));
        }
        if session.is_closed() {
            break;
        }
    }
});
