//! Unit tests of the sans-I/O session: a fake world answers its events.

use super::*;
use crate::limits::{MAX_BAD_COMMANDS, MAX_COMMAND_LINE};

mod auth;
mod random;
mod security;

const HOST: &str = "mx.example.test";

fn cfg(kind: ListenerKind) -> SessionConfig {
    SessionConfig {
        hostname: HOST.into(),
        kind,
        max_message_size: 1000,
        max_recipients: 3,
        tls_available: true,
        plaintext_auth_allowed: false,
        future_release: None,
    }
}

/// Answers events like the shell would, from fixed data.
#[derive(Default)]
struct World {
    deliveries: Vec<Delivery>,
    fail_delivery: bool,
    tls_handshakes: u32,
    closed: bool,
}

impl World {
    fn resolve(address: &str) -> RecipientVerdict {
        let address = address.to_lowercase();
        let Some((local, domain)) = address.rsplit_once('@') else {
            return RecipientVerdict::Remote;
        };
        if domain != "example.test" {
            return RecipientVerdict::Remote;
        }
        let base = local.split_once('+').map(|(b, _)| b).unwrap_or(local);
        match base {
            "alice" | "sales" => RecipientVerdict::Local(AccountId(1)),
            "bob" => RecipientVerdict::Local(AccountId(2)),
            "broken" => RecipientVerdict::TemporaryFailure,
            "full" => RecipientVerdict::MailboxFull,
            _ => RecipientVerdict::UnknownUser,
        }
    }

    fn authenticate(user: &str, pass: &str) -> AuthOutcome {
        match (user, pass) {
            ("alice@example.test", "secret") => AuthOutcome::Success {
                account: AccountId(1),
                addresses: vec!["alice@example.test".into(), "Sales@example.test".into()],
            },
            ("slow@example.test", _) => AuthOutcome::Throttled,
            _ => AuthOutcome::InvalidCredentials,
        }
    }

    fn drive(&mut self, s: &mut Session) {
        while let Some(event) = s.poll_event() {
            match event {
                Event::StartTls => {
                    self.tls_handshakes += 1;
                    s.tls_established();
                }
                Event::Authenticate { username, password } => {
                    s.auth_result(Self::authenticate(&username, &password))
                }
                Event::CheckRecipient { address, .. } => {
                    s.recipient_resolved(Self::resolve(&address))
                }
                Event::Deliver(d) => {
                    let result = if self.fail_delivery {
                        Err(DeliveryFailure::Temporary("disk full".into()))
                    } else {
                        Ok(())
                    };
                    if result.is_ok() {
                        self.deliveries.push(*d);
                    }
                    s.delivery_result(result);
                }
                Event::Close => self.closed = true,
            }
        }
    }
}

struct Harness {
    s: Session,
    w: World,
}

impl Harness {
    fn new(kind: ListenerKind) -> Self {
        Self::with(cfg(kind), false)
    }

    fn with(cfg: SessionConfig, tls: bool) -> Self {
        let mut h = Harness {
            s: Session::new(cfg, "192.0.2.7".parse().unwrap(), tls, "S1".into()),
            w: World::default(),
        };
        h.s.take_output();
        h
    }

    /// Feeds `input` in one piece and returns every reply line written.
    fn send(&mut self, input: &[u8]) -> Vec<String> {
        self.s.feed(input);
        self.w.drive(&mut self.s);
        lines(&self.s.take_output())
    }

    /// The first reply line's "code x.y.z" (or "code" when there is no enhanced code).
    fn code(&mut self, input: &[u8]) -> String {
        let out = self.send(input);
        out.first().map(|l| code_of(l)).unwrap_or_default()
    }
}

fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .split_terminator("\r\n")
        .map(str::to_string)
        .collect()
}

