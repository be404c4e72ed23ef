//! Email/query's list-view fast path (the store's windowed read) answers exactly as the
//! general path (every email of the account, filtered and sorted in memory).

use super::*;
use bulwark_store::Role;

/// The same query forced onto the general path: an OR of one condition means the same
/// but is not a list-view filter.
fn general(args: &Value) -> Value {
    let mut args = args.clone();
    let filter = match args.get("filter") {
        Some(f) if !f.is_null() => f.clone(),
        _ => json!({}),
    };
    args["filter"] = json!({"operator": "OR", "conditions": [filter]});
    args
}

/// Alice's account: 14 emails in the inbox and the archive with many equal receivedAt
/// values, some seen, some flagged, one in both mailboxes. Returns (inbox, archive) ids.
async fn populate(h: &Harness) -> (String, String) {
    let times = [
        500, 100, 300, 100, 500, 200, 100, 300, 400, 100, 500, 200, 50, 100,
    ];
    let mut ids = Vec::new();
    for (i, t) in times.iter().enumerate() {
        let raw = message(&format!("m{i}"), "body");
        let mut m =
            bulwark_core::Message::new("x@remote.test", Vec::new(), Arc::new(raw.into_bytes()));
        m.resolved = vec![("alice".into(), bulwark_core::Recipient::Local(h.alice))];
        m.received_at = 1_800_000_000 + t;
        let d = h.server.pipeline().deliver(m).await.unwrap();
        ids.push(crate::ids::email_id(d.appended[0].email));
    }
    // Bob's mail never shows in Alice's queries.
    h.deliver(h.bob, &message("bob's", "body")).await;
    let inbox = h.mailbox_id(h.alice, Role::Inbox).await;
    let archive = h.mailbox_id(h.alice, Role::Archive).await;
    let mut update = serde_json::Map::new();
    for (i, id) in ids.iter().enumerate() {
        let mut patch = json!({});
        if i % 3 == 0 {
            patch["mailboxIds"] = json!({ archive.clone(): true });
        }
        if i == 4 {
            patch["mailboxIds"] = json!({ archive.clone(): true, inbox.clone(): true });
        }
        if i % 2 == 0 {
            patch["keywords/$seen"] = json!(true);
        }
        if i % 5 == 0 {
            patch["keywords/$flagged"] = json!(true);
        }
        update.insert(id.clone(), patch);
    }
    let v = h.ok("Email/set", json!({ "update": update })).await;
    assert_eq!(v["updated"].as_object().map(|u| u.len()), Some(ids.len()));
    (inbox, archive)
}

#[tokio::test]
async fn list_view_queries_match_the_general_path() {
    let h = harness().await;
    let (inbox, archive) = populate(&h).await;
    let filters = [
        Value::Null,
        json!({ "inMailbox": inbox }),
        json!({ "inMailbox": archive }),
        json!({ "inMailbox": inbox, "notKeyword": "$seen" }),
        json!({ "hasKeyword": "$FLAGGED" }),
        json!({"operator": "AND", "conditions": [{ "inMailbox": archive }, { "hasKeyword": "$seen" }]}),
        json!({ "inMailbox": "M999999" }),
    ];
    let sorts = [
        None,
        Some(json!([{"property": "receivedAt", "isAscending": false}])),
        Some(json!([{"property": "receivedAt", "isAscending": true}])),
        Some(json!([{"property": "receivedAt"}])),
    ];
    let windows = [
        json!({}),
        json!({"position": 0, "limit": 5}),
        json!({"position": 3, "limit": 4}),
        json!({"position": 12, "limit": 50}),
        json!({"position": 1000, "limit": 5}),
        json!({"position": 2, "limit": 0}),
        json!({"limit": 20_000}),
    ];
    let mut compared = 0;
    for filter in &filters {
        for sort in &sorts {
            for window in &windows {
                for total in [false, true] {
                    let mut args = window.clone();
                    if !filter.is_null() {
                        args["filter"] = filter.clone();
                    }
                    if let Some(s) = sort {
                        args["sort"] = s.clone();
                    }
                    args["calculateTotal"] = json!(total);
                    let fast = h.ok("Email/query", args.clone()).await;
                    let slow = h.ok("Email/query", general(&args)).await;
                    assert_eq!(fast, slow, "{args}");
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, filters.len() * sorts.len() * windows.len() * 2);
    // The newest first, ties by the higher id: a spot check of what both paths agree on.
    let v = h
        .ok("Email/query", json!({"limit": 3, "calculateTotal": true}))
        .await;
    assert_eq!(v["total"], json!(14));
    let ids: Vec<i64> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap()[1..].parse().unwrap())
        .collect();
    assert!(ids[0] > ids[1] && ids[1] > ids[2], "{ids:?}");
}

#[tokio::test]
async fn list_view_query_clamps_position_past_the_end_and_large_limits() {
    let h = harness().await;
    let (inbox, _) = populate(&h).await;
    let v = h
        .ok(
            "Email/query",
            json!({"filter": {"inMailbox": inbox}, "position": 1000, "limit": 20_000}),
        )
        .await;
    // The inbox keeps 14 emails minus the 5 moved to the archive.
    assert_eq!(v["position"], json!(9));
    assert_eq!(v["ids"], json!([]));
    assert_eq!(v["limit"], json!(crate::mail::query::MAX_QUERY_LIMIT));
    assert!(v.get("total").is_none());
}
