//! Session tests of RFC details clients rely on (issue 14): each names its RFC section.

use super::tests::{T, logged_in};
use super::tests_support::*;

async fn second_session(a: &T) -> T {
    let mut b = T::new_like(a);
    b.share_feeds_with(a);
    b.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    b
}

#[tokio::test]
async fn recent_goes_to_exactly_one_session_and_examine_does_not_claim() {
    // RFC 3501 §2.3.2, §6.3.1, §6.3.2, §7.3.2.
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, _, _) = logged_in(dir.path()).await;
    a.append("INBOX", "", &msg("one", "x")).await;
    a.append("INBOX", "", &msg("two", "x")).await;
    let mut e = second_session(&a).await;
    // EXAMINE shows the unclaimed messages as recent but leaves them for SELECT.
    let out = e.ok("e EXAMINE INBOX").await;
    assert!(out.contains("* 2 RECENT\r\n"), "{out}");
    let out = a.ok("s SELECT INBOX").await;
    assert!(out.contains("* 2 EXISTS\r\n* 2 RECENT\r\n"), "{out}");
    let mut b = second_session(&a).await;
    let out = b.ok("s SELECT INBOX").await;
    assert!(out.contains("* 0 RECENT\r\n"), "{out}");
    // RFC 3501 §6.4.4 RECENT / NEW / OLD.
    assert!(a.ok("r SEARCH RECENT").await.contains("* SEARCH 1 2\r\n"));
    assert!(b.ok("r SEARCH RECENT").await.contains("* SEARCH\r\n"));
    assert!(b.ok("o SEARCH OLD").await.contains("* SEARCH 1 2\r\n"));
    a.ok("f STORE 1 +FLAGS (\\Seen)").await;
    assert!(a.ok("n SEARCH NEW").await.contains("* SEARCH 2\r\n"));
    let out = a.ok("f FETCH 1:2 FLAGS").await;
    assert!(
        out.contains("* 1 FETCH (FLAGS (\\Seen \\Recent))")
            && out.contains("* 2 FETCH (FLAGS (\\Recent))"),
        "{out}"
    );
    // A new message goes to the first session that hears of it: the appending one here
    // (it has the mailbox selected); the others see EXISTS and an unchanged RECENT.
    b.append("INBOX", "", &msg("three", "x")).await;
    let out = b.ok("n NOOP").await;
    assert!(!out.contains("RECENT"), "reported with the APPEND: {out}");
    assert!(b.ok("r SEARCH RECENT").await.contains("* SEARCH 3\r\n"));
    let out = a.ok("n NOOP").await;
    assert!(out.contains("* 3 EXISTS\r\n* 2 RECENT\r\n"), "{out}");
    // STATUS (RECENT) counts what no session was given yet (RFC 3501 §6.3.10).
    let out = a.ok("st STATUS INBOX (RECENT MESSAGES)").await;
    assert!(out.contains("(RECENT 0 MESSAGES 3)"), "{out}");
    // IMAP4rev2 has no \Recent (RFC 9051 §2.3.2).
    let mut r2 = second_session(&a).await;
    r2.ok("en ENABLE IMAP4rev2").await;
    let out = r2.ok("s SELECT INBOX").await;
    assert!(!out.contains("RECENT"), "{out}");
}

#[tokio::test]
async fn status_recent_counts_unclaimed_messages() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, _, _) = logged_in(dir.path()).await;
    a.append("INBOX", "", &msg("one", "x")).await;
    let out = a.ok("st STATUS INBOX (RECENT)").await;
    assert!(out.contains("(RECENT 1)"), "{out}");
    a.ok("s SELECT INBOX").await;
    a.ok("c CLOSE").await;
    a.append("INBOX", "", &msg("two", "x")).await;
    let out = a.ok("st STATUS INBOX (RECENT)").await;
    assert!(out.contains("(RECENT 1)"), "{out}");
}

#[tokio::test]
async fn new_keywords_are_announced_before_use_in_the_case_first_written() {
    // RFC 3501 §7.2.6 / RFC 9051 §7.3.5; keywords compare case-insensitively (RFC 9051
    // §2.3.2) but show as first written.
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, _, _) = logged_in(dir.path()).await;
    a.append("INBOX", "", &msg("one", "x")).await;
    a.ok("s SELECT INBOX").await;
    let mut b = second_session(&a).await;
    b.ok("s SELECT INBOX").await;
    b.ok("st STORE 1 +FLAGS.SILENT ($Forwarded NonJunk)").await;
    let out = a.ok("n NOOP").await;
    let flags = out.find("* FLAGS (").expect("FLAGS announced");
    let fetch = out.find("* 1 FETCH").expect("FETCH");
    assert!(flags < fetch, "{out}");
    assert!(
        out.contains("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded NonJunk)")
            && out.contains("[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded NonJunk \\*)]"),
        "{out}"
    );
    assert!(out.contains("FLAGS ($Forwarded NonJunk \\Recent)"), "{out}");
    // Announced once; a later write in another case keeps the first case.
    b.ok("st STORE 1 +FLAGS.SILENT (nonjunk $FORWARDED \\Seen)")
        .await;
    let out = a.ok("n NOOP").await;
    assert!(!out.contains("* FLAGS"), "{out}");
    assert!(
        out.contains("FLAGS ($Forwarded \\Seen NonJunk \\Recent)"),
        "{out}"
    );
    assert!(
        a.ok("k SEARCH KEYWORD NONJUNK")
            .await
            .contains("* SEARCH 1\r\n"),
        "keywords match case-insensitively"
    );
    // A fresh session announces them at SELECT in that case.
    let mut c = second_session(&a).await;
    let out = c.ok("s SELECT INBOX").await;
    assert!(out.contains("$Forwarded NonJunk)"), "{out}");
}

