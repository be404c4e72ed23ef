//! HTTP shell: routes, authentication (Basic and Bearer), the OAuth-style token endpoint,
//! the API endpoint, upload and download (RFC 8620 §3.1, §6).

use crate::JmapServer;
use crate::api::{self, RequestError, RequestLimits};
use crate::{blob, devices, ids, push, session};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bulwark_auth::token::{Grant, Scope, TokenKind, new_session_id};
use bulwark_auth::{Credential, HttpAuthError, LoginError, SignIn, SignInError};
use bulwark_store::{AccountId, now_unix};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Largest `POST /auth/token` body.
const MAX_TOKEN_REQUEST: usize = 16 * 1024;

pub fn router(server: Arc<JmapServer>) -> Router {
    Router::new()
        .route("/.well-known/jmap", get(session_handler))
        .route("/jmap/session", get(session_handler))
        .route("/jmap/api", post(api_handler))
        .route("/jmap/api/", post(api_handler))
        .route("/jmap/upload/{account}", post(upload_handler))
        .route("/jmap/upload/{account}/", post(upload_handler))
        .route(
            "/jmap/download/{account}/{blob}/{name}",
            get(download_handler),
        )
        .route("/jmap/eventsource", get(push::eventsource_handler))
        .route("/jmap/eventsource/", get(push::eventsource_handler))
        .route("/jmap/ws", get(push::websocket_handler))
        .route("/auth/token", post(token_handler))
        .route("/auth/revoke", post(revoke_handler))
        // Bodies are read (and limited) by the handlers themselves, so an oversize request
        // gets a JMAP `limit` problem instead of a bare 413.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(security_headers))
        .with_state(server)
}

/// Issue 13 item 18: nothing served here is a page. Browsers must not sniff a download into
/// HTML, run anything in it, or frame it (RFC 9110 has none of these; they are the Fetch
/// standard's `nosniff`, CSP Level 3 and RFC 7034).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; sandbox"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Media types a browser would run or render as a document (scripts, HTML, SVG, XML with
/// stylesheets, plug-ins): a download asked for as one of these is served as
/// `application/octet-stream` instead.
fn is_active_type(essence: &str) -> bool {
    matches!(
        essence,
        "text/html"
            | "application/xhtml+xml"
            | "image/svg+xml"
            | "text/xml"
            | "application/xml"
            | "text/xsl"
            | "application/xslt+xml"
            | "text/css"
            | "application/pdf"
            | "application/x-shockwave-flash"
            | "multipart/x-mixed-replace"
            | "text/vtt"
            | "application/wasm"
    ) || essence.contains("javascript")
        || essence.contains("ecmascript")
        || essence.ends_with("+xml")
        || essence.ends_with("/xml")
}

/// The Content-Type of a download asked for with `accept` (RFC 8620 §6.2 `type`): the
/// given type when it is a plain `type/subtype` (parameters kept) of a passive kind, else
/// `application/octet-stream`.
fn download_type(accept: Option<&str>) -> String {
    const FALLBACK: &str = "application/octet-stream";
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return FALLBACK.into();
    };
    let essence = accept
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    let well_formed = essence
        .split_once('/')
        .is_some_and(|(t, sub)| token(t) && token(sub));
    if !well_formed || is_active_type(&essence) || HeaderValue::from_str(accept).is_err() {
        return FALLBACK.into();
    }
    accept.to_string()
}

/// An RFC 7807 problem document response.
/// A store failure on the HTTP endpoints (upload, download), mapped in this one place:
/// not found → 404, invalid → 400, conflict → 409, unavailable → 503 with Retry-After,
/// anything else → 500 — and internal error text is logged, never sent.
pub fn store_problem(e: &bulwark_store::StoreError) -> Response {
    use bulwark_store::StoreError;
    match e {
        StoreError::NotFound(_) => problem(StatusCode::NOT_FOUND, "about:blank", "not found"),
        StoreError::Invalid(why) => problem(StatusCode::BAD_REQUEST, "about:blank", why),
        StoreError::Conflict(_) | StoreError::AlreadyExists(_) => problem(
            StatusCode::CONFLICT,
            "about:blank",
            "changed at the same time by another request; try again",
        ),
        StoreError::Unavailable(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "about:blank",
            "the mail store is unavailable right now; try again later",
        ),
        StoreError::CannotCalculateChanges(_) | StoreError::Internal(_) => {
            tracing::error!(error = %e, "JMAP HTTP: store failure");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "about:blank",
                "internal error in the mail store",
            )
        }
    }
}

