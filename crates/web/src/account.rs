//! `/api/account/…`: sign-in (password, then TOTP when enabled), token refresh, sign-out,
//! two-factor enrolment, app passwords and sessions. Everything but `login` and `refresh`
//! needs `Authorization: Bearer <access token>` (verified locally by signature).

use crate::WebState;
use crate::sessions::{self, SessionRecord};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bulwark_auth::token::{Claims, TokenKind, new_session_id};
use bulwark_auth::{Verdict, generate_app_password, hash_password, totp, verify_password};
use bulwark_store::{Account, AccountId, StoreError, now_unix};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Lifetime of an access token (the client refreshes before it runs out).
pub const ACCESS_TTL_SECS: i64 = 3600;
/// Lifetime of a refresh token; each refresh starts a new period, so an active device stays
/// signed in indefinitely, including across server restarts and store outages.
pub const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;
/// Largest request body of this API.
const MAX_BODY: usize = 16 * 1024;
/// Longest app password name.
const MAX_APP_PASSWORD_NAME: usize = 100;
/// Issuer shown in authenticator apps.
const TOTP_ISSUER: &str = "Bulwark";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{1}")]
    Unauthorized(&'static str, String),
    #[error("not found")]
    NotFound,
    #[error("too many attempts; try again in {0} s")]
    Throttled(u64),
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => ApiError::NotFound,
            StoreError::Invalid(m) | StoreError::AlreadyExists(m) => ApiError::BadRequest(m),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<totp::TotpError> for ApiError {
    fn from(e: totp::TotpError) -> Self {
        match e {
            totp::TotpError::Store(s) => s.into(),
            totp::TotpError::InvalidCode => ApiError::BadRequest(e.to_string()),
            totp::TotpError::NotPending
            | totp::TotpError::NotEnabled
            | totp::TotpError::Totp(_) => ApiError::BadRequest(e.to_string()),
            totp::TotpError::Corrupt(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unauthorized(code, _) => (StatusCode::UNAUTHORIZED, *code),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        no_store(
            status,
            json!({ "error": code, "description": self.to_string() }),
        )
    }
}

type ApiResult = Result<Response, ApiError>;

fn no_store(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> ApiResult {
    Ok(no_store(StatusCode::OK, body))
}

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/totp", get(totp_status))
        .route("/totp/enrol", post(totp_enrol))
        .route("/totp/confirm", post(totp_confirm))
        .route("/totp/disable", post(totp_disable))
        .route(
            "/app-passwords",
            get(app_password_list).post(app_password_add),
        )
        .route("/app-passwords/{id}", delete(app_password_delete))
        .route("/sessions", get(session_list))
        .route("/sessions/{id}", delete(session_revoke))
}

fn remote_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

async fn json_body<T: DeserializeOwned>(req: Request) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError::BadRequest(format!("body larger than {MAX_BODY} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))
}

/// Verifies the Bearer access token; no store round-trip.
fn bearer(state: &WebState, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized(
            "unauthorized",
            "sign-in required".into(),
        ))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized(
            "unauthorized",
            "a Bearer token is required".into(),
        ));
    }
    state
        .signer
        .verify(token.trim(), TokenKind::Access, now_unix())
        .map_err(|e| ApiError::Unauthorized("invalid_token", e.to_string()))
}

async fn account_of(state: &WebState, claims: &Claims) -> Result<Account, ApiError> {
    state
        .store
        .account_get(claims.account())
        .await?
        .ok_or(ApiError::Unauthorized(
            "invalid_token",
            "the account no longer exists".into(),
        ))
}

fn token_pair(state: &WebState, account: AccountId, sid: &str, now: i64) -> Value {
    json!({
        "access_token": state.signer.issue(TokenKind::Access, account, sid, ACCESS_TTL_SECS, now),
        "refresh_token": state.signer.issue(TokenKind::Refresh, account, sid, REFRESH_TTL_SECS, now),
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL_SECS,
        "session_id": sid,
    })
}

/// A valid argon2id hash of a random string (verified against for unknown users).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&generate_app_password()).unwrap_or_default())
}

async fn verify_blocking(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false)
}

