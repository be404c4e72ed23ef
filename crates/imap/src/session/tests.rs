//! Session tests over a real temporary SqliteStore (no sockets).

use super::*;
use crate::parser::parse_command;
use bulwark_auth::ThrottleConfig;
use bulwark_store::sqlite::SqliteStore;

use super::tests_support::*;

pub(super) struct T {
    pub(super) s: Session,
}

impl T {
    pub(super) fn new(store: Arc<SqliteStore>, auth: Arc<Authenticator>, tls: bool) -> T {
        let cfg = Arc::new(ImapConfig::default());
        let remote: IpAddr = "192.0.2.7".parse().expect("ip");
        T {
            s: Session::new(cfg, store, auth, remote, tls, true),
        }
    }

    /// A new session on the same store and authenticator as `other`.
    pub(super) fn new_like(other: &T) -> T {
        let remote: IpAddr = "192.0.2.7".parse().expect("ip");
        T {
            s: Session::new(
                other.s.cfg.clone(),
                other.s.store.clone(),
                other.s.auth.clone(),
                remote,
                true,
                true,
            ),
        }
    }

    /// What the shell sends between commands when a change arrives with NOTIFY on.
    pub(super) async fn between_commands(&mut self) -> String {
        let mut out = Vec::new();
        self.s.notify_between_commands(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// What IDLE waits for.
    pub(super) async fn wait_for_change(&mut self) {
        self.s.wait_for_change().await
    }

    /// What IDLE sends after a change.
    pub(super) async fn idle_update(&mut self) -> String {
        let mut out = Vec::new();
        self.s.idle_update(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Lowers the APPEND size limit of this session (for limit tests).
    pub(super) fn set_max_literal(&mut self, max: usize) {
        let mut cfg = (*self.s.cfg).clone();
        cfg.max_literal_size = max;
        self.s.cfg = Arc::new(cfg);
    }

    /// Makes this session share mailbox feeds with `other`, as sessions of one server do.
    pub(super) fn share_feeds_with(&mut self, other: &T) {
        self.s.feeds = other.s.feeds.clone();
    }

    pub(super) async fn run(&mut self, line: &str) -> String {
        let cmd = match parse_command(line.as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("{line}: {e:?}"),
        };
        let mut out = Vec::new();
        self.s.handle(cmd, &mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    pub(super) async fn ok(&mut self, line: &str) -> String {
        let out = self.run(line).await;
        let tag = line.split(' ').next().unwrap_or_default();
        assert!(out.contains(&format!("{tag} OK")), "{line} → {out}");
        out
    }

    pub(super) async fn append(&mut self, mailbox: &str, flags: &str, m: &str) -> String {
        self.ok(&format!(
            "ap APPEND {mailbox} {flags}{{{}}}\r\n{m}",
            m.len()
        ))
        .await
    }
}

pub(super) async fn logged_in(dir: &std::path::Path) -> (T, Arc<SqliteStore>, Arc<Authenticator>) {
    let (store, auth) = fresh_store(dir).await;
    let mut t = T::new(store.clone(), auth.clone(), true);
    t.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    (t, store, auth)
}

#[tokio::test]
async fn login_is_refused_before_tls_and_with_bad_password() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, auth) = fresh_store(dir.path()).await;
    let mut plain = T::new(store.clone(), auth.clone(), false);
    let out = plain.run("a CAPABILITY").await;
    assert!(
        out.contains("LOGINDISABLED") && out.contains("STARTTLS"),
        "{out}"
    );
    let out = plain.run(&format!("a LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(out.starts_with("a NO [PRIVACYREQUIRED]"), "{out}");
    let mut tls = T::new(store, auth, true);
    let out = tls.run(&format!("b LOGIN {USER} wrong")).await;
    assert!(out.starts_with("b NO [AUTHENTICATIONFAILED]"), "{out}");
    let out = tls.run("c SELECT INBOX").await;
    assert_eq!(
        out,
        "c BAD SELECT needs authentication (use LOGIN first)\r\n"
    );
    let out = tls
        .run("d AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNl")
        .await;
    assert!(out.starts_with("d OK [CAPABILITY"), "{out}");
    let out = tls.run("e FETCH 1 FLAGS").await;
    assert_eq!(
        out,
        "e BAD FETCH needs a selected mailbox (use SELECT first)\r\n"
    );
}

#[tokio::test]
async fn append_select_fetch_store_search_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _, _) = logged_in(dir.path()).await;
    let out = t
        .append("INBOX", "(\\Flagged) ", &msg("hello", "first body"))
        .await;
    assert!(out.contains("[APPENDUID "), "{out}");
    t.append("INBOX", "", &msg("second", "other text")).await;
    let out = t.ok("s SELECT INBOX").await;
    assert!(
        out.contains("* 2 EXISTS") && out.contains("[UIDNEXT 3]") && out.contains("\\*)]"),
        "{out}"
    );
    assert!(out.contains("s OK [READ-WRITE]"), "{out}");
    let out = t
        .ok("f FETCH 1 (UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (Subject)])")
        .await;
    assert!(
        // The first session to select gets the messages as \Recent (RFC 3501 §2.3.2).
        out.contains("* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) RFC822.SIZE"),
        "{out}"
    );
    assert!(
        out.contains("BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: hello\r\n\r\n"),
        "{out}"
    );
    assert!(
        out.contains("ENVELOPE (\"Mon, 4 Mar 2024 10:00:00 +0000\" \"hello\""),
        "{out}"
    );
    // A non-PEEK body fetch sets \Seen and reports FLAGS.
    let out = t.ok("f2 FETCH 2 BODY[TEXT]").await;
    assert!(
        out.contains("BODY[TEXT] {12}\r\nother text\r\n")
            && out.contains("FLAGS (\\Seen \\Recent)"),
        "{out}"
    );
    let out = t.ok("st STORE 1 +FLAGS (\\Deleted $Work)").await;
    // RFC 3501 §7.2.6: the new keyword is announced before the FETCH uses it, in the
    // case the client wrote it.
    assert!(
        out.starts_with(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted\r\n\
             * 1 FETCH (FLAGS (\\Deleted \\Flagged $Work \\Recent))\r\n"
        ),
        "{out}"
    );
    let out = t.ok("se SEARCH UNSEEN").await;
    assert!(out.contains("* SEARCH 1\r\n"), "{out}");
    let out = t
        .ok("se2 UID SEARCH RETURN (COUNT MIN) BODY \"other\"")
        .await;
    assert!(
        out.contains("* ESEARCH (TAG \"se2\") UID COUNT 1 MIN 2"),
        "{out}"
    );
    let out = t.ok("se3 SEARCH OR SUBJECT hello KEYWORD $Work").await;
    assert!(out.contains("* SEARCH 1\r\n"), "{out}");
    let out = t.run("se4 SEARCH CHARSET KOI8-R ALL").await;
    assert!(
        out.starts_with("se4 NO [BADCHARSET (UTF-8 US-ASCII)]"),
        "{out}"
    );
    let out = t.ok("x EXPUNGE").await;
    assert!(out.contains("* 1 EXPUNGE\r\n"), "{out}");
    let out = t.ok("f3 FETCH 1 (UID)").await;
    assert!(out.contains("* 1 FETCH (UID 2)"), "{out}");
}

#[tokio::test]
async fn append_to_missing_mailbox_asks_to_create() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _, _) = logged_in(dir.path()).await;
    let m = msg("x", "y");
    let out = t
        .run(&format!("a APPEND Nope {{{}}}\r\n{m}", m.len()))
        .await;
    assert!(out.starts_with("a NO [TRYCREATE]"), "{out}");
}

#[tokio::test]
async fn copy_and_move_report_copyuid_and_expunge() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _, _) = logged_in(dir.path()).await;
    for i in 0..3 {
        t.append("INBOX", "", &msg(&format!("m{i}"), "b")).await;
    }
    t.ok("c CREATE Work/Projects").await;
    t.ok("s SELECT INBOX").await;
    let out = t.ok("c1 COPY 1:2 Archive").await;
    assert!(
        out.contains("[COPYUID ") && out.contains(" 1:2 1:2]"),
        "{out}"
    );
    let out = t.ok("m1 UID MOVE 2 Work/Projects").await;
    assert!(
        out.contains("* OK [COPYUID ") && out.contains("* 2 EXPUNGE\r\n"),
        "{out}"
    );
    let out = t.run("m2 MOVE 1 Missing").await;
    assert!(out.starts_with("m2 NO [TRYCREATE]"), "{out}");
    let out = t.ok("st STATUS Work/Projects (MESSAGES UIDNEXT)").await;
    assert!(
        out.contains("* STATUS \"Work/Projects\" (MESSAGES 1 UIDNEXT 2)"),
        "{out}"
    );
    let out = t.ok("l LIST \"\" *").await;
    assert!(
        out.contains("* LIST (\\HasChildren) \"/\" \"Work\"\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* LIST (\\Archive \\HasNoChildren) \"/\" \"Archive\""),
        "{out}"
    );
}

