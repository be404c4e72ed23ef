//! Tests of the incremental resync and the batched FETCH/SEARCH read paths.

use super::tests::{T, logged_in};
use super::tests_support::*;

/// Three messages; `b` expunges UID 1, flags UID 3 and appends a fourth; `a`'s next NOOP must
/// report exactly that, in order (RFC 9051 §7.4.1, §7.5.1).
async fn expunge_flag_and_append_reach_the_other_session(a: &mut T, b: &mut T) {
    for s in ["one", "two", "three"] {
        a.append("INBOX", "", &msg(s, "x")).await;
    }
    a.ok("s SELECT INBOX").await;
    b.ok("s SELECT INBOX").await;
    b.ok("d UID STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    b.ok("x EXPUNGE").await;
    b.ok("f UID STORE 3 +FLAGS.SILENT (\\Seen)").await;
    b.append("INBOX", "", &msg("four", "x")).await;
    let out = a.ok("n NOOP").await;
    // `a` selected first, so UIDs 1–3 are recent there; `b` saw its own APPEND first, so
    // UID 4 is recent in `b` (RFC 3501 §2.3.2): `a` counts two recent (RFC 3501 §7.3.2).
    assert!(
        out.starts_with(
            "* 1 EXPUNGE\r\n* 2 FETCH (UID 3 FLAGS (\\Seen \\Recent))\r\n* 3 EXISTS\r\n\
             * 2 RECENT\r\n"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn incremental_sync_reports_expunge_flags_and_exists_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, store, auth) = logged_in(dir.path()).await;
    let mut b = T::new(store, auth, true);
    b.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    expunge_flag_and_append_reach_the_other_session(&mut a, &mut b).await;
    let again = a.ok("n2 NOOP").await;
    assert_eq!(again, "n2 OK NOOP completed\r\n");
    let out = a.ok("f FETCH 1:* (UID FLAGS)").await;
    assert!(out.contains("* 1 FETCH (UID 2 FLAGS (\\Recent))"), "{out}");
    assert!(out.contains("* 3 FETCH (UID 4 FLAGS ())"), "{out}");
}

#[tokio::test]
async fn held_back_expunge_is_reported_at_the_next_allowed_command() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, store, auth) = logged_in(dir.path()).await;
    let mut b = T::new(store, auth, true);
    b.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    a.append("INBOX", "", &msg("one", "x")).await;
    a.append("INBOX", "", &msg("two", "x")).await;
    a.ok("s SELECT INBOX").await;
    b.ok("s SELECT INBOX").await;
    b.ok("d STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    b.ok("x EXPUNGE").await;
    // RFC 9051 §7.5.1: not during FETCH/STORE/SEARCH — twice in a row, nothing is lost.
    let out = a.ok("f FETCH 1:* (UID)").await;
    assert!(
        !out.contains("EXPUNGE") && out.contains("* 2 FETCH (UID 2)"),
        "{out}"
    );
    let out = a.ok("s1 SEARCH ALL").await;
    assert!(out.contains("* SEARCH 1 2\r\n"), "{out}");
    let out = a.ok("n NOOP").await;
    assert!(out.starts_with("* 2 EXPUNGE\r\n"), "{out}");
    let out = a.ok("s2 SEARCH ALL").await;
    assert!(out.contains("* SEARCH 1\r\n"), "{out}");
}

#[tokio::test]
async fn qresync_session_hears_vanished_for_another_sessions_expunge() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, store, auth) = logged_in(dir.path()).await;
    let mut b = T::new(store, auth, true);
    b.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    for s in ["one", "two", "three"] {
        a.append("INBOX", "", &msg(s, "x")).await;
    }
    a.ok("e ENABLE QRESYNC").await;
    a.ok("s SELECT INBOX").await;
    b.ok("s SELECT INBOX").await;
    b.ok("d STORE 1:2 +FLAGS.SILENT (\\Deleted)").await;
    b.ok("x EXPUNGE").await;
    let out = a.ok("n NOOP").await;
    assert!(out.contains("* VANISHED 1:2\r\n"), "{out}");
    assert!(!out.contains("EXPUNGE\r\n"), "{out}");
}

/// Appends `n` messages in one store transaction (fast), subjects `msg-<i>`.
async fn bulk_fill(dir: &std::path::Path, n: usize) -> T {
    let (t, store, _) = logged_in(dir).await;
    append_many(&*store, 0, n).await;
    t
}

#[tokio::test]
async fn search_and_fetch_span_several_store_batches() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = bulk_fill(dir.path(), 700).await;
    t.ok("s SELECT INBOX").await;
    // SUBJECT/FROM come from the stored summary, BODY from the content.
    let out = t.ok("a SEARCH SUBJECT msg-650").await;
    assert!(out.contains("* SEARCH 651\r\n"), "{out}");
    let out = t
        .ok("b UID SEARCH FROM bob@example.org SUBJECT msg-69")
        .await;
    assert!(
        out.contains("* SEARCH 70 691 692 693 694 695 696 697 698 699 700\r\n"),
        "{out}"
    );
    let out = t.ok("c SEARCH BODY word600").await;
    assert!(out.contains("* SEARCH 601\r\n"), "{out}");
    let out = t.ok("d SEARCH NOT FROM bob").await;
    assert!(out.contains("* SEARCH\r\n"), "{out}");
    let out = t.ok("e FETCH 1:* (ENVELOPE)").await;
    assert_eq!(
        out.matches(" FETCH (ENVELOPE (").count(),
        700,
        "{}",
        &out[..300]
    );
    assert!(out.contains("\"msg-699\""), "missing the last envelope");
    let out = t
        .ok("f UID FETCH 256:258 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    for i in [255, 256, 257] {
        assert!(out.contains(&format!("Subject: msg-{i}\r\n")), "{out}");
    }
}

