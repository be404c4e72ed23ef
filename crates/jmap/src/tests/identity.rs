//! Identity in the store's `identities` collection: set/get/changes, compare-and-set, a
//! second server on the same store, and the one-time migration of `jmap-identities.json`.

use super::*;
use bulwark_store::collections::names;
use bulwark_store::{Expect, ItemWrite};
use std::time::Duration;

/// One call through another server's router (a second node on the same store).
async fn call_on(server: &Arc<JmapServer>, token: &str, name: &str, args: Value) -> Value {
    let body = json!({ "using": USING, "methodCalls": [[name, args, "c0"]] });
    let req = Request::builder()
        .method("POST")
        .uri("/jmap/api")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = server.clone().router().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let r = &v["methodResponses"][0];
    assert_eq!(r[0], json!(name), "{r}");
    r[1].clone()
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn identity_set_get_and_changes_round_trip_through_the_store() {
    let h = harness().await;
    let first = h.ok("Identity/get", json!({})).await;
    let state0 = first["state"].as_str().unwrap().to_string();
    let default_id = first["list"][0]["id"].as_str().unwrap().to_string();

    // One call: create an extra identity and change the default one.
    let v = h
        .ok(
            "Identity/set",
            json!({
                "ifInState": state0,
                "create": {"x": {"email": "alice@example.test", "name": "Alice at work", "textSignature": "-- work"}},
                "update": {default_id.clone(): {"name": "Alice A."}},
            }),
        )
        .await;
    let extra_id = v["created"]["x"]["id"].as_str().unwrap().to_string();
    let state1 = v["newState"].as_str().unwrap().to_string();
    assert_ne!(state1, state0);
    assert!(v["updated"].get(&default_id).is_some(), "{v}");
    let stored = h
        .store
        .collection_get(h.alice, names::IDENTITIES, None)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "both are items of the collection");

    let got = h.ok("Identity/get", json!({})).await;
    assert_eq!(got["state"], json!(state1));
    let list = got["list"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let extra = list.iter().find(|i| i["id"] == json!(extra_id)).unwrap();
    assert_eq!(
        (extra["name"].as_str(), extra["textSignature"].as_str()),
        (Some("Alice at work"), Some("-- work"))
    );
    assert_eq!(extra["mayDelete"], json!(true));

    // The default identity existed before: its first write is an update, not a create.
    let c = h
        .ok("Identity/changes", json!({"sinceState": state0}))
        .await;
    assert_eq!(sorted(&c["created"]), vec![extra_id.clone()]);
    assert_eq!(sorted(&c["updated"]), vec![default_id.clone()]);
    assert_eq!(c["destroyed"], json!([]));
    assert_eq!(c["newState"], json!(state1));
    assert_eq!(c["hasMoreChanges"], json!(false));

    // A stale ifInState is refused and writes nothing.
    let (name, err) = h
        .call(
            "Identity/set",
            json!({"ifInState": state0, "destroy": [extra_id]}),
        )
        .await;
    assert_eq!(
        (name.as_str(), &err["type"]),
        ("error", &json!("stateMismatch"))
    );

    let v = h
        .ok("Identity/set", json!({"destroy": [extra_id.clone()]}))
        .await;
    assert_eq!(v["destroyed"], json!([extra_id]));
    let state2 = v["newState"].as_str().unwrap().to_string();
    let c = h
        .ok("Identity/changes", json!({"sinceState": state1}))
        .await;
    assert_eq!(
        (&c["created"], &c["updated"], &c["destroyed"]),
        (&json!([]), &json!([]), &json!([extra_id]))
    );
    assert_eq!(c["newState"], json!(state2));
    // From the start, the extra identity came and went: only the default's update is left.
    let c = h
        .ok("Identity/changes", json!({"sinceState": state0}))
        .await;
    assert_eq!(
        (&c["created"], &c["updated"], &c["destroyed"]),
        (&json!([]), &json!([default_id]), &json!([]))
    );

    // maxChanges pages by whole writes.
    let mut ids = Vec::new();
    for n in 0..3 {
        let v = h
            .ok(
                "Identity/set",
                json!({"create": {"n": {"email": "alice@example.test", "name": format!("n{n}")}}}),
            )
            .await;
        ids.push(v["created"]["n"]["id"].as_str().unwrap().to_string());
    }
    let mut since = state2.clone();
    let mut seen = Vec::new();
    for round in 0.. {
        assert!(round < 5, "paging does not end");
        let c = h
            .ok(
                "Identity/changes",
                json!({"sinceState": since, "maxChanges": 1}),
            )
            .await;
        seen.extend(sorted(&c["created"]));
        since = c["newState"].as_str().unwrap().to_string();
        if c["hasMoreChanges"] == json!(false) {
            break;
        }
        assert_eq!(c["created"].as_array().unwrap().len(), 1);
    }
    ids.sort();
    seen.sort();
    assert_eq!(seen, ids);

    for bad in ["not-a-state", "99999999"] {
        let (name, err) = h.call("Identity/changes", json!({"sinceState": bad})).await;
        assert_eq!(
            (name.as_str(), &err["type"]),
            ("error", &json!("cannotCalculateChanges")),
            "{bad}"
        );
    }
}

/// ifInState and the write are one compare-and-set: of twenty calls made against the same
/// state, exactly one writes; the others get stateMismatch (none is silently overwritten).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identity_sets_with_the_same_if_in_state_have_one_winner() {
    let h = Arc::new(
        harness_with(JmapConfig {
            max_concurrent_requests: 64,
            ..JmapConfig::default()
        })
        .await,
    );
    let first = h.ok("Identity/get", json!({})).await;
    let state = first["state"].as_str().unwrap().to_string();
    let id = first["list"][0]["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let (h, state, id) = (h.clone(), state.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            h.call(
                "Identity/set",
                json!({"ifInState": state, "update": {id: {"name": format!("writer {n}")}}}),
            )
            .await
        }));
    }
    let mut winners = Vec::new();
    for (n, t) in tasks.into_iter().enumerate() {
        let (name, v) = t.await.unwrap();
        match name.as_str() {
            "Identity/set" => winners.push(n),
            _ => assert_eq!(v["type"], json!("stateMismatch"), "{v}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    let v = h.ok("Identity/get", json!({"ids": [id]})).await;
    assert_eq!(
        v["list"][0]["name"],
        json!(format!("writer {}", winners[0]))
    );
}

#[tokio::test]
async fn identity_saved_through_one_server_is_seen_by_another_on_the_same_store() {
    let h = harness().await;
    let id = h.ok("Identity/get", json!({})).await["list"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.ok(
        "Identity/set",
        json!({"update": {id.clone(): {"name": "Shared", "htmlSignature": "<b>A</b>"}}}),
    )
    .await;
    // A second node: its own (empty) data_dir, the same store and token signer.
    let other_dir = tempfile::tempdir().unwrap();
    let other = JmapServer::new(
        JmapConfig {
            data_dir: Some(other_dir.path().to_path_buf()),
            ..JmapConfig::default()
        },
        h.store.clone(),
        h.server.auth.clone(),
        h.server.signer.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let v = call_on(
        &other,
        &h.token,
        "Identity/get",
        json!({"accountId": h.aid(), "ids": [id]}),
    )
    .await;
    assert_eq!(
        (
            v["list"][0]["name"].as_str(),
            v["list"][0]["htmlSignature"].as_str()
        ),
        (Some("Shared"), Some("<b>A</b>"))
    );
}

#[tokio::test]
async fn legacy_identity_file_is_migrated_on_start_and_removed() {
    let h = harness().await;
    let dir = h._dir.path().to_path_buf();
    let default_id = crate::identity::identity_id_for("alice@example.test");
    // What older versions wrote: account id → identity id → data, plus a state counter.
    let legacy = json!({
        "accounts": {
            h.alice.0.to_string(): {
                default_id.clone(): {"name": "Alice (old)", "email": null, "reply_to": null,
                    "bcc": null, "text_signature": "-- from the file", "html_signature": ""},
                "I0000beef": {"name": "Extra", "email": "alice@example.test",
                    "reply_to": [{"name": "R", "email": "alice@example.test"}], "bcc": null,
                    "text_signature": "", "html_signature": ""},
            },
            h.bob.0.to_string(): {
                "I0000cafe": {"name": "Bob extra", "email": "bob@example.test", "reply_to": null,
                    "bcc": null, "text_signature": "", "html_signature": ""},
            },
            // An account deleted since: skipped.
            "987654": {
                "I00000001": {"name": "Gone", "email": "gone@example.test", "reply_to": null,
                    "bcc": null, "text_signature": "", "html_signature": ""},
            },
        },
        "states": {h.alice.0.to_string(): 4},
    });
    // Bob's item was migrated before (e.g. by another node): the store's copy wins.
    h.store
        .collection_write(
            h.bob,
            vec![ItemWrite::put(
                names::IDENTITIES,
                "I0000cafe",
                Expect::Absent,
                json!({"name": "Bob (store)", "email": "bob@example.test", "reply_to": null,
                    "bcc": null, "text_signature": "", "html_signature": ""})
                .to_string(),
            )],
        )
        .await
        .unwrap();
    let file = dir.join(crate::identity::IDENTITY_FILE);
    std::fs::write(&file, legacy.to_string()).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(h.server.clone().run(listener));
    // `run` migrates before it serves: once the port answers, the file is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() || file.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "file not migrated and removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let v = h.ok("Identity/get", json!({})).await;
    let list = v["list"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    let default = list.iter().find(|i| i["id"] == json!(default_id)).unwrap();
    assert_eq!(
        (
            default["name"].as_str(),
            default["textSignature"].as_str(),
            default["mayDelete"].as_bool()
        ),
        (Some("Alice (old)"), Some("-- from the file"), Some(false))
    );
    let extra = list.iter().find(|i| i["id"] == json!("I0000beef")).unwrap();
    assert_eq!(extra["replyTo"][0]["name"], json!("R"));
    let bob = h
        .store
        .collection_get(h.bob, names::IDENTITIES, None)
        .await
        .unwrap();
    assert_eq!(bob.len(), 1);
    assert!(bob[0].value.contains("Bob (store)"), "{}", bob[0].value);

    // A second start finds no file and changes nothing.
    let state = h
        .store
        .collection_state(h.alice, names::IDENTITIES)
        .await
        .unwrap();
    h.server.migrate_legacy_files().await;
    assert_eq!(
        h.store
            .collection_state(h.alice, names::IDENTITIES)
            .await
            .unwrap(),
        state
    );
    server.abort();
}

#[tokio::test]
async fn legacy_file_that_does_not_parse_is_kept() {
    let h = harness().await;
    let file = h._dir.path().join(crate::identity::IDENTITY_FILE);
    std::fs::write(&file, b"{ not json").unwrap();
    h.server.migrate_legacy_files().await;
    assert!(file.exists(), "unreadable data is not deleted");
    assert_eq!(
        h.ok("Identity/get", json!({})).await["list"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
