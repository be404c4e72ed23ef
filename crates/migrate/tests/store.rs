//! Import and export against the real embedded store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_migrate::maildir::{FolderWriter, folder_dir};
use bulwark_migrate::{ExportFormat, ImportOptions, SourceKind, detect, export, import};
use bulwark_store::collections::{Expect, ItemWrite};
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{AccountId, NewAccount, Store};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Which store a test runs on: each test runs on both (PostgreSQL when
/// `BULWARK_TEST_PG` names a server, see `scripts/pg-test-server`; else it skips).
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One `#[tokio::test]` per backend for each test function.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }
            #[tokio::test]
            async fn postgres() {
                if bulwark_store_pg::testing::test_server_url().is_none() {
                    eprintln!("skipped: BULWARK_TEST_PG is not set");
                    return;
                }
                super::$name(super::Backend::Postgres).await;
            }
        }
    )*};
}

on_both_backends!(
    maildir_import_keeps_folders_flags_dates_and_resumes,
    duplicate_messages_in_a_source_are_kept_and_a_rerun_adds_none,
    archive_round_trip_is_exact_with_identities_and_vacation,
    maildir_and_mbox_exports_read_back_the_same,
    eml_files_and_bad_paths
);

async fn setup(backend: Backend) -> (tempfile::TempDir, Arc<dyn Store>, AccountId, AccountId) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = match backend {
        Backend::Sqlite => SqliteStore::open(&dir.path().join("data")).unwrap(),
        Backend::Postgres => bulwark_store_pg::testing::fresh_store()
            .await
            .unwrap()
            .expect("BULWARK_TEST_PG"),
    };
    store.domain_add("example.test").await.unwrap();
    let mk = |a: &str| NewAccount {
        address: a.into(),
        display_name: a.into(),
        password_hash: "x".into(),
    };
    let a = store.account_create(mk("a@example.test")).await.unwrap().id;
    let b = store.account_create(mk("b@example.test")).await.unwrap().id;
    (dir, store, a, b)
}

fn opts() -> ImportOptions {
    ImportOptions {
        folder: None,
        max_message_size: 10_000,
    }
}

fn msg(i: usize) -> Vec<u8> {
    format!("From: x{i}@example.org\r\nSubject: m{i}\r\n\r\nbody {i}\r\n").into_bytes()
}

/// Folder → sorted (raw, keywords, date) of every message in it.
type Content = BTreeMap<String, Vec<(Vec<u8>, Vec<String>, i64)>>;

async fn content(store: &dyn Store, account: AccountId) -> Content {
    let mut out = BTreeMap::new();
    for mb in store.mailbox_list(account).await.unwrap() {
        let mut msgs = Vec::new();
        for m in store.mailbox_messages(account, mb.id).await.unwrap() {
            let raw = store.blob_get(&m.blob).await.unwrap().unwrap();
            msgs.push((raw, m.keywords, m.received_at));
        }
        msgs.sort();
        out.insert(mb.name, msgs);
    }
    out
}

fn make_maildir(root: &Path) {
    let seen = vec!["$seen".to_string()];
    let custom = vec!["$answered".to_string(), "project-x".into()];
    let none: Vec<String> = vec![];
    let mut w = FolderWriter::create(root, true).unwrap();
    w.add("1", &msg(1), &seen, 1_000_000).unwrap();
    w.add("2", &msg(2), &none, 1_000_100).unwrap();
    w.finish().unwrap();
    let mut w = FolderWriter::create(&folder_dir(root, "Work/Clients"), false).unwrap();
    w.add("3", &msg(3), &custom, 1_000_200).unwrap();
    w.finish().unwrap();
    // fs layout, LF line ends, in new/ without flags.
    std::fs::create_dir_all(root.join("Lists/rust/new")).unwrap();
    std::fs::write(
        root.join("Lists/rust/new/1000000300.x.host"),
        b"Subject: lf\n\nbody\n",
    )
    .unwrap();
    // Too big for the limit.
    std::fs::write(root.join("cur/1000000400.big.host:2,S"), vec![b'x'; 20_000]).unwrap();
}