async fn find_account(state: &WebState, username: &str) -> Result<Option<Account>, ApiError> {
    if let Some(a) = state.store.account_by_address(username).await? {
        return Ok(Some(a));
    }
    match state.store.resolve_address(username).await? {
        Some(id) => Ok(state.store.account_get(id).await?),
        None => Ok(None),
    }
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// Web sign-in: the account password (app passwords are for IMAP/SMTP clients and are refused
/// here), then the TOTP or a recovery code when 2FA is on. Throttled like every login.
async fn login(State(state): State<WebState>, req: Request) -> ApiResult {
    let remote = remote_ip(&req);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: LoginRequest = json_body(req).await?;
    let username = body.username.trim().to_ascii_lowercase();
    let throttle = state.auth.throttle();
    match throttle.check(remote, &username) {
        Verdict::Allow => {}
        Verdict::Delay(d) => tokio::time::sleep(d).await,
        Verdict::Refuse(d) => return Err(ApiError::Throttled(d.as_secs().max(1))),
    }
    let account = find_account(&state, &username).await?;
    let password_ok = match &account {
        Some(a) => verify_blocking(a.password_hash.clone(), body.password.clone()).await,
        None => {
            // Same work as a real check, so timing does not tell which addresses exist.
            let _ = verify_blocking(dummy_hash().to_string(), body.password.clone()).await;
            false
        }
    };
    let Some(account) = account.filter(|_| password_ok) else {
        throttle.record_failure(remote, &username);
        tracing::warn!(%remote, user = %username, "web login failed: invalid credentials");
        return Err(ApiError::Unauthorized(
            "invalid_credentials",
            "wrong address or password".into(),
        ));
    };
    let now = now_unix();
    if totp::is_enabled(state.store.as_ref(), account.id).await? {
        let Some(code) = body.totp.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Err(ApiError::Unauthorized(
                "totp_required",
                "enter the code from your authenticator app".into(),
            ));
        };
        if !totp::verify(state.store.as_ref(), account.id, code, now as u64).await? {
            throttle.record_failure(remote, &username);
            tracing::warn!(%remote, user = %username, "web login failed: wrong second factor");
            return Err(ApiError::Unauthorized(
                "invalid_totp",
                "the code is wrong or was already used".into(),
            ));
        }
    }
    throttle.record_success(remote, &username);
    let sid = new_session_id();
    let record = SessionRecord {
        id: sid.clone(),
        created_at: now,
        last_seen: now,
        expires_at: now + REFRESH_TTL_SECS,
        user_agent,
        ip: remote.to_string(),
        via: sessions::VIA_WEB.to_string(),
    };
    match sessions::add(state.store.as_ref(), account.id, record, now).await {
        Ok(evicted) => {
            for old in evicted {
                let _ = state.signer.revoke_session(&old.id, old.expires_at, now);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not record web session"),
    }
    let mut body = token_pair(&state, account.id, &sid, now);
    body["account"] = json!({ "address": account.address, "displayName": account.display_name });
    ok(body)
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// Exchanges a refresh token for a new pair. Works while the store is down (signature only).
async fn refresh(State(state): State<WebState>, req: Request) -> ApiResult {
    let body: RefreshRequest = json_body(req).await?;
    let now = now_unix();
    let claims = state
        .signer
        .verify(&body.refresh_token, TokenKind::Refresh, now)
        .map_err(|e| ApiError::Unauthorized("invalid_grant", e.to_string()))?;
    if let Err(e) = sessions::touch(
        state.store.as_ref(),
        claims.account(),
        &claims.sid,
        now + REFRESH_TTL_SECS,
        now,
    )
    .await
    {
        tracing::debug!(error = %e, "session last-seen not recorded");
    }
    ok(token_pair(&state, claims.account(), &claims.sid, now))
}

async fn logout(State(state): State<WebState>, headers: HeaderMap) -> ApiResult {
    let claims = bearer(&state, &headers)?;
    let now = now_unix();
    state
        .signer
        .revoke_session(&claims.sid, now + REFRESH_TTL_SECS, now)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if let Err(e) = sessions::remove(state.store.as_ref(), claims.account(), &claims.sid).await {
        tracing::debug!(error = %e, "session record not removed");
    }
    ok(json!({}))
}

async fn me(State(state): State<WebState>, headers: HeaderMap) -> ApiResult {
    let claims = bearer(&state, &headers)?;
    let account = account_of(&state, &claims).await?;
    let status = totp::status(state.store.as_ref(), account.id).await?;
    ok(json!({
        "address": account.address,
        "displayName": account.display_name,
        "sessionId": claims.sid,
        "totp": status,
    }))
}

async fn totp_status(State(state): State<WebState>, headers: HeaderMap) -> ApiResult {
    let claims = bearer(&state, &headers)?;
    ok(json!(
        totp::status(state.store.as_ref(), claims.account()).await?
    ))
}

async fn totp_enrol(State(state): State<WebState>, headers: HeaderMap) -> ApiResult {
    let claims = bearer(&state, &headers)?;
    let account = account_of(&state, &claims).await?;
    let e = totp::enrol(
        state.store.as_ref(),
        account.id,
        TOTP_ISSUER,
        &account.address,
    )
    .await?;
    ok(
        json!({ "secret": e.secret, "otpauthUri": e.otpauth_uri, "qrSvg": e.qr_svg, "qrDataUrl": e.qr_data_url }),
    )
}

#[derive(Deserialize)]
struct CodeRequest {
    code: String,
}

async fn totp_confirm(State(state): State<WebState>, req: Request) -> ApiResult {
    let claims = bearer(&state, req.headers())?;
    let body: CodeRequest = json_body(req).await?;
    let codes = totp::confirm(
        state.store.as_ref(),
        claims.account(),
        &body.code,
        now_unix() as u64,
    )
    .await?;
    ok(json!({ "recoveryCodes": codes }))
}

#[derive(Deserialize)]
struct PasswordRequest {
    password: String,
}

/// Turning 2FA off needs the account password again (a stolen unlocked session is not enough).
async fn totp_disable(State(state): State<WebState>, req: Request) -> ApiResult {
    let claims = bearer(&state, req.headers())?;
    let remote = remote_ip(&req);
    let body: PasswordRequest = json_body(req).await?;
    let account = account_of(&state, &claims).await?;
    if !verify_blocking(account.password_hash.clone(), body.password).await {
        state
            .auth
            .throttle()
            .record_failure(remote, &account.address);
        return Err(ApiError::Unauthorized(
            "invalid_credentials",
            "wrong password".into(),
        ));
    }
    totp::disable(state.store.as_ref(), account.id).await?;
    ok(json!({}))
}

async fn app_password_list(State(state): State<WebState>, headers: HeaderMap) -> ApiResult {
    let claims = bearer(&state, &headers)?;
    let list = state.store.app_password_list(claims.account()).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|p| json!({ "id": p.id, "name": p.name, "createdAt": p.created_at }))
        .collect();
    ok(json!(items))
}

#[derive(Deserialize)]
struct NewAppPassword {
    name: String,
}

/// Creates an app password; the clear text is in this response only.
async fn app_password_add(State(state): State<WebState>, req: Request) -> ApiResult {
    let claims = bearer(&state, req.headers())?;
    let body: NewAppPassword = json_body(req).await?;
    let name = body.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_APP_PASSWORD_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "name must be 1 to {MAX_APP_PASSWORD_NAME} printable characters"
        )));
    }
    let password = generate_app_password();
    let clear = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&clear))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(ApiError::Unavailable)?;
    let created = state
        .store
        .app_password_add(claims.account(), name, &hash)
        .await?;
    ok(
        json!({ "id": created.id, "name": created.name, "createdAt": created.created_at, "password": password }),
    )
}

