//! Identity, EmailSubmission (local delivery + outbound queue), VacationResponse.

use super::*;
use bulwark_store::Role;

async fn draft(h: &Harness, to: &str) -> String {
    let drafts = h.mailbox_id(h.alice, Role::Drafts).await;
    let v = h.ok("Email/set", json!({"create": {"d": {"mailboxIds": {drafts: true}, "keywords": {"$draft": true},
        "from": [{"email": "alice@example.test"}], "to": [{"email": to}], "bcc": [{"email": "bob@example.test"}],
        "subject": "Sent via JMAP", "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "hello"}}}}})).await;
    v["created"]["d"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn submission_delivers_locally_queues_remote_and_runs_on_success_update() {
    let h = harness().await;
    let identity = h.ok("Identity/get", json!({})).await["list"][0].clone();
    assert_eq!(identity["email"], json!("alice@example.test"));
    let email = draft(&h, "carol@remote.test").await;
    let drafts = h.mailbox_id(h.alice, Role::Drafts).await;
    let sent = h.mailbox_id(h.alice, Role::Sent).await;
    let v = h
        .api(json!([["EmailSubmission/set", {"accountId": h.aid(),
            "create": {"s": {"identityId": identity["id"], "emailId": email}},
            "onSuccessUpdateEmail": {"#s": {format!("mailboxIds/{drafts}"): null, format!("mailboxIds/{sent}"): true, "keywords/$draft": null}}}, "c"]]))
        .await;
    let r = &v["methodResponses"];
    assert_eq!(r[0][0], json!("EmailSubmission/set"), "{v}");
    assert_eq!(r[0][1]["created"]["s"]["undoStatus"], json!("final"), "{v}");
    assert_eq!(r[1][0], json!("Email/set"), "{v}");
    assert!(r[1][1]["updated"].get(&email).is_some(), "{v}");
    // Bob (Bcc) got it locally, without the Bcc header.
    let bob_mail = h.store.email_list(h.bob).await.unwrap();
    assert_eq!(bob_mail.len(), 1);
    let raw = h.store.blob_get(&bob_mail[0].blob).await.unwrap().unwrap();
    assert!(
        !String::from_utf8_lossy(&raw)
            .to_ascii_lowercase()
            .contains("bcc:")
    );
    // Carol is remote: queued for the outbound worker.
    let q = h.store.queue_list().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].recipients[0].address, "carol@remote.test");
    assert_eq!(q[0].sender, "alice@example.test");
    // The queue worker was woken (notify_one leaves a permit).
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(1), h.wakeup.notified())
            .await
            .is_ok()
    );
    let v = h
        .ok(
            "Email/get",
            json!({"ids": [email], "properties": ["mailboxIds", "keywords"]}),
        )
        .await;
    assert_eq!(v["list"][0]["mailboxIds"], json!({sent: true}));
    let v = h.ok("EmailSubmission/get", json!({})).await;
    assert_eq!(
        v["list"][0]["deliveryStatus"]["carol@remote.test"]["delivered"],
        json!("queued")
    );
}

#[tokio::test]
async fn submission_refuses_foreign_from_and_unknown_local_users() {
    let h = harness().await;
    let identity = h.ok("Identity/get", json!({})).await["list"][0]["id"].clone();
    let inbox = h.mailbox_id(h.alice, Role::Inbox).await;
    let forged = h.ok("Email/set", json!({"create": {"f": {"mailboxIds": {inbox: true}, "from": [{"email": "ceo@bank.test"}],
        "to": [{"email": "bob@example.test"}], "subject": "x"}}})).await["created"]["f"]["id"].clone();
    let unknown = draft(&h, "nobody@example.test").await;
    let v = h.ok("EmailSubmission/set", json!({"create": {
        "a": {"identityId": identity, "emailId": forged},
        "b": {"identityId": identity, "emailId": unknown},
        "c": {"identityId": identity, "emailId": unknown, "envelope": {"mailFrom": {"email": "ceo@bank.test"}, "rcptTo": [{"email": "bob@example.test"}]}},
    }})).await;
    assert_eq!(v["notCreated"]["a"]["type"], json!("forbiddenFrom"));
    assert_eq!(v["notCreated"]["b"]["type"], json!("invalidRecipients"));
    assert_eq!(v["notCreated"]["c"]["type"], json!("forbiddenMailFrom"));
    assert!(h.store.email_list(h.bob).await.unwrap().is_empty());
}

#[tokio::test]
async fn identity_set_updates_name_and_signature() {
    let h = harness().await;
    let id = h.ok("Identity/get", json!({})).await["list"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = h
        .ok(
            "Identity/set",
            json!({"update": {id.clone(): {"name": "Alice A.", "textSignature": "-- A"}}}),
        )
        .await;
    assert!(v["updated"].get(&id).is_some());
    let v = h.ok("Identity/get", json!({"ids": [id]})).await;
    assert_eq!(
        (
            v["list"][0]["name"].as_str(),
            v["list"][0]["textSignature"].as_str()
        ),
        (Some("Alice A."), Some("-- A"))
    );
    let v = h
        .ok(
            "Identity/set",
            json!({"create": {"x": {"email": "ceo@bank.test"}}, "destroy": [id]}),
        )
        .await;
    assert_eq!(v["notCreated"]["x"]["type"], json!("forbiddenFrom"));
    assert_eq!(v["notDestroyed"].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn vacation_response_replies_once_per_sender() {
    let h = harness().await;
    let v = h.ok("VacationResponse/set", json!({"update": {"singleton": {"isEnabled": true, "subject": "Away", "textBody": "Back Monday"}}})).await;
    assert!(v["updated"].get("singleton").is_some(), "{v}");
    let v = h.ok("VacationResponse/get", json!({})).await;
    assert_eq!(
        (
            v["list"][0]["isEnabled"].as_bool(),
            v["list"][0]["subject"].as_str()
        ),
        (Some(true), Some("Away"))
    );
    let incoming = format!(
        "Return-Path: <bob@example.test>\r\n{}",
        message("question", "are you there?")
    );
    let list = format!(
        "Return-Path: <bob@example.test>\r\nList-Id: <l.example.test>\r\n{}",
        message("newsletter", "x")
    );
    h.deliver(h.alice, &list).await;
    h.deliver(h.alice, &incoming).await;
    // The watcher answers asynchronously: poll Bob's mailbox with a deadline.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mail = h.store.email_list(h.bob).await.unwrap();
        if !mail.is_empty() {
            assert_eq!(mail.len(), 1);
            assert_eq!(mail[0].summary.subject, "Away");
            let raw = h.store.blob_get(&mail[0].blob).await.unwrap().unwrap();
            let text = String::from_utf8_lossy(&raw);
            assert!(text.contains("Auto-Submitted: auto-replied"));
            // Display names kept (issue 17 defect 2): ours in From, the sender's in To.
            assert!(
                text.contains("From: \"Test User\" <alice@example.test>"),
                "{text}"
            );
            assert!(text.contains("To: \"Bob\" <bob@example.test>"), "{text}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no vacation reply");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A second message from the same sender gets no second reply.
    let again = h
        .server
        .vacation()
        .reply_for(
            &h.server.pipeline(),
            h.alice,
            incoming.as_bytes(),
            now_unix(),
        )
        .await
        .unwrap();
    assert_eq!(again, None);
    let auto = format!(
        "Return-Path: <carol@x.test>\r\nAuto-Submitted: auto-replied\r\n{}",
        message("auto", "x")
    );
    assert_eq!(
        h.server
            .vacation()
            .reply_for(&h.server.pipeline(), h.alice, auto.as_bytes(), now_unix())
            .await
            .unwrap(),
        None
    );
    let fresh = format!(
        "Return-Path: <dave@remote.test>\r\n{}",
        message("hello", "x")
    );
    assert_eq!(
        h.server
            .vacation()
            .reply_for(&h.server.pipeline(), h.alice, fresh.as_bytes(), now_unix())
            .await
            .unwrap()
            .as_deref(),
        Some("dave@remote.test")
    );
    assert_eq!(h.store.queue_list().await.unwrap()[0].sender, "");
}

/// Issue 12: a client that lost the answer and sends the same EmailSubmission again gets the
/// first submission back — bob has one copy, the queue one entry; the record is in the
/// store, so a new server on the same store (a restart, another node) still has it.
#[tokio::test]
async fn a_retried_submission_sends_once_and_records_survive_a_restart() {
    let h = harness().await;
    let identity = h.ok("Identity/get", json!({})).await["list"][0]["id"].clone();
    let email = draft(&h, "carol@remote.test").await;
    let create = json!({"create": {"s": {"identityId": identity, "emailId": email}}});
    let first = h.ok("EmailSubmission/set", create.clone()).await;
    let id = first["created"]["s"]["id"].as_str().unwrap().to_string();
    let again = h.ok("EmailSubmission/set", create).await;
    assert_eq!(again["created"]["s"]["id"], json!(id), "{again}");
    assert_eq!(
        h.store.email_list(h.bob).await.unwrap().len(),
        1,
        "one local copy"
    );
    assert_eq!(
        h.store.queue_list().await.unwrap().len(),
        1,
        "one queue entry"
    );

    // A second server on the same store: the record and its state are there.
    let other = crate::JmapServer::new(
        crate::JmapConfig::default(),
        h.store.clone(),
        h.server.auth.clone(),
        h.server.signer.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let h2 = Harness {
        _dir: tempfile::tempdir().unwrap(),
        store: h.store.clone(),
        server: other,
        alice: h.alice,
        bob: h.bob,
        token: h.token.clone(),
        wakeup: h.wakeup.clone(),
    };
    let got = h2.ok("EmailSubmission/get", json!({"ids": [id]})).await;
    assert_eq!(got["list"][0]["emailId"], json!(email), "{got}");
    assert_eq!(got["list"][0]["undoStatus"], json!("final"));
    let state0 = "0";
    let changes = h2
        .ok("EmailSubmission/changes", json!({"sinceState": state0}))
        .await;
    assert_eq!(changes["created"], json!([id]), "{changes}");
    let d = h2.ok("EmailSubmission/set", json!({"destroy": [id]})).await;
    assert_eq!(d["destroyed"], json!([id]));
    let changes = h2
        .ok(
            "EmailSubmission/changes",
            json!({"sinceState": got["state"]}),
        )
        .await;
    assert_eq!(changes["destroyed"], json!([id]), "{changes}");
}