async fn maildir_import_keeps_folders_flags_dates_and_resumes(backend: Backend) {
    let (dir, store, a, _) = setup(backend).await;
    let md = dir.path().join("Maildir");
    make_maildir(&md);
    assert_eq!(detect(&md).unwrap(), SourceKind::Maildir);
    let s = import(store.as_ref(), a, &md, &opts(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((s.imported, s.skipped, s.failed), (4, 0, 1), "{s:?}");
    assert!(
        s.failures[0].contains("over the size limit"),
        "{:?}",
        s.failures
    );
    assert_eq!(
        s.folders_created,
        ["Work", "Work/Clients", "Lists", "Lists/rust"]
    );
    let c = content(store.as_ref(), a).await;
    assert_eq!(
        c["INBOX"],
        [
            (msg(1), vec!["$seen".to_string()], 1_000_000),
            (msg(2), vec![], 1_000_100)
        ]
    );
    assert_eq!(
        c["Work/Clients"],
        [(
            msg(3),
            vec!["$answered".to_string(), "project-x".into()],
            1_000_200
        )]
    );
    let (raw, kw, _) = &c["Lists/rust"][0];
    assert_eq!(raw, b"Subject: lf\r\n\r\nbody\r\n");
    assert!(kw.is_empty());
    // Again: nothing new.
    let s = import(store.as_ref(), a, &md, &opts(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((s.imported, s.skipped, s.failed), (0, 4, 1));
    assert_eq!(content(store.as_ref(), a).await, c);
    // --folder puts the tree below it.
    let o = ImportOptions {
        folder: Some("Old".into()),
        ..opts()
    };
    let s = import(store.as_ref(), a, &md, &o, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(s.imported, 4);
    let c = content(store.as_ref(), a).await;
    assert_eq!(c["Old"].len(), 2);
    assert_eq!(c["Old/Work/Clients"].len(), 1);
}

async fn duplicate_messages_in_a_source_are_kept_and_a_rerun_adds_none(backend: Backend) {
    let (dir, store, a, _) = setup(backend).await;
    let path = dir.path().join("dup.mbox");
    let one = "From x Thu Dec  3 08:11:52 2026\nSubject: same\n\nsame\n\n";
    std::fs::write(&path, format!("{one}{one}")).unwrap();
    for expected in [(2, 0), (0, 2)] {
        let s = import(store.as_ref(), a, &path, &opts(), &mut |_| {})
            .await
            .unwrap();
        assert_eq!((s.imported, s.skipped), expected);
    }
}

async fn archive_round_trip_is_exact_with_identities_and_vacation(backend: Backend) {
    let (dir, store, a, b) = setup(backend).await;
    let md = dir.path().join("Maildir");
    make_maildir(&md);
    import(store.as_ref(), a, &md, &opts(), &mut |_| {})
        .await
        .unwrap();
    // One email in two folders, a subscription changed, user data in collections.
    let work = store
        .mailbox_list(a)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "Work")
        .unwrap();
    let inbox_msgs = store
        .mailbox_messages(a, bulwark_core::inbox_of(store.as_ref(), a).await.unwrap())
        .await
        .unwrap();
    store
        .email_set_mailboxes(
            a,
            vec![bulwark_store::MembershipUpdate {
                email: inbox_msgs[0].email,
                add: vec![work.id],
                remove: vec![],
            }],
        )
        .await
        .unwrap();
    store
        .mailbox_set_subscribed(a, work.id, false)
        .await
        .unwrap();
    store
        .collection_write(
            a,
            vec![
                ItemWrite::put("identities", "id1", Expect::Any, r#"{"name":"A"}"#.into()),
                ItemWrite::put(
                    "vacation",
                    "singleton",
                    Expect::Any,
                    r#"{"isEnabled":true}"#.into(),
                ),
            ],
        )
        .await
        .unwrap();
    let out = dir.path().join("archive");
    let s = export(
        store.as_ref(),
        a,
        "a@example.test",
        &out,
        ExportFormat::Archive,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(s.messages, 4);
    assert_eq!(detect(&out).unwrap(), SourceKind::Archive);
    // Exporting into a directory that is not empty is refused.
    assert!(
        export(
            store.as_ref(),
            a,
            "a",
            &out,
            ExportFormat::Archive,
            &mut |_| {}
        )
        .await
        .is_err()
    );
    let s = import(store.as_ref(), b, &out, &opts(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((s.imported, s.failed), (4, 0), "{s:?}");
    let s = import(store.as_ref(), b, &out, &opts(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((s.imported, s.skipped), (0, 4));
    assert_eq!(
        content(store.as_ref(), b).await,
        content(store.as_ref(), a).await
    );
    let names = |m: Vec<bulwark_store::Mailbox>| {
        let mut v: Vec<_> = m
            .into_iter()
            .map(|m| (m.name, m.role.map(|r| r.as_jmap()), m.subscribed))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(store.mailbox_list(b).await.unwrap()),
        names(store.mailbox_list(a).await.unwrap())
    );
    for c in ["identities", "vacation"] {
        let va: Vec<_> = store
            .collection_get(a, c, None)
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.id, i.value))
            .collect();
        let vb: Vec<_> = store
            .collection_get(b, c, None)
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.id, i.value))
            .collect();
        assert_eq!(va, vb);
        assert_eq!(va.len(), 1);
    }
}

async fn maildir_and_mbox_exports_read_back_the_same(backend: Backend) {
    let (dir, store, a, b) = setup(backend).await;
    let md = dir.path().join("Maildir");
    make_maildir(&md);
    import(store.as_ref(), a, &md, &opts(), &mut |_| {})
        .await
        .unwrap();
    let out = dir.path().join("md-out");
    export(
        store.as_ref(),
        a,
        "a",
        &out,
        ExportFormat::Maildir,
        &mut |_| {},
    )
    .await
    .unwrap();
    import(store.as_ref(), b, &out, &opts(), &mut |_| {})
        .await
        .unwrap();
    let ca = content(store.as_ref(), a).await;
    let cb = content(store.as_ref(), b).await;
    assert_eq!(ca, cb);
    // mbox: one file per folder; each read back into its folder.
    let out = dir.path().join("mbox-out");
    export(
        store.as_ref(),
        a,
        "a",
        &out,
        ExportFormat::Mbox,
        &mut |_| {},
    )
    .await
    .unwrap();
    let file = out.join("Work/Clients.mbox");
    assert_eq!(detect(&file).unwrap(), SourceKind::Mbox);
    // The whole directory reads back into the same folders.
    assert_eq!(detect(&out).unwrap(), SourceKind::MboxDir);
    let (_dir3, store3, d, _) = setup(backend).await;
    import(store3.as_ref(), d, &out, &opts(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(content(store3.as_ref(), d).await, ca);
    let (_dir2, store2, c, _) = setup(backend).await;
    let o = ImportOptions {
        folder: Some("Work/Clients".into()),
        ..opts()
    };
    import(store2.as_ref(), c, &file, &o, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        content(store2.as_ref(), c).await["Work/Clients"],
        ca["Work/Clients"]
    );
}

async fn eml_files_and_bad_paths(backend: Backend) {
    let (dir, store, a, _) = setup(backend).await;
    let emls = dir.path().join("emls");
    std::fs::create_dir_all(&emls).unwrap();
    std::fs::write(emls.join("a.eml"), msg(1)).unwrap();
    std::fs::write(emls.join("b.eml"), msg(2)).unwrap();
    std::fs::write(emls.join("empty.eml"), b"").unwrap();
    assert_eq!(detect(&emls).unwrap(), SourceKind::EmlDir);
    let s = import(store.as_ref(), a, &emls, &opts(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((s.imported, s.failed), (2, 1));
    let one = emls.join("a.eml");
    assert_eq!(detect(&one).unwrap(), SourceKind::Eml);
    let o = ImportOptions {
        folder: Some("Single".into()),
        ..opts()
    };
    let s = import(store.as_ref(), a, &one, &o, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(s.imported, 1);
    assert!(detect(&dir.path().join("missing")).is_err());
    let empty = dir.path().join("nothing");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(detect(&empty).is_err());
}