pub fn problem(status: StatusCode, type_uri: &str, detail: &str) -> Response {
    let body = json!({ "type": type_uri, "status": status.as_u16(), "detail": detail });
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // RFC 9110 §10.2.3: tell clients when to come back instead of letting them hammer us.
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

/// `Retry-After` of a 503 (the store or auth backend is unavailable right now).
pub const RETRY_AFTER_SECS: u32 = 5;

/// True when every method call failed with `serverUnavailable` (RFC 8620 §3.6.2): nothing
/// took effect and the whole request is better answered with 503 + `Retry-After`.
fn unavailable_throughout(response: &Value) -> bool {
    let Some(calls) = response.get("methodResponses").and_then(Value::as_array) else {
        return false;
    };
    !calls.is_empty()
        && calls.iter().all(|call| {
            call.get(0).and_then(Value::as_str) == Some("error")
                && call
                    .get(1)
                    .and_then(|args| args.get("type"))
                    .and_then(Value::as_str)
                    == Some("serverUnavailable")
        })
}

fn request_problem(e: &RequestError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/problem+json")],
        e.to_problem().to_string(),
    )
        .into_response()
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, no-store"),
        ],
        v.to_string(),
    )
        .into_response()
}

/// Who made the request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account: AccountId,
    pub username: String,
}

pub fn remote_ip(headers_ext: &axum::http::Extensions) -> IpAddr {
    headers_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn unauthorized(detail: &str) -> Response {
    let mut r = problem(StatusCode::UNAUTHORIZED, "about:blank", detail);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"bulwark\", Bearer realm=\"bulwark\""),
    );
    r
}

/// Authenticates with HTTP Basic (password or app password) or a Bearer access token.
pub async fn authenticate(
    server: &JmapServer,
    headers: &HeaderMap,
    remote: IpAddr,
) -> Result<Principal, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let store = server.store.as_ref();
    match bulwark_auth::authorize_http(&server.auth, &server.signer, store, value, remote).await {
        // The username is cosmetic; a store outage must not sign the user out.
        Ok(p) => Ok(Principal {
            username: p.username.unwrap_or_else(|| ids::account_id(p.account)),
            account: p.account,
        }),
        Err(HttpAuthError::Login(e @ LoginError::Throttled { .. })) => Err(problem(
            StatusCode::TOO_MANY_REQUESTS,
            "about:blank",
            &e.to_string(),
        )),
        Err(HttpAuthError::Login(e @ LoginError::Unavailable(_))) => Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "about:blank",
            &e.to_string(),
        )),
        Err(e) => Err(unauthorized(&e.to_string())),
    }
}

async fn session_handler(State(server): State<Arc<JmapServer>>, req: Request) -> Response {
    let principal = match authenticate(&server, req.headers(), remote_ip(req.extensions())).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    json_response(
        StatusCode::OK,
        &session::session_resource(&server, principal.account, &principal.username).await,
    )
}

/// Which per-account concurrency limit an [`InFlight`] counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// RFC 8620 §2 maxConcurrentRequests (API requests).
    Requests,
    /// RFC 8620 §2 maxConcurrentUpload (issue 13 item 20: advertised, now enforced).
    Uploads,
}

/// Counts a request against maxConcurrentRequests (or an upload against
/// maxConcurrentUpload) until dropped.
pub struct InFlight {
    server: Arc<JmapServer>,
    account: AccountId,
    kind: Concurrency,
}

fn in_flight_map(
    server: &JmapServer,
    kind: Concurrency,
) -> (&std::sync::Mutex<HashMap<AccountId, usize>>, usize) {
    match kind {
        Concurrency::Requests => (&server.in_flight, server.cfg.max_concurrent_requests),
        Concurrency::Uploads => (&server.uploads_in_flight, server.cfg.max_concurrent_upload),
    }
}

