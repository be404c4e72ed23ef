//! The lease between nodes and the renewal decision.

use super::stored::{self, acquire_lease, release_lease};
use super::*;
use bulwark_store::sqlite::SqliteStore;

fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn only_one_node_holds_the_lease_until_it_expires_or_is_released() {
    let (_d, s) = store();
    let s = s.as_ref();
    assert!(acquire_lease(s, "node-a", 1000, 600).await.unwrap());
    assert!(!acquire_lease(s, "node-b", 1001, 600).await.unwrap());
    // The holder may extend it.
    assert!(acquire_lease(s, "node-a", 1002, 600).await.unwrap());
    assert_eq!(
        stored::lease_holder(s, 1003).await.unwrap().as_deref(),
        Some("node-a")
    );
    // Expired: another node takes it over.
    assert!(acquire_lease(s, "node-b", 1602 + 1, 600).await.unwrap());
    assert!(!acquire_lease(s, "node-a", 1604, 600).await.unwrap());
    // Releasing by a non-holder does nothing; by the holder frees it.
    release_lease(s, "node-a").await.unwrap();
    assert!(!acquire_lease(s, "node-a", 1605, 600).await.unwrap());
    release_lease(s, "node-b").await.unwrap();
    assert_eq!(stored::lease_holder(s, 1606).await.unwrap(), None);
    assert!(acquire_lease(s, "node-a", 1606, 600).await.unwrap());
}

#[tokio::test]
async fn concurrent_acquires_have_exactly_one_winner() {
    let (_d, s) = store();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            acquire_lease(s.as_ref(), &format!("node-{i}"), 5000, 600)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[test]
fn certificate_key_ignores_order_and_case_and_renewal_is_due_inside_the_window() {
    assert_eq!(
        stored::cert_key(&["B.example".into(), "a.example".into()]),
        stored::cert_key(&["a.example".into(), "b.example".into()])
    );
    assert_ne!(
        stored::cert_key(&["a.example".into()]),
        stored::cert_key(&["a.example".into(), "b.example".into()])
    );
    let cert = StoredCert {
        domains: vec!["a.example".into()],
        cert_pem: String::new(),
        key_pem: String::new(),
        not_after: 100 * 86_400,
        not_before: 10 * 86_400,
        issuer: String::new(),
        directory: String::new(),
    };
    let thirty_days = 30 * 86_400;
    assert!(!cert.due(69 * 86_400, thirty_days));
    assert!(cert.due(71 * 86_400, thirty_days));
    assert!(cert.due(200 * 86_400, thirty_days), "expired");
}

#[test]
fn challenge_names() {
    assert_eq!(ChallengeKind::parse("http-01"), Some(ChallengeKind::Http01));
    assert_eq!(
        ChallengeKind::parse("tls-alpn-01"),
        Some(ChallengeKind::TlsAlpn01)
    );
    assert_eq!(ChallengeKind::parse("dns-01"), None);
    assert_eq!(ChallengeKind::TlsAlpn01.as_str(), "tls-alpn-01");
}
