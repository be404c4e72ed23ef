//! FETCH ENVELOPE from the envelopes stored at delivery, checked against rendering from
//! the content (messages stored without one, and FETCHes that also need the content).

use super::super::tests::{T, logged_in};
use super::super::tests_support::*;
use crate::message;
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{NewEmail, Store, Uid};
use std::sync::Arc;

/// Headers that are easy to get wrong: encoded words, groups, missing fields, several
/// From addresses and From lines, empty Sender/Reply-To, folding, bare LF, 8-bit text
/// (UTF-8 and Latin-1), quoted names, comments, routes, an mbox line, no body.
fn tricky_messages() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "Subject: =?UTF-8?B?w6lsw6h2ZQ==?= and =?ISO-8859-1?Q?caf=E9?=\r\n\
         From: =?UTF-8?Q?Andr=C3=A9?= <andre@x.test>\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\n\r\nbody\r\n",
        "From: a@x.test\r\nTo: undisclosed-recipients:;\r\n\
         Cc: Team: Ed <ed@a.test>, \"Q, R\" <q@r.test>;, solo@s.test\r\nBcc: Empty Group:;\r\n\r\nb\r\n",
        "X-Only: nothing an envelope needs\r\n\r\nbody\r\n",
        "From: One <one@x.test>, two@y.test\r\nFrom: Second Line <second@z.test>\r\n\
         Subject: first\r\nSubject: second\r\n\r\nb\r\n",
        "From: f@x.test\r\nSender:\r\nReply-To: \r\nTo: t@x.test\r\n\r\nb\r\n",
        "From: f@x.test\r\nSender: s@x.test\r\nReply-To: Reply <r@x.test>\r\n\r\nb\r\n",
        "Subject: folded\r\n  across\r\n\tthree lines\r\nTo: a@x.test,\r\n b@y.test\r\n\r\nb\r\n",
        "Subject: bare LF line ends\nFrom: lf@x.test\nTo: Lf <to@x.test>\n\nbody\n",
        "Subject: caf\u{e9} \u{2713}\r\nFrom: Jos\u{e9} <jose@x.test>\r\n\r\nb\r\n",
        "To: \"Doe, \\\"J\\\"\" <j@x.org>, bob@z.org (Bob B), <@r1,@r2:user@host>\r\n\
         In-Reply-To: <parent@x.test>\r\nMessage-ID: <me@x.test>\r\n\r\nb\r\n",
        "From sender@x.test Mon Mar  4 10:00:00 2024\r\nFrom: mbox@x.test\r\nSubject: mbox line\r\n\r\nb\r\n",
        "Subject: no blank line and no body\r\nFrom: nobody@x.test",
        "Subject: \"quoted\" \\ backslash (comment)\r\nFrom: <>\r\nTo: ,,,\r\nDate:\r\n\r\nb\r\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Latin-1 bytes that are not UTF-8.
    out.push(b"Subject: caf\xe9\r\nFrom: J\xf6rg <joerg@x.test>\r\n\r\nb\r\n".to_vec());
    // A long Subject that goes out as a literal.
    out.push(format!("Subject: {}\r\n\r\nb\r\n", "long ".repeat(300)).into_bytes());
    out
}

/// Stores `raws` into INBOX; `stored_envelope: false` stores them as older versions did
/// (no envelope), so FETCH has to render it from the content.
async fn store_all(store: &SqliteStore, raws: &[Vec<u8>], stored_envelope: bool) {
    let (account, inbox) = user_inbox(store).await;
    let emails: Vec<NewEmail> = raws
        .iter()
        .map(|raw| {
            let mut summary = bulwark_core::summarize(raw);
            if !stored_envelope {
                summary.imap_envelope = None;
            }
            NewEmail {
                mailboxes: vec![inbox],
                raw: Arc::new(raw.clone()),
                keywords: vec![],
                received_at: 1_700_000_000,
                summary,
            }
        })
        .collect();
    store.email_append(account, emails).await.expect("append");
}

/// Removes the `BODY[HEADER.FIELDS (X-NONE)]` item that forces the content path.
fn without_probe(out: &str) -> String {
    out.replace(" BODY[HEADER.FIELDS (X-NONE)] {2}\r\n\r\n", "")
}