impl InFlight {
    pub fn enter(server: &Arc<JmapServer>, account: AccountId) -> Option<InFlight> {
        Self::enter_for(server, account, Concurrency::Requests)
    }

    pub fn enter_for(
        server: &Arc<JmapServer>,
        account: AccountId,
        kind: Concurrency,
    ) -> Option<InFlight> {
        let (map, max) = in_flight_map(server, kind);
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(account).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(InFlight {
            server: server.clone(),
            account,
            kind,
        })
    }
}
impl Drop for InFlight {
    fn drop(&mut self) {
        let (map, _) = in_flight_map(&self.server, self.kind);
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.account);
            }
        }
    }
}

pub fn limits(server: &JmapServer) -> RequestLimits {
    RequestLimits {
        max_size_request: server.cfg.max_size_request,
        max_calls_in_request: server.cfg.max_calls_in_request,
    }
}

/// Is the request's media type `application/json` (parameters such as `charset` allowed)?
/// RFC 8620 §3.6.1: anything else is `notJSON`. This also keeps the API out of reach of a
/// hostile page's form POST, which cannot send that type without a CORS preflight (that we
/// never grant), even where a browser would attach cached Basic credentials.
fn is_json_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

async fn api_handler(State(server): State<Arc<JmapServer>>, req: Request) -> Response {
    if !is_json_request(req.headers()) {
        return request_problem(&RequestError::NotJson(
            "the request's Content-Type must be application/json".into(),
        ));
    }
    let principal = match authenticate(&server, req.headers(), remote_ip(req.extensions())).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(_guard) = InFlight::enter(&server, principal.account) else {
        return request_problem(&RequestError::Limit {
            limit: "maxConcurrentRequests",
            description: "too many concurrent requests".into(),
        });
    };
    let max = server.cfg.max_size_request;
    let body = match axum::body::to_bytes(req.into_body(), max.saturating_add(1)).await {
        Ok(b) => b,
        Err(_) => {
            return request_problem(&RequestError::Limit {
                limit: "maxSizeRequest",
                description: format!("the request is larger than {max} bytes"),
            });
        }
    };
    let request = match api::parse_request(&body, limits(&server)) {
        Ok(r) => r,
        Err(e) => return request_problem(&e),
    };
    let response = api::process(&server, principal.account, request).await;
    if unavailable_throughout(&response) {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:ietf:params:jmap:error:serverUnavailable",
            "the mail store is unavailable right now; try again later",
        );
    }
    json_response(StatusCode::OK, &response)
}

