//! JMAP for Quotas (RFC 9425) and `overQuota` (RFC 8620 §5.3).

use super::*;
use bulwark_core::quota::{QuotaPolicy, Setting};
use bulwark_store::Role;

const USING_QUOTA: [&str; 3] = [
    "urn:ietf:params:jmap:core",
    "urn:ietf:params:jmap:mail",
    "urn:ietf:params:jmap:quota",
];

impl Harness {
    async fn quota_call(&self, name: &str, args: Value) -> (String, Value) {
        let v = self
            .api_using(&USING_QUOTA, json!([[name, args, "q"]]))
            .await;
        let r = &v["methodResponses"][0];
        (r[0].as_str().unwrap_or_default().to_string(), r[1].clone())
    }
}

#[tokio::test]
async fn an_account_without_a_limit_has_no_quota_object() {
    let h = harness().await;
    let (_, _, session) = h
        .raw(
            "GET",
            "/jmap/session",
            Some(&h.bearer()),
            "application/json",
            vec![],
        )
        .await;
    assert!(
        session["capabilities"]["urn:ietf:params:jmap:quota"].is_object(),
        "{session}"
    );
    assert_eq!(
        session["primaryAccounts"]["urn:ietf:params:jmap:quota"],
        json!(h.aid())
    );
    let (name, v) = h
        .quota_call("Quota/get", json!({"accountId": h.aid()}))
        .await;
    assert_eq!(name, "Quota/get", "{v}");
    assert_eq!(v["list"], json!([]));
    let (_, v) = h
        .quota_call(
            "Quota/get",
            json!({"accountId": h.aid(), "ids": ["storage"]}),
        )
        .await;
    assert_eq!(v["notFound"], json!(["storage"]));
    // Without the capability in `using`, the method is unknown (RFC 8620 §3.6.2).
    let (name, v) = h.call("Quota/get", json!({})).await;
    assert_eq!(
        (name.as_str(), v["type"].as_str()),
        ("error", Some("unknownMethod"))
    );
}

#[tokio::test]
async fn quota_reports_usage_changes_and_refuses_writes_past_the_limit() {
    let h = harness_with(JmapConfig {
        quota: QuotaPolicy {
            default_storage: Some(3000),
        },
        ..JmapConfig::default()
    })
    .await;
    let (_, before) = h
        .quota_call("Quota/get", json!({"accountId": h.aid()}))
        .await;
    let q = &before["list"][0];
    assert_eq!(q["id"], json!("storage"));
    assert_eq!(q["resourceType"], json!("octets"));
    assert_eq!(q["scope"], json!("account"));
    assert_eq!(q["types"], json!(["Mail"]));
    assert_eq!(q["used"], json!(0));
    assert_eq!(q["hardLimit"], json!(3000));
    let raw = message("first", &"x".repeat(1000));
    h.deliver(h.alice, &raw).await;
    let (_, after) = h
        .quota_call(
            "Quota/get",
            json!({"accountId": h.aid(), "properties": ["used"]}),
        )
        .await;
    let used = after["list"][0]["used"].as_u64().expect("used");
    assert_eq!(used, raw.len() as u64);
    assert_eq!(
        after["list"][0].as_object().map(|o| o.len()),
        Some(2),
        "id and used only: {after}"
    );
    // Quota/changes: the figure changed → updated, with only `used` changed.
    let (_, ch) = h
        .quota_call(
            "Quota/changes",
            json!({"accountId": h.aid(), "sinceState": before["state"]}),
        )
        .await;
    assert_eq!(ch["updated"], json!(["storage"]), "{ch}");
    assert_eq!(ch["updatedProperties"], json!(["used"]));
    assert_eq!(ch["newState"], after["state"]);
    let (_, ch) = h
        .quota_call(
            "Quota/changes",
            json!({"accountId": h.aid(), "sinceState": after["state"]}),
        )
        .await;
    assert_eq!(
        (ch["created"].clone(), ch["updated"].clone()),
        (json!([]), json!([]))
    );
    let (name, bad) = h
        .quota_call(
            "Quota/changes",
            json!({"accountId": h.aid(), "sinceState": "nonsense"}),
        )
        .await;
    assert_eq!(
        (name.as_str(), bad["type"].as_str()),
        ("error", Some("cannotCalculateChanges"))
    );
    // Quota/query with the RFC's filters.
    let (_, found) = h
        .quota_call(
            "Quota/query",
            json!({"accountId": h.aid(), "filter": {"resourceType": "octets", "type": "Mail"}, "calculateTotal": true}),
        )
        .await;
    assert_eq!(
        (found["ids"].clone(), found["total"].clone()),
        (json!(["storage"]), json!(1))
    );
    let (_, none) = h
        .quota_call(
            "Quota/query",
            json!({"accountId": h.aid(), "filter": {"resourceType": "count"}}),
        )
        .await;
    assert_eq!(none["ids"], json!([]));
    // A new email that would pass 3000 octets: overQuota, nothing stored.
    let inbox = h.mailbox_id(h.alice, Role::Inbox).await;
    let v = h
        .ok(
            "Email/set",
            json!({"create": {"big": {"mailboxIds": {inbox.clone(): true}, "subject": "big",
                "bodyValues": {"b": {"value": "y".repeat(2500)}}, "textBody": [{"partId": "b", "type": "text/plain"}]}}}),
        )
        .await;
    assert_eq!(v["notCreated"]["big"]["type"], json!("overQuota"), "{v}");
    let v = h
        .ok(
            "Email/set",
            json!({"create": {"small": {"mailboxIds": {inbox.clone(): true}, "subject": "small",
                "bodyValues": {"b": {"value": "ok"}}, "textBody": [{"partId": "b", "type": "text/plain"}]}}}),
        )
        .await;
    assert!(v["created"]["small"]["id"].is_string(), "{v}");
    // The account's own setting wins: unlimited → no Quota object, the big one fits.
    bulwark_core::quota::set(h.store.as_ref(), h.alice, Setting::Unlimited)
        .await
        .unwrap();
    let (_, ch) = h
        .quota_call(
            "Quota/changes",
            json!({"accountId": h.aid(), "sinceState": after["state"]}),
        )
        .await;
    assert_eq!(ch["destroyed"], json!(["storage"]), "{ch}");
    let v = h
        .ok(
            "Email/set",
            json!({"create": {"big": {"mailboxIds": {inbox: true}, "subject": "big",
                "bodyValues": {"b": {"value": "y".repeat(2500)}}, "textBody": [{"partId": "b", "type": "text/plain"}]}}}),
        )
        .await;
    assert!(v["created"]["big"]["id"].is_string(), "{v}");
}
