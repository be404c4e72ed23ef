//! AUTH and submission rules.

use super::*;

#[test]
fn submission_requires_tls_before_auth_and_auth_before_mail() {
    let mut h = greeted(ListenerKind::Submission);
    assert_eq!(
        h.code(b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"),
        "530 5.7.0"
    );
    assert_eq!(h.code(b"MAIL FROM:<alice@example.test>\r\n"), "530 5.7.0");
    h.send(b"STARTTLS\r\n");
    h.send(b"EHLO c\r\n");
    assert_eq!(h.code(b"MAIL FROM:<alice@example.test>\r\n"), "530 5.7.0");
    assert_eq!(
        h.code(b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"),
        "235 2.7.0"
    );
    assert_eq!(
        h.code(b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"),
        "503 5.5.1"
    );
    assert_eq!(h.code(b"MAIL FROM:<alice@example.test>\r\n"), "250 2.1.0");
}

#[test]
fn plaintext_auth_only_with_the_loopback_exemption() {
    let mut c = cfg(ListenerKind::Submission);
    c.plaintext_auth_allowed = true;
    let mut h = Harness::with(c, false);
    let out = h.send(b"EHLO c\r\n");
    assert!(out.iter().any(|l| l.ends_with("AUTH PLAIN LOGIN")));
    assert_eq!(
        h.code(b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"),
        "235 2.7.0"
    );
}

#[test]
fn auth_mechanisms_and_failures_get_rfc_4954_replies() {
    let cases: Vec<(&[&str], &str)> = vec![
        // wrong password
        (
            &["AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw=="],
            "535 5.7.8",
        ),
        // PLAIN without initial response, then the response
        (
            &["AUTH PLAIN", "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="],
            "235 2.7.0",
        ),
        // authzid equal to authcid is fine
        (
            &["AUTH PLAIN YWxpY2VAZXhhbXBsZS50ZXN0AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="],
            "235 2.7.0",
        ),
        // authzid of someone else is refused
        (
            &["AUTH PLAIN Ym9iQGV4YW1wbGUudGVzdABhbGljZUBleGFtcGxlLnRlc3QAc2VjcmV0"],
            "501 5.5.4",
        ),
        // LOGIN: username, password
        (
            &["AUTH LOGIN", "YWxpY2VAZXhhbXBsZS50ZXN0", "c2VjcmV0"],
            "235 2.7.0",
        ),
        // LOGIN with the username as initial response
        (
            &["AUTH LOGIN YWxpY2VAZXhhbXBsZS50ZXN0", "c2VjcmV0"],
            "235 2.7.0",
        ),
        (&["AUTH PLAIN", "*"], "501 5.0.0"),
        (&["AUTH PLAIN", "!!!not base64"], "501 5.5.2"),
        (&["AUTH PLAIN bm9udWw="], "501 5.5.4"),
        (&["AUTH CRAM-MD5"], "504 5.5.4"),
        (&["AUTH PLAIN AHNsb3dAZXhhbXBsZS50ZXN0AHg="], "454 4.7.0"),
    ];
    for (lines_in, expected) in cases {
        let mut h = Harness::with(cfg(ListenerKind::Submissions), true);
        h.send(b"EHLO c\r\n");
        let mut last = Vec::new();
        for l in lines_in {
            last = h.send(format!("{l}\r\n").as_bytes());
        }
        assert_eq!(codes(&last), [expected], "for {lines_in:?}");
        assert_eq!(h.code(b"NOOP\r\n"), "250 2.0.0");
    }
}

#[test]
fn repeated_auth_failures_close_the_connection() {
    let mut h = Harness::with(cfg(ListenerKind::Submissions), true);
    h.send(b"EHLO c\r\n");
    let bad = b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\n";
    h.send(bad);
    h.send(bad);
    assert_eq!(codes(&h.send(bad)), ["535 5.7.8", "421 4.7.0"]);
    assert!(h.w.closed);
}

#[test]
fn envelope_sender_must_belong_to_the_user_plus_variants_allowed() {
    let cases = [
        ("alice@example.test", "250 2.1.0"),
        ("ALICE@Example.Test", "250 2.1.0"),
        ("alice+lists@example.test", "250 2.1.0"),
        ("sales@example.test", "250 2.1.0"),
        ("bob@example.test", "553 5.7.1"),
        ("alice@other.test", "553 5.7.1"),
        ("", "553 5.7.1"),
        ("+x@example.test", "553 5.7.1"),
    ];
    for (sender, expected) in cases {
        let mut h = authed();
        assert_eq!(
            h.code(format!("MAIL FROM:<{sender}>\r\n").as_bytes()),
            expected,
            "{sender}"
        );
    }
}

#[test]
fn submission_accepts_local_and_remote_recipients_in_one_message() {
    let mut h = authed();
    let out = h.send(
        b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<carol@remote.test>\r\n\
          RCPT TO:<nobody@example.test>\r\nDATA\r\nFrom: alice@example.test\r\nSubject: s\r\n\r\nhi\r\n.\r\n",
    );
    assert_eq!(
        codes(&out),
        [
            "250 2.1.0",
            "250 2.1.5",
            "250 2.1.5",
            "550 5.1.1",
            "354",
            "250 2.0.0"
        ]
    );
    let d = &h.w.deliveries[0];
    assert_eq!(d.local_accounts(), vec![AccountId(2)]);
    assert_eq!(d.remote, vec!["carol@remote.test".to_string()]);
    assert_eq!(d.trace.protocol, "ESMTPSA");
    let relay = String::from_utf8(d.relay_message(0)).unwrap();
    assert!(relay.starts_with("Received: ") && !relay.contains("Return-Path"));
}

/// RFC 4865: FUTURERELEASE on submission only, with its limits checked at MAIL and the
/// hold handed to the shell with the message.
#[test]
fn futurerelease_is_offered_on_submission_and_its_hold_reaches_the_shell() {
    const START: i64 = 1_800_000_000;
    let mut c = cfg(ListenerKind::Submission);
    c.future_release = Some(START);
    let mut h = Harness::with(c, true);
    let out = h.send(b"EHLO c\r\n");
    assert!(
        out.iter()
            .any(|l| l.ends_with("FUTURERELEASE 2592000 2027-02-14T08:00:00Z")),
        "{out:?}"
    );
    h.code(b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n");
    assert_eq!(
        h.code(b"MAIL FROM:<alice@example.test> HOLDFOR=60 HOLDUNTIL=2027-01-01T00:00:00Z\r\n"),
        "501 5.5.4"
    );
    assert_eq!(
        h.code(b"MAIL FROM:<alice@example.test> HOLDUNTIL=2027-03-01T00:00:00Z\r\n"),
        "501 5.5.4",
        "past the advertised maximum"
    );
    assert_eq!(
        h.code(b"MAIL FROM:<alice@example.test> HOLDFOR=2592001\r\n"),
        "501 5.5.4"
    );
    assert_eq!(
        h.code(b"MAIL FROM:<alice@example.test> HOLDFOR=90\r\n"),
        "250 2.1.0"
    );
    h.code(b"RCPT TO:<bob@example.test>\r\n");
    h.send(b"DATA\r\n");
    h.send(b"From: alice@example.test\r\nSubject: later\r\n\r\nhi\r\n.\r\n");
    let d = h.w.deliveries.last().expect("delivered");
    assert_eq!(d.hold, Some(Hold::For(90)));
    assert_eq!(d.hold.map(|x| x.release_at(START)), Some(START + 90));
    assert_eq!(d.account, Some(AccountId(1)));
    // Not on the MX: the parameter is not offered there (RFC 5321 §4.1.1.11).
    let mut mx = Harness::new(ListenerKind::Mx);
    let out = mx.send(b"EHLO c\r\n");
    assert!(!out.iter().any(|l| l.contains("FUTURERELEASE")), "{out:?}");
    assert_eq!(
        mx.code(b"MAIL FROM:<x@remote.test> HOLDFOR=60\r\n"),
        "555 5.5.4"
    );
}