#[tokio::test]
async fn delete_keeps_the_subscription_and_lsub_shows_unsubscribed_parents() {
    // RFC 3501 §6.3.4, §6.3.6, §6.3.9; RFC 5258 §3.1, §3.5.
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, _, _) = logged_in(dir.path()).await;
    a.ok("c CREATE foo/bar").await;
    a.ok("c CREATE foo/baz/deep").await;
    a.ok("s SUBSCRIBE foo/bar").await;
    a.ok("s SUBSCRIBE foo/baz/deep").await;
    let out = a.ok("l LSUB \"\" foo/%").await;
    assert!(out.contains("* LSUB () \"/\" \"foo/bar\"\r\n"), "{out}");
    assert!(
        out.contains("* LSUB (\\Noselect) \"/\" \"foo/baz\"\r\n"),
        "{out}"
    );
    let out = a.ok("l LSUB \"\" %").await;
    assert!(
        out.contains("* LSUB (\\Noselect) \"/\" \"foo\"\r\n"),
        "{out}"
    );
    let out = a.ok("l LSUB \"\" *").await;
    assert!(
        !out.contains(" \"foo\"\r\n") && out.contains(" \"foo/baz/deep\"\r\n"),
        "{out}"
    );
    // SUBSCRIBED RECURSIVEMATCH: CHILDINFO for parents of subscribed names.
    let out = a.ok("r LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %").await;
    assert!(
        out.contains("* LIST (\\HasChildren) \"/\" \"foo\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"),
        "{out}"
    );
    let out = a.ok("r LIST (SUBSCRIBED RECURSIVEMATCH) \"\" foo/%").await;
    assert!(
        out.contains("* LIST (\\Subscribed \\HasNoChildren) \"/\" \"foo/bar\"\r\n")
            && out.contains("\"/\" \"foo/baz\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"),
        "{out}"
    );
    // DELETE does not unsubscribe.
    a.ok("d DELETE foo/bar").await;
    let out = a.ok("l LSUB \"\" *").await;
    assert!(
        out.contains("* LSUB (\\Noselect) \"/\" \"foo/bar\"\r\n"),
        "{out}"
    );
    let out = a.ok("l LIST (SUBSCRIBED) \"\" *").await;
    assert!(
        out.contains("* LIST (\\Subscribed \\NonExistent) \"/\" \"foo/bar\"\r\n"),
        "{out}"
    );
    let out = a.ok("l LIST \"\" *").await;
    assert!(!out.contains("foo/bar"), "{out}");
    // Re-created, the mailbox is subscribed again; UNSUBSCRIBE then removes it.
    a.ok("c CREATE foo/bar").await;
    let out = a.ok("l LIST (SUBSCRIBED) \"\" foo/bar").await;
    assert!(
        out.contains("* LIST (\\Subscribed \\HasNoChildren) \"/\" \"foo/bar\""),
        "{out}"
    );
    a.ok("u UNSUBSCRIBE foo/bar").await;
    let out = a.ok("l LSUB \"\" foo/bar").await;
    assert!(!out.contains("* LSUB"), "{out}");
    // A name without a mailbox can be subscribed and unsubscribed.
    a.ok("s SUBSCRIBE ghost").await;
    let out = a.ok("l LSUB \"\" ghost").await;
    assert!(out.contains("* LSUB (\\Noselect) \"/\" \"ghost\""), "{out}");
    a.ok("u UNSUBSCRIBE ghost").await;
    assert!(a.run("u2 UNSUBSCRIBE ghost").await.starts_with("u2 NO"));
}

#[tokio::test]
async fn nul_never_goes_out_inside_a_plain_literal() {
    // RFC 9051 §9 literal = CHAR8 (no NUL); literal8 only for BINARY (RFC 3516 §4.3).
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, _, _) = logged_in(dir.path()).await;
    let raw = "From: a@x.test\r\nSubject: nul\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
               --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\
               A\0B\r\n--b--\r\n";
    a.append("INBOX", "", raw).await;
    a.ok("s SELECT INBOX").await;
    let out = a.ok("f FETCH 1 (BODY.PEEK[1] BODY.PEEK[])").await;
    assert!(!out.contains('\0'), "{out:?}");
    assert!(out.contains("BODY[1] {3}\r\nA\u{fffd}B"), "{out:?}");
    let out = a.ok("b FETCH 1 BINARY.PEEK[1]").await;
    assert!(out.contains("BINARY[1] ~{3}\r\nA\0B"), "{out:?}");
}

