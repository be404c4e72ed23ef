//! QUOTA (RFC 9208) and OVERQUOTA (RFC 5530) over a real store.

use super::tests::*;
use super::tests_support::*;
use bulwark_core::quota::{self, QuotaPolicy, Setting};
use bulwark_store::Store;
use std::sync::Arc;

impl T {
    fn set_quota_policy(&mut self, policy: QuotaPolicy) {
        let mut cfg = (*self.s.cfg).clone();
        cfg.quota = policy;
        self.s.cfg = Arc::new(cfg);
    }
}

#[tokio::test]
async fn no_limit_means_no_quota_root() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _, _) = logged_in(dir.path()).await;
    let caps = t.ok("c CAPABILITY").await;
    assert!(caps.contains(" QUOTA QUOTA=RES-STORAGE"), "{caps}");
    assert!(!caps.contains("QUOTASET"), "{caps}");
    // RFC 9208 §4.1.2: a mailbox without a quota root lists none.
    let out = t.ok("q GETQUOTAROOT INBOX").await;
    assert!(out.starts_with("* QUOTAROOT \"INBOX\"\r\nq OK"), "{out}");
    let out = t.run("g GETQUOTA \"\"").await;
    assert!(out.starts_with("g NO [NONEXISTENT]"), "{out}");
}

#[tokio::test]
async fn getquotaroot_reports_usage_and_append_and_copy_stop_at_the_limit() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, store, _) = logged_in(dir.path()).await;
    let account = store
        .account_by_address(USER)
        .await
        .expect("store")
        .expect("account")
        .id;
    // 4 KiB limit from the server default; the account's own setting overrides it below.
    t.set_quota_policy(QuotaPolicy {
        default_storage: Some(4096),
    });
    let body = "x".repeat(1500);
    t.append("INBOX", "", &msg("one", &body)).await;
    let out = t.ok("q GETQUOTAROOT INBOX").await;
    assert!(
        out.starts_with("* QUOTAROOT \"INBOX\" \"\"\r\n* QUOTA \"\" (STORAGE 2 4)\r\n"),
        "{out}"
    );
    let out = t.ok("g GETQUOTA \"\"").await;
    assert!(out.starts_with("* QUOTA \"\" (STORAGE 2 4)\r\n"), "{out}");
    t.append("INBOX", "", &msg("two", &body)).await;
    // A third copy would pass 4096 octets: refused, nothing stored.
    let m = msg("three", &body);
    let out = t
        .run(&format!("a APPEND INBOX {{{}}}\r\n{m}", m.len()))
        .await;
    assert!(out.starts_with("a NO [OVERQUOTA]"), "{out}");
    t.ok("s SELECT INBOX").await;
    let out = t.run("c COPY 1:2 Archive").await;
    assert!(out.starts_with("c NO [OVERQUOTA]"), "{out}");
    let status = t.ok("st STATUS INBOX (MESSAGES)").await;
    assert!(status.contains("(MESSAGES 2)"), "{status}");
    // DELETED-STORAGE (RFC 9208 §4.2): what expunging \Deleted would free.
    t.ok("f STORE 1 +FLAGS (\\Deleted)").await;
    let out = t.ok("st STATUS Archive (DELETED-STORAGE)").await;
    assert!(out.contains("(DELETED-STORAGE 0)"), "{out}");
    let size = store
        .mailbox_messages(account, {
            let inbox = store
                .mailbox_list(account)
                .await
                .expect("list")
                .into_iter()
                .find(|m| m.name == "INBOX")
                .expect("inbox");
            inbox.id
        })
        .await
        .expect("messages")[0]
        .size;
    t.ok("u UNSELECT").await;
    let out = t.ok("st STATUS INBOX (DELETED-STORAGE DELETED)").await;
    assert!(
        out.contains(&format!("(DELETED-STORAGE {size} DELETED 1)")),
        "{out}"
    );
    // The account's own setting wins over the default: unlimited now.
    quota::set(store.as_ref(), account, Setting::Unlimited)
        .await
        .expect("set");
    let out = t
        .run(&format!("a APPEND INBOX {{{}}}\r\n{m}", m.len()))
        .await;
    assert!(out.contains("a OK"), "{out}");
    let out = t.ok("q GETQUOTAROOT INBOX").await;
    assert!(out.starts_with("* QUOTAROOT \"INBOX\"\r\n"), "{out}");
    let out = t.run("x SETQUOTA \"\" (STORAGE 99999)").await;
    assert!(out.starts_with("x NO [NOPERM]"), "{out}");
    // RFC 9208 §6 syntax: a resource without its limit does not parse.
    assert!(crate::parser::parse_command(b"x SETQUOTA \"\" (STORAGE)\r\n").is_err());
}
