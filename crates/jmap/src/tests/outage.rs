//! A store outage seen through the router: a clean HTTP 503 with `Retry-After`, no hang.

use super::*;

#[tokio::test]
async fn api_requests_during_a_store_outage_get_503_with_retry_after() {
    let h = harness().await;
    let (store, outage) = h.store.with_outage();
    let dyn_store: Arc<dyn Store> = store.clone();
    let auth = Arc::new(Authenticator::new(
        dyn_store.clone(),
        ThrottleConfig::default(),
    ));
    let signer = Arc::new(TokenSigner::ephemeral());
    let token = signer.issue(TokenKind::Access, h.alice, "outage", 3600, now_unix());
    let server = JmapServer::new(
        JmapConfig::default(),
        dyn_store,
        auth,
        signer,
        h.wakeup.clone(),
    );
    outage.set_down(true);
    let body = json!({
        "using": USING,
        "methodCalls": [["Mailbox/get", { "accountId": h.aid() }, "c1"]],
    });
    let request = Request::builder()
        .method("POST")
        .uri("/jmap/api")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let deadline = std::time::Duration::from_secs(10);
    let response = tokio::time::timeout(deadline, server.clone().router().oneshot(request))
        .await
        .expect("answered without hanging")
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    assert_eq!(retry_after, Some(crate::http::RETRY_AFTER_SECS));

    // Back up: the same request succeeds.
    outage.set_down(false);
    let request = Request::builder()
        .method("POST")
        .uri("/jmap/api")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = server.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