async fn app_password_delete(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult {
    let claims = bearer(&state, &headers)?;
    state
        .store
        .app_password_delete(claims.account(), id)
        .await?;
    ok(json!({}))
}

async fn session_list(State(state): State<WebState>, headers: HeaderMap) -> ApiResult {
    let claims = bearer(&state, &headers)?;
    let now = now_unix();
    let list = sessions::list(state.store.as_ref(), claims.account()).await?;
    let items: Vec<Value> = list
        .into_iter()
        .filter(|s| s.expires_at > now && !state.signer.is_revoked(&s.id))
        .map(|s| {
            let current = s.id == claims.sid;
            let mut v = json!(s);
            v["current"] = json!(current);
            v
        })
        .collect();
    ok(json!(items))
}

/// Revokes a session: its access and refresh tokens stop verifying at once.
async fn session_revoke(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let claims = bearer(&state, &headers)?;
    let now = now_unix();
    // Only the account's own sessions can be revoked.
    let Some(record) = sessions::remove(state.store.as_ref(), claims.account(), &id).await? else {
        return Err(ApiError::NotFound);
    };
    state
        .signer
        .revoke_session(
            &record.id,
            record.expires_at.max(now + REFRESH_TTL_SECS),
            now,
        )
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    ok(json!({}))
}
