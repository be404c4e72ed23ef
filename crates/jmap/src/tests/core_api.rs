//! RFC 8620 Core: session, request-level and method-level errors, back-references, limits.

use super::*;

#[tokio::test]
async fn session_resource_lists_capabilities_account_and_urls() {
    let h = harness().await;
    let (status, _, v) = h
        .raw(
            "GET",
            "/.well-known/jmap",
            Some(&h.bearer()),
            "application/json",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let core = &v["capabilities"]["urn:ietf:params:jmap:core"];
    assert_eq!(core["maxCallsInRequest"], json!(32));
    assert!(v["capabilities"]["urn:ietf:params:jmap:mail"].is_object());
    assert_eq!(
        v["primaryAccounts"]["urn:ietf:params:jmap:mail"],
        json!(h.aid())
    );
    assert_eq!(v["accounts"][h.aid()]["name"], json!("alice@example.test"));
    assert_eq!(v["apiUrl"], json!("http://127.0.0.1:8080/jmap/api"));
    assert!(
        v["downloadUrl"]
            .as_str()
            .unwrap()
            .contains("{accountId}/{blobId}/{name}?accept={type}")
    );
    assert!(v["state"].is_string());
}

#[tokio::test]
async fn missing_or_bad_credentials_get_401_with_challenge() {
    let h = harness().await;
    let (status, _, _) = h
        .raw("GET", "/.well-known/jmap", None, "application/json", vec![])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = h
        .raw(
            "POST",
            "/jmap/api",
            Some("Bearer garbage"),
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bad = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "alice@example.test:wrong"
        )
    );
    let (status, _, _) = h
        .raw(
            "GET",
            "/.well-known/jmap",
            Some(&bad),
            "application/json",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn basic_auth_with_password_works() {
    let h = harness().await;
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("alice@example.test:{PASSWORD}")
        )
    );
    let body = json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"hello": true}, "c1"]]});
    let (status, _, v) = h
        .raw(
            "POST",
            "/jmap/api",
            Some(&basic),
            "application/json",
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["methodResponses"][0],
        json!(["Core/echo", {"hello": true}, "c1"])
    );
}

async fn problem_type(h: &Harness, body: &[u8]) -> (StatusCode, String, Value) {
    h.raw(
        "POST",
        "/jmap/api",
        Some(&h.bearer()),
        "application/json",
        body.to_vec(),
    )
    .await
}

#[tokio::test]
async fn request_level_errors_are_problem_documents_never_500() {
    let h = harness().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"using\": [".to_vec(), "notJSON"),
        (b"\xff\xfe".to_vec(), "notJSON"),
        (b"[]".to_vec(), "notRequest"),
        (
            br#"{"using": "x", "methodCalls": []}"#.to_vec(),
            "notRequest",
        ),
        (
            br#"{"using": [], "methodCalls": {}}"#.to_vec(),
            "notRequest",
        ),
        (
            br#"{"using": [], "methodCalls": [["Core/echo", {}]]}"#.to_vec(),
            "notRequest",
        ),
        (
            br#"{"using": ["urn:example:nope"], "methodCalls": []}"#.to_vec(),
            "unknownCapability",
        ),
    ];
    for (body, want) in cases {
        let (status, ct, v) = problem_type(&h, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{want}: {v}");
        assert_eq!(ct, "application/problem+json");
        assert_eq!(
            v["type"],
            json!(format!("urn:ietf:params:jmap:error:{want}")),
            "{v}"
        );
    }
}

#[tokio::test]
async fn limits_are_enforced_with_the_limit_property() {
    let h = harness_with(crate::JmapConfig {
        max_size_request: 2000,
        max_calls_in_request: 3,
        max_objects_in_get: 2,
        ..Default::default()
    })
    .await;
    let calls: Vec<Value> = (0..4)
        .map(|i| json!(["Core/echo", {}, format!("c{i}")]))
        .collect();
    let body = json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": calls});
    let (status, _, v) = problem_type(&h, body.to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["limit"], json!("maxCallsInRequest"));
    let big = json!({"using": [], "methodCalls": [["Core/echo", {"x": "a".repeat(3000)}, "c"]]});
    let (_, _, v) = problem_type(&h, big.to_string().as_bytes()).await;
    assert_eq!(v["limit"], json!("maxSizeRequest"));
    let (name, v) = h
        .call("Email/get", json!({"ids": ["E1", "E2", "E3"]}))
        .await;
    assert_eq!(
        (name.as_str(), v["type"].as_str()),
        ("error", Some("requestTooLarge"))
    );
}

