//! RFC 8621 Mailbox / Email / Thread flows, and the shared change log with IMAP.

use super::*;
use bulwark_store::{KeywordOp, KeywordUpdate, Role};

#[tokio::test]
async fn mailbox_get_shows_roles_counts_and_rights() {
    let h = harness().await;
    h.deliver(h.alice, &message("one", "hi")).await;
    let v = h.ok("Mailbox/get", json!({})).await;
    let list = v["list"].as_array().unwrap();
    assert_eq!(list.len(), 6);
    let inbox = list.iter().find(|m| m["role"] == json!("inbox")).unwrap();
    assert_eq!(
        (
            inbox["totalEmails"].as_u64(),
            inbox["unreadEmails"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(inbox["myRights"]["mayDelete"], json!(false));
    assert_eq!(inbox["parentId"], Value::Null);
}

#[tokio::test]
async fn mailbox_set_creates_children_renames_and_destroys() {
    let h = harness().await;
    let v = h
        .api(json!([
            ["Mailbox/set", {"accountId": h.aid(), "create": {"p": {"name": "Projects"}, "c": {"name": "Bulwark", "parentId": "#p"}}}, "s1"],
            ["Mailbox/get", {"accountId": h.aid(), "ids": ["#c"]}, "g1"],
        ]))
        .await;
    let set = &v["methodResponses"][0][1];
    let parent = set["created"]["p"]["id"].as_str().unwrap().to_string();
    let child = set["created"]["c"]["id"].as_str().unwrap().to_string();
    let got = &v["methodResponses"][1][1]["list"][0];
    assert_eq!(
        (got["name"].as_str(), got["parentId"].as_str()),
        (Some("Bulwark"), Some(parent.as_str()))
    );
    // The store sees the full path.
    let names: Vec<String> = h
        .store
        .mailbox_list(h.alice)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(names.contains(&"Projects/Bulwark".to_string()), "{names:?}");
    // Rename the child and move it to the top level.
    let v = h
        .ok(
            "Mailbox/set",
            json!({"update": {child.clone(): {"name": "Top", "parentId": null}}}),
        )
        .await;
    assert!(v["updated"].get(&child).is_some(), "{v}");
    let names: Vec<String> = h
        .store
        .mailbox_list(h.alice)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(names.contains(&"Top".to_string()), "{names:?}");
    // Duplicate role and names with '/' are refused.
    let v = h
        .ok(
            "Mailbox/set",
            json!({"create": {"x": {"name": "A/B"}, "y": {"name": "Y", "role": "inbox"}}}),
        )
        .await;
    assert_eq!(v["notCreated"]["x"]["type"], json!("invalidProperties"));
    assert_eq!(v["notCreated"]["y"]["type"], json!("invalidProperties"));
    // A mailbox with mail is only destroyed with onDestroyRemoveEmails.
    let email = h.deliver(h.alice, &message("keep", "x")).await;
    h.ok(
        "Email/set",
        json!({"update": {email.clone(): {format!("mailboxIds/{child}"): true}}}),
    )
    .await;
    let v = h
        .ok("Mailbox/set", json!({"destroy": [child.clone()]}))
        .await;
    assert_eq!(v["notDestroyed"][&child]["type"], json!("mailboxHasEmail"));
    let v = h
        .ok("Mailbox/set", json!({"destroy": [parent.clone()]}))
        .await;
    assert!(
        v["destroyed"].as_array().unwrap().contains(&json!(parent)),
        "{v}"
    );
    let v = h
        .ok(
            "Mailbox/set",
            json!({"destroy": [child.clone()], "onDestroyRemoveEmails": true}),
        )
        .await;
    assert_eq!(v["destroyed"], json!([child]));
    // The email was also in INBOX, so it survives.
    let v = h
        .ok(
            "Email/get",
            json!({"ids": [email], "properties": ["mailboxIds"]}),
        )
        .await;
    assert_eq!(v["list"][0]["mailboxIds"].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn mailbox_changes_and_query_changes_follow_the_log() {
    let h = harness().await;
    let state = h.ok("Mailbox/get", json!({"ids": []})).await["state"]
        .as_str()
        .unwrap()
        .to_string();
    let q = h
        .ok("Mailbox/query", json!({"sort": [{"property": "name"}]}))
        .await;
    let created = h
        .ok("Mailbox/set", json!({"create": {"n": {"name": "News"}}}))
        .await["created"]["n"]["id"]
        .clone();
    let v = h.ok("Mailbox/changes", json!({"sinceState": state})).await;
    assert_eq!(v["created"], json!([created]));
    let v = h
        .ok(
            "Mailbox/queryChanges",
            json!({"sinceQueryState": q["queryState"], "sort": [{"property": "name"}]}),
        )
        .await;
    assert!(
        v["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == created),
        "{v}"
    );
}

#[tokio::test]
async fn email_query_filters_sorts_and_pages() {
    let h = harness().await;
    let a = h
        .deliver(h.alice, &message("Alpha report", "the quick brown fox"))
        .await;
    let b = h
        .deliver(h.alice, &message("Beta news", "lazy dog sleeps"))
        .await;
    let c = h
        .deliver(h.alice, &message("Gamma", "another fox appears"))
        .await;
    h.ok(
        "Email/set",
        json!({"update": {b.clone(): {"keywords/$flagged": true}}}),
    )
    .await;
    let inbox = h.mailbox_id(h.alice, Role::Inbox).await;
    let ids = |v: &Value| {
        v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let v = h.ok("Email/query", json!({"filter": {"inMailbox": inbox}, "sort": [{"property": "subject", "isAscending": true}], "calculateTotal": true})).await;
    assert_eq!(ids(&v), vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(v["total"], json!(3));
    let v = h
        .ok(
            "Email/query",
            json!({"filter": {"text": "fox"}, "sort": [{"property": "subject"}]}),
        )
        .await;
    assert_eq!(ids(&v), vec![a.clone(), c.clone()]);
    let v = h
        .ok("Email/query", json!({"filter": {"body": "lazy"}}))
        .await;
    assert_eq!(ids(&v), vec![b.clone()]);
    let v = h
        .ok("Email/query", json!({"filter": {"hasKeyword": "$flagged"}}))
        .await;
    assert_eq!(ids(&v), vec![b.clone()]);
    let v = h.ok("Email/query", json!({"filter": {"operator": "NOT", "conditions": [{"hasKeyword": "$flagged"}]}, "sort": [{"property": "subject"}]})).await;
    assert_eq!(ids(&v), vec![a.clone(), c.clone()]);
    let v = h.ok("Email/query", json!({"filter": {"operator": "OR", "conditions": [{"subject": "gamma"}, {"from": "nobody"}]}})).await;
    assert_eq!(ids(&v), vec![c.clone()]);
    let v = h.ok("Email/query", json!({"sort": [{"property": "hasKeyword", "keyword": "$flagged", "isAscending": false}, {"property": "subject"}], "position": 1, "limit": 1})).await;
    assert_eq!(
        (ids(&v), v["position"].as_u64()),
        (vec![a.clone()], Some(1))
    );
    let v = h
        .ok(
            "Email/query",
            json!({"sort": [{"property": "subject"}], "anchor": b, "anchorOffset": 1}),
        )
        .await;
    assert_eq!(ids(&v), vec![c.clone()]);
    let v = h
        .ok(
            "Email/query",
            json!({"filter": {"header": ["Subject", "beta"]}}),
        )
        .await;
    assert_eq!(ids(&v).len(), 1);
    let v = h
        .ok(
            "SearchSnippet/get",
            json!({"filter": {"text": "fox"}, "emailIds": [a]}),
        )
        .await;
    assert!(
        v["list"][0]["preview"]
            .as_str()
            .unwrap()
            .contains("<mark>fox</mark>"),
        "{v}"
    );
    // RFC 8621 §5.1: notFound is null when every email was found, else the missing ids.
    assert_eq!(v["notFound"], Value::Null, "{v}");
    let v = h
        .ok(
            "SearchSnippet/get",
            json!({"filter": {"text": "fox"}, "emailIds": [a, "Mnope"]}),
        )
        .await;
    assert_eq!(v["notFound"], json!(["Mnope"]), "{v}");
}

#[tokio::test]
async fn email_get_returns_body_values_and_header_forms() {
    let h = harness().await;
    let raw = "From: Bob <bob@example.test>\r\nTo: alice@example.test, Carol <carol@x.test>\r\nSubject: Parts\r\n\
Message-ID: <p1@example.test>\r\nX-Custom: hello world\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello text body\r\n\
--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"doc.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b1--\r\n";
    let id = h.deliver(h.alice, raw).await;
    let v = h
        .ok("Email/get", json!({"ids": [id], "properties": ["subject", "from", "to", "sentAt", "messageId", "textBody", "attachments",
            "bodyValues", "bodyStructure", "hasAttachment", "preview", "header:X-Custom:asText", "header:To:asAddresses:all", "threadId", "keywords", "mailboxIds"],
            "fetchTextBodyValues": true, "maxBodyValueBytes": 5}))
        .await;
    let e = &v["list"][0];
    assert_eq!(e["subject"], json!("Parts"));
    assert_eq!(
        e["from"],
        json!([{"name": "Bob", "email": "bob@example.test"}])
    );
    assert_eq!(
        e["to"][1],
        json!({"name": "Carol", "email": "carol@x.test"})
    );
    assert_eq!(e["sentAt"], json!("2026-11-23T10:00:00Z"));
    assert_eq!(e["messageId"], json!(["p1@example.test"]));
    assert_eq!(e["header:X-Custom:asText"], json!("hello world"));
    assert_eq!(e["header:To:asAddresses:all"].as_array().unwrap().len(), 1);
    assert_eq!(e["hasAttachment"], json!(true));
    assert_eq!(e["keywords"], json!({}));
    let text_part = e["textBody"][0]["partId"].as_str().unwrap();
    assert_eq!(
        e["bodyValues"][text_part],
        json!({"value": "Hello", "isEncodingProblem": false, "isTruncated": true})
    );
    let att = &e["attachments"][0];
    assert_eq!(
        (att["name"].as_str(), att["type"].as_str()),
        (Some("doc.pdf"), Some("application/pdf"))
    );
    assert_eq!(e["bodyStructure"]["type"], json!("multipart/mixed"));
    assert_eq!(e["bodyStructure"]["subParts"].as_array().unwrap().len(), 2);
    // The attachment blob downloads decoded.
    let blob = att["blobId"].as_str().unwrap();
    let (status, _, body) = h
        .raw(
            "GET",
            &format!("/jmap/download/{}/{blob}/doc.pdf", h.aid()),
            Some(&h.bearer()),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!("%PDF-"));
    let v = h.ok("Thread/get", json!({"ids": [e["threadId"]]})).await;
    assert_eq!(v["list"][0]["emailIds"], json!([id]));
}

#[tokio::test]
async fn keyword_change_through_the_store_shows_in_email_changes() {
    let h = harness().await;
    let id = h.deliver(h.alice, &message("flag me", "x")).await;
    let state = h.ok("Email/get", json!({"ids": []})).await["state"]
        .as_str()
        .unwrap()
        .to_string();
    // What IMAP STORE +FLAGS (\Seen) does.
    let eid = crate::ids::parse_email(&id).unwrap();
    h.store
        .email_set_keywords(
            h.alice,
            vec![KeywordUpdate {
                email: eid,
                op: KeywordOp::Add,
                keywords: vec!["$seen".into()],
                unchanged_since: None,
            }],
        )
        .await
        .unwrap();
    let v = h.ok("Email/changes", json!({"sinceState": state})).await;
    assert_eq!(v["updated"], json!([id]));
    assert_ne!(v["newState"], json!(state));
    let v = h
        .ok(
            "Email/get",
            json!({"ids": [id], "properties": ["keywords"]}),
        )
        .await;
    assert_eq!(v["list"][0]["keywords"], json!({"$seen": true}));
    // Only the unread counts changed (RFC 8621 §2.2).
    let v = h.ok("Mailbox/changes", json!({"sinceState": state})).await;
    assert_eq!(
        v["updatedProperties"],
        json!([
            "totalEmails",
            "unreadEmails",
            "totalThreads",
            "unreadThreads"
        ])
    );
}

#[tokio::test]
async fn email_set_patches_keywords_and_mailboxes_and_checks_state() {
    let h = harness().await;
    let id = h.deliver(h.alice, &message("move me", "x")).await;
    let archive = h.mailbox_id(h.alice, Role::Archive).await;
    let inbox = h.mailbox_id(h.alice, Role::Inbox).await;
    let state = h.ok("Email/get", json!({"ids": []})).await["state"].clone();
    let v = h.ok("Email/set", json!({"ifInState": state, "update": {id.clone(): {
        "keywords/$seen": true, "keywords/$flagged": true, format!("mailboxIds/{archive}"): true, format!("mailboxIds/{inbox}"): null}}})).await;
    assert!(v["updated"].get(&id).is_some(), "{v}");
    let v = h
        .ok(
            "Email/get",
            json!({"ids": [id], "properties": ["keywords", "mailboxIds"]}),
        )
        .await;
    assert_eq!(
        v["list"][0]["keywords"],
        json!({"$seen": true, "$flagged": true})
    );
    assert_eq!(v["list"][0]["mailboxIds"], json!({archive.clone(): true}));
    let v = h
        .ok(
            "Email/set",
            json!({"update": {id.clone(): {"keywords": {"$answered": true}, "subject": "nope"}}}),
        )
        .await;
    assert_eq!(v["notUpdated"][&id]["type"], json!("invalidProperties"));
    let v = h
        .ok(
            "Email/set",
            json!({"update": {id.clone(): {"mailboxIds": {}}}}),
        )
        .await;
    assert_eq!(v["notUpdated"][&id]["type"], json!("invalidProperties"));
    let (n, v) = h
        .call("Email/set", json!({"ifInState": state, "destroy": [id]}))
        .await;
    assert_eq!(
        (n.as_str(), v["type"].as_str()),
        ("error", Some("stateMismatch"))
    );
    let v = h
        .ok("Email/set", json!({"destroy": [id.clone(), "E999999"]}))
        .await;
    assert_eq!(v["destroyed"], json!([id]));
    assert_eq!(v["notDestroyed"]["E999999"]["type"], json!("notFound"));
}

#[tokio::test]
async fn email_set_create_builds_a_message_from_parts() {
    let h = harness().await;
    let drafts = h.mailbox_id(h.alice, Role::Drafts).await;
    let (_, _, up) = h
        .raw(
            "POST",
            &format!("/jmap/upload/{}/", h.aid()),
            Some(&h.bearer()),
            "image/png",
            b"\x89PNG fake".to_vec(),
        )
        .await;
    let v = h
        .api(json!([
            ["Email/set", {"accountId": h.aid(), "create": {"d": {
                "mailboxIds": {drafts.clone(): true}, "keywords": {"$draft": true},
                "from": [{"name": "Alice", "email": "alice@example.test"}], "to": [{"email": "bob@example.test"}],
                "subject": "Draft here", "header:X-Mailer:asText": "bulwark-test",
                "textBody": [{"partId": "t", "type": "text/plain"}], "htmlBody": [{"partId": "h", "type": "text/html"}],
                "attachments": [{"blobId": up["blobId"], "type": "image/png", "name": "pic.png"}],
                "bodyValues": {"t": {"value": "plain words"}, "h": {"value": "<p>html words</p>"}}}}}, "s"],
            ["Email/get", {"accountId": h.aid(), "ids": ["#d"], "properties": ["subject", "keywords", "to", "attachments", "bodyValues", "header:X-Mailer:asText"], "fetchAllBodyValues": true}, "g"],
        ]))
        .await;
    let e = &v["methodResponses"][1][1]["list"][0];
    assert_eq!(e["subject"], json!("Draft here"), "{v}");
    assert_eq!(e["keywords"], json!({"$draft": true}));
    assert_eq!(
        e["to"],
        json!([{"name": null, "email": "bob@example.test"}])
    );
    assert_eq!(e["header:X-Mailer:asText"], json!("bulwark-test"));
    assert_eq!(e["attachments"][0]["name"], json!("pic.png"));
    let values: Vec<String> = e["bodyValues"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v["value"].as_str().unwrap().trim().to_string())
        .collect();
    assert!(
        values.contains(&"plain words".to_string())
            && values.contains(&"<p>html words</p>".to_string()),
        "{values:?}"
    );
    // Missing mailboxIds or a missing blob are per-object errors.
    let v = h
        .ok(
            "Email/set",
            json!({"create": {"a": {"subject": "x"}, "b": {"mailboxIds": {drafts: true},
        "attachments": [{"blobId": "0".repeat(64), "type": "a/b"}]}}}),
        )
        .await;
    assert_eq!(v["notCreated"]["a"]["type"], json!("invalidProperties"));
    assert_eq!(v["notCreated"]["b"]["type"], json!("blobNotFound"));
}

#[tokio::test]
async fn email_import_and_parse_use_uploaded_blobs() {
    let h = harness().await;
    let raw = message("Imported", "from a blob");
    let (_, _, up) = h
        .raw(
            "POST",
            &format!("/jmap/upload/{}/", h.aid()),
            Some(&h.bearer()),
            "message/rfc822",
            raw.into_bytes(),
        )
        .await;
    let inbox = h.mailbox_id(h.alice, Role::Inbox).await;
    let v = h
        .ok(
            "Email/parse",
            json!({"blobIds": [up["blobId"], "nope"], "properties": ["subject", "id"]}),
        )
        .await;
    let blob = up["blobId"].as_str().unwrap();
    assert_eq!(v["parsed"][blob]["subject"], json!("Imported"));
    assert_eq!(v["parsed"][blob]["id"], Value::Null);
    assert_eq!(v["notFound"], json!(["nope"]));
    let v = h.ok("Email/import", json!({"emails": {"i": {"blobId": blob, "mailboxIds": {inbox: true}, "keywords": {"$seen": true},
        "receivedAt": "2026-01-02T03:04:05Z"}, "bad": {"blobId": "0".repeat(64), "mailboxIds": {}}}})).await;
    let id = v["created"]["i"]["id"].clone();
    // RFC 8621 §4.8: an unknown blob is an invalid blobId, not blobNotFound.
    assert_eq!(v["notCreated"]["bad"]["type"], json!("invalidProperties"));
    assert_eq!(v["notCreated"]["bad"]["properties"], json!(["blobId"]));
    let v = h
        .ok(
            "Email/get",
            json!({"ids": [id], "properties": ["receivedAt", "keywords", "subject"]}),
        )
        .await;
    assert_eq!(v["list"][0]["receivedAt"], json!("2026-01-02T03:04:05Z"));
    assert_eq!(v["list"][0]["subject"], json!("Imported"));
}

#[tokio::test]
async fn email_query_changes_report_new_mail() {
    let h = harness().await;
    h.deliver(h.alice, &message("first", "x")).await;
    let q = h.ok("Email/query", json!({"collapseThreads": true})).await;
    let second = h.deliver(h.alice, &message("second", "y")).await;
    let v = h
        .ok(
            "Email/queryChanges",
            json!({"sinceQueryState": q["queryState"], "collapseThreads": true}),
        )
        .await;
    assert_eq!(v["added"], json!([{"id": second, "index": 0}]));
    // New mail was in no old result: added, never removed (RFC 8620 §5.6).
    let v = h
        .ok(
            "Email/queryChanges",
            json!({"sinceQueryState": q["queryState"]}),
        )
        .await;
    assert_eq!(v["removed"], json!([]));
    h.deliver(h.alice, &message("third", "z")).await;
    let (n, v) = h
        .call(
            "Email/queryChanges",
            json!({"sinceQueryState": q["queryState"], "maxChanges": 1}),
        )
        .await;
    assert_eq!(
        (n.as_str(), v["type"].as_str()),
        ("error", Some("tooManyChanges"))
    );
}

/// Issue 13 item 21: a message with thousands of MIME parts shows at most MAX_BODY_PARTS of
/// them per body property, and says how many it left out.
#[tokio::test]
async fn email_get_caps_the_parts_of_a_message_with_thousands_of_them() {
    use crate::mail::body::MAX_BODY_PARTS;
    let h = harness().await;
    let parts = MAX_BODY_PARTS * 3;
    let mut raw = String::from(
        "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: parts\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    for i in 0..parts {
        raw.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    raw.push_str("--b--\r\n");
    let id = h.deliver(h.alice, &raw).await;
    let v = h
        .ok(
            "Email/get",
            json!({"ids": [id], "properties": ["bodyStructure", "textBody", "attachments", "bodyValues"], "fetchAllBodyValues": true}),
        )
        .await;
    let email = &v["list"][0];
    let sub = email["bodyStructure"]["subParts"].as_array().unwrap();
    // The root multipart is one of the parts shown.
    assert_eq!(sub.len(), MAX_BODY_PARTS - 1);
    assert!(email["textBody"].as_array().unwrap().len() <= MAX_BODY_PARTS);
    assert!(email["attachments"].as_array().unwrap().len() <= MAX_BODY_PARTS);
    assert!(email["bodyValues"].as_object().unwrap().len() <= MAX_BODY_PARTS);
    assert_eq!(email["partsOmitted"], json!(parts + 1 - MAX_BODY_PARTS));
    // A normal message has no marker.
    let small = h.deliver(h.alice, &message("small", "x")).await;
    let v = h
        .ok(
            "Email/get",
            json!({"ids": [small], "properties": ["bodyStructure", "textBody"]}),
        )
        .await;
    assert!(v["list"][0].get("partsOmitted").is_none(), "{v}");
}

/// Issue 14 JMAP item 3: sortOrder is stored — create with 42 gives 42, an update to 99 is
/// kept, shows in Mailbox/changes and orders Mailbox/query (RFC 8621 §2).
#[tokio::test]
async fn mailbox_sort_order_is_kept_and_reported() {
    let h = harness().await;
    let v = h
        .ok(
            "Mailbox/set",
            json!({"create": {"a": {"name": "Alpha", "sortOrder": 42}, "b": {"name": "Beta"}}}),
        )
        .await;
    let a = v["created"]["a"]["id"].as_str().unwrap().to_string();
    let b = v["created"]["b"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["created"]["a"]["sortOrder"], json!(42));
    let got = h.ok("Mailbox/get", json!({"ids": [a.clone()]})).await;
    assert_eq!(got["list"][0]["sortOrder"], json!(42));
    let state = got["state"].as_str().unwrap().to_string();

    let v = h
        .ok(
            "Mailbox/set",
            json!({"update": {a.clone(): {"sortOrder": 99}}}),
        )
        .await;
    assert!(v["updated"].get(&a).is_some(), "{v}");
    let got = h.ok("Mailbox/get", json!({"ids": [a.clone()]})).await;
    assert_eq!(got["list"][0]["sortOrder"], json!(99));
    let changes = h.ok("Mailbox/changes", json!({"sinceState": state})).await;
    assert_eq!(changes["updated"], json!([a.clone()]), "{changes}");

    let v = h
        .ok(
            "Mailbox/query",
            json!({"filter": {"role": null}, "sort": [{"property": "sortOrder"}]}),
        )
        .await;
    let order: Vec<&str> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let (pa, pb) = (
        order.iter().position(|i| *i == a).unwrap(),
        order.iter().position(|i| *i == b).unwrap(),
    );
    assert!(pb < pa, "Beta (10) before Alpha (99): {order:?}");

    let (_, v) = h
        .call("Mailbox/set", json!({"update": {b: {"sortOrder": -1}}}))
        .await;
    assert_eq!(
        v["notUpdated"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()["type"],
        json!("invalidProperties"),
        "{v}"
    );
}
