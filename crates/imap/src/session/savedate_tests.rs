//! RFC 8514 SAVEDATE: FETCH SAVEDATE and SEARCH SAVEDBEFORE/SAVEDON/SAVEDSINCE/
//! SAVEDATESUPPORTED, against the save date the store keeps per mailbox membership.

use super::tests::logged_in;
use crate::message;

/// Today (UTC) as INTERNALDATE's date part (`dd-Mon-yyyy`, the day space padded).
fn today_stamp() -> String {
    message::format_internal_date(bulwark_store::now_unix())[..11].to_string()
}

const OLD: &str = "From: a@x.test\r\nSubject: old\r\n\r\nbody\r\n";

#[tokio::test]
async fn savedate_is_when_the_message_entered_the_mailbox_not_its_internal_date() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _, _) = logged_in(dir.path()).await;
    let stamp = today_stamp();
    // As a SEARCH date (`date-day` is 1*2DIGIT).
    let day = stamp.trim_start().to_string();
    // RFC 8514 §1: APPEND with an old internal date; the save date is now.
    t.ok(&format!(
        "a APPEND INBOX \"01-Jan-2020 10:00:00 +0000\" {{{}}}\r\n{OLD}",
        OLD.len()
    ))
    .await;
    t.ok("s SELECT INBOX").await;
    let out = t.ok("f FETCH 1 (INTERNALDATE SAVEDATE)").await;
    assert!(
        out.contains("INTERNALDATE \" 1-Jan-2020 10:00:00 +0000\""),
        "{out}"
    );
    assert!(out.contains(&format!("SAVEDATE \"{stamp} ")), "{out}");
    // RFC 8514 §4.2: the save date's day, not the internal date's.
    for (query, want) in [
        (format!("s1 SEARCH SAVEDON {day}"), "* SEARCH 1\r\n"),
        (format!("s2 SEARCH SAVEDSINCE {day}"), "* SEARCH 1\r\n"),
        (format!("s3 SEARCH SAVEDBEFORE {day}"), "* SEARCH\r\n"),
        (format!("s4 SEARCH SINCE {day}"), "* SEARCH\r\n"),
        (
            "s5 SEARCH SAVEDBEFORE 1-Jan-2021".to_string(),
            "* SEARCH\r\n",
        ),
        ("s6 SEARCH SAVEDATESUPPORTED".to_string(), "* SEARCH 1\r\n"),
        (format!("s7 SEARCH NOT SAVEDON {day}"), "* SEARCH\r\n"),
        (
            format!("s8 UID SEARCH OR SAVEDON {day} BEFORE 1-Jan-2000"),
            "* SEARCH 1\r\n",
        ),
    ] {
        let out = t.ok(&query).await;
        assert!(out.contains(want), "{query} → {out}");
    }
    // A copy is saved into its mailbox when copied (RFC 8514 §1).
    t.ok("c CREATE Archive2").await;
    t.ok("cp COPY 1 Archive2").await;
    t.ok("s2 SELECT Archive2").await;
    let out = t.ok("f2 UID FETCH 1:* (SAVEDATE)").await;
    assert!(out.contains("SAVEDATE \""), "{out}");
    let out = t.ok(&format!("s9 SEARCH SAVEDON {day}")).await;
    assert!(out.contains("* SEARCH 1\r\n"), "{out}");
    // Advertised.
    let out = t.ok("k CAPABILITY").await;
    assert!(out.contains(" SAVEDATE"), "{out}");
}