#[tokio::test]
async fn method_level_errors_have_rfc_types() {
    let h = harness().await;
    let cases = [
        ("Foo/bar", json!({}), "unknownMethod"),
        (
            "Mailbox/get",
            json!({"accountId": "A999"}),
            "accountNotFound",
        ),
        (
            "Mailbox/get",
            json!({"ids": "not-a-list"}),
            "invalidArguments",
        ),
        ("Email/query", json!({"limit": -1}), "invalidArguments"),
        (
            "Email/query",
            json!({"filter": {"bogus": 1}}),
            "unsupportedFilter",
        ),
        (
            "Email/query",
            json!({"sort": [{"property": "color"}]}),
            "unsupportedSort",
        ),
        ("Email/query", json!({"anchor": "E12345"}), "anchorNotFound"),
        (
            "Email/changes",
            json!({"sinceState": "not-a-state"}),
            "cannotCalculateChanges",
        ),
        (
            "Email/changes",
            json!({"sinceState": "999999"}),
            "cannotCalculateChanges",
        ),
        (
            "Email/set",
            json!({"ifInState": "12345678"}),
            "stateMismatch",
        ),
        (
            "Email/copy",
            json!({"fromAccountId": "A1"}),
            "invalidArguments",
        ),
    ];
    for (name, mut args, want) in cases {
        if args.get("accountId").is_none() {
            args["accountId"] = json!(h.aid());
        }
        let (n, v) = h.call(name, args).await;
        assert_eq!(n, "error", "{name}: {v}");
        assert_eq!(v["type"], json!(want), "{name}: {v}");
    }
}

#[tokio::test]
async fn methods_need_their_capability_in_using() {
    let h = harness().await;
    let body = json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Mailbox/get", {"accountId": h.aid()}, "c"]]});
    let (_, _, v) = problem_type(&h, body.to_string().as_bytes()).await;
    assert_eq!(v["methodResponses"][0][1]["type"], json!("unknownMethod"));
}

#[tokio::test]
async fn back_references_resolve_and_bad_ones_are_invalid_result_reference() {
    let h = harness().await;
    let v = h
        .api(json!([
            ["Mailbox/query", {"accountId": h.aid(), "filter": {"role": "inbox"}}, "q"],
            ["Mailbox/get", {"accountId": h.aid(), "#ids": {"resultOf": "q", "name": "Mailbox/query", "path": "/ids"}, "properties": ["name", "role"]}, "g"],
            ["Mailbox/get", {"accountId": h.aid(), "#ids": {"resultOf": "q", "name": "Mailbox/get", "path": "/ids"}}, "bad"],
            ["Mailbox/get", {"accountId": h.aid(), "#ids": {"resultOf": "q", "name": "Mailbox/query", "path": "/nope"}}, "bad2"],
        ]))
        .await;
    let r = &v["methodResponses"];
    assert_eq!(r[1][1]["list"][0]["role"], json!("inbox"));
    assert_eq!(r[1][1]["list"][0]["name"], json!("INBOX"));
    assert_eq!(r[2][1]["type"], json!("invalidResultReference"));
    assert_eq!(r[3][1]["type"], json!("invalidResultReference"));
    assert!(v["sessionState"].is_string());
}

