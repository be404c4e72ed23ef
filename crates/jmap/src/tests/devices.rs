//! Signed-in devices as items of the `devices` collection: concurrent sign-ins, eviction,
//! compare-and-set refreshes, and the lazy move of the old `web_sessions` setting.

use super::*;
use crate::devices::{self, LAST_SEEN_GRANULARITY_SECS, MAX_SESSIONS, SessionRecord};
use bulwark_store::collections::names;

fn session(id: &str, created_at: i64) -> SessionRecord {
    SessionRecord {
        id: id.to_string(),
        created_at,
        last_seen: created_at,
        expires_at: created_at + 3600,
        user_agent: "test".into(),
        ip: "127.0.0.1".into(),
        via: devices::VIA_WEB.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_sign_ins_are_all_listed() {
    let h = harness().await;
    let now = now_unix();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store: Arc<dyn Store> = h.store.clone();
        let account = h.alice;
        tasks.push(tokio::spawn(async move {
            devices::add(
                store.as_ref(),
                account,
                session(&format!("s{n}"), now + n),
                now,
            )
            .await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_empty(), "nothing evicted");
    }
    let list = devices::list(h.store.as_ref(), h.alice).await.unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
    let want: Vec<String> = (0..20).map(|n| format!("s{n}")).collect();
    assert_eq!(ids, want, "every sign-in is kept, oldest first");
    assert!(
        devices::list(h.store.as_ref(), h.bob)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sessions_beyond_the_limit_evict_the_oldest_and_expired_ones_go() {
    let h = harness().await;
    let now = now_unix();
    let mut expired = session("expired", now - 7200);
    expired.expires_at = now - 1;
    devices::add(h.store.as_ref(), h.alice, expired, now - 7200)
        .await
        .unwrap();
    let mut evicted = Vec::new();
    for n in 0..MAX_SESSIONS + 2 {
        let n = n as i64;
        evicted.extend(
            devices::add(
                h.store.as_ref(),
                h.alice,
                session(&format!("s{n:03}"), now + n),
                now,
            )
            .await
            .unwrap(),
        );
    }
    let evicted: Vec<String> = evicted.into_iter().map(|s| s.id).collect();
    assert_eq!(
        evicted,
        vec!["s000", "s001"],
        "the oldest two, not the expired one"
    );
    let list = devices::list(h.store.as_ref(), h.alice).await.unwrap();
    assert_eq!(list.len(), MAX_SESSIONS);
    assert_eq!(list[0].id, "s002");
    assert!(list.iter().all(|s| s.id != "expired"));
    assert_eq!(
        h.store
            .collection_get(h.alice, names::DEVICES, None)
            .await
            .unwrap()
            .len(),
        MAX_SESSIONS
    );
}

#[tokio::test]
async fn touch_updates_last_seen_but_never_brings_back_a_removed_session() {
    let h = harness().await;
    let now = now_unix();
    devices::add(h.store.as_ref(), h.alice, session("a", now), now)
        .await
        .unwrap();
    // Within the granularity nothing is written.
    let state = h
        .store
        .collection_state(h.alice, names::DEVICES)
        .await
        .unwrap();
    devices::touch(h.store.as_ref(), h.alice, "a", now + 99, now + 1)
        .await
        .unwrap();
    assert_eq!(
        h.store
            .collection_state(h.alice, names::DEVICES)
            .await
            .unwrap(),
        state
    );
    let later = now + LAST_SEEN_GRANULARITY_SECS;
    devices::touch(h.store.as_ref(), h.alice, "a", later + 3600, later)
        .await
        .unwrap();
    let list = devices::list(h.store.as_ref(), h.alice).await.unwrap();
    assert_eq!(
        (list[0].last_seen, list[0].expires_at),
        (later, later + 3600)
    );

    let removed = devices::remove(h.store.as_ref(), h.alice, "a")
        .await
        .unwrap();
    assert_eq!(removed.map(|s| s.id).as_deref(), Some("a"));
    devices::touch(h.store.as_ref(), h.alice, "a", later * 2, later * 2)
        .await
        .unwrap();
    assert!(
        devices::list(h.store.as_ref(), h.alice)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        devices::remove(h.store.as_ref(), h.alice, "a")
            .await
            .unwrap(),
        None
    );
    // Ids no item can have (from a URL) are simply not found.
    assert_eq!(
        devices::remove(h.store.as_ref(), h.alice, "bad\nid")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        devices::remove(h.store.as_ref(), h.alice, &"x".repeat(1000))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn legacy_session_setting_is_moved_into_the_collection_once() {
    let h = harness().await;
    let now = now_unix();
    let old = vec![session("old1", now - 20), session("old2", now - 10)];
    h.store
        .setting_set(
            h.alice,
            devices::SESSIONS_SETTING_KEY,
            Some(&serde_json::to_string(&old).unwrap()),
        )
        .await
        .unwrap();
    devices::add(h.store.as_ref(), h.alice, session("new", now), now)
        .await
        .unwrap();
    let ids: Vec<String> = devices::list(h.store.as_ref(), h.alice)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec!["old1", "old2", "new"]);
    assert_eq!(
        h.store
            .setting_get(h.alice, devices::SESSIONS_SETTING_KEY)
            .await
            .unwrap(),
        None,
        "the old setting is gone"
    );
    assert!(
        devices::remove(h.store.as_ref(), h.alice, "old1")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        devices::list(h.store.as_ref(), h.alice)
            .await
            .unwrap()
            .len(),
        2
    );
}