async fn upload_handler(
    State(server): State<Arc<JmapServer>>,
    Path(account): Path<String>,
    req: Request,
) -> Response {
    let principal = match authenticate(&server, req.headers(), remote_ip(req.extensions())).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if ids::parse_account(&account) != Some(principal.account) {
        return problem(StatusCode::NOT_FOUND, "about:blank", "no such account");
    }
    let Some(_upload) = InFlight::enter_for(&server, principal.account, Concurrency::Uploads)
    else {
        let e = RequestError::Limit {
            limit: "maxConcurrentUpload",
            description: format!(
                "{} uploads are already running for this account; wait for one to finish",
                server.cfg.max_concurrent_upload
            ),
        };
        let mut body = e.to_problem();
        body["status"] = json!(StatusCode::TOO_MANY_REQUESTS.as_u16());
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let max = server.cfg.max_size_upload;
    let body: Bytes = match axum::body::to_bytes(req.into_body(), max.saturating_add(1)).await {
        Ok(b) if b.len() <= max => b,
        _ => {
            let e = RequestError::Limit {
                limit: "maxSizeUpload",
                description: format!("uploads are limited to {max} bytes"),
            };
            let mut r = request_problem(&e);
            *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return r;
        }
    };
    let stored = match server.store.blob_put(principal.account, &body).await {
        Ok(hash) => server
            .blob_ids()
            .await
            .map(|ids| ids.encode(principal.account, &hash)),
        Err(e) => Err(e),
    };
    match stored {
        // RFC 8620 §6.1 upload response.
        Ok(blob_id) => json_response(
            StatusCode::CREATED,
            &json!({ "accountId": account, "blobId": blob_id.0, "type": content_type, "size": body.len() }),
        ),
        Err(e) => store_problem(&e),
    }
}

async fn download_handler(
    State(server): State<Arc<JmapServer>>,
    Path((account, blob_id, name)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let principal = match authenticate(&server, req.headers(), remote_ip(req.extensions())).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if ids::parse_account(&account) != Some(principal.account) {
        return problem(StatusCode::NOT_FOUND, "about:blank", "no such account");
    }
    match blob::read_blob(&server, principal.account, &blob_id).await {
        Ok(Some(bytes)) => {
            let content_type = download_type(query.get("accept").map(String::as_str));
            let safe_name: String = name
                .chars()
                .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
                .collect();
            let disposition = format!("attachment; filename=\"{safe_name}\"");
            let mut r = Response::new(Body::from(bytes));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&content_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            // RFC 8620 §6.2: blobs are immutable, so they may be cached forever.
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, immutable, max-age=31536000"),
            );
            r
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, "about:blank", "no such blob"),
        Err(e) => store_problem(&e),
    }
}

/// An OAuth 2.0 error response (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

/// Decodes `application/x-www-form-urlencoded` or a JSON object of strings.
fn token_params(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, String>> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
    if is_json {
        let Value::Object(m) = serde_json::from_slice(body).ok()? else {
            return None;
        };
        return Some(
            m.into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                .collect(),
        );
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut out = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k)?, percent_decode(v)?);
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn issue_pair(server: &JmapServer, grant: &Grant) -> Value {
    let now = now_unix();
    let cfg = &server.cfg;
    json!({
        "access_token": server.signer.issue_grant(TokenKind::Access, grant, cfg.token_ttl_secs, now),
        "token_type": "Bearer",
        "expires_in": cfg.token_ttl_secs,
        "refresh_token": server.signer.issue_grant(TokenKind::Refresh, grant, cfg.refresh_ttl_secs, now),
    })
}

/// Lists a token-endpoint session in the account's devices (shared with the web client's
/// device list, where revoking it revokes the session id). Sessions pushed out of the list
/// by [`devices::MAX_SESSIONS`] are revoked. A store error only skips the listing.
async fn record_device(
    server: &JmapServer,
    account: AccountId,
    sid: &str,
    headers: &HeaderMap,
    remote: IpAddr,
) {
    let now = now_unix();
    let expires_at = now.saturating_add(server.cfg.refresh_ttl_secs);
    let record = devices::SessionRecord {
        id: sid.to_string(),
        created_at: now,
        last_seen: now,
        expires_at,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        ip: remote.to_string(),
        via: devices::VIA_TOKEN_ENDPOINT.to_string(),
    };
    match devices::add(server.store.as_ref(), account, record, now).await {
        Ok(evicted) => {
            for old in evicted {
                if let Err(e) = server.signer.revoke_session(&old.id, old.expires_at, now) {
                    tracing::warn!(error = %e, "evicted session not revoked");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "token session not listed in devices"),
    }
}

/// `POST /auth/token`: resource-owner password grant (RFC 6749 §4.3) and refresh (§6).
async fn token_handler(State(server): State<Arc<JmapServer>>, req: Request) -> Response {
    let remote = remote_ip(req.extensions());
    let headers = req.headers().clone();
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_TOKEN_REQUEST).await else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request body too large",
        );
    };
    let Some(params) = token_params(&headers, &body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body must be form-encoded or a JSON object",
        );
    };
    let param = |k: &str| params.get(k).map(String::as_str);
    match param("grant_type") {
        Some("password") => {
            let (Some(user), Some(password)) = (param("username"), param("password")) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "username and password are required",
                );
            };
            // Two-factor (issue 5): an account with TOTP enabled must also send `totp` (a
            // current code or a recovery code) in this grant, unless the password was one of
            // its app passwords. Password and code are checked in one throttled attempt.
            let sign_in = SignIn {
                username: user,
                password,
                code: param("totp"),
                remote,
                app_passwords: true,
                known_device: None,
            };
            match server.auth.sign_in(sign_in).await {
                Ok(verified) => {
                    let account = verified.account;
                    let sid = new_session_id();
                    record_device(&server, account.id, &sid, &headers, remote).await;
                    // Issue 13 item 6: an app password opens a mail-only session, never one
                    // that manages the account; its tokens die with the app password.
                    let grant = Grant {
                        account: account.id,
                        sid,
                        scope: match verified.credential {
                            Credential::AccountPassword => Scope::Account,
                            Credential::AppPassword => Scope::Mail,
                        },
                        app: verified.app_password_id,
                    };
                    json_response(StatusCode::OK, &issue_pair(&server, &grant))
                }
                Err(SignInError::SecondFactorRequired | SignInError::InvalidSecondFactor) => {
                    oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "two-factor code required or wrong (parameter totp)",
                    )
                }
                Err(SignInError::Login(
                    LoginError::InvalidCredentials | LoginError::AppPasswordRequired,
                )) => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "invalid username or password",
                ),
                Err(SignInError::Login(e @ LoginError::Throttled { .. })) => oauth_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    &e.to_string(),
                ),
                Err(SignInError::Login(e @ LoginError::Unavailable(_))) => oauth_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    &e.to_string(),
                ),
            }
        }
        Some("refresh_token") => {
            let Some(token) = param("refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                );
            };
            let now = now_unix();
            match server.signer.verify(token, TokenKind::Refresh, now) {
                Ok(claims) => {
                    let expires = now.saturating_add(server.cfg.refresh_ttl_secs);
                    let store = server.store.as_ref();
                    if let Err(e) =
                        devices::touch(store, claims.account(), &claims.sid, expires, now).await
                    {
                        tracing::debug!(error = %e, "device last-seen not recorded");
                    }
                    json_response(StatusCode::OK, &issue_pair(&server, &Grant::of(&claims)))
                }
                Err(e) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &e.to_string()),
            }
        }
        Some(other) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type {other} is not supported"),
        ),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
    }
}

