//! Router tests: real store (SQLite in a temp dir), real signer, requests through `oneshot`.

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bulwark_auth::{ThrottleConfig, hash_password, totp};
use bulwark_store::{NewAccount, now_unix};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    signer: Arc<TokenSigner>,
    app: Router,
}

async fn fixture() -> Fixture {
    fixture_with(ThrottleConfig::default()).await
}

async fn fixture_with(throttle: ThrottleConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = bulwark_store::sqlite::SqliteStore::open(dir.path()).unwrap();
    store.domain_add("example.test").await.unwrap();
    store
        .account_create(NewAccount {
            address: "alice@example.test".into(),
            display_name: "Alice".into(),
            password_hash: hash_password("correct horse").unwrap(),
        })
        .await
        .unwrap();
    let auth = Arc::new(Authenticator::new(store.clone(), throttle));
    let signer = Arc::new(TokenSigner::ephemeral());
    let app = router(store.clone(), auth, signer.clone());
    Fixture {
        _dir: dir,
        store,
        signer,
        app,
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, bytes) = raw(app, method, uri, token, body).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn raw(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = body
        .map(|b| Body::from(b.to_string()))
        .unwrap_or(Body::empty());
    let res = app
        .clone()
        .oneshot(
            req.header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, bytes)
}

async fn sign_in(app: &Router) -> Value {
    let (status, body) = call(
        app,
        "POST",
        "/api/account/login",
        None,
        Some(json!({ "username": "Alice@example.test", "password": "correct horse" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn password_login_issues_tokens_that_refresh_and_authorise() {
    let f = fixture().await;
    let (status, body) = call(
        &f.app,
        "POST",
        "/api/account/login",
        None,
        Some(json!({ "username": "alice@example.test", "password": "wrong" })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let tokens = sign_in(&f.app).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (status, me) = call(&f.app, "GET", "/api/account/me", Some(access), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["address"], "alice@example.test");
    assert_eq!(me["totp"]["enabled"], false);
    let (status, refreshed) = call(
        &f.app,
        "POST",
        "/api/account/refresh",
        None,
        Some(json!({ "refresh_token": tokens["refresh_token"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(refreshed["session_id"], tokens["session_id"]);
    // An access token is not a refresh token.
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/refresh",
        None,
        Some(json!({ "refresh_token": access })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&f.app, "GET", "/api/account/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn app_passwords_are_shown_once_listed_and_deleted() {
    let f = fixture().await;
    let t = sign_in(&f.app).await;
    let access = t["access_token"].as_str().unwrap();
    let (status, created) = call(
        &f.app,
        "POST",
        "/api/account/app-passwords",
        Some(access),
        Some(json!({ "name": "Thunderbird" })),
    )
    .await;
    assert_eq!(
        (status, created["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("password_required")),
        "creating an app password needs the account password"
    );
    let (status, created) = call(
        &f.app,
        "POST",
        "/api/account/app-passwords",
        Some(access),
        Some(json!({ "name": "Thunderbird", "password": "correct horse" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let password = created["password"].as_str().unwrap();
    assert!(password.len() >= 16);
    let (_, list) = call(
        &f.app,
        "GET",
        "/api/account/app-passwords",
        Some(access),
        None,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "Thunderbird");
    assert!(list[0].get("password").is_none() && !list.to_string().contains(password));
    // App passwords are for IMAP/SMTP: the web sign-in refuses them.
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/login",
        None,
        Some(json!({ "username": "alice@example.test", "password": password })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let uri = format!("/api/account/app-passwords/{}", created["id"]);
    assert_eq!(
        call(&f.app, "DELETE", &uri, Some(access), Some(json!({})))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &f.app,
            "DELETE",
            &uri,
            Some(access),
            Some(json!({ "password": "correct horse" }))
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, list) = call(
        &f.app,
        "GET",
        "/api/account/app-passwords",
        Some(access),
        None,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 0);
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/app-passwords",
        Some(access),
        Some(json!({ "name": " ", "password": "correct horse" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn revoked_session_tokens_stop_working_and_other_sessions_survive() {
    let f = fixture().await;
    let phone = sign_in(&f.app).await;
    let laptop = sign_in(&f.app).await;
    let laptop_access = laptop["access_token"].as_str().unwrap();
    let (_, list) = call(
        &f.app,
        "GET",
        "/api/account/sessions",
        Some(laptop_access),
        None,
    )
    .await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let uri = format!(
        "/api/account/sessions/{}",
        phone["session_id"].as_str().unwrap()
    );
    assert_eq!(
        call(&f.app, "DELETE", &uri, Some(laptop_access), None)
            .await
            .0,
        StatusCode::OK
    );
    let phone_access = phone["access_token"].as_str().unwrap();
    assert_eq!(
        call(&f.app, "GET", "/api/account/me", Some(phone_access), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/refresh",
        None,
        Some(json!({ "refresh_token": phone["refresh_token"] })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&f.app, "GET", "/api/account/me", Some(laptop_access), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &f.app,
            "DELETE",
            "/api/account/sessions/nope",
            Some(laptop_access),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn totp_enrolment_then_login_needs_the_code_or_a_recovery_code() {
    let f = fixture().await;
    let t = sign_in(&f.app).await;
    let access = t["access_token"].as_str().unwrap();
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/totp/enrol",
        Some(access),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "enrolment needs the password"
    );
    let (status, enrol) = call(
        &f.app,
        "POST",
        "/api/account/totp/enrol",
        Some(access),
        Some(json!({ "password": "correct horse" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        enrol["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Bulwark:alice@example.test?secret=")
    );
    assert!(
        enrol["qrDataUrl"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    let account = f
        .store
        .account_by_address("alice@example.test")
        .await
        .unwrap()
        .unwrap()
        .id;
    let state = totp::load(f.store.as_ref(), account)
        .await
        .unwrap()
        .unwrap();
    let now = now_unix() as u64;
    let (status, confirmed) = call(
        &f.app,
        "POST",
        "/api/account/totp/confirm",
        Some(access),
        Some(json!({ "code": state.code_at(now).unwrap() })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let recovery = confirmed["recoveryCodes"].as_array().unwrap();
    assert_eq!(recovery.len(), 10);
    let login = |totp: Option<String>| {
        let app = f.app.clone();
        async move {
            let mut body = json!({ "username": "alice@example.test", "password": "correct horse" });
            if let Some(code) = totp {
                body["totp"] = json!(code);
            }
            call(&app, "POST", "/api/account/login", None, Some(body)).await
        }
    };
    let (status, body) = login(None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("totp_required"))
    );
    let (status, body) = login(Some("000000".into())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_totp"))
    );
    let next = state.code_at(now + totp::STEP_SECS).unwrap();
    assert_eq!(login(Some(next)).await.0, StatusCode::OK);
    let code = recovery[0].as_str().unwrap().to_string();
    assert_eq!(login(Some(code.clone())).await.0, StatusCode::OK);
    assert_eq!(
        login(Some(code)).await.0,
        StatusCode::UNAUTHORIZED,
        "recovery codes are single-use"
    );
    // Disabling needs the password and the current second factor.
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/totp/disable",
        Some(access),
        Some(json!({ "password": "nope" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        &f.app,
        "POST",
        "/api/account/totp/disable",
        Some(access),
        Some(json!({ "password": "correct horse" })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("totp_required"))
    );
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/totp/disable",
        Some(access),
        Some(json!({ "password": "correct horse", "totp": recovery[1] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(login(None).await.0, StatusCode::OK);
}

/// Issue 13 item 6: a session opened with an app password (JMAP `/auth/token`) is for mail;
/// it cannot manage the account.
#[tokio::test]
async fn app_password_sessions_cannot_manage_the_account() {
    let f = fixture().await;
    let account = f
        .store
        .account_by_address("alice@example.test")
        .await
        .unwrap()
        .unwrap()
        .id;
    let grant = bulwark_auth::token::Grant {
        account,
        sid: "from-app".into(),
        scope: bulwark_auth::token::Scope::Mail,
        app: Some(1),
    };
    let mail = f.signer.issue_grant(
        bulwark_auth::token::TokenKind::Access,
        &grant,
        600,
        now_unix(),
    );
    for (method, uri, body) in [
        ("GET", "/api/account/me", None),
        ("GET", "/api/account/app-passwords", None),
        (
            "POST",
            "/api/account/app-passwords",
            Some(json!({ "name": "evil", "password": "correct horse" })),
        ),
        (
            "POST",
            "/api/account/totp/enrol",
            Some(json!({ "password": "correct horse" })),
        ),
        ("GET", "/api/account/sessions", None),
        (
            "POST",
            "/api/account/password",
            Some(json!({ "password": "correct horse", "newPassword": "another horse" })),
        ),
    ] {
        let (status, body) = call(&f.app, method, uri, Some(&mail), body).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("insufficient_scope")),
            "{method} {uri}"
        );
    }
}

/// Issue 13 item 13: a web password change revokes every other session's tokens (and says
/// so); the session that made it keeps working; deleting an app password revokes its tokens.
#[tokio::test]
async fn password_change_signs_out_the_other_sessions_and_keeps_this_one() {
    let f = fixture().await;
    let phone = sign_in(&f.app).await;
    let laptop = sign_in(&f.app).await;
    let laptop_access = laptop["access_token"].as_str().unwrap();
    let change = json!({ "password": "correct horse", "newPassword": "battery staple 9" });
    let (status, body) = call(
        &f.app,
        "POST",
        "/api/account/password",
        Some(laptop_access),
        Some(json!({ "password": "wrong", "newPassword": "battery staple 9" })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("invalid_credentials"))
    );
    let (status, body) = call(
        &f.app,
        "POST",
        "/api/account/password",
        Some(laptop_access),
        Some(change),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["signedOutSessions"], 1);
    assert_eq!(body["keptSession"], laptop["session_id"]);
    let phone_access = phone["access_token"].as_str().unwrap();
    assert_eq!(
        call(&f.app, "GET", "/api/account/me", Some(phone_access), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/refresh",
        None,
        Some(json!({ "refresh_token": phone["refresh_token"] })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&f.app, "GET", "/api/account/me", Some(laptop_access), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/refresh",
        None,
        Some(json!({ "refresh_token": laptop["refresh_token"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The old password is gone, the new one signs in.
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/login",
        None,
        Some(json!({ "username": "alice@example.test", "password": "correct horse" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, fresh) = call(
        &f.app,
        "POST",
        "/api/account/login",
        None,
        Some(json!({ "username": "alice@example.test", "password": "battery staple 9" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // An app password's tokens die with it.
    let access = fresh["access_token"].as_str().unwrap();
    let (_, created) = call(
        &f.app,
        "POST",
        "/api/account/app-passwords",
        Some(access),
        Some(json!({ "name": "phone", "password": "battery staple 9" })),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let grant = bulwark_auth::token::Grant {
        account: f
            .store
            .account_by_address("alice@example.test")
            .await
            .unwrap()
            .unwrap()
            .id,
        sid: "jmap-client".into(),
        scope: bulwark_auth::token::Scope::Mail,
        app: Some(id),
    };
    let kind = bulwark_auth::token::TokenKind::Access;
    let from_app = f.signer.issue_grant(kind, &grant, 600, now_unix());
    assert!(f.signer.verify(&from_app, kind, now_unix()).is_ok());
    let (status, _) = call(
        &f.app,
        "DELETE",
        &format!("/api/account/app-passwords/{id}"),
        Some(access),
        Some(json!({ "password": "battery staple 9" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(f.signer.verify(&from_app, kind, now_unix()).is_err());
}

/// Issue 13 item 11: a sign-in sets an HttpOnly device cookie that verifies as a device token
/// of the account (and grants nothing: it is not an access token).
#[tokio::test]
async fn sign_in_sets_a_device_cookie_that_is_not_an_access_token() {
    let f = fixture().await;
    let (status, headers, _) = raw(
        &f.app,
        "POST",
        "/api/account/login",
        None,
        Some(json!({ "username": "alice@example.test", "password": "correct horse" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("bulwark_device=") && cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Strict") && cookie.contains("Path=/api/account"));
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("bulwark_device=");
    use bulwark_auth::token::TokenKind;
    assert!(
        f.signer
            .verify(value, TokenKind::Device, now_unix())
            .is_ok()
    );
    assert_eq!(
        call(&f.app, "GET", "/api/account/me", Some(value), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

/// Issue 13 item 7: `totp/disable` checks the password through the login throttle.
#[tokio::test]
async fn totp_disable_goes_through_the_login_throttle() {
    let f = fixture_with(ThrottleConfig {
        ip_max_failures: 3,
        ..ThrottleConfig::default()
    })
    .await;
    let t = sign_in(&f.app).await;
    let access = t["access_token"].as_str().unwrap();
    let disable = |password: &'static str| {
        let app = f.app.clone();
        let access = access.to_string();
        async move {
            call(
                &app,
                "POST",
                "/api/account/totp/disable",
                Some(&access),
                Some(json!({ "password": password })),
            )
            .await
            .0
        }
    };
    for _ in 0..3 {
        assert_eq!(disable("guess").await, StatusCode::FORBIDDEN);
    }
    assert_eq!(disable("guess").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        disable("correct horse").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn spa_routes_get_index_with_csp_and_api_paths_do_not() {
    let f = fixture().await;
    for path in ["/", "/mail/inbox", "/settings/security"] {
        let (status, headers, body) = raw(&f.app, "GET", path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'self'")
                && csp.contains("script-src 'self';")
                && csp.contains("object-src 'none'")
        );
        assert!(
            String::from_utf8_lossy(&body)
                .to_ascii_lowercase()
                .contains("<!doctype html>")
        );
    }
    for path in [
        "/api/account/nope",
        "/jmap/x",
        "/missing.js",
        "/assets/nope-123.js",
        "/admin",
        "/metrics",
        "/no-such-page",
        "/mail.php",
    ] {
        assert_eq!(
            raw(&f.app, "GET", path, None, None).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        raw(&f.app, "POST", "/mail", None, None).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn service_worker_is_never_cached_and_may_control_the_origin() {
    let f = fixture().await;
    let (status, headers, _) = raw(&f.app, "GET", "/sw.js", None, None).await;
    if status == StatusCode::NOT_FOUND {
        // web/dist holds only the build.rs placeholder (client not built): nothing to check.
        return;
    }
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(headers["service-worker-allowed"], "/");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn login_with_unknown_user_is_refused_like_a_wrong_password() {
    let f = fixture().await;
    let (status, body) = call(
        &f.app,
        "POST",
        "/api/account/login",
        None,
        Some(json!({ "username": "nobody@example.test", "password": "x" })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (status, _) = call(
        &f.app,
        "POST",
        "/api/account/login",
        None,
        Some(json!({ "username": 1 })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The web router merged with the JMAP router over the same store and signer, as in `serve`.
async fn fixture_with_jmap() -> Fixture {
    let f = fixture().await;
    let auth = Arc::new(Authenticator::new(
        f.store.clone(),
        ThrottleConfig::default(),
    ));
    let signer = Arc::new(TokenSigner::ephemeral());
    let jmap = bulwark_jmap::JmapServer::new(
        bulwark_jmap::JmapConfig::default(),
        f.store.clone(),
        auth.clone(),
        signer.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let app = jmap.router().merge(router(f.store.clone(), auth, signer));
    Fixture { app, ..f }
}

async fn jmap_status(app: &Router, access: &str) -> StatusCode {
    raw(app, "GET", "/.well-known/jmap", Some(access), None)
        .await
        .0
}

#[tokio::test]
async fn jmap_token_grants_are_listed_as_devices_and_revoking_one_stops_its_tokens() {
    let f = fixture_with_jmap().await;
    let web = sign_in(&f.app).await;
    let web_access = web["access_token"].as_str().unwrap();
    let (status, grant) = call(
        &f.app,
        "POST",
        "/auth/token",
        None,
        Some(
            json!({ "grant_type": "password", "username": "alice@example.test",
            "password": "correct horse" }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    let jmap_access = grant["access_token"].as_str().unwrap();
    assert_eq!(jmap_status(&f.app, jmap_access).await, StatusCode::OK);

    let (_, list) = call(
        &f.app,
        "GET",
        "/api/account/sessions",
        Some(web_access),
        None,
    )
    .await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let jmap_device = list
        .iter()
        .find(|s| s["via"] == sessions::VIA_TOKEN_ENDPOINT)
        .expect("the token grant is listed");
    assert_eq!(jmap_device["current"], false);
    assert!(list.iter().any(|s| s["via"] == sessions::VIA_WEB));

    let uri = format!(
        "/api/account/sessions/{}",
        jmap_device["id"].as_str().unwrap()
    );
    assert_eq!(
        call(&f.app, "DELETE", &uri, Some(web_access), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        jmap_status(&f.app, jmap_access).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = call(
        &f.app,
        "POST",
        "/auth/token",
        None,
        Some(json!({ "grant_type": "refresh_token", "refresh_token": grant["refresh_token"] })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // The web session itself is untouched and the list now holds only it.
    let (_, list) = call(
        &f.app,
        "GET",
        "/api/account/sessions",
        Some(web_access),
        None,
    )
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn jmap_revoke_endpoint_removes_the_device_from_the_list() {
    let f = fixture_with_jmap().await;
    sign_in(&f.app).await;
    let (_, grant) = call(
        &f.app,
        "POST",
        "/auth/token",
        None,
        Some(
            json!({ "grant_type": "password", "username": "alice@example.test",
            "password": "correct horse" }),
        ),
    )
    .await;
    let (status, _) = call(
        &f.app,
        "POST",
        "/auth/revoke",
        None,
        Some(json!({ "token": grant["access_token"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let alice = f
        .store
        .account_by_address("alice@example.test")
        .await
        .unwrap()
        .unwrap();
    let stored = sessions::list(f.store.as_ref(), alice.id).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].via, sessions::VIA_WEB);
}