#[tokio::test]
async fn message_expunged_elsewhere_can_still_be_fetched_until_reported() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, store, auth) = logged_in(dir.path()).await;
    let mut b = T::new(store, auth, true);
    b.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    a.append("INBOX", "", &msg("one", "x")).await;
    a.append("INBOX", "", &msg("two", "still here")).await;
    a.ok("s SELECT INBOX").await;
    b.ok("s SELECT INBOX").await;
    b.ok("d STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    b.ok("x EXPUNGE").await;
    // The blob outlives the membership: the view's copy of the message is served.
    let out = a.ok("f FETCH 2 (BODY.PEEK[TEXT])").await;
    assert!(out.contains("still here"), "{out}");
    assert!(!out.contains("EXPUNGE"), "{out}");
}

/// `FETCH 1:* (UID FLAGS)` lines of `t` after a NOOP (which reports pending changes),
/// sorted, for comparing views.
async fn flags_of(t: &mut T) -> Vec<String> {
    t.ok("n NOOP").await;
    let out = t.ok("v FETCH 1:* (UID FLAGS)").await;
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("* ") && l.contains(" FETCH "))
        // \Recent differs per session by design (RFC 3501 §2.3.2); the rest must not.
        .map(|l| l.replace(" \\Recent", "").replace("(\\Recent)", "()"))
        .collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn sessions_sharing_feeds_see_each_others_changes_and_select_from_the_snapshot() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, store, auth) = logged_in(dir.path()).await;
    let mut b = T::new(store.clone(), auth.clone(), true);
    let mut c = T::new(store.clone(), auth.clone(), true);
    b.share_feeds_with(&a);
    c.share_feeds_with(&a);
    for t in [&mut b, &mut c] {
        t.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    }
    expunge_flag_and_append_reach_the_other_session(&mut a, &mut b).await;
    // The third session's SELECT starts from the shared view: same messages and flags as a
    // session that read the whole mailbox itself.
    a.ok("g UID STORE 2 +FLAGS.SILENT (\\Flagged)").await;
    let out = c.ok("s SELECT INBOX").await;
    assert!(out.contains("* 3 EXISTS\r\n"), "{out}");
    let mut alone = T::new(store, auth, true);
    alone.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    alone.ok("s SELECT INBOX").await;
    let expected = flags_of(&mut alone).await;
    assert_eq!(flags_of(&mut c).await, expected);
    assert_eq!(flags_of(&mut a).await, expected);
    assert_eq!(flags_of(&mut b).await, expected);
    assert!(
        expected
            .iter()
            .any(|l| l.contains("UID 2 FLAGS (\\Flagged)")),
        "{expected:?}"
    );
}

#[tokio::test]
async fn session_behind_the_kept_history_still_gets_every_change() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut a = bulk_fill(dir.path(), 5000).await;
    let mut b = T::new_like(&a);
    let mut c = T::new_like(&a);
    for t in [&mut b, &mut c] {
        t.share_feeds_with(&a);
        t.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    }
    for t in [&mut a, &mut b, &mut c] {
        t.ok("s SELECT INBOX").await;
    }
    // 5,000 changes, then one more: the shared history drops the big step, so `a`, which
    // synced before both, has to read its changes from the store.
    b.ok("f STORE 1:* +FLAGS.SILENT (\\Flagged)").await;
    c.ok("n NOOP").await;
    b.ok("g STORE 1 -FLAGS.SILENT (\\Flagged)").await;
    c.ok("n NOOP").await;
    let out = a.ok("n NOOP").await;
    assert_eq!(
        // `a` selected first: the messages are recent in it.
        out.matches(" FLAGS (\\Flagged \\Recent))\r\n").count(),
        4999,
        "{}",
        &out[..200]
    );
    // Flagged and unflagged again: back to what `a` already shows, nothing to report.
    assert!(!out.contains("(UID 1 FLAGS"), "{}", &out[..200]);
}

#[tokio::test]
async fn select_after_a_mass_delivery_matches_a_full_read_and_later_changes_still_arrive() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, store, auth) = logged_in(dir.path()).await;
    append_many(&*store, 0, 3).await;
    a.ok("s SELECT INBOX").await;
    a.ok("u UNSELECT").await;
    // 6,000 messages arrive while nobody has the mailbox selected (more than the history
    // keeps); the next SELECT brings the kept view up to date from one delta.
    append_many(&*store, 3, 6003).await;
    let mut b = T::new_like(&a);
    b.share_feeds_with(&a);
    b.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    let out = b.ok("s SELECT INBOX").await;
    assert!(out.contains("* 6003 EXISTS\r\n"), "{out}");
    let mut alone = T::new(store.clone(), auth, true);
    alone.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    alone.ok("s SELECT INBOX").await;
    assert_eq!(flags_of(&mut b).await, flags_of(&mut alone).await);
    // Later changes still reach the session through the (restarted) history.
    alone.ok("f STORE 6003 +FLAGS.SILENT (\\Flagged)").await;
    let out = b.ok("n NOOP").await;
    assert!(
        out.contains("* 6003 FETCH (UID 6003 FLAGS (\\Flagged \\Recent))\r\n"),
        "{out}"
    );
}
