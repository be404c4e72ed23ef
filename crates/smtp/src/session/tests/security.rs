//! Issue 13: header senders on submission, the body memory budget, `<postmaster>`.

use super::*;

fn submit(h: &mut Harness, body: &str) -> Vec<String> {
    let out = h.send(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n");
    assert!(out.iter().any(|l| l.starts_with("354")), "{out:?}");
    h.send(format!("{body}\r\n.\r\n").as_bytes())
}

#[test]
fn submission_refuses_a_header_from_the_user_may_not_send_as() {
    let mut h = authed();
    let out = submit(
        &mut h,
        "From: Bob <bob@example.test>\r\nSubject: spoof\r\n\r\nhi",
    );
    assert_eq!(codes(&out), ["550 5.7.1"]);
    assert!(
        out[0].contains("From header address <bob@example.test> is not one of your addresses"),
        "{out:?}"
    );
    let out = submit(
        &mut h,
        "From: alice@example.test\r\nSender: bob@example.test\r\n\r\nhi",
    );
    assert!(
        out[0].starts_with("550 5.7.1") && out[0].contains("Sender"),
        "{out:?}"
    );
    let out = submit(&mut h, "Subject: no from\r\n\r\nhi");
    assert!(
        out[0].starts_with("550 5.7.1") && out[0].contains("no From"),
        "{out:?}"
    );
    assert!(h.w.deliveries.is_empty());
    for from in [
        "Alice <alice@example.test>",
        "sales+x@example.test",
        "ALICE+y@EXAMPLE.TEST",
    ] {
        let out = submit(&mut h, &format!("From: {from}\r\n\r\nhi"));
        assert_eq!(codes(&out), ["250 2.0.0"], "{from}");
    }
}

#[test]
fn the_mx_does_not_check_header_senders_but_marks_its_deliveries() {
    let mut h = greeted(ListenerKind::Mx);
    let out = h.send(
        b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n\
          From: alice@example.test\r\n\r\nhi\r\n.\r\n",
    );
    assert_eq!(codes(&out).last().map(String::as_str), Some("250 2.0.0"));
    assert!(h.w.deliveries[0].inbound_mx);
    let mut h = authed();
    submit(&mut h, "From: alice@example.test\r\n\r\nhi");
    assert!(!h.w.deliveries[0].inbound_mx, "authenticated submission");
}

fn budgeted(budget: &Arc<MemoryBudget>) -> Harness {
    let mut c = cfg(ListenerKind::Mx);
    c.max_message_size = 1 << 20;
    let mut h = Harness {
        s: Session::new(c, "192.0.2.7".parse().unwrap(), false, "S1".into())
            .with_body_budget(budget.clone()),
        w: World::default(),
    };
    h.s.take_output();
    h.send(b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n");
    h
}

#[test]
fn bodies_are_held_within_the_shared_memory_budget() {
    let budget = MemoryBudget::new(600 * 1024);
    let mut a = budgeted(&budget);
    let mut b = budgeted(&budget);
    assert_eq!(a.code(b"DATA\r\n"), "354");
    a.send(&vec![b'a'; 300 * 1024]);
    assert!(budget.in_use() >= 300 * 1024, "reserved while received");
    // The other session's body does not fit next to it: thrown away, 452 at its end.
    assert_eq!(b.code(b"DATA\r\n"), "354");
    b.send(&vec![b'b'; 200 * 1024]);
    assert_eq!(b.code(b"\r\n.\r\n"), "452 4.3.1");
    assert!(b.w.deliveries.is_empty());
    // The first one is delivered and holds its memory until the delivery is done with.
    assert_eq!(a.code(b"\r\n.\r\n"), "250 2.0.0");
    assert!(a.w.deliveries[0].reserved_memory() >= 300 * 1024);
    // With the budget used up, DATA itself is refused and BDAT chunks too.
    let hold = budget.try_reserve(budget.limit() - budget.in_use());
    assert!(hold.is_some());
    b.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n");
    assert_eq!(b.code(b"DATA\r\n"), "452 4.3.1");
    assert_eq!(b.code(b"BDAT 5\r\nhello"), "452 4.3.1");
    assert_eq!(b.code(b"BDAT 2 LAST\r\nhi"), "452 4.3.1");
    drop(hold);
    a.w.deliveries.clear();
    assert_eq!(budget.in_use(), 0, "every byte given back");
    b.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n");
    assert_eq!(b.code(b"BDAT 5 LAST\r\nhello"), "250 2.0.0");
}

#[test]
fn bare_postmaster_is_passed_to_the_shell_and_an_empty_path_is_refused() {
    let mut h = greeted(ListenerKind::Mx);
    h.send(b"MAIL FROM:<a@remote.test>\r\n");
    h.s.feed(b"RCPT TO:<Postmaster>\r\n");
    match h.s.poll_event() {
        Some(Event::CheckRecipient { address, .. }) => assert_eq!(address, "postmaster"),
        other => panic!("{other:?}"),
    }
    h.s.recipient_resolved(RecipientVerdict::LocalAs {
        address: "postmaster@example.test".into(),
        account: AccountId(2),
    });
    assert_eq!(code_of(&lines(&h.s.take_output())[0]), "250 2.1.5");
    assert_eq!(h.code(b"RCPT TO:<>\r\n"), "501 5.1.3");
    h.send(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    let d = &h.w.deliveries[0];
    assert_eq!(
        d.local,
        [("postmaster@example.test".to_string(), AccountId(2))]
    );
}
