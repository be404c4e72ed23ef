//! The UID index on the real stores (SQLite; PostgreSQL when `BULWARK_TEST_PG` names a
//! server, see `scripts/pg-test-server`, else that half skips): two PUTs racing to store one
//! UID under two names cannot both win (RFC 4791 §5.3.2.1 no-uid-conflict), and
//! `create_defaults` makes the collections `bulwark account add` promises.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_dav::core::{Request, User, handle};
use bulwark_dav::store::{DEFAULT_ID, StoreBackend};
use bulwark_store::{NewAccount, Store};
use std::sync::Arc;

fn event(uid: &str) -> Vec<u8> {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_puts_racing_with_one_uid_store_it_once_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = bulwark_store::sqlite::SqliteStore::open(dir.path()).unwrap();
    race(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_puts_racing_with_one_uid_store_it_once_postgres() {
    let Some(store) = bulwark_store_pg::testing::fresh_store().await.unwrap() else {
        eprintln!("skipped: BULWARK_TEST_PG is not set");
        return;
    };
    race(store).await;
}

async fn race(store: Arc<dyn Store>) {
    store.domain_add("example.test").await.unwrap();
    let account = store
        .account_create(NewAccount {
            address: "ann@example.test".into(),
            display_name: String::new(),
            password_hash: "$argon2id$fake".into(),
        })
        .await
        .unwrap();
    bulwark_dav::create_defaults(store.as_ref(), account.id)
        .await
        .unwrap();
    for (kind, _) in [("calendars", 0), ("addressbooks", 1)] {
        let items = store.collection_get(account.id, kind, None).await.unwrap();
        assert_eq!(items.len(), 1, "{kind}");
        assert_eq!(items[0].id, DEFAULT_ID);
    }
    let dav = Arc::new(StoreBackend(store.clone()));
    let user = User {
        account: account.id,
        username: "ann@example.test".into(),
    };
    for round in 0..10 {
        let uid = format!("race-{round}");
        let put = |name: String| {
            let (dav, user, body) = (dav.clone(), user.clone(), event(&uid));
            tokio::spawn(async move {
                let req = Request {
                    method: "PUT".into(),
                    path: format!("/dav/calendars/ann@example.test/default/{name}"),
                    body,
                    ..Request::default()
                };
                handle(dav.as_ref(), &user, req).await.status
            })
        };
        let (a, b) = (put(format!("a{round}.ics")), put(format!("b{round}.ics")));
        let mut statuses = [a.await.unwrap(), b.await.unwrap()];
        statuses.sort();
        assert_eq!(statuses[0], 201, "round {round}: {statuses:?}");
        assert!(
            matches!(statuses[1], 403 | 412),
            "round {round}: the loser gets no-uid-conflict or 412: {statuses:?}"
        );
    }
    let objects = store
        .collection_get(account.id, "calendar:default", None)
        .await
        .unwrap();
    assert_eq!(objects.len(), 10, "one resource per UID");
}
