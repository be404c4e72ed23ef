//! Unit tests of the sans-I/O session: every command, the state machine, pipelining,
//! byte-stuffing and the limits.

use super::*;
use crate::stuff::unstuff;

fn cfg(tls_available: bool, plaintext: bool) -> SessionConfig {
    SessionConfig {
        hostname: "mail.example.test".into(),
        tls_available,
        plaintext_auth_allowed: plaintext,
    }
}

/// A session over TLS (implicit), greeting consumed.
fn tls_session() -> Session {
    let mut s = Session::new(cfg(true, false), true);
    let greeting = out(&mut s);
    assert_eq!(greeting, "+OK mail.example.test POP3 server ready\r\n");
    s
}

/// All output (streams included).
fn out(s: &mut Session) -> String {
    let mut all = Vec::new();
    loop {
        let piece = s.take_output();
        if piece.is_empty() {
            return String::from_utf8_lossy(&all).into_owned();
        }
        all.extend_from_slice(&piece);
    }
}

/// Feeds `input`, returns the events raised (unanswered) and the output.
fn send(s: &mut Session, input: &str) -> (Vec<Event>, String) {
    s.feed(input.as_bytes());
    let mut events = Vec::new();
    while let Some(e) = s.poll_event() {
        events.push(e);
    }
    (events, out(s))
}

fn maildrop() -> Maildrop {
    Maildrop {
        account: AccountId(7),
        mailbox: MailboxId(3),
        uid_validity: 1234,
        messages: vec![
            MaildropMessage {
                uid: Uid(10),
                email: EmailId(100),
                blob: BlobHash("b1".into()),
                size: 120,
            },
            MaildropMessage {
                uid: Uid(11),
                email: EmailId(101),
                blob: BlobHash("b2".into()),
                size: 200,
            },
            MaildropMessage {
                uid: Uid(15),
                email: EmailId(102),
                blob: BlobHash("b3".into()),
                size: 30,
            },
        ],
    }
}

/// A session in the TRANSACTION state over [`maildrop`].
fn logged_in() -> Session {
    let mut s = tls_session();
    let (ev, o) = send(&mut s, "USER alice@example.test\r\nPASS secret\r\n");
    assert_eq!(o, "+OK Send the password with PASS\r\n");
    assert_eq!(
        ev,
        vec![Event::Authenticate {
            username: "alice@example.test".into(),
            password: "secret".into()
        }]
    );
    s.auth_result(AuthOutcome::Success(maildrop()));
    assert_eq!(
        out(&mut s),
        "+OK Logged in; maildrop has 3 messages (350 octets)\r\n"
    );
    assert!(s.is_authenticated());
    s
}

#[test]
fn capa_depends_on_tls_and_state() {
    let mut s = Session::new(cfg(true, false), false);
    out(&mut s);
    let (_, o) = send(&mut s, "CAPA\r\n");
    assert!(o.starts_with("+OK"), "{o}");
    assert!(o.ends_with("\r\n.\r\n"), "{o}");
    for cap in [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "STLS",
    ] {
        assert!(o.contains(&format!("\r\n{cap}\r\n")), "{cap} missing: {o}");
    }
    assert!(!o.contains("USER") && !o.contains("SASL"), "{o}");

    let mut t = tls_session();
    let (_, o) = send(&mut t, "capa\r\n");
    assert!(
        o.contains("\r\nUSER\r\n") && o.contains("\r\nSASL PLAIN\r\n"),
        "{o}"
    );
    assert!(!o.contains("STLS"), "{o}");

    let mut l = logged_in();
    let (_, o) = send(&mut l, "CAPA\r\n");
    assert!(
        o.contains("\r\nUIDL\r\n") && !o.contains("USER") && !o.contains("STLS"),
        "{o}"
    );
}

