//! Core tests over an in-memory store.

use super::*;
use crate::store::DavStore;
use async_trait::async_trait;
use bulwark_store::{CollectionChanges, Result as StoreResult};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// An in-memory store: (collection, id) → (version, value).
#[derive(Default)]
struct Fake {
    items: Mutex<BTreeMap<(String, String), (u64, String)>>,
    modseq: Mutex<u64>,
}

#[async_trait]
impl DavStore for Fake {
    async fn get(
        &self,
        _: AccountId,
        c: &str,
        ids: Option<&[String]>,
    ) -> StoreResult<Vec<CollectionItem>> {
        let items = self.items.lock().unwrap();
        Ok(items
            .iter()
            .filter(|((col, id), _)| col == c && ids.is_none_or(|ids| ids.contains(id)))
            .map(|((_, id), (v, value))| CollectionItem {
                id: id.clone(),
                version: ModSeq(*v),
                value: value.clone(),
            })
            .collect())
    }
    async fn write(&self, _: AccountId, writes: Vec<ItemWrite>) -> StoreResult<ModSeq> {
        let mut items = self.items.lock().unwrap();
        for w in &writes {
            w.check(
                items
                    .get(&(w.collection.clone(), w.id.clone()))
                    .map(|(v, _)| ModSeq(*v)),
            )?;
        }
        let mut m = self.modseq.lock().unwrap();
        *m += 1;
        for w in writes {
            match w.value {
                Some(v) => items.insert((w.collection, w.id), (*m, v)),
                None => items.remove(&(w.collection, w.id)),
            };
        }
        Ok(ModSeq(*m))
    }
    async fn changes(
        &self,
        _: AccountId,
        _: &str,
        since: ModSeq,
        _: usize,
    ) -> StoreResult<CollectionChanges> {
        Err(StoreError::CannotCalculateChanges(since.0))
    }
    async fn state(&self, _: AccountId, c: &str) -> StoreResult<ModSeq> {
        let items = self.items.lock().unwrap();
        Ok(ModSeq(
            items
                .iter()
                .filter(|((col, _), _)| col == c)
                .map(|(_, (v, _))| *v)
                .max()
                .unwrap_or(0),
        ))
    }
}

fn user() -> User {
    User {
        account: AccountId(1),
        username: "ann@example.test".into(),
    }
}

fn req(method: &str, path: &str, body: &str) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        depth: Some("1".into()),
        body: body.as_bytes().to_vec(),
        ..Request::default()
    }
}

const CAL: &str = "/dav/calendars/ann@example.test/default/";

#[tokio::test]
async fn malformed_calendar_data_gets_valid_calendar_data() {
    let store = Fake::default();
    let r = handle(
        &store,
        &user(),
        req("PUT", &format!("{CAL}x.ics"), "BEGIN:VCALENDAR\r\n"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("valid-calendar-data"));
}

#[tokio::test]
async fn infinite_depth_is_refused_with_its_precondition() {
    let store = Fake::default();
    let mut q = req("PROPFIND", CAL, "");
    q.depth = None;
    let r = handle(&store, &user(), q).await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("propfind-finite-depth"));
}

#[tokio::test]
async fn another_users_path_is_not_found_and_a_bad_sync_token_is_refused() {
    let store = Fake::default();
    let r = handle(
        &store,
        &user(),
        req("PROPFIND", "/dav/calendars/bob@example.test/default/", ""),
    )
    .await;
    assert_eq!(r.status, 404);
    let sync = "<d:sync-collection xmlns:d='DAV:'><d:sync-token>https://bulwark.invalid/sync/999</d:sync-token><d:prop/></d:sync-collection>";
    let r = handle(&store, &user(), req("REPORT", CAL, sync)).await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("valid-sync-token"));
}

#[tokio::test]
async fn a_store_outage_is_503_with_retry_after() {
    let r = store_error(StoreError::Unavailable("down".into()));
    assert_eq!(r.status, 503);
    assert!(r.header_value("Retry-After").is_some());
}

fn event(uid: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

#[tokio::test]
async fn the_uid_index_refuses_a_second_resource_with_one_uid_until_the_first_is_deleted() {
    let store = Fake::default();
    let put = |name: &str, uid: &str| req("PUT", &format!("{CAL}{name}"), &event(uid));
    assert_eq!(
        handle(&store, &user(), put("a.ics", "same")).await.status,
        201
    );
    let r = handle(&store, &user(), put("b.ics", "same")).await;
    assert_eq!(r.status, 403);
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        body.contains("no-uid-conflict") && body.contains("a.ics"),
        "{body}"
    );
    let index = store
        .get(AccountId(1), "calendar-uids:default", None)
        .await
        .unwrap();
    assert_eq!(index.len(), 2, "the marker and one UID: {index:?}");
    // The same name may change its UID; the old UID is free again.
    assert_eq!(
        handle(&store, &user(), put("a.ics", "renamed"))
            .await
            .status,
        204
    );
    assert_eq!(
        handle(&store, &user(), put("b.ics", "same")).await.status,
        201
    );
    let r = handle(&store, &user(), req("DELETE", &format!("{CAL}b.ics"), "")).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        handle(&store, &user(), put("c.ics", "same")).await.status,
        201
    );
}

#[tokio::test]
async fn a_calendar_stored_before_the_index_gets_it_built_on_its_first_put() {
    let store = Fake::default();
    handle(&store, &user(), req("PROPFIND", CAL, "")).await;
    // What the first part of issue 15 stored: a resource, and no index.
    let old = StoredObject {
        data: event("old"),
        uid: "old".into(),
        ..StoredObject::default()
    };
    let writes = vec![
        ItemWrite::put(
            "calendar:default",
            "old.ics",
            Expect::Absent,
            serde_json::to_string(&old).unwrap(),
        ),
        ItemWrite::delete("calendar-uids:default", uids::INDEXED, Expect::Any),
    ];
    store.write(AccountId(1), writes).await.unwrap();
    let r = handle(
        &store,
        &user(),
        req("PUT", &format!("{CAL}new.ics"), &event("old")),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("old.ics"));
}
