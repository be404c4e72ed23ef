//! Tokens (`/auth/token`, refresh, revoke), EventSource and WebSocket push over real sockets.

use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('@', "%40").replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

#[tokio::test]
async fn password_grant_issues_tokens_that_refresh_and_revoke() {
    let h = harness().await;
    let ct = "application/x-www-form-urlencoded";
    let (status, _, v) = h
        .raw(
            "POST",
            "/auth/token",
            None,
            ct,
            form(&[
                ("grant_type", "password"),
                ("username", "alice@example.test"),
                ("password", PASSWORD),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], json!("Bearer"));
    let access = v["access_token"].as_str().unwrap().to_string();
    let refresh = v["refresh_token"].as_str().unwrap().to_string();
    let (status, _, _) = h
        .raw(
            "GET",
            "/.well-known/jmap",
            Some(&format!("Bearer {access}")),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A refresh token is not an access token.
    let (status, _, _) = h
        .raw(
            "GET",
            "/.well-known/jmap",
            Some(&format!("Bearer {refresh}")),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body = json!({"grant_type": "refresh_token", "refresh_token": refresh})
        .to_string()
        .into_bytes();
    let (status, _, v) = h
        .raw("POST", "/auth/token", None, "application/json", body)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let access2 = v["access_token"].as_str().unwrap().to_string();
    // Revoking the session kills both access tokens and the refresh token.
    let (status, _, _) = h
        .raw(
            "POST",
            "/auth/revoke",
            None,
            ct,
            form(&[("token", &access)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for t in [&access, &access2] {
        let (status, _, _) = h
            .raw(
                "GET",
                "/.well-known/jmap",
                Some(&format!("Bearer {t}")),
                "",
                vec![],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let body = json!({"grant_type": "refresh_token", "refresh_token": refresh})
        .to_string()
        .into_bytes();
    let (status, _, v) = h
        .raw("POST", "/auth/token", None, "application/json", body)
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let h = harness().await;
    let ct = "application/x-www-form-urlencoded";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            form(&[
                ("grant_type", "password"),
                ("username", "alice@example.test"),
                ("password", "nope"),
            ]),
            "invalid_grant",
        ),
        (form(&[("grant_type", "password")]), "invalid_request"),
        (
            form(&[("grant_type", "client_credentials")]),
            "unsupported_grant_type",
        ),
        (form(&[("username", "x")]), "invalid_request"),
        (b"%zz=1".to_vec(), "invalid_request"),
    ];
    for (body, want) in cases {
        let (status, _, v) = h.raw("POST", "/auth/token", None, ct, body).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(want)),
            "{v}"
        );
    }
}

#[tokio::test]
async fn expired_access_token_is_refused() {
    let h = harness().await;
    let old = h.server.signer.issue(
        bulwark_auth::token::TokenKind::Access,
        h.alice,
        "s",
        10,
        now_unix() - 100,
    );
    let (status, _, _) = h
        .raw(
            "GET",
            "/.well-known/jmap",
            Some(&format!("Bearer {old}")),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn serve(h: &Harness) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(h.server.clone().run(listener));
    addr
}

/// Reads from `s` until `needle` appears or the deadline passes; returns what was read.
async fn read_until(s: &mut TcpStream, needle: &[u8], deadline: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    let end = tokio::time::Instant::now() + deadline;
    let mut chunk = [0u8; 4096];
    while !buf.windows(needle.len()).any(|w| w == needle) {
        match tokio::time::timeout_at(end, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    buf
}

#[tokio::test]
async fn eventsource_receives_state_change_within_a_second_of_delivery() {
    let h = harness().await;
    let addr = serve(&h).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /jmap/eventsource?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nAccept: text/event-stream\r\n\r\n",
        h.bearer()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_until(&mut s, b"\r\n\r\n", Duration::from_secs(5)).await;
    assert!(
        String::from_utf8_lossy(&head).contains("text/event-stream"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let start = tokio::time::Instant::now();
    let id = h.deliver(h.alice, &message("push", "x")).await;
    let got = read_until(&mut s, b"\n\n", Duration::from_secs(1)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(text.contains("event: state"), "{text}");
    let modseq = h.store.account_modseq(h.alice).await.unwrap();
    assert!(text.contains("\"@type\":\"StateChange\""), "{text}");
    assert!(
        text.contains(&format!("\"Email\":\"{}\"", modseq.0)),
        "{text} {id}"
    );
}

#[tokio::test]
async fn eventsource_sends_pings_at_the_requested_interval() {
    let h = harness_with(crate::JmapConfig {
        min_ping_secs: 1,
        ..Default::default()
    })
    .await;
    let addr = serve(&h).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /jmap/eventsource?types=Email&closeafter=state&ping=1 HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        h.bearer()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let got = read_until(&mut s, b"\"interval\":1", Duration::from_secs(3)).await;
    assert!(String::from_utf8_lossy(&got).contains("event: ping"));
}

/// Minimal RFC 6455 client pieces: masked text frames out, unmasked frames in.
fn ws_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x81];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

async fn ws_read_text(s: &mut TcpStream) -> String {
    let mut head = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    let len = match head[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).await.unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.unwrap();
    String::from_utf8(payload).unwrap()
}

/// Opens `/jmap/ws` with alice's token; returns the stream and the lowercased 101 head.
async fn open_websocket(h: &Harness, addr: std::net::SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /jmap/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\nAuthorization: {}\r\n\r\n",
        h.bearer()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head =
        String::from_utf8_lossy(&read_until(&mut s, b"\r\n\r\n", Duration::from_secs(5)).await)
            .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    (s, head)
}

#[tokio::test]
async fn websocket_answers_requests_and_pushes_state_changes() {
    let h = harness().await;
    let addr = serve(&h).await;
    let (mut s, head) = open_websocket(&h, addr).await;
    assert!(head.contains("sec-websocket-protocol: jmap"), "{head}");
    let request = json!({"@type": "Request", "id": "r1", "using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"x": 1}, "c"]]});
    s.write_all(&ws_frame(&request.to_string())).await.unwrap();
    let resp: Value = serde_json::from_str(&ws_read_text(&mut s).await).unwrap();
    assert_eq!(
        (resp["@type"].as_str(), resp["requestId"].as_str()),
        (Some("Response"), Some("r1"))
    );
    assert_eq!(resp["methodResponses"][0][1], json!({"x": 1}));
    s.write_all(&ws_frame("{not json")).await.unwrap();
    let err: Value = serde_json::from_str(&ws_read_text(&mut s).await).unwrap();
    assert_eq!(
        (err["@type"].as_str(), err["type"].as_str()),
        (
            Some("RequestError"),
            Some("urn:ietf:params:jmap:error:notJSON")
        )
    );
    s.write_all(&ws_frame(
        &json!({"@type": "WebSocketPushEnable", "dataTypes": ["Email"]}).to_string(),
    ))
    .await
    .unwrap();
    // Give the server a moment-free barrier: an echo round trip proves the enable was processed.
    s.write_all(&ws_frame(&request.to_string())).await.unwrap();
    let _ = ws_read_text(&mut s).await;
    let start = tokio::time::Instant::now();
    h.deliver(h.alice, &message("ws push", "x")).await;
    let push: Value = serde_json::from_str(&ws_read_text(&mut s).await).unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(push["@type"], json!("StateChange"));
    assert!(push["changed"][h.aid()]["Email"].is_string(), "{push}");
    assert!(push["changed"][h.aid()].get("Mailbox").is_none(), "{push}");
}

// Added for the web client (issue 5): the password grant asks for the second factor.
#[tokio::test]
async fn password_grant_needs_the_totp_code_once_two_factor_is_on() {
    use bulwark_auth::totp;
    let h = harness().await;
    let store: &dyn Store = h.store.as_ref();
    totp::enrol(store, h.alice, "Bulwark", "alice@example.test")
        .await
        .unwrap();
    let state = totp::load(store, h.alice).await.unwrap().unwrap();
    let now = u64::try_from(now_unix()).unwrap();
    totp::confirm(store, h.alice, &state.code_at(now).unwrap(), now)
        .await
        .unwrap();
    let grant = |code: Option<String>| {
        let mut body = json!({"grant_type": "password", "username": "alice@example.test", "password": PASSWORD});
        if let Some(c) = code {
            body["totp"] = json!(c);
        }
        body.to_string().into_bytes()
    };
    let (status, _, v) = h
        .raw("POST", "/auth/token", None, "application/json", grant(None))
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let next = state.code_at(now + totp::STEP_SECS).unwrap();
    let (status, _, v) = h
        .raw(
            "POST",
            "/auth/token",
            None,
            "application/json",
            grant(Some(next)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // Bob has no second factor: password alone still works.
    let body =
        json!({"grant_type": "password", "username": "bob@example.test", "password": PASSWORD});
    let (status, _, _) = h
        .raw(
            "POST",
            "/auth/token",
            None,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Opens `/jmap/ws` with `extra` header lines; returns the stream and the response head.
async fn ws_open(addr: std::net::SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /jmap/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head =
        String::from_utf8_lossy(&read_until(&mut s, b"\r\n\r\n", Duration::from_secs(5)).await)
            .to_ascii_lowercase();
    (s, head)
}

/// Reads frames until a Close frame (its status code) or the end of the stream (`None`),
/// or fails after `within`.
async fn ws_wait_close(s: &mut TcpStream, within: Duration) -> Option<u16> {
    let end = tokio::time::Instant::now() + within;
    loop {
        let mut head = [0u8; 2];
        match tokio::time::timeout_at(end, s.read_exact(&mut head)).await {
            Err(_) => panic!("the WebSocket was still open after {within:?}"),
            Ok(Err(_)) => return None,
            Ok(Ok(_)) => {}
        }
        let len = match head[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).await.unwrap();
                u16::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.unwrap();
        if head[0] & 0x0f == 0x8 {
            return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        }
    }
}

/// Issue 13 item 8: a revoked session (sign-out, device revocation, and password change,
/// which revokes sessions) ends an open WebSocket within seconds, with close code 1008.
#[tokio::test]
async fn open_websocket_closes_within_seconds_after_its_session_is_revoked() {
    let h = harness().await;
    let addr = serve(&h).await;
    let (mut s, head) = ws_open(addr, &format!("Authorization: {}\r\n", h.bearer())).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let now = now_unix();
    h.server
        .signer
        .revoke_session("test-session", now + 3600, now)
        .unwrap();
    let start = tokio::time::Instant::now();
    let code = ws_wait_close(&mut s, Duration::from_secs(6)).await;
    assert_eq!(code, Some(1008));
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// Issue 13 item 8: the same for EventSource: the stream ends.
#[tokio::test]
async fn open_eventsource_ends_within_seconds_after_its_session_is_revoked() {
    let h = harness().await;
    let addr = serve(&h).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /jmap/eventsource?types=*&closeafter=no&ping=0&access_token={} HTTP/1.1\r\nHost: x\r\n\r\n",
        h.token
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_until(&mut s, b"\r\n\r\n", Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&head).contains("text/event-stream"));
    let now = now_unix();
    h.server
        .signer
        .revoke_session("test-session", now + 3600, now)
        .unwrap();
    // The chunked body ends (`0\r\n\r\n`) once the stream is over.
    let rest = read_until(&mut s, b"0\r\n\r\n", Duration::from_secs(5)).await;
    assert!(
        rest.windows(5).any(|w| w == b"0\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
}

/// Issue 13 item 19: a page on another origin must not open a WebSocket with the
/// credentials the browser attaches by itself; same origin, no Origin (not a browser) and an
/// explicit `?access_token=` are fine.
#[tokio::test]
async fn websocket_from_a_foreign_origin_with_ambient_credentials_is_refused() {
    let h = harness().await;
    let addr = serve(&h).await;
    let auth = format!("Authorization: {}\r\n", h.bearer());
    let (_, head) = ws_open(addr, &format!("{auth}Origin: https://evil.example\r\n")).await;
    assert!(head.starts_with("http/1.1 403"), "{head}");
    let (_, head) = ws_open(addr, &format!("{auth}Origin: http://{addr}\r\n")).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let (_, head) = ws_open(addr, &auth).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /jmap/ws?access_token={} HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://app.example\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\n\r\n",
        h.token
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head =
        String::from_utf8_lossy(&read_until(&mut s, b"\r\n\r\n", Duration::from_secs(5)).await)
            .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
}

/// Issue 12: data types kept in collections are pushed too, each with the state its own
/// /get answers, and only when the commit wrote their collection.
#[tokio::test]
async fn websocket_pushes_identity_and_vacation_changes_with_their_own_states() {
    let h = harness().await;
    let addr = serve(&h).await;
    let (mut s, _) = open_websocket(&h, addr).await;
    s.write_all(&ws_frame(
        &json!({"@type": "WebSocketPushEnable", "dataTypes": ["Identity", "VacationResponse"]})
            .to_string(),
    ))
    .await
    .unwrap();
    let echo = json!({"@type": "Request", "id": "r1", "using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "c"]]});
    s.write_all(&ws_frame(&echo.to_string())).await.unwrap();
    let _ = ws_read_text(&mut s).await;

    // A delivery writes no Identity or VacationResponse: nothing is pushed for it.
    h.deliver(h.alice, &message("not pushed", "x")).await;
    let v = h
        .ok(
            "Identity/set",
            json!({"create": {"n": {"email": "alice@example.test", "name": "Alice Pushed"}}}),
        )
        .await;
    let identity_state = v["newState"].as_str().unwrap().to_string();
    let push: Value = serde_json::from_str(&ws_read_text(&mut s).await).unwrap();
    assert_eq!(push["@type"], json!("StateChange"));
    let changed = &push["changed"][h.aid()];
    assert_eq!(changed["Identity"], json!(identity_state), "{push}");
    assert!(
        changed.get("VacationResponse").is_none(),
        "only the written collection's type: {push}"
    );
    assert!(changed.get("Email").is_none(), "not subscribed: {push}");

    let v = h
        .ok(
            "VacationResponse/set",
            json!({"update": {"singleton": {"isEnabled": true, "textBody": "away"}}}),
        )
        .await;
    let vacation_state = v["newState"].as_str().unwrap().to_string();
    let push: Value = serde_json::from_str(&ws_read_text(&mut s).await).unwrap();
    let changed = &push["changed"][h.aid()];
    assert_eq!(changed["VacationResponse"], json!(vacation_state), "{push}");
    assert!(changed.get("Identity").is_none(), "{push}");
    let got = h.ok("VacationResponse/get", json!({})).await;
    assert_eq!(got["state"], json!(vacation_state));
}