#[test]
fn plaintext_login_needs_tls_unless_allowed() {
    let mut s = Session::new(cfg(true, false), false);
    out(&mut s);
    let (ev, o) = send(&mut s, "USER a\r\nPASS b\r\nAUTH PLAIN AGEAYg==\r\n");
    assert!(ev.is_empty());
    assert_eq!(
        o.matches("-ERR Logging in without TLS is not allowed; use STLS first")
            .count(),
        3,
        "{o}"
    );

    let mut p = Session::new(cfg(false, true), false);
    out(&mut p);
    let (ev, _) = send(&mut p, "USER a\r\nPASS b\r\n");
    assert_eq!(ev.len(), 1);
}

#[test]
fn stls_discards_pipelined_plaintext() {
    let mut s = Session::new(cfg(true, false), false);
    out(&mut s);
    let (ev, o) = send(&mut s, "STLS\r\nUSER mallory\r\n");
    assert_eq!(ev, vec![Event::StartTls]);
    assert_eq!(o, "+OK Begin TLS negotiation\r\n");
    s.tls_established();
    let (ev, o) = send(&mut s, "PASS x\r\n");
    assert!(ev.is_empty());
    assert_eq!(o, "-ERR Send USER first\r\n");
    let (_, o) = send(&mut s, "STLS\r\n");
    assert_eq!(o, "-ERR TLS is already active\r\n");

    let mut n = Session::new(cfg(false, false), false);
    out(&mut n);
    let (ev, o) = send(&mut n, "STLS\r\n");
    assert!(ev.is_empty());
    assert_eq!(o, "-ERR TLS is not available on this server\r\n");
}

#[test]
fn pass_keeps_spaces_and_needs_user() {
    let mut s = tls_session();
    let (_, o) = send(&mut s, "PASS x\r\n");
    assert_eq!(o, "-ERR Send USER first\r\n");
    let (ev, _) = send(&mut s, "user bob\r\npass  two words \r\n");
    assert_eq!(
        ev,
        vec![Event::Authenticate {
            username: "bob".into(),
            password: " two words ".into()
        }]
    );
}

#[test]
fn failed_logins_say_why_and_close_after_the_limit() {
    let mut s = tls_session();
    for i in 1..=MAX_AUTH_FAILURES {
        let (ev, _) = send(&mut s, "USER a\r\nPASS wrong\r\n");
        assert_eq!(ev.len(), 1);
        s.auth_result(AuthOutcome::InvalidCredentials);
        let (ev, o) = send(&mut s, "");
        assert!(
            o.starts_with("-ERR [AUTH] Invalid user name or password"),
            "{o}"
        );
        if i == MAX_AUTH_FAILURES {
            assert!(o.contains("closing"), "{o}");
            assert_eq!(ev, vec![Event::Close]);
        } else {
            assert!(ev.is_empty());
        }
    }
    let mut t = tls_session();
    send(&mut t, "USER a\r\nPASS main-password\r\n");
    t.auth_result(AuthOutcome::AppPasswordRequired);
    let o = out(&mut t);
    assert!(
        o.starts_with("-ERR [AUTH] Application password required"),
        "{o}"
    );
    assert!(o.contains("create an app password"), "{o}");
    send(&mut t, "USER a\r\nPASS b\r\n");
    t.auth_result(AuthOutcome::Throttled {
        retry_after_secs: 42,
    });
    assert_eq!(
        out(&mut t),
        "-ERR [SYS/TEMP] Too many failed logins; try again in 42 seconds\r\n"
    );
    send(&mut t, "USER a\r\nPASS b\r\n");
    t.auth_result(AuthOutcome::Unavailable);
    assert!(out(&mut t).starts_with("-ERR [SYS/TEMP] Authentication is temporarily"));
    send(&mut t, "USER a\r\nPASS b\r\n");
    t.auth_result(AuthOutcome::MaildropUnavailable);
    assert!(out(&mut t).starts_with("-ERR [SYS/TEMP] Cannot open the maildrop"));
    assert!(!t.is_authenticated());
}