#[tokio::test]
async fn list_shows_missing_parents_as_nonexistent_and_list_status() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, store, _) = logged_in(dir.path()).await;
    let account = t.s.account_id().expect("account");
    store
        .mailbox_create(account, "a/b", None)
        .await
        .expect("create without parent");
    let out = t.ok("l LIST \"\" %").await;
    assert!(
        out.contains("* LIST (\\NonExistent \\Noselect \\HasChildren) \"/\" \"a\"\r\n"),
        "{out}"
    );
    let out = t
        .ok("l2 LIST \"\" INBOX RETURN (STATUS (MESSAGES UNSEEN))")
        .await;
    assert!(
        out.contains("* STATUS \"INBOX\" (MESSAGES 0 UNSEEN 0)"),
        "{out}"
    );
    let out = t.ok("l3 LIST (SPECIAL-USE) \"\" *").await;
    assert!(!out.contains("INBOX") && out.contains("\\Sent"), "{out}");
}

#[tokio::test]
async fn rename_inbox_moves_messages_and_keeps_inbox() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _, _) = logged_in(dir.path()).await;
    t.append("INBOX", "", &msg("a", "b")).await;
    t.ok("r RENAME INBOX Old").await;
    let out = t.ok("s STATUS INBOX (MESSAGES)").await;
    assert!(out.contains("(MESSAGES 0)"), "{out}");
    let out = t.ok("s2 STATUS Old (MESSAGES)").await;
    assert!(out.contains("(MESSAGES 1)"), "{out}");
}