#[tokio::test]
async fn upload_then_download_round_trips_bytes() {
    let h = harness().await;
    let uri = format!("/jmap/upload/{}/", h.aid());
    let (status, _, v) = h
        .raw(
            "POST",
            &uri,
            Some(&h.bearer()),
            "text/plain",
            b"hello blob".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["size"], json!(10));
    let blob = v["blobId"].as_str().unwrap().to_string();
    let (status, ct, v) = h
        .raw(
            "GET",
            &format!("/jmap/download/{}/{blob}/x.txt?accept=text/plain", h.aid()),
            Some(&h.bearer()),
            "",
            vec![],
        )
        .await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "text/plain"));
    assert_eq!(v, json!("hello blob"));
    let (status, _, _) = h
        .raw(
            "GET",
            &format!("/jmap/download/{}/{}/x", h.aid(), "0".repeat(64)),
            Some(&h.bearer()),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = h
        .raw(
            "POST",
            "/jmap/upload/A999/",
            Some(&h.bearer()),
            "text/plain",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn oversize_upload_is_refused_with_limit() {
    let h = harness_with(crate::JmapConfig {
        max_size_upload: 100,
        ..Default::default()
    })
    .await;
    let (status, _, v) = h
        .raw(
            "POST",
            &format!("/jmap/upload/{}/", h.aid()),
            Some(&h.bearer()),
            "text/plain",
            vec![b'x'; 500],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["limit"], json!("maxSizeUpload"));
}

/// Random method calls with wrong argument types never produce a 500 or a panic.
#[tokio::test]
async fn wrong_argument_types_never_fail_the_request() {
    let h = harness().await;
    let methods = [
        "Mailbox/get",
        "Mailbox/set",
        "Mailbox/query",
        "Email/get",
        "Email/query",
        "Email/set",
        "Email/import",
        "Email/parse",
        "Thread/get",
        "SearchSnippet/get",
        "Identity/get",
        "EmailSubmission/set",
        "VacationResponse/set",
        "Mailbox/changes",
        "Email/queryChanges",
        "Mailbox/queryChanges",
        "Thread/changes",
    ];
    let values = [
        json!(null),
        json!(1),
        json!("x"),
        json!([1, "a"]),
        json!({"a": {"b": []}}),
        json!(true),
        json!(-5),
    ];
    let keys = [
        "ids",
        "properties",
        "filter",
        "sort",
        "create",
        "update",
        "destroy",
        "emails",
        "blobIds",
        "emailIds",
        "sinceState",
        "sinceQueryState",
        "position",
        "limit",
        "anchor",
        "maxChanges",
        "onDestroyRemoveEmails",
    ];
    let mut n = 0usize;
    for m in methods {
        for (ki, k) in keys.iter().enumerate() {
            let v = &values[(ki + n) % values.len()];
            n += 1;
            let body =
                json!({"using": USING, "methodCalls": [[m, {"accountId": h.aid(), *k: v}, "c"]]});
            let (status, _, resp) = h
                .raw(
                    "POST",
                    "/jmap/api",
                    Some(&h.bearer()),
                    "application/json",
                    body.to_string().into_bytes(),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{m} {k}={v}: {resp}");
            assert!(
                resp["methodResponses"][0][1].is_object(),
                "{m} {k}={v}: {resp}"
            );
        }
    }
}

/// Issue 13 item 1: each `Core/echo` that references the previous result twice doubles it;
/// 19 such calls built a 536 MB response. The response now stops at maxSizeResponse and the
/// calls past it get `requestTooLarge`.
#[tokio::test]
async fn doubling_back_references_stop_at_max_size_response() {
    const MAX: usize = 256 * 1024;
    let h = harness_with(crate::JmapConfig {
        max_size_response: MAX,
        ..Default::default()
    })
    .await;
    let mut calls = vec![json!(["Core/echo", {"s": "a".repeat(1000)}, "c0"])];
    for i in 1..16 {
        let prev = format!("c{}", i - 1);
        let r = json!({"resultOf": prev, "name": "Core/echo", "path": ""});
        calls.push(json!(["Core/echo", {"#l": r, "#r": r}, format!("c{i}")]));
    }
    let v = h.api(json!(calls)).await;
    let size = v.to_string().len();
    assert!(size <= MAX + 4096, "the response is {size} bytes");
    let r = v["methodResponses"].as_array().unwrap();
    assert_eq!(r.len(), 16);
    // 1 KB doubled 7 times is 128 KB (fits), the 8th doubling does not.
    assert_eq!(r[7][0], json!("Core/echo"), "{}", r[7][1]);
    assert_eq!(r[8][0], json!("error"));
    assert_eq!(r[8][1]["type"], json!("requestTooLarge"));
    // Later calls reference an error response: invalid, and small.
    assert_eq!(r[9][1]["type"], json!("invalidResultReference"));
    let (_, _, session) = h
        .raw("GET", "/jmap/session", Some(&h.bearer()), "", vec![])
        .await;
    assert_eq!(
        session["capabilities"]["urn:ietf:params:jmap:core"]["maxSizeResponse"],
        json!(MAX)
    );
}

/// One request through the router; returns status and headers (the body is dropped).
async fn head_of(h: &Harness, uri: &str) -> (StatusCode, axum::http::HeaderMap) {
    let req = Request::builder()
        .method("GET")
        .uri(uri)
        .header(header::AUTHORIZATION, h.bearer())
        .body(Body::empty())
        .unwrap();
    let resp = h.server.clone().router().oneshot(req).await.unwrap();
    (resp.status(), resp.headers().clone())
}

/// Issue 13 item 18: every /jmap response forbids sniffing, framing and active content;
/// a download asked for as an active type (HTML, SVG, script) comes as octet-stream.
#[tokio::test]
async fn jmap_responses_carry_security_headers_and_downloads_are_never_active() {
    let h = harness().await;
    let uri = format!("/jmap/upload/{}/", h.aid());
    let (status, _, v) = h
        .raw(
            "POST",
            &uri,
            Some(&h.bearer()),
            "text/html",
            b"<script>alert(1)</script>".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let blob = v["blobId"].as_str().unwrap().to_string();
    let check = |headers: &axum::http::HeaderMap| {
        let get = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(get("x-content-type-options"), "nosniff");
        assert_eq!(get("x-frame-options"), "DENY");
        assert!(
            get("content-security-policy").contains("frame-ancestors 'none'"),
            "{headers:?}"
        );
    };
    let (status, headers) = head_of(&h, "/jmap/session").await;
    assert_eq!(status, StatusCode::OK);
    check(&headers);
    for accept in [
        "text/html",
        "image/svg%2Bxml",
        "application/xhtml%2Bxml",
        "text/javascript",
    ] {
        let (status, headers) = head_of(
            &h,
            &format!("/jmap/download/{}/{blob}/x.html?accept={accept}", h.aid()),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        check(&headers);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/octet-stream",
            "{accept}"
        );
        assert!(
            headers[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .starts_with("attachment"),
        );
    }
    let (_, headers) = head_of(
        &h,
        &format!("/jmap/download/{}/{blob}/x.png?accept=image/png", h.aid()),
    )
    .await;
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    check(&headers);
}

/// Issue 13 item 20: maxConcurrentUpload (advertised 4) is enforced per account: while four
/// uploads are running the fifth gets 429 with the `limit` problem; other accounts are not
/// affected.
#[tokio::test]
async fn fifth_concurrent_upload_is_refused_with_limit() {
    let h = harness().await;
    let max = h.server.cfg.max_concurrent_upload;
    let uri = format!("/jmap/upload/{}/", h.aid());
    let mut senders = Vec::new();
    let mut running = Vec::new();
    for _ in 0..max {
        // A body that never ends keeps the upload running.
        let (tx, rx) =
            futures::channel::mpsc::unbounded::<Result<axum::body::Bytes, std::io::Error>>();
        senders.push(tx);
        let req = Request::builder()
            .method("POST")
            .uri(&uri)
            .header(header::AUTHORIZATION, h.bearer())
            .body(Body::from_stream(rx))
            .unwrap();
        running.push(tokio::spawn(h.server.clone().router().oneshot(req)));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while h
        .server
        .uploads_in_flight
        .lock()
        .unwrap()
        .get(&h.alice)
        .copied()
        .unwrap_or(0)
        < max
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "uploads did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, _, v) = h
        .raw("POST", &uri, Some(&h.bearer()), "text/plain", b"x".to_vec())
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["limit"], json!("maxConcurrentUpload"));
    // Bob uploads meanwhile.
    let bob = h.server.signer.issue(
        bulwark_auth::token::TokenKind::Access,
        h.bob,
        "bob-session",
        3600,
        now_unix(),
    );
    let (status, _, _) = h
        .raw(
            "POST",
            &format!("/jmap/upload/{}/", crate::ids::account_id(h.bob)),
            Some(&format!("Bearer {bob}")),
            "text/plain",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // One upload finishing frees a slot.
    senders.remove(0);
    let first = running.remove(0).await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let (status, _, _) = h
        .raw("POST", &uri, Some(&h.bearer()), "text/plain", b"y".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// Issue 12/13: blobs belong to the accounts that reference them. Bob, signed in, gets for
/// alice's message and attachment exactly the answers of a blob that does not exist — over
/// download, Email/parse, Email/import and as an attachment of a new email — and he cannot
/// tell by uploading whether alice holds some content.
#[tokio::test]
async fn blobs_of_another_account_are_not_found() {
    let h = harness().await;
    let raw = "From: Carol <carol@example.test>\r\nTo: alice@example.test\r\nSubject: secret\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nfor alice only\r\n--b\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF-secret\r\n--b--\r\n";
    let id = h.deliver(h.alice, raw).await;
    let got = h
        .ok(
            "Email/get",
            json!({ "ids": [id], "properties": ["blobId", "attachments"] }),
        )
        .await;
    let blob = got["list"][0]["blobId"].as_str().unwrap().to_string();
    let part = got["list"][0]["attachments"][0]["blobId"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_token =
        h.server
            .signer
            .issue(TokenKind::Access, h.bob, "bob-session", 3600, now_unix());
    let bob_auth = format!("Bearer {bob_token}");
    let bob_aid = crate::ids::account_id(h.bob);
    for b in [&blob, &part] {
        // Alice reads both.
        let (status, _, _) = h
            .raw(
                "GET",
                &format!("/jmap/download/{}/{b}/x", h.aid()),
                Some(&h.bearer()),
                "",
                vec![],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        // Bob, through his own account path: the same 404 as for nothing at all.
        let (status, _, _) = h
            .raw(
                "GET",
                &format!("/jmap/download/{bob_aid}/{b}/x"),
                Some(&bob_auth),
                "",
                vec![],
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "bob downloads {b}");
    }
    let inbox = h.mailbox_id(h.bob, bulwark_store::Role::Inbox).await;
    let body = json!({ "using": USING, "methodCalls": [
        ["Email/parse", { "accountId": bob_aid, "blobIds": [blob] }, "p"],
        ["Email/import", { "accountId": bob_aid, "emails": { "k": {
            "blobId": blob, "mailboxIds": { inbox.clone(): true } } } }, "i"],
        ["Email/set", { "accountId": bob_aid, "create": { "n": {
            "mailboxIds": { inbox: true }, "subject": "stolen",
            "bodyStructure": { "type": "multipart/mixed", "subParts": [
                { "partId": "t", "type": "text/plain" },
                { "blobId": part, "type": "application/pdf" } ] },
            "bodyValues": { "t": { "value": "see attached" } } } } }, "s"]
    ]});
    let (status, _, v) = h
        .raw(
            "POST",
            "/jmap/api",
            Some(&bob_auth),
            "application/json",
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let r = &v["methodResponses"];
    assert_eq!(r[0][1]["notFound"], json!([blob]), "{v}");
    assert_eq!(
        r[1][1]["notCreated"]["k"]["type"],
        json!("invalidProperties"),
        "{v}"
    );
    assert_eq!(r[1][1]["notCreated"]["k"]["properties"], json!(["blobId"]));
    assert_eq!(
        r[2][1]["notCreated"]["n"]["type"],
        json!("blobNotFound"),
        "{v}"
    );

    // Bob uploading the same bytes owns his copy under his own id (and learns nothing: blob
    // ids are per account and do not reveal the content hash).
    let (status, _, up) = h
        .raw(
            "POST",
            &format!("/jmap/upload/{bob_aid}/"),
            Some(&bob_auth),
            "message/rfc822",
            raw.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let his = up["blobId"].as_str().unwrap().to_string();
    assert_ne!(
        his, blob,
        "the same content has another id in another account"
    );
    assert!(!blob.contains(&bulwark_store::BlobHash::of(raw.as_bytes()).0));
    for (id, want) in [(&his, StatusCode::OK), (&blob, StatusCode::NOT_FOUND)] {
        let (status, _, _) = h
            .raw(
                "GET",
                &format!("/jmap/download/{bob_aid}/{id}/x"),
                Some(&bob_auth),
                "",
                vec![],
            )
            .await;
        assert_eq!(status, want, "bob downloads {id}");
    }
}

/// Issue 14 JMAP item 1: only `application/json` reaches the API (RFC 8620 §3.6.1); a form
/// POST with cached credentials (a CSRF path) gets `notJSON`, whatever it carries.
#[tokio::test]
async fn api_requests_must_be_application_json() {
    let h = harness().await;
    let body = json!({"using": USING, "methodCalls": [["Core/echo", {"x": 1}, "c"]]}).to_string();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "",
    ] {
        let (status, _, v) = h
            .raw(
                "POST",
                "/jmap/api",
                Some(&h.bearer()),
                ct,
                body.clone().into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ct:?}: {v}");
        assert_eq!(
            v["type"],
            json!("urn:ietf:params:jmap:error:notJSON"),
            "{ct:?}"
        );
    }
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
    ] {
        let (status, _, v) = h
            .raw(
                "POST",
                "/jmap/api",
                Some(&h.bearer()),
                ct,
                body.clone().into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{ct:?}: {v}");
    }
}