#[test]
fn auth_plain_initial_response_continuation_and_cancel() {
    // "\0alice\0pw"
    let mut s = tls_session();
    let (ev, _) = send(&mut s, "AUTH PLAIN AGFsaWNlAHB3\r\n");
    assert_eq!(
        ev,
        vec![Event::Authenticate {
            username: "alice".into(),
            password: "pw".into()
        }]
    );
    let mut s = tls_session();
    let (ev, o) = send(&mut s, "AUTH PLAIN\r\n");
    assert!(ev.is_empty());
    assert_eq!(o, "+ \r\n");
    let (ev, _) = send(&mut s, "YWxpY2UAYWxpY2UAcHc=\r\n");
    assert_eq!(
        ev,
        vec![Event::Authenticate {
            username: "alice".into(),
            password: "pw".into()
        }]
    );
    let mut s = tls_session();
    send(&mut s, "AUTH PLAIN\r\n");
    let (_, o) = send(&mut s, "*\r\n");
    assert_eq!(o, "-ERR AUTH cancelled\r\n");
    let (_, o) = send(&mut s, "AUTH PLAIN !!!\r\n");
    assert_eq!(o, "-ERR Invalid base64 in the AUTH response\r\n");
    let (_, o) = send(&mut s, "AUTH PLAIN =\r\n");
    assert!(o.starts_with("-ERR Malformed PLAIN response"), "{o}");
    // authzid "bob", authcid "alice"
    let (ev, o) = send(&mut s, "AUTH PLAIN Ym9iAGFsaWNlAHB3\r\n");
    assert!(ev.is_empty());
    assert_eq!(o, "-ERR [AUTH] Acting as another user is not allowed\r\n");
    let (_, o) = send(&mut s, "AUTH\r\n");
    assert_eq!(o, "+OK Supported mechanisms follow\r\nPLAIN\r\n.\r\n");
    let (_, o) = send(&mut s, "AUTH CRAM-MD5\r\n");
    assert_eq!(
        o,
        "-ERR Unsupported authentication mechanism CRAM-MD5 (supported: PLAIN)\r\n"
    );
}

#[test]
fn commands_before_login_are_refused() {
    let mut s = tls_session();
    for cmd in [
        "STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "RSET", "NOOP",
    ] {
        let (ev, o) = send(&mut s, &format!("{cmd}\r\n"));
        assert!(ev.is_empty());
        assert_eq!(
            o, "-ERR Log in first (USER and PASS, or AUTH PLAIN)\r\n",
            "{cmd}"
        );
    }
    let (ev, o) = send(&mut s, "QUIT\r\n");
    assert_eq!(ev, vec![Event::Close]);
    assert_eq!(o, "+OK mail.example.test POP3 server signing off\r\n");
}

#[test]
fn stat_list_uidl() {
    let mut s = logged_in();
    let (_, o) = send(&mut s, "STAT\r\n");
    assert_eq!(o, "+OK 3 350\r\n");
    let (_, o) = send(&mut s, "LIST\r\n");
    assert_eq!(
        o,
        "+OK 3 messages (350 octets)\r\n1 120\r\n2 200\r\n3 30\r\n.\r\n"
    );
    let (_, o) = send(&mut s, "LIST 2\r\n");
    assert_eq!(o, "+OK 2 200\r\n");
    let (_, o) = send(&mut s, "LIST 4\r\n");
    assert_eq!(
        o,
        "-ERR No such message 4 (the maildrop has 3 messages)\r\n"
    );
    let (_, o) = send(&mut s, "LIST 0\r\n");
    assert_eq!(
        o,
        "-ERR No such message 0 (the maildrop has 3 messages)\r\n"
    );
    let (_, o) = send(&mut s, "UIDL\r\n");
    assert_eq!(
        o,
        "+OK Unique-id listing follows\r\n1 1234.10\r\n2 1234.11\r\n3 1234.15\r\n.\r\n"
    );
    let (_, o) = send(&mut s, "UIDL 3\r\n");
    assert_eq!(o, "+OK 3 1234.15\r\n");
    let (_, o) = send(&mut s, "NOOP\r\n");
    assert_eq!(o, "+OK\r\n");
    let (_, o) = send(&mut s, "USER x\r\n");
    assert_eq!(o, "-ERR Already logged in\r\n");
}