fn code_of(line: &str) -> String {
    let mut parts = line.splitn(3, ' ');
    let code = parts.next().unwrap_or_default().to_string();
    match parts.next() {
        Some(esc) if esc.len() == 5 && esc.as_bytes()[1] == b'.' => format!("{code} {esc}"),
        _ => code,
    }
}

fn codes(out: &[String]) -> Vec<String> {
    out.iter()
        .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
        .map(|l| code_of(l))
        .collect()
}

fn greeted(kind: ListenerKind) -> Harness {
    let mut h = Harness::new(kind);
    h.send(b"EHLO client.test\r\n");
    h
}

fn authed() -> Harness {
    let mut h = Harness::with(cfg(ListenerKind::Submissions), true);
    h.send(b"EHLO client.test\r\n");
    assert_eq!(
        h.code(b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"),
        "235 2.7.0"
    );
    h
}

/// A mailbox at its quota is deferred at RCPT (452 4.2.2) and the transaction goes on for
/// the others; the declared SIZE reaches the shell with the recipient to check.
#[test]
fn a_full_mailbox_is_deferred_at_rcpt_and_the_others_get_the_message() {
    let mut h = Harness::new(ListenerKind::Mx);
    h.send(b"EHLO c\r\n");
    assert_eq!(
        h.code(b"MAIL FROM:<x@remote.test> SIZE=120\r\n"),
        "250 2.1.0"
    );
    h.s.feed(b"RCPT TO:<full@example.test>\r\n");
    match h.s.poll_event() {
        Some(Event::CheckRecipient { address, size, .. }) => {
            assert_eq!((address.as_str(), size), ("full@example.test", 120));
            h.s.recipient_resolved(World::resolve(&address));
        }
        other => panic!("expected a recipient check, got {other:?}"),
    }
    let out = lines(&h.s.take_output());
    assert!(out[0].starts_with("452 4.2.2 "), "{out:?}");
    assert_eq!(h.code(b"RCPT TO:<bob@example.test>\r\n"), "250 2.1.5");
    h.send(b"DATA\r\n");
    h.send(b"Subject: x\r\n\r\nhi\r\n.\r\n");
    assert_eq!(h.w.deliveries.len(), 1);
    assert_eq!(h.w.deliveries[0].local.len(), 1, "only bob");
}

#[test]
fn greeting_is_220_with_hostname() {
    let mut s = Session::new(
        cfg(ListenerKind::Mx),
        "192.0.2.7".parse().unwrap(),
        false,
        "x".into(),
    );
    assert_eq!(
        lines(&s.take_output()),
        vec![format!("220 {HOST} ESMTP Bulwark ready")]
    );
}

#[test]
fn ehlo_on_mx_advertises_extensions_but_not_auth() {
    let mut h = Harness::new(ListenerKind::Mx);
    let out = h.send(b"EHLO client.test\r\n");
    for ext in [
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "CHUNKING",
    ] {
        assert!(
            out.iter().any(|l| &l[4..] == ext),
            "{ext} missing in {out:?}"
        );
    }
    assert!(!out.iter().any(|l| l.contains("AUTH")));
    assert!(out.last().unwrap().starts_with("250 "));
}

#[test]
fn submission_offers_auth_only_after_tls_and_starttls_only_before() {
    let mut h = Harness::new(ListenerKind::Submission);
    let out = h.send(b"EHLO c\r\n");
    assert!(out.iter().any(|l| l.ends_with("STARTTLS")));
    assert!(!out.iter().any(|l| l.contains("AUTH")));
    assert_eq!(h.code(b"STARTTLS\r\n"), "220 2.0.0");
    assert_eq!(h.w.tls_handshakes, 1);
    let out = h.send(b"EHLO c\r\n");
    assert!(out.iter().any(|l| l.ends_with("AUTH PLAIN LOGIN")));
    assert!(!out.iter().any(|l| l.ends_with("STARTTLS")));
}

#[test]
fn pipelined_inbound_transaction_is_delivered_with_one_reply_per_command() {
    let mut h = Harness::new(ListenerKind::Mx);
    let out = h.send(
        b"EHLO client.test\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<Alice+news@example.test>\r\n\
          RCPT TO:<nobody@example.test>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(
        codes(&out),
        [
            "250",
            "250 2.1.0",
            "250 2.1.5",
            "550 5.1.1",
            "354",
            "250 2.0.0",
            "221 2.0.0"
        ]
    );
    assert_eq!(out[out.len() - 2], "250 2.0.0 Ok: queued as S1.1");
    assert!(h.w.closed);
    let d = &h.w.deliveries[0];
    assert_eq!(d.sender, "x@remote.test");
    assert_eq!(
        d.local,
        vec![("Alice+news@example.test".to_string(), AccountId(1))]
    );
    assert!(d.remote.is_empty());
    assert_eq!(d.body, b"Subject: hi\r\n\r\n.dot\r\n");
    let msg = String::from_utf8(d.local_message(0)).unwrap();
    assert!(
        msg.starts_with("Return-Path: <x@remote.test>\r\nReceived: from client.test ([192.0.2.7])")
    );
    assert!(msg.contains("with ESMTP id S1.1\r\n\tfor <Alice+news@example.test>;"));
    assert!(
        msg.ends_with("Thu, 01 Jan 1970 00:00:00 +0000\r\nSubject: hi\r\n\r\n.dot\r\n"),
        "{msg}"
    );
}

/// (commands sent first, the line under test, expected "code x.y.z" of its reply)
#[test]
fn bad_input_gets_the_exact_reply_and_the_session_continues() {
    let long = format!("NOOP {}\r\n", "a".repeat(MAX_COMMAND_LINE + 10));
    let cases: Vec<(&[&str], Vec<u8>, &str)> = vec![
        (&[], b"FOO\r\n".to_vec(), "500 5.5.2"),
        (&[], b"\r\n".to_vec(), "500 5.5.2"),
        (&[], b"\xff\xfe\x00\r\n".to_vec(), "500 5.5.2"),
        (&[], long.into_bytes(), "500 5.5.2"),
        (&[], b"MAIL FROM:<a@b.test>\r\n".to_vec(), "503 5.5.1"),
        (&[], b"EHLO\r\n".to_vec(), "501 5.5.4"),
        (
            &["EHLO c"],
            b"RCPT TO:<alice@example.test>\r\n".to_vec(),
            "503 5.5.1",
        ),
        (&["EHLO c"], b"DATA\r\n".to_vec(), "503 5.5.1"),
        (&["EHLO c"], b"MAIL FROM:bad\r\n".to_vec(), "501 5.5.4"),
        (
            &["EHLO c"],
            b"MAIL FROM:<a@b.test> SIZE=abc\r\n".to_vec(),
            "501 5.5.4",
        ),
        (
            &["EHLO c"],
            b"MAIL FROM:<a@b.test> RET=FULL\r\n".to_vec(),
            "555 5.5.4",
        ),
        (
            &["EHLO c"],
            b"MAIL FROM:<a@b.test> SIZE=1001\r\n".to_vec(),
            "552 5.3.4",
        ),
        (
            &["EHLO c"],
            b"MAIL FROM:<a..b@c.test>\r\n".to_vec(),
            "501 5.1.7",
        ),
        (&["EHLO c"], b"MAIL FROM:<>\r\n".to_vec(), "250 2.1.0"),
        (
            &["EHLO c"],
            "MAIL FROM:<jos\u{e9}@b.test>\r\n".as_bytes().to_vec(),
            "553 5.6.7",
        ),
        (
            &["EHLO c"],
            "MAIL FROM:<jos\u{e9}@b.test> SMTPUTF8\r\n"
                .as_bytes()
                .to_vec(),
            "250 2.1.0",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b.test>"],
            b"MAIL FROM:<a@b.test>\r\n".to_vec(),
            "503 5.5.1",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b.test>"],
            b"RCPT TO:<nobody@example.test>\r\n".to_vec(),
            "550 5.1.1",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b.test>"],
            b"RCPT TO:<x@remote.test>\r\n".to_vec(),
            "554 5.7.1",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b.test>"],
            b"RCPT TO:<broken@example.test>\r\n".to_vec(),
            "451 4.3.0",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b.test>"],
            b"RCPT TO:<a@example.test> NOTIFY=NEVER\r\n".to_vec(),
            "555 5.5.4",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b.test>"],
            b"RCPT TO:<@>\r\n".to_vec(),
            "501 5.1.3",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b.test>"],
            b"DATA\r\n".to_vec(),
            "554 5.5.1",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b.test>"],
            b"AUTH PLAIN AGFAYgBj\r\n".to_vec(),
            "503 5.5.1",
        ),
        (
            &["EHLO c"],
            b"AUTH PLAIN AGFAYgBj\r\n".to_vec(),
            "503 5.5.1",
        ),
        (&["EHLO c"], b"BDAT 3 LAST\r\nabc".to_vec(), "503 5.5.1"),
        (&["EHLO c"], b"EXPN staff\r\n".to_vec(), "502 5.5.1"),
        (&["EHLO c"], b"ETRN example.test\r\n".to_vec(), "502 5.5.1"),
        (&["EHLO c"], b"VRFY alice\r\n".to_vec(), "252 2.5.2"),
        (&["EHLO c"], b"HELP\r\n".to_vec(), "214 2.0.0"),
        (&["EHLO c"], b"NOOP\r\n".to_vec(), "250 2.0.0"),
        (&["EHLO c"], b"RSET\r\n".to_vec(), "250 2.0.0"),
        (
            &["EHLO c"],
            b"rcpt to:<alice@example.test>\r\n".to_vec(),
            "503 5.5.1",
        ),
        (
            &["HELO c"],
            b"MAIL FROM:<a@b.test>\r\n".to_vec(),
            "250 2.1.0",
        ),
    ];
    for (setup, line, expected) in cases {
        let mut h = Harness::new(ListenerKind::Mx);
        for cmd in setup {
            h.send(format!("{cmd}\r\n").as_bytes());
        }
        let out = h.send(&line);
        assert_eq!(
            out.len(),
            1,
            "one reply for {:?}: {out:?}",
            String::from_utf8_lossy(&line)
        );
        assert_eq!(
            code_of(&out[0]),
            expected,
            "for {:?}: {out:?}",
            String::from_utf8_lossy(&line)
        );
        // The next command is read as a command again.
        assert_eq!(
            h.code(b"NOOP\r\n"),
            "250 2.0.0",
            "after {:?}",
            String::from_utf8_lossy(&line)
        );
    }
}

#[test]
fn a_long_line_arriving_in_pieces_is_refused_once_and_not_buffered() {
    let mut h = greeted(ListenerKind::Mx);
    assert!(h.send(&vec![b'a'; 3000]).is_empty());
    assert!(h.send(&vec![b'a'; 3000]).is_empty());
    assert!(h.s.input.len() - h.s.start <= MAX_COMMAND_LINE);
    assert!(h.send(&vec![b'a'; 100_000]).is_empty());
    assert!(h.s.input.len() - h.s.start <= MAX_COMMAND_LINE);
    assert_eq!(
        codes(&h.send(b"aaa\r\nNOOP\r\n")),
        ["500 5.5.2", "250 2.0.0"]
    );
}

#[test]
fn too_many_bad_commands_end_the_session_with_421() {
    let mut h = Harness::new(ListenerKind::Mx);
    let out = h.send(&b"BOGUS\r\n".repeat(MAX_BAD_COMMANDS as usize + 5));
    assert_eq!(out.len(), MAX_BAD_COMMANDS as usize + 1);
    assert_eq!(code_of(out.last().unwrap()), "421 4.7.0");
    assert!(h.w.closed && h.s.is_closed());
    assert!(h.send(b"NOOP\r\n").is_empty());
}

#[test]
fn recipients_beyond_the_limit_get_452() {
    let mut h = greeted(ListenerKind::Mx);
    h.send(b"MAIL FROM:<a@b.test>\r\n");
    let out = h.send(
        b"RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<sales@example.test>\r\nRCPT TO:<alice+x@example.test>\r\n",
    );
    assert_eq!(
        codes(&out),
        ["250 2.1.5", "250 2.1.5", "250 2.1.5", "452 4.5.3"]
    );
}

#[test]
fn oversized_data_is_refused_after_the_end_and_the_session_goes_on() {
    let mut h = greeted(ListenerKind::Mx);
    h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    let line = format!("{}\r\n", "x".repeat(98));
    for _ in 0..50 {
        assert!(h.send(line.as_bytes()).is_empty());
    }
    assert_eq!(codes(&h.send(b".\r\nNOOP\r\n")), ["552 5.3.4", "250 2.0.0"]);
    assert!(h.w.deliveries.is_empty());
    // The transaction is over.
    assert_eq!(h.code(b"RCPT TO:<alice@example.test>\r\n"), "503 5.5.1");
}

#[test]
fn smuggled_end_of_data_with_bare_lf_is_neither_an_end_nor_accepted() {
    for smuggle in [&b"\n.\n"[..], b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r.\r"] {
        let mut h = greeted(ListenerKind::Mx);
        h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
        let mut input = b"Subject: one\r\n\r\nbody".to_vec();
        input.extend_from_slice(smuggle);
        input.extend_from_slice(
            b"MAIL FROM:<evil@b.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n",
        );
        let out = h.send(&input);
        assert_eq!(codes(&out), ["554 5.6.0"], "for {smuggle:?}");
        assert!(h.w.deliveries.is_empty());
    }
}

#[test]
fn bdat_chunks_are_assembled_and_pipelined_commands_after_them_work() {
    let mut h = greeted(ListenerKind::Mx);
    let out = h.send(
        b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 12\r\nSubject: x\r\nBDAT 8 LAST\r\n\r\nbody\r\nNOOP\r\n",
    );
    assert_eq!(
        codes(&out),
        [
            "250 2.1.0",
            "250 2.1.5",
            "250 2.0.0",
            "250 2.0.0",
            "250 2.0.0"
        ]
    );
    assert_eq!(out[2], "250 2.0.0 12 octets received");
    assert_eq!(h.w.deliveries[0].body, b"Subject: x\r\n\r\nbody\r\n");
}

#[test]
fn bdat_chunk_split_across_reads_and_zero_length_last() {
    let mut h = greeted(ListenerKind::Mx);
    h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\n");
    assert!(h.send(b"BDAT 11\r\nA: b\r").is_empty());
    assert_eq!(codes(&h.send(b"\n\r\nxyz")), ["250 2.0.0"]);
    assert_eq!(codes(&h.send(b"BDAT 0 LAST\r\n")), ["250 2.0.0"]);
    assert_eq!(h.w.deliveries[0].body, b"A: b\r\n\r\nxyz");
    // BDAT bodies must use CRLF too (the next hop may read them as DATA).
    h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\n");
    assert_eq!(codes(&h.send(b"BDAT 5 LAST\r\na\n.\nb")), ["554 5.6.0"]);
}

#[test]
fn oversized_bdat_is_discarded_and_refused() {
    let mut h = greeted(ListenerKind::Mx);
    h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\n");
    let mut input = b"BDAT 600\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 600));
    input.extend_from_slice(b"BDAT 600 LAST\r\n");
    input.extend(std::iter::repeat_n(b'y', 600));
    input.extend_from_slice(b"NOOP\r\n");
    assert_eq!(
        codes(&h.send(&input)),
        ["250 2.0.0", "552 5.3.4", "250 2.0.0"]
    );
    assert!(h.w.deliveries.is_empty());
    assert_eq!(h.code(b"BDAT 1 LAST\r\nz"), "503 5.5.1");
}

#[test]
fn data_after_bdat_is_a_bad_sequence() {
    let mut h = greeted(ListenerKind::Mx);
    h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 2\r\nab");
    assert_eq!(h.code(b"DATA\r\n"), "503 5.5.1");
}

#[test]
fn starttls_discards_pipelined_plaintext_and_resets_the_session() {
    let mut h = greeted(ListenerKind::Mx);
    let out = h.send(b"STARTTLS\r\nMAIL FROM:<evil@b.test>\r\n");
    assert_eq!(codes(&out), ["220 2.0.0"]);
    assert!(h.s.is_tls());
    // The MAIL was thrown away and EHLO must be given again (RFC 3207 §4.2).
    assert_eq!(h.code(b"MAIL FROM:<a@b.test>\r\n"), "503 5.5.1");
    assert_eq!(h.code(b"STARTTLS\r\n"), "503 5.5.1");
}

#[test]
fn bytes_fed_while_the_handshake_is_pending_are_ignored() {
    let mut s = Session::new(
        cfg(ListenerKind::Mx),
        "192.0.2.7".parse().unwrap(),
        false,
        "x".into(),
    );
    s.feed(b"EHLO c\r\nSTARTTLS\r\n");
    let mut saw_tls = false;
    while let Some(e) = s.poll_event() {
        saw_tls |= matches!(e, Event::StartTls);
    }
    assert!(saw_tls && !s.wants_read());
    s.feed(b"MAIL FROM:<a@b.test>\r\n");
    s.tls_established();
    s.take_output();
    assert!(s.poll_event().is_none());
    assert!(s.take_output().is_empty());
}

#[test]
fn store_failure_gives_451_and_no_250() {
    let mut h = greeted(ListenerKind::Mx);
    h.w.fail_delivery = true;
    let out = h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(codes(&out), ["250 2.1.0", "250 2.1.5", "354", "451 4.3.0"]);
    // A new transaction can start.
    assert_eq!(h.code(b"MAIL FROM:<a@b.test>\r\n"), "250 2.1.0");
}

#[test]
fn idle_timeout_sends_421_and_closes() {
    let mut h = greeted(ListenerKind::Mx);
    h.s.timed_out();
    h.w.drive(&mut h.s);
    assert_eq!(codes(&lines(&h.s.take_output())), ["421 4.4.2"]);
    assert!(h.w.closed);
}

#[test]
fn ehlo_resets_the_transaction() {
    let mut h = greeted(ListenerKind::Mx);
    h.send(b"MAIL FROM:<a@b.test>\r\n");
    h.send(b"EHLO again\r\n");
    assert_eq!(h.code(b"RCPT TO:<alice@example.test>\r\n"), "503 5.5.1");
}

#[test]
fn only_commands_that_do_not_move_mail_count_against_the_command_rate() {
    let mut h = Harness::new(ListenerKind::Mx);
    h.send(b"EHLO client.test\r\n");
    assert_eq!(h.s.take_command_count(), 1, "EHLO counts");
    for _ in 0..5 {
        let out = h.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
        assert!(out.iter().any(|l| l.starts_with("354")), "{out:?}");
        let out = h.send(b"Subject: x\r\n\r\nbody\r\n.\r\n");
        assert!(out.iter().any(|l| l.starts_with("250")), "{out:?}");
    }
    assert_eq!(h.w.deliveries.len(), 5);
    assert_eq!(h.s.take_command_count(), 0, "mail transactions are free");
    h.send(b"NOOP\r\nRSET\r\nXYZZY\r\n");
    assert_eq!(
        h.s.take_command_count(),
        3,
        "NOOP, RSET and unknown commands count"
    );
}