/// `POST /auth/revoke` (RFC 7009): revokes the session of the given access or refresh token.
async fn revoke_handler(State(server): State<Arc<JmapServer>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_TOKEN_REQUEST).await else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request body too large",
        );
    };
    let Some(token) = token_params(&headers, &body).and_then(|p| p.get("token").cloned()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    let now = now_unix();
    let claims = server
        .signer
        .verify(&token, TokenKind::Access, now)
        .or_else(|_| server.signer.verify(&token, TokenKind::Refresh, now));
    // RFC 7009 §2.2: invalid tokens also get 200.
    if let Ok(claims) = claims {
        let until = now.saturating_add(server.cfg.refresh_ttl_secs.max(server.cfg.token_ttl_secs));
        if let Err(e) = server.signer.revoke_session(&claims.sid, until, now) {
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &e.to_string(),
            );
        }
        if let Err(e) = devices::remove(server.store.as_ref(), claims.account(), &claims.sid).await
        {
            tracing::debug!(error = %e, "device record not removed");
        }
    }
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_of_active_types_are_served_as_octet_stream() {
        for active in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "application/javascript",
            "text/javascript",
            "text/xml",
            "application/rss+xml",
            "text/html\r\nX-Evil: 1",
            "html",
            "",
        ] {
            assert_eq!(
                download_type(Some(active)),
                "application/octet-stream",
                "{active}"
            );
        }
        assert_eq!(download_type(None), "application/octet-stream");
        for passive in ["image/png", "application/zip", "text/plain; charset=utf-8"] {
            assert_eq!(download_type(Some(passive)), passive);
        }
    }

    #[test]
    fn form_decoding_handles_escapes_and_rejects_garbage() {
        assert_eq!(
            percent_decode("a%40b.test+x").as_deref(),
            Some("a@b.test x")
        );
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        let h = HeaderMap::new();
        let p = token_params(&h, b"grant_type=password&username=a%40b&password=p%26q").unwrap();
        assert_eq!(p["password"], "p&q");
    }
}