#[test]
fn dele_marks_and_rset_unmarks() {
    let mut s = logged_in();
    let (_, o) = send(&mut s, "DELE 2\r\n");
    assert_eq!(o, "+OK Message 2 deleted\r\n");
    let (_, o) = send(&mut s, "DELE 2\r\nLIST 2\r\nRETR 2\r\nUIDL 2\r\n");
    assert_eq!(o, "-ERR Message 2 is deleted\r\n".repeat(4));
    let (_, o) = send(&mut s, "STAT\r\nLIST\r\nUIDL\r\n");
    assert_eq!(
        o,
        "+OK 2 150\r\n+OK 2 messages (150 octets)\r\n1 120\r\n3 30\r\n.\r\n\
         +OK Unique-id listing follows\r\n1 1234.10\r\n3 1234.15\r\n.\r\n"
    );
    let (_, o) = send(&mut s, "RSET\r\nSTAT\r\n");
    assert_eq!(
        o,
        "+OK Maildrop has 3 messages (350 octets)\r\n+OK 3 350\r\n"
    );
}

#[test]
fn retr_streams_a_byte_stuffed_message() {
    let mut s = logged_in();
    let (ev, o) = send(&mut s, "RETR 1\r\n");
    assert_eq!(
        ev,
        vec![Event::Retrieve {
            blob: BlobHash("b1".into())
        }]
    );
    assert_eq!(o, "");
    assert!(s.is_busy());
    let body = b"Subject: hi\r\n\r\n.dot\r\nend\r\n".to_vec();
    s.retrieved(Ok(body.clone()));
    let o = out(&mut s);
    let head = format!("+OK {} octets\r\n", body.len());
    assert!(o.starts_with(&head), "{o}");
    assert_eq!(unstuff(&o.as_bytes()[head.len()..]), Some(body), "{o}");
    assert!(o.contains("\r\n..dot\r\n"));
    assert!(!s.is_busy());

    let (ev, _) = send(&mut s, "TOP 1 0\r\n");
    assert_eq!(ev.len(), 1);
    s.retrieved(Ok(b"A: 1\r\n\r\nbody\r\n".to_vec()));
    assert_eq!(
        out(&mut s),
        "+OK Top of message follows\r\nA: 1\r\n\r\n.\r\n"
    );

    send(&mut s, "RETR 2\r\n");
    s.retrieved(Err(RetrieveFailure::Gone));
    assert_eq!(
        out(&mut s),
        "-ERR Message 2 was removed by another session\r\n"
    );
    send(&mut s, "RETR 3\r\n");
    s.retrieved(Err(RetrieveFailure::Unavailable));
    assert_eq!(
        out(&mut s),
        "-ERR [SYS/TEMP] Cannot read message 3 right now; try again later\r\n"
    );
    let (ev, o) = send(&mut s, "RETR 9\r\n");
    assert!(ev.is_empty());
    assert!(o.starts_with("-ERR No such message 9"));
}

#[test]
fn a_large_message_is_handed_out_in_pieces() {
    let mut s = logged_in();
    send(&mut s, "RETR 1\r\n");
    let body: Vec<u8> = (0..50_000)
        .flat_map(|i| format!(".line {i}\r\n").into_bytes())
        .collect();
    s.retrieved(Ok(body.clone()));
    let mut wire = Vec::new();
    let mut pieces = 0;
    loop {
        let piece = s.take_output();
        if piece.is_empty() {
            break;
        }
        assert!(piece.len() <= OUTPUT_CHUNK + 64, "piece of {}", piece.len());
        pieces += 1;
        wire.extend_from_slice(&piece);
    }
    assert!(pieces > 5, "{pieces} pieces");
    let head = format!("+OK {} octets\r\n", body.len());
    assert_eq!(unstuff(&wire[head.len()..]), Some(body));
}

