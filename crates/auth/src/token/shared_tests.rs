//! Shared signing keys: several nodes (data dirs) on one store, rotation, store outages.

use super::*;
use bulwark_store::outage::Outage;
use bulwark_store::sqlite::SqliteStore;

const TTL: i64 = 3600;

struct Fixture {
    _db: tempfile::TempDir,
    flaky: Arc<Outage>,
    store: Arc<dyn Store>,
}

fn fixture() -> Fixture {
    let db = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(db.path()).unwrap();
    let (store, flaky) = sqlite.with_outage();
    Fixture {
        _db: db,
        store,
        flaky,
    }
}

fn access(s: &TokenSigner, now: i64) -> String {
    s.issue(TokenKind::Access, AccountId(1), "sess", TTL, now)
}

#[tokio::test]
async fn two_nodes_on_one_store_verify_each_others_tokens() {
    let f = fixture();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Both start at once: insert-if-absent makes them agree on one key set.
    let (n1, n2) = tokio::join!(
        TokenSigner::load_shared(f.store.as_ref(), d1.path()),
        TokenSigner::load_shared(f.store.as_ref(), d2.path())
    );
    let (n1, n2) = (n1.unwrap(), n2.unwrap());
    let now = now_unix();
    assert_eq!(n1.key_id_at(now), n2.key_id_at(now));
    assert!(n2.verify(&access(&n1, now), TokenKind::Access, now).is_ok());
    assert!(n1.verify(&access(&n2, now), TokenKind::Access, now).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d1.path().join(KEYSET_CACHE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn after_rotation_old_tokens_verify_and_new_ones_use_the_new_key_on_every_node() {
    let f = fixture();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n1 = TokenSigner::load_shared(f.store.as_ref(), d1.path())
        .await
        .unwrap();
    let n2 = TokenSigner::load_shared(f.store.as_ref(), d2.path())
        .await
        .unwrap();
    let now = now_unix();
    let old_kid = n1.key_id_at(now);
    let old = access(&n1, now);
    let new_kid = rotate_shared_keys(
        f.store.as_ref(),
        now,
        KEY_ACTIVATION_DELAY_SECS,
        KEY_OVERLAP_SECS,
    )
    .await
    .unwrap();
    assert_ne!(new_kid, old_kid);
    // Until a node refreshes it keeps signing and verifying with what it has.
    assert_eq!(n2.key_id_at(now + KEY_ACTIVATION_DELAY_SECS), old_kid);
    assert!(n1.refresh(f.store.as_ref()).await.unwrap());
    assert!(n2.refresh(f.store.as_ref()).await.unwrap());
    assert!(!n2.refresh(f.store.as_ref()).await.unwrap(), "nothing new");
    // Before activation the old key still signs; after it the new one does.
    assert_eq!(n1.key_id_at(now + KEY_ACTIVATION_DELAY_SECS - 1), old_kid);
    let later = now + KEY_ACTIVATION_DELAY_SECS;
    assert_eq!(n1.key_id_at(later), new_kid);
    let new = access(&n1, later);
    assert!(n2.verify(&new, TokenKind::Access, later).is_ok());
    assert!(n2.verify(&old, TokenKind::Access, later).is_ok());
    // A refresh token of the old key keeps working for the whole overlap, then not.
    let refresh = n2.issue(TokenKind::Refresh, AccountId(1), "s", 40 * 24 * 3600, now);
    let end = later + KEY_OVERLAP_SECS;
    assert!(n1.verify(&refresh, TokenKind::Refresh, end - 1).is_ok());
    assert_eq!(
        n1.verify(&refresh, TokenKind::Refresh, end),
        Err(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn signer_method_rotate_loads_the_new_key_at_once() {
    let f = fixture();
    let d = tempfile::tempdir().unwrap();
    let s = TokenSigner::load_shared(f.store.as_ref(), d.path())
        .await
        .unwrap();
    let now = now_unix();
    let old = access(&s, now);
    let kid = s
        .rotate(f.store.as_ref(), now, 0, KEY_OVERLAP_SECS)
        .await
        .unwrap();
    assert_eq!(s.key_id_at(now), kid);
    assert!(s.verify(&old, TokenKind::Access, now).is_ok());
    assert_eq!(s.key_ids().len(), 2);
}

#[tokio::test]
async fn node_starts_and_verifies_from_its_local_copy_while_the_store_is_down() {
    let f = fixture();
    let d = tempfile::tempdir().unwrap();
    let token = {
        let s = TokenSigner::load_shared(f.store.as_ref(), d.path())
            .await
            .unwrap();
        access(&s, now_unix())
    };
    f.flaky.set_down(true);
    let s = TokenSigner::load_shared(f.store.as_ref(), d.path())
        .await
        .unwrap();
    assert!(s.verify(&token, TokenKind::Access, now_unix()).is_ok());
    assert!(s.refresh(f.store.as_ref()).await.is_err());
    assert!(
        s.verify(&token, TokenKind::Access, now_unix()).is_ok(),
        "keys kept after a failed refresh"
    );
    // A node that never saw the keys cannot invent its own while the store is down.
    let fresh = tempfile::tempdir().unwrap();
    assert!(
        TokenSigner::load_shared(f.store.as_ref(), fresh.path())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn tokens_of_the_old_per_data_dir_keys_keep_verifying_after_switching_to_shared_keys() {
    let f = fixture();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let now = now_unix();
    let t1 = access(&TokenSigner::load_or_create(d1.path()).unwrap(), now);
    let t2 = access(&TokenSigner::load_or_create(d2.path()).unwrap(), now);
    // Node 1 upgrades first: its key becomes the shared (signing) key.
    let n1 = TokenSigner::load_shared(f.store.as_ref(), d1.path())
        .await
        .unwrap();
    assert!(n1.verify(&t1, TokenKind::Access, now).is_ok());
    // Node 2 upgrades next: its old key joins the shared set as verification-only.
    let n2 = TokenSigner::load_shared(f.store.as_ref(), d2.path())
        .await
        .unwrap();
    assert!(n2.verify(&t1, TokenKind::Access, now).is_ok());
    assert!(n2.verify(&t2, TokenKind::Access, now).is_ok());
    assert_eq!(n2.key_id_at(now), n1.key_id_at(now));
    n1.refresh(f.store.as_ref()).await.unwrap();
    assert!(n1.verify(&t2, TokenKind::Access, now).is_ok());
    // Restarting node 2 does not import again (nor fail).
    let again = TokenSigner::load_shared(f.store.as_ref(), d2.path())
        .await
        .unwrap();
    assert!(again.verify(&t2, TokenKind::Access, now).is_ok());
}

#[tokio::test]
async fn session_revoked_on_one_node_is_refused_by_the_others_after_refresh() {
    let f = fixture();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n1 = TokenSigner::load_shared(f.store.as_ref(), d1.path())
        .await
        .unwrap();
    let n2 = TokenSigner::load_shared(f.store.as_ref(), d2.path())
        .await
        .unwrap();
    let now = now_unix();
    let t = access(&n1, now);
    let other = n1.issue(TokenKind::Access, AccountId(1), "kept", TTL, now);
    n1.revoke_session("sess", now + TTL, now).unwrap();
    assert_eq!(
        n1.verify(&t, TokenKind::Access, now),
        Err(TokenError::Revoked)
    );
    assert!(
        n2.verify(&t, TokenKind::Access, now).is_ok(),
        "not yet seen"
    );
    n1.refresh(f.store.as_ref()).await.unwrap();
    n2.refresh(f.store.as_ref()).await.unwrap();
    assert_eq!(
        n2.verify(&t, TokenKind::Access, now),
        Err(TokenError::Revoked)
    );
    assert!(n2.verify(&other, TokenKind::Access, now).is_ok());
    // Kept across a restart of node 2, and while the store is down.
    f.flaky.set_down(true);
    let again = TokenSigner::load_shared(f.store.as_ref(), d2.path())
        .await
        .unwrap();
    assert_eq!(
        again.verify(&t, TokenKind::Access, now),
        Err(TokenError::Revoked)
    );
}

#[tokio::test]
async fn refresh_task_publishes_a_revocation_without_waiting_for_the_interval() {
    let f = fixture();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n1 = Arc::new(
        TokenSigner::load_shared(f.store.as_ref(), d1.path())
            .await
            .unwrap(),
    );
    let n2 = TokenSigner::load_shared(f.store.as_ref(), d2.path())
        .await
        .unwrap();
    let task = n1.spawn_refresh(f.store.clone());
    let now = now_unix();
    let t = access(&n1, now);
    n1.revoke_session("sess", now + TTL, now).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        n2.refresh(f.store.as_ref()).await.unwrap();
        if n2.verify(&t, TokenKind::Access, now) == Err(TokenError::Revoked) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revocation never published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
}

/// Issue 13 item 13: an admin command publishes an account epoch to the store; a running
/// node adopts it at its next credential sync, and so does a node started afterwards.
#[tokio::test]
async fn account_epoch_published_to_the_store_reaches_running_and_restarted_nodes() {
    let f = fixture();
    let d1 = tempfile::tempdir().unwrap();
    let n1 = TokenSigner::load_shared(f.store.as_ref(), d1.path())
        .await
        .unwrap();
    let now = now_unix();
    let token = access(&n1, now);
    assert!(n1.verify(&token, TokenKind::Access, now).is_ok());
    publish_credentials(
        f.store.as_ref(),
        &account_epoch(AccountId(1), None, now_ms(), now + TTL),
        now,
    )
    .await
    .unwrap();
    n1.sync_credentials(f.store.as_ref()).await.unwrap();
    assert_eq!(
        n1.verify(&token, TokenKind::Access, now),
        Err(TokenError::Revoked)
    );
    let d2 = tempfile::tempdir().unwrap();
    let n2 = TokenSigner::load_shared(f.store.as_ref(), d2.path())
        .await
        .unwrap();
    assert_eq!(
        n2.verify(&token, TokenKind::Access, now),
        Err(TokenError::Revoked)
    );
    // A local revocation survives a store outage and a restart (local file).
    let other = n2.issue(TokenKind::Access, AccountId(2), "b", TTL, now);
    f.flaky.set_down(true);
    n2.revoke_credentials(&account_epoch(AccountId(2), None, now_ms(), now + TTL))
        .unwrap();
    drop(n2);
    let n2 = TokenSigner::load_shared(f.store.as_ref(), d2.path())
        .await
        .unwrap();
    assert_eq!(
        n2.verify(&other, TokenKind::Access, now),
        Err(TokenError::Revoked)
    );
}

/// Issue 13 item 2: with a secret key the key set is sealed in the store and in the local
/// copy; a clear-text set from before is migrated and its tokens keep verifying.
#[tokio::test]
async fn key_set_is_sealed_at_rest_and_a_clear_text_set_is_migrated() {
    let f = fixture();
    // A clear-text set written before encryption existed.
    let old = KeySet::fresh(now_unix());
    f.store
        .global_setting_replace(KEYSET_SETTING, None, &old.to_json().unwrap())
        .await
        .unwrap();
    crate::at_rest::install_test_key();
    let d1 = tempfile::tempdir().unwrap();
    let n1 = TokenSigner::load_shared(f.store.as_ref(), d1.path())
        .await
        .unwrap();
    assert_eq!(n1.key_ids(), vec![old.keys[0].kid.clone()]);
    let stored = f
        .store
        .global_setting_get(KEYSET_SETTING)
        .await
        .unwrap()
        .unwrap();
    assert!(crate::at_rest::is_sealed(&stored) && !stored.contains("secret"));
    let cache = std::fs::read_to_string(d1.path().join(KEYSET_CACHE_FILE)).unwrap();
    assert!(crate::at_rest::is_sealed(&cache) && !cache.contains("secret"));
    // A restarted node reads the sealed copies.
    let now = now_unix();
    let token = access(&n1, now);
    let n2 = TokenSigner::load_shared(f.store.as_ref(), d1.path())
        .await
        .unwrap();
    assert!(n2.verify(&token, TokenKind::Access, now).is_ok());
}