#[tokio::test]
async fn other_sessions_changes_arrive_but_no_expunge_during_fetch() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut a, store, auth) = logged_in(dir.path()).await;
    let mut b = T::new(store, auth, true);
    b.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    a.append("INBOX", "", &msg("one", "x")).await;
    a.append("INBOX", "", &msg("two", "x")).await;
    a.ok("s SELECT INBOX").await;
    b.ok("s SELECT INBOX").await;
    b.ok("d STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    b.ok("x EXPUNGE").await;
    b.append("INBOX", "", &msg("three", "x")).await;
    b.ok("f STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    // RFC 9051 §7.5.1: FETCH may report EXISTS/FETCH but not EXPUNGE.
    let out = a.ok("f FETCH 1:* (UID)").await;
    assert!(!out.contains("EXPUNGE"), "{out}");
    let out = a.ok("n NOOP").await;
    assert!(out.contains("* 1 EXPUNGE\r\n"), "{out}");
    assert!(
        out.contains("FLAGS (\\Flagged \\Recent)") || !out.contains("FLAGS"),
        "{out}"
    );
    // `a` selected first: the first two are recent for it, and so is the third, which
    // arrived while `a` had the mailbox selected and saw it first (RFC 3501 §2.3.2).
    let out = a.ok("f2 FETCH 1:* (UID FLAGS)").await;
    assert!(
        out.contains("(UID 2 FLAGS (\\Flagged \\Recent))")
            && (out.contains("(UID 3 FLAGS (\\Recent))") || out.contains("(UID 3 FLAGS ())")),
        "{out}"
    );
}

#[tokio::test]
async fn condstore_unchangedsince_reports_modified_and_changedsince_filters() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _, _) = logged_in(dir.path()).await;
    t.append("INBOX", "", &msg("a", "b")).await;
    t.append("INBOX", "", &msg("c", "d")).await;
    let out = t.ok("s SELECT INBOX (CONDSTORE)").await;
    let hms: u64 = out
        .split("[HIGHESTMODSEQ ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .and_then(|s| s.parse().ok())
        .expect("HIGHESTMODSEQ");
    let out = t.ok("f FETCH 1:* (MODSEQ)").await;
    assert!(out.contains("MODSEQ ("), "{out}");
    let out = t
        .ok(&format!(
            "st STORE 1 (UNCHANGEDSINCE {hms}) +FLAGS (\\Seen)"
        ))
        .await;
    assert!(
        out.contains("* 1 FETCH (FLAGS (\\Seen \\Recent) MODSEQ ("),
        "{out}"
    );
    // Message 1 changed after hms: a second conditional store conflicts.
    let out = t
        .ok(&format!(
            "st2 STORE 1,2 (UNCHANGEDSINCE {hms}) +FLAGS (\\Answered)"
        ))
        .await;
    assert!(out.contains("st2 OK [MODIFIED 1]"), "{out}");
    let out = t
        .ok(&format!("f2 FETCH 1:* (FLAGS) (CHANGEDSINCE {hms})"))
        .await;
    assert!(
        out.contains("* 1 FETCH") && out.contains("* 2 FETCH"),
        "{out}"
    );
    let out = t.ok("f3 FETCH 1:* (FLAGS) (CHANGEDSINCE 999999999)").await;
    assert!(!out.contains("* 1 FETCH"), "{out}");
}