#[tokio::test]
async fn stored_envelopes_match_rendering_from_the_content() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, store, _) = logged_in(dir.path()).await;
    let raws = tricky_messages();
    store_all(&store, &raws, true).await;
    store_all(&store, &raws, false).await;
    let (account, inbox) = user_inbox(&*store).await;
    // What delivery stored is exactly what rendering the content gives.
    let n = raws.len() as u32;
    let stored = store
        .message_envelopes(account, inbox, &(1..=2 * n).map(Uid).collect::<Vec<_>>())
        .await
        .expect("envelopes");
    assert_eq!(stored.len(), 2 * n as usize);
    for (k, raw) in raws.iter().enumerate() {
        assert_eq!(
            stored[k].1.as_deref(),
            Some(message::envelope(raw).as_slice()),
            "message {k}"
        );
        assert_eq!(stored[k + raws.len()].1, None, "old message {k}");
    }
    t.ok("s SELECT INBOX").await;
    for items in ["ENVELOPE", "(UID FLAGS ENVELOPE RFC822.SIZE)"] {
        let fast = t.ok(&format!("f FETCH 1:* {items}")).await;
        let probe = items.trim_end_matches(')').trim_start_matches('(');
        let slow = t
            .ok(&format!(
                "f FETCH 1:* ({probe} BODY.PEEK[HEADER.FIELDS (X-NONE)])"
            ))
            .await;
        assert_eq!(fast, without_probe(&slow), "{items}");
        for (k, raw) in raws.iter().enumerate() {
            let envelope = String::from_utf8_lossy(&message::envelope(raw)).into_owned();
            for seq in [k + 1, k + 1 + raws.len()] {
                let want = format!("ENVELOPE {envelope}");
                let line = format!("* {seq} FETCH (");
                let start = fast.find(&line).expect("response");
                assert!(
                    fast[start..].contains(&want),
                    "message {k} (#{seq}) with {items}: want {want}"
                );
            }
        }
    }
    // UID FETCH of a sparse set, with MODSEQ (CONDSTORE).
    let fast = t.ok("u UID FETCH 2,5,17 (ENVELOPE MODSEQ)").await;
    let slow = t
        .ok("u UID FETCH 2,5,17 (ENVELOPE MODSEQ BODY.PEEK[HEADER.FIELDS (X-NONE)])")
        .await;
    assert_eq!(fast.matches(" FETCH (").count(), 3, "{fast}");
    // RFC 7162 §3.1: the first CONDSTORE-enabling FETCH also announces HIGHESTMODSEQ.
    let (fetches, announced) = fast
        .split_once("* OK [HIGHESTMODSEQ ")
        .expect("HIGHESTMODSEQ announced once");
    assert!(announced.contains("u OK UID FETCH completed"), "{fast}");
    assert!(!slow.contains("HIGHESTMODSEQ"), "{slow}");
    assert_eq!(
        format!("{fetches}u OK UID FETCH completed\r\n"),
        slow.replace(" BODY[HEADER.FIELDS (X-NONE)] {2}\r\n\r\n", "")
    );
}

#[tokio::test]
async fn fetch_envelope_sends_the_stored_bytes_without_reading_the_content() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, store, _) = logged_in(dir.path()).await;
    let (account, inbox) = user_inbox(&*store).await;
    let raw = msg("real subject", "body").into_bytes();
    let mut summary = bulwark_core::summarize(&raw);
    summary.imap_envelope = Some(b"(NIL \"as stored\" NIL NIL NIL NIL NIL NIL NIL NIL)".to_vec());
    let new = NewEmail {
        mailboxes: vec![inbox],
        raw: Arc::new(raw),
        keywords: vec![],
        received_at: 1_700_000_000,
        summary,
    };
    store
        .email_append(account, vec![new])
        .await
        .expect("append");
    t.ok("s SELECT INBOX").await;
    let out = t.ok("f FETCH 1 ENVELOPE").await;
    assert!(
        out.starts_with("* 1 FETCH (ENVELOPE (NIL \"as stored\" "),
        "{out}"
    );
    // With another content item the content is read and rendered.
    let out = t
        .ok("f FETCH 1 (ENVELOPE BODY.PEEK[HEADER.FIELDS (X-NONE)])")
        .await;
    assert!(out.contains("\"real subject\""), "{out}");
}

#[tokio::test]
async fn envelope_of_a_message_expunged_elsewhere_comes_from_its_content() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, store, auth) = logged_in(dir.path()).await;
    let mut b = T::new(store.clone(), auth, true);
    b.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    for s in ["one", "two", "three"] {
        a.append("INBOX", "", &msg(s, "x")).await;
    }
    a.ok("s SELECT INBOX").await;
    b.ok("s SELECT INBOX").await;
    b.ok("d STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    b.ok("x EXPUNGE").await;
    // Still in a's view; no stored envelope for it in INBOX any more.
    let fast = a.ok("f FETCH 1:3 ENVELOPE").await;
    let slow = a
        .ok("f FETCH 1:3 (ENVELOPE BODY.PEEK[HEADER.FIELDS (X-NONE)])")
        .await;
    assert_eq!(fast, without_probe(&slow));
    assert!(
        fast.contains("* 2 FETCH (ENVELOPE (\"Mon, 4 Mar 2024 10:00:00 +0000\" \"two\""),
        "{fast}"
    );
}

#[tokio::test]
async fn appended_messages_get_a_stored_envelope() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, store, _) = logged_in(dir.path()).await;
    let m = msg("appended", "x");
    t.append("INBOX", "", &m).await;
    let (account, inbox) = user_inbox(&*store).await;
    let stored = store
        .message_envelopes(account, inbox, &[Uid(1)])
        .await
        .expect("envelopes");
    assert_eq!(
        stored,
        vec![(Uid(1), Some(message::envelope(m.as_bytes())))]
    );
}