#[test]
fn quit_applies_deletions_and_seen_only_then() {
    let mut s = logged_in();
    send(&mut s, "RETR 1\r\n");
    s.retrieved(Ok(b"x\r\n".to_vec()));
    out(&mut s);
    send(&mut s, "RETR 2\r\n");
    s.retrieved(Ok(b"y\r\n".to_vec()));
    out(&mut s);
    let (ev, _) = send(&mut s, "DELE 2\r\nDELE 3\r\nQUIT\r\n");
    assert_eq!(
        ev,
        vec![Event::Update(Update {
            account: AccountId(7),
            mailbox: MailboxId(3),
            expunge: vec![Uid(11), Uid(15)],
            seen: vec![EmailId(100)],
        })]
    );
    s.update_result(true);
    let (ev, o) = send(&mut s, "");
    assert_eq!(ev, vec![Event::Close]);
    assert_eq!(
        o,
        "+OK mail.example.test POP3 server signing off (2 messages deleted)\r\n"
    );
    assert!(s.is_closed());

    let mut f = logged_in();
    send(&mut f, "DELE 1\r\nQUIT\r\n");
    f.update_result(false);
    let (ev, o) = send(&mut f, "");
    assert_eq!(ev, vec![Event::Close]);
    assert!(
        o.starts_with("-ERR [SYS/TEMP] Some deleted messages were not removed"),
        "{o}"
    );
}

#[test]
fn quit_without_changes_needs_no_update() {
    let mut s = logged_in();
    let (ev, o) = send(&mut s, "TOP 1 5\r\n");
    assert_eq!(ev.len(), 1);
    s.retrieved(Ok(b"A: 1\r\n".to_vec()));
    out(&mut s);
    let (ev, o2) = send(&mut s, "DELE 1\r\nRSET\r\nQUIT\r\n");
    assert_eq!(ev, vec![Event::Close], "{o}{o2}");
    assert!(o2.ends_with("signing off (maildrop unchanged)\r\n"), "{o2}");
}

#[test]
fn pipelined_commands_run_in_order() {
    let mut s = logged_in();
    s.take_command_count();
    s.feed(b"STAT\r\nRETR 3\r\nNOOP\r\nLIST 1\r\n");
    assert_eq!(
        s.poll_event(),
        Some(Event::Retrieve {
            blob: BlobHash("b3".into())
        })
    );
    // Nothing after RETR runs before its body is out.
    assert_eq!(s.poll_event(), None);
    s.retrieved(Ok(b"body\r\n".to_vec()));
    assert_eq!(s.poll_event(), None);
    let first = out(&mut s);
    assert_eq!(first, "+OK 3 350\r\n+OK 6 octets\r\nbody\r\n.\r\n");
    assert_eq!(s.poll_event(), None);
    assert_eq!(out(&mut s), "+OK\r\n+OK 1 120\r\n");
    assert_eq!(s.take_command_count(), 4);
}

#[test]
fn input_in_single_bytes_works() {
    let mut s = tls_session();
    let mut events = Vec::new();
    for b in b"USER al\r\nPASS p w\r\n" {
        s.feed(&[*b]);
        while let Some(e) = s.poll_event() {
            events.push(e);
        }
    }
    assert_eq!(
        events,
        vec![Event::Authenticate {
            username: "al".into(),
            password: "p w".into()
        }]
    );
    // A bare LF ends a line too.
    let (_, o) = send(&mut logged_in(), "STAT\n");
    assert_eq!(o, "+OK 3 350\r\n");
}