#[tokio::test]
async fn esearch_min_max_report_the_modseq_of_the_returned_message() {
    // RFC 4731 §3.2 / RFC 7162 §3.1.5; RFC 7162 §3.1 HIGHESTMODSEQ on enabling.
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, _, _) = logged_in(dir.path()).await;
    for s in ["one", "two", "three"] {
        a.append("INBOX", "", &msg(s, "x")).await;
    }
    a.ok("s SELECT INBOX").await;
    let out = a.ok("f FETCH 1:3 (MODSEQ)").await;
    assert!(out.contains("* OK [HIGHESTMODSEQ "), "{out}");
    let again = a.ok("f2 FETCH 1 (MODSEQ)").await;
    assert!(!again.contains("HIGHESTMODSEQ"), "{again}");
    let modseq = |out: &str, seq: usize| -> u64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("* {seq} FETCH")))
            .expect("line");
        line.rsplit("MODSEQ (")
            .next()
            .and_then(|s| s.split(')').next())
            .and_then(|s| s.parse().ok())
            .expect("modseq")
    };
    a.ok("st STORE 2 +FLAGS (\\Flagged)").await;
    let out = a.ok("f FETCH 1:3 (MODSEQ)").await;
    let (m1, m2, m3) = (modseq(&out, 1), modseq(&out, 2), modseq(&out, 3));
    assert!(m2 > m1 && m2 > m3, "{out}");
    let out = a.ok("e SEARCH RETURN (MIN) MODSEQ 1").await;
    assert!(out.contains(&format!("MIN 1 MODSEQ {m1}")), "{out}");
    let out = a.ok("e SEARCH RETURN (MAX) MODSEQ 1").await;
    assert!(out.contains(&format!("MAX 3 MODSEQ {m3}")), "{out}");
    let out = a.ok("e SEARCH RETURN (MIN MAX) MODSEQ 1").await;
    assert!(out.contains(&format!("MODSEQ {}", m1.max(m3))), "{out}");
    let out = a.ok("e SEARCH RETURN (COUNT) MODSEQ 1").await;
    assert!(out.contains(&format!("COUNT 3 MODSEQ {m2}")), "{out}");
}

#[tokio::test]
async fn sort_uses_ascii_casemap_and_group_syntax() {
    // RFC 5256 §3 (i;ascii-casemap, RFC 4790 §9.2); RFC 3501 §7.4.2 groups.
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, _, _) = logged_in(dir.path()).await;
    let m = |subject: &str, cc: &str, to: &str| {
        format!("From: a@x.test\r\nTo: {to}\r\nCc: {cc}\r\nSubject: {subject}\r\n\r\nb\r\n")
    };
    // i;ascii-casemap puts "_" (0x5F) after "B" (0x42) but Unicode lowercase puts it
    // before "b" (0x62).
    a.append("INBOX", "", &m("b", "zed@x.test", "z@x.test"))
        .await;
    a.append(
        "INBOX",
        "",
        &m("_", "team: amy@x.test;", "crew: q@x.test, r@x.test;"),
    )
    .await;
    a.append("INBOX", "", &m("A", "mike@x.test", "m@x.test"))
        .await;
    a.ok("s SELECT INBOX").await;
    let out = a.ok("o SORT (SUBJECT) UTF-8 ALL").await;
    assert!(out.contains("* SORT 3 1 2\r\n"), "{out}");
    // CC sorts by the group name of a group (its addr-mailbox in the ENVELOPE).
    let out = a.ok("o SORT (CC) UTF-8 ALL").await;
    assert!(out.contains("* SORT 3 2 1\r\n"), "{out}");
    let out = a.ok("t SEARCH TO crew").await;
    assert!(out.contains("* SEARCH 2\r\n"), "{out}");
    let out = a.ok("t SEARCH TO r@x.test").await;
    assert!(out.contains("* SEARCH 2\r\n"), "{out}");
}

#[tokio::test]
async fn envelope_keeps_the_source_route() {
    // RFC 3501 §7.4.2 addr-adl; RFC 5322 §4.4 obs-route.
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, _, _) = logged_in(dir.path()).await;
    a.append(
        "INBOX",
        "",
        "From: Joe <@relay.test,@hop.test:joe@example.test>\r\nSubject: r\r\n\r\nb\r\n",
    )
    .await;
    a.ok("s SELECT INBOX").await;
    let out = a.ok("f FETCH 1 ENVELOPE").await;
    assert!(
        out.contains("((\"Joe\" \"@relay.test,@hop.test\" \"joe\" \"example.test\"))"),
        "{out}"
    );
}
