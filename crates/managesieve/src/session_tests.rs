use super::*;
use base64::Engine;

fn cfg(plain: bool) -> SessionConfig {
    SessionConfig {
        implementation: "Bulwark".into(),
        tls_available: true,
        plaintext_auth_allowed: plain,
    }
}

fn out(s: &mut Session) -> String {
    String::from_utf8(s.take_output()).unwrap()
}

fn plain(user: &str, pass: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

/// A session logged in as account 7.
fn logged_in() -> Session {
    let mut s = Session::new(cfg(true), false);
    out(&mut s);
    s.feed(format!("AUTHENTICATE \"PLAIN\" \"{}\"\r\n", plain("a@x", "pw")).as_bytes());
    assert_eq!(
        s.poll_event(),
        Some(Event::Authenticate {
            username: "a@x".into(),
            password: "pw".into()
        })
    );
    s.auth_result(AuthOutcome::Success {
        account: AccountId(7),
        owner: "a@x".into(),
    });
    assert_eq!(s.poll_event(), None);
    assert_eq!(out(&mut s), "OK \"Logged in\"\r\n");
    s
}

fn op(s: &mut Session, line: &str) -> ScriptOp {
    s.feed(line.as_bytes());
    match s.poll_event() {
        Some(Event::Script { account, op }) => {
            assert_eq!(account, AccountId(7));
            op
        }
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn greeting_lists_capabilities() {
    let mut s = Session::new(cfg(false), false);
    let g = out(&mut s);
    assert!(g.starts_with("\"IMPLEMENTATION\" \"Bulwark\"\r\n"), "{g}");
    assert!(g.contains("\"SIEVE\" \"fileinto "), "{g}");
    assert!(g.contains("\"STARTTLS\"\r\n"), "{g}");
    assert!(g.contains("\"VERSION\" \"1.0\"\r\n"), "{g}");
    assert!(g.contains("\"SASL\" \"\"\r\n"), "no PLAIN before TLS: {g}");
    assert!(g.ends_with("OK \"Bulwark ManageSieve ready\"\r\n"), "{g}");
}

#[test]
fn starttls_then_capabilities_again_with_plain() {
    let mut s = Session::new(cfg(false), false);
    out(&mut s);
    s.feed(b"AUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n");
    assert_eq!(s.poll_event(), None);
    assert_eq!(
        out(&mut s),
        "NO (ENCRYPT-NEEDED) \"Use STARTTLS first\"\r\n"
    );
    s.feed(b"STARTTLS\r\n");
    assert_eq!(s.poll_event(), Some(Event::StartTls));
    assert_eq!(out(&mut s), "OK \"Begin TLS negotiation now\"\r\n");
    s.tls_established();
    let caps = out(&mut s);
    assert!(caps.contains("\"SASL\" \"PLAIN\""), "{caps}");
    assert!(!caps.contains("STARTTLS"), "{caps}");
    s.feed(b"STARTTLS\r\n");
    assert_eq!(s.poll_event(), None);
    assert!(out(&mut s).starts_with("NO "));
}

#[test]
fn authenticate_with_continuation_and_owner() {
    let mut s = Session::new(cfg(true), false);
    out(&mut s);
    s.feed(b"Authenticate \"plain\"\r\n");
    assert_eq!(s.poll_event(), None);
    assert_eq!(out(&mut s), "\"\"\r\n");
    let resp = plain("b@x", "secret");
    s.feed(format!("{{{}+}}\r\n{resp}\r\n", resp.len()).as_bytes());
    assert_eq!(
        s.poll_event(),
        Some(Event::Authenticate {
            username: "b@x".into(),
            password: "secret".into()
        })
    );
    s.auth_result(AuthOutcome::Success {
        account: AccountId(2),
        owner: "b@x".into(),
    });
    assert_eq!(out(&mut s), "OK \"Logged in\"\r\n");
    s.feed(b"CAPABILITY\r\n");
    assert_eq!(s.poll_event(), None);
    let caps = out(&mut s);
    assert!(caps.contains("\"OWNER\" \"b@x\"\r\n"), "{caps}");
}

#[test]
fn sasl_cancel_and_failures_close() {
    let mut s = Session::new(cfg(true), false);
    out(&mut s);
    s.feed(b"AUTHENTICATE \"PLAIN\"\r\n\"*\"\r\n");
    assert_eq!(s.poll_event(), None);
    assert_eq!(out(&mut s), "\"\"\r\nNO \"Authentication cancelled\"\r\n");
    for i in 0..MAX_AUTH_FAILURES {
        s.feed(format!("AUTHENTICATE \"PLAIN\" \"{}\"\r\n", plain("a", "b")).as_bytes());
        assert!(matches!(s.poll_event(), Some(Event::Authenticate { .. })));
        s.auth_result(AuthOutcome::InvalidCredentials);
        let o = out(&mut s);
        assert!(o.starts_with("NO \"Authentication failed\""), "{o}");
        if i + 1 == MAX_AUTH_FAILURES {
            assert!(o.contains("BYE"), "{o}");
            assert_eq!(s.poll_event(), Some(Event::Close));
        }
    }
}

#[test]
fn throttled_login_says_trylater() {
    let mut s = Session::new(cfg(true), false);
    out(&mut s);
    s.feed(format!("AUTHENTICATE \"PLAIN\" \"{}\"\r\n", plain("a", "b")).as_bytes());
    assert!(matches!(s.poll_event(), Some(Event::Authenticate { .. })));
    s.auth_result(AuthOutcome::Throttled {
        retry_after_secs: 30,
    });
    assert!(out(&mut s).starts_with("NO (TRYLATER) "));
    s.feed(format!("AUTHENTICATE \"PLAIN\" \"{}\"\r\n", plain("a", "b")).as_bytes());
    assert!(matches!(s.poll_event(), Some(Event::Authenticate { .. })));
    s.auth_result(AuthOutcome::AppPasswordRequired);
    assert!(out(&mut s).starts_with("NO (AUTH-TOO-WEAK) "));
}

#[test]
fn commands_need_login() {
    let mut s = Session::new(cfg(true), false);
    out(&mut s);
    s.feed(b"LISTSCRIPTS\r\nGETSCRIPT \"x\"\r\n");
    assert_eq!(s.poll_event(), None);
    assert_eq!(
        out(&mut s),
        "NO \"Authenticate first\"\r\nNO \"Authenticate first\"\r\n"
    );
}

#[test]
fn script_commands_become_ops_and_results() {
    let mut s = logged_in();
    assert_eq!(
        op(&mut s, "PUTSCRIPT \"vac\" {5+}\r\nkeep;\r\n"),
        ScriptOp::Put {
            name: "vac".into(),
            source: "keep;".into()
        }
    );
    s.script_result(ScriptResult::Done);
    assert_eq!(out(&mut s), "OK \"Putscript completed\"\r\n");

    assert_eq!(op(&mut s, "LISTSCRIPTS\r\n"), ScriptOp::List);
    s.script_result(ScriptResult::List(vec![
        ("a \"q\"".into(), false),
        ("vac".into(), true),
    ]));
    assert_eq!(
        out(&mut s),
        "\"a \\\"q\\\"\"\r\n\"vac\" ACTIVE\r\nOK \"Listscripts completed\"\r\n"
    );

    assert_eq!(
        op(&mut s, "GETSCRIPT \"vac\"\r\n"),
        ScriptOp::Get("vac".into())
    );
    s.script_result(ScriptResult::Script(Some("keep;\r\n".into())));
    assert_eq!(
        out(&mut s),
        "{7}\r\nkeep;\r\n\r\nOK \"Getscript completed\"\r\n"
    );

    assert_eq!(op(&mut s, "SETACTIVE \"\"\r\n"), ScriptOp::SetActive(None));
    s.script_result(ScriptResult::Done);
    out(&mut s);
    assert_eq!(
        op(&mut s, "HAVESPACE \"x\" 999999999\r\n"),
        ScriptOp::HaveSpace {
            name: "x".into(),
            size: 999_999_999
        }
    );
    s.script_result(ScriptResult::Failed(ScriptError::TooLarge));
    assert!(out(&mut s).starts_with("NO (QUOTA/MAXSIZE) "));
    assert_eq!(
        op(&mut s, "RENAMESCRIPT \"a\" \"b\"\r\n"),
        ScriptOp::Rename {
            old: "a".into(),
            new: "b".into()
        }
    );
    s.script_result(ScriptResult::Failed(ScriptError::AlreadyExists("b".into())));
    assert!(out(&mut s).starts_with("NO (ALREADYEXISTS) "));
    assert_eq!(
        op(&mut s, "DELETESCRIPT \"vac\"\r\n"),
        ScriptOp::Delete("vac".into())
    );
    s.script_result(ScriptResult::Failed(ScriptError::Active("vac".into())));
    assert!(out(&mut s).starts_with("NO (ACTIVE) "));
    assert_eq!(
        op(&mut s, "GETSCRIPT \"nope\"\r\n"),
        ScriptOp::Get("nope".into())
    );
    s.script_result(ScriptResult::Script(None));
    assert!(out(&mut s).starts_with("NO (NONEXISTENT) "));
}

#[test]
fn one_command_at_a_time() {
    let mut s = logged_in();
    assert_eq!(op(&mut s, "LISTSCRIPTS\r\nNOOP\r\n"), ScriptOp::List);
    assert_eq!(s.poll_event(), None);
    assert_eq!(out(&mut s), "");
    s.script_result(ScriptResult::List(vec![]));
    assert_eq!(s.poll_event(), None);
    assert_eq!(
        out(&mut s),
        "OK \"Listscripts completed\"\r\nOK \"NOOP completed\"\r\n"
    );
}

#[test]
fn oversized_putscript_is_refused_without_an_op() {
    let mut s = logged_in();
    let size = 1024 * 1024;
    s.feed(format!("PUTSCRIPT \"big\" {{{size}+}}\r\n").as_bytes());
    let chunk = vec![b'#'; 8192];
    for _ in 0..size / chunk.len() {
        s.feed(&chunk);
        assert_eq!(s.poll_event(), None);
    }
    s.feed(b"\r\n");
    assert_eq!(s.poll_event(), None);
    let o = out(&mut s);
    assert!(o.starts_with("NO (QUOTA/MAXSIZE) "), "{o}");
}

#[test]
fn checkscript_reports_the_line() {
    let mut s = logged_in();
    let script =
        "require \"fileinto\";\r\nif header :contains \"subject\" \"x\" {\r\n  bogus;\r\n}\r\n";
    s.feed(format!("CHECKSCRIPT {{{}+}}\r\n{script}\r\n", script.len()).as_bytes());
    assert_eq!(s.poll_event(), None);
    let o = out(&mut s);
    assert!(o.starts_with("NO "), "{o}");
    // sieve-rs counts lines from 0 (the error is on the third line).
    assert!(o.contains("line 2"), "{o}");
    s.feed(b"CHECKSCRIPT \"keep;\"\r\n");
    assert_eq!(s.poll_event(), None);
    assert_eq!(out(&mut s), "OK \"Script is valid\"\r\n");
}

#[test]
fn noop_echoes_the_tag() {
    let mut s = Session::new(cfg(false), false);
    out(&mut s);
    s.feed(b"NOOP \"STARTTLS-SYNC-42\"\r\n");
    assert_eq!(s.poll_event(), None);
    assert_eq!(out(&mut s), "OK (TAG \"STARTTLS-SYNC-42\") \"Done\"\r\n");
}

#[test]
fn unauthenticate_returns_to_the_start() {
    let mut s = logged_in();
    s.feed(b"UNAUTHENTICATE\r\nLISTSCRIPTS\r\n");
    assert_eq!(s.poll_event(), None);
    assert_eq!(
        out(&mut s),
        "OK \"Unauthenticate completed\"\r\nNO \"Authenticate first\"\r\n"
    );
}

#[test]
fn logout_closes() {
    let mut s = Session::new(cfg(false), false);
    out(&mut s);
    s.feed(b"LOGOUT\r\nNOOP\r\n");
    assert_eq!(s.poll_event(), Some(Event::Close));
    assert_eq!(s.poll_event(), None);
    assert_eq!(out(&mut s), "OK \"Logout completed\"\r\n");
}

#[test]
fn too_many_bad_commands_end_with_bye() {
    let mut s = Session::new(cfg(false), false);
    out(&mut s);
    for _ in 0..MAX_BAD_COMMANDS {
        s.feed(b"FROB\r\n");
    }
    assert_eq!(s.poll_event(), Some(Event::Close));
    let o = out(&mut s);
    assert!(o.ends_with("BYE \"Too many errors\"\r\n"), "{o}");
}

#[test]
fn multi_line_text_goes_out_as_a_literal() {
    assert_eq!(wire_string("a\r\nb"), "{4}\r\na\r\nb");
    assert_eq!(wire_string("a\\b"), "\"a\\\\b\"");
}

#[test]
fn fuzz_entry_point_survives_hostile_sessions() {
    let mut x: u32 = 99;
    let words: &[&[u8]] = &[
        b"AUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n",
        b"AUTHENTICATE \"PLAIN\"\r\n",
        b"PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n",
        b"GETSCRIPT \"a\"\r\n",
        b"LISTSCRIPTS\r\n",
        b"STARTTLS\r\n",
        b"{3}\r\n",
        b"\"\\\"",
        b"\r\n",
        b"CHECKSCRIPT {4+}\r\nif ;\r\n",
        b"UNAUTHENTICATE\r\n",
        b"HAVESPACE \"a\" 18446744073709551616\r\n",
        b"\xff\x00",
    ];
    for _ in 0..300 {
        let mut input = Vec::new();
        for _ in 0..20 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            input.extend_from_slice(words[(x as usize) % words.len()]);
        }
        crate::fuzz_session(&input);
    }
}

#[test]
fn plaintext_after_starttls_is_dropped() {
    let mut s = Session::new(cfg(false), false);
    out(&mut s);
    s.feed(b"STARTTLS\r\nLOGOUT\r\n");
    assert_eq!(s.poll_event(), Some(Event::StartTls));
    s.tls_established();
    assert_eq!(s.poll_event(), None);
    assert!(!s.is_closed());
}