#[test]
fn command_lines_are_limited_to_255_octets() {
    let mut s = logged_in();
    // 253 + CRLF = 255: accepted (an unknown command, but parsed).
    let ok = format!("NOOP{}\r\n", " ".repeat(249));
    assert_eq!(ok.len(), 255);
    let (_, o) = send(&mut s, &ok);
    assert_eq!(o, "+OK\r\n");
    let long = format!("NOOP{}\r\n", " ".repeat(250));
    let (_, o) = send(&mut s, &long);
    assert!(o.starts_with("-ERR Command line too long"), "{o}");
    // Without a line end: answered at once, the rest of the line is skipped.
    let (_, o) = send(&mut s, &"X".repeat(300));
    assert!(o.starts_with("-ERR Command line too long"), "{o}");
    let (_, o) = send(&mut s, &"X".repeat(5000));
    assert_eq!(o, "");
    let (_, o) = send(&mut s, "YYY\r\nSTAT\r\n");
    assert_eq!(o, "+OK 3 350\r\n");
}

#[test]
fn too_many_bad_commands_close_the_connection() {
    let mut s = tls_session();
    for i in 1..=MAX_BAD_COMMANDS {
        let (ev, o) = send(&mut s, "HELO there\r\n");
        assert!(o.starts_with("-ERR Unknown command HELO"), "{o}");
        if i == MAX_BAD_COMMANDS {
            assert!(o.contains("too many bad commands"), "{o}");
            assert_eq!(ev, vec![Event::Close]);
        } else {
            assert!(ev.is_empty());
        }
    }
    // Closed: further input is ignored.
    let (ev, o) = send(&mut s, "CAPA\r\n");
    assert!(ev.is_empty() && o.is_empty());
}

#[test]
fn timeout_and_shutdown_close_without_update() {
    let mut s = logged_in();
    send(&mut s, "DELE 1\r\n");
    s.timed_out();
    let (ev, o) = send(&mut s, "");
    assert_eq!(ev, vec![Event::Close]);
    assert_eq!(o, "-ERR Autologout; idle for too long\r\n");
    let mut t = logged_in();
    t.shutdown();
    let (ev, o) = send(&mut t, "");
    assert_eq!(ev, vec![Event::Close]);
    assert!(o.starts_with("-ERR [SYS/TEMP] Server shutting down"));
}

#[test]
fn answers_to_events_nobody_asked_for_are_ignored() {
    let mut s = logged_in();
    s.auth_result(AuthOutcome::InvalidCredentials);
    s.retrieved(Ok(b"x".to_vec()));
    s.update_result(true);
    s.tls_established();
    assert!(out(&mut s).is_empty());
}

#[test]
fn arbitrary_input_never_panics_and_every_reply_is_a_status_line() {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let words: [&[u8]; 18] = [
        b"USER a",
        b"PASS b",
        b"STAT",
        b"LIST",
        b"LIST 2",
        b"RETR 1",
        b"TOP 2 1",
        b"DELE 1",
        b"RSET",
        b"UIDL",
        b"NOOP",
        b"CAPA",
        b"AUTH PLAIN",
        b"*",
        b"STLS",
        b"QUIT",
        b"\xff\x00",
        b"RETR 4294967296",
    ];
    for _ in 0..300 {
        let mut s = Session::new(cfg(true, true), false);
        for _ in 0..40 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let w = words[(seed % words.len() as u64) as usize];
            s.feed(w);
            s.feed(if seed & 0x100 == 0 { b"\r\n" } else { b"\n" });
            while let Some(e) = s.poll_event() {
                match e {
                    Event::Authenticate { .. } => s.auth_result(if seed & 1 == 0 {
                        AuthOutcome::Success(maildrop())
                    } else {
                        AuthOutcome::InvalidCredentials
                    }),
                    Event::Retrieve { .. } => s.retrieved(Ok(b".a\r\nb".to_vec())),
                    Event::Update(_) => s.update_result(seed & 2 == 0),
                    Event::StartTls => s.tls_established(),
                    Event::Close => {}
                }
            }
            let o = out(&mut s);
            assert!(o.is_empty() || o.ends_with("\r\n"), "{o:?}");
        }
    }
}