#[tokio::test]
async fn qresync_select_reports_vanished_earlier() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _, _) = logged_in(dir.path()).await;
    for i in 0..3 {
        t.append("INBOX", "", &msg(&format!("q{i}"), "b")).await;
    }
    t.ok("e ENABLE QRESYNC").await;
    let out = t.ok("s SELECT INBOX").await;
    let uv = out
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .expect("uv")
        .to_string();
    let hms = out
        .split("[HIGHESTMODSEQ ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .expect("hms")
        .to_string();
    let out = t.ok("d UID STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    assert!(out.contains("MODSEQ"), "{out}");
    let out = t.ok("x EXPUNGE").await;
    assert!(
        out.contains("* VANISHED 2\r\n") && out.contains("[HIGHESTMODSEQ "),
        "{out}"
    );
    t.ok("u UNSELECT").await;
    let out = t
        .ok(&format!("s2 SELECT INBOX (QRESYNC ({uv} {hms} 1:3))"))
        .await;
    assert!(out.contains("* VANISHED (EARLIER) 2\r\n"), "{out}");
    let out = t
        .ok(&format!(
            "f UID FETCH 1:* (FLAGS) (CHANGEDSINCE {hms} VANISHED)"
        ))
        .await;
    assert!(out.contains("* VANISHED (EARLIER) 2\r\n"), "{out}");
}

#[tokio::test]
async fn uidvalidity_and_uidnext_survive_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let (first, second);
    {
        let (mut t, _store, _) = logged_in(dir.path()).await;
        t.append("INBOX", "", &msg("a", "b")).await;
        t.append("INBOX", "", &msg("c", "d")).await;
        t.ok("s SELECT INBOX").await;
        t.ok("d STORE 2 +FLAGS (\\Deleted)").await;
        t.ok("x EXPUNGE").await;
        first = t.ok("st STATUS INBOX (UIDVALIDITY UIDNEXT)").await;
    }
    {
        let store = SqliteStore::open(dir.path()).expect("reopen");
        let auth = Arc::new(Authenticator::new(store.clone(), ThrottleConfig::default()));
        let mut t = T::new(store, auth, true);
        t.ok(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
        second = t.ok("st STATUS INBOX (UIDVALIDITY UIDNEXT)").await;
        let out = t.append("INBOX", "", &msg("e", "f")).await;
        assert!(
            out.contains(" 3] APPEND"),
            "UID 2 must never be reused: {out}"
        );
    }
    assert_eq!(first, second);
    assert!(first.contains("UIDNEXT 3"), "{first}");
}

#[tokio::test]
async fn bad_commands_in_a_row_end_the_session() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, auth) = fresh_store(dir.path()).await;
    let mut t = T::new(store, auth, true);
    let mut last = Next::Continue;
    for _ in 0..crate::limits::MAX_BAD_COMMANDS {
        let mut out = Vec::new();
        last =
            t.s.handle(parse_command(b"a FETCH 1 FLAGS").expect("parses"), &mut out)
                .await;
    }
    assert_eq!(last, Next::Logout);
}
