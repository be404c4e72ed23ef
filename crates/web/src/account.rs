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
use bulwark_auth::token::{
    CREDENTIAL_REVOCATION_KEEP_SECS, Claims, Grant, Scope, TokenKind, account_epoch,
    app_password_revocation, new_session_id, now_ms,
};
use bulwark_auth::{
    LoginError, SignIn, SignInError, check_password_strength, generate_app_password, hash_password,
    totp,
};
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
/// The browser's device cookie (issue 13, item 11): set at a successful sign-in, it makes the
/// browser a known device of the account, exempt from the per-account lock-out that attempts
/// from other addresses cause. It grants nothing by itself.
pub const DEVICE_COOKIE: &str = "bulwark_device";
/// Lifetime of the device cookie.
pub const DEVICE_TTL_SECS: i64 = 365 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{1}")]
    Unauthorized(&'static str, String),
    /// Signed in, but not allowed: wrong password or code for a change that needs them, or a
    /// token whose scope does not cover account management.
    #[error("{1}")]
    Forbidden(&'static str, String),
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
            StoreError::Conflict(_) => ApiError::Unavailable(
                "changed at the same time by another request; try again".into(),
            ),
            // The store's own text (database errors) stays in the log (issue 12).
            other => {
                tracing::warn!(error = %other, "account API: store failure");
                ApiError::Unavailable("the account store is unavailable right now".into())
            }
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
            totp::TotpError::Corrupt(_) => {
                tracing::error!(error = %e, "account API: two-factor state unreadable");
                ApiError::Unavailable("the two-factor settings cannot be read right now".into())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unauthorized(code, _) => (StatusCode::UNAUTHORIZED, *code),
            ApiError::Forbidden(code, _) => (StatusCode::FORBIDDEN, *code),
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
        .route("/password", post(password_change))
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

/// A Bearer token that may manage the account ([`Scope::Account`]): sessions opened with an
/// app password are for the mail protocols only (issue 13, item 6).
fn bearer_manage(state: &WebState, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let claims = bearer(state, headers)?;
    if claims.scope != Scope::Account {
        return Err(ApiError::Forbidden(
            "insufficient_scope",
            "this session was opened with an app password; sign in with the account password to manage the account".into(),
        ));
    }
    Ok(claims)
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

fn token_pair(state: &WebState, grant: &Grant, now: i64) -> Value {
    json!({
        "access_token": state.signer.issue_grant(TokenKind::Access, grant, ACCESS_TTL_SECS, now),
        "refresh_token": state.signer.issue_grant(TokenKind::Refresh, grant, REFRESH_TTL_SECS, now),
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL_SECS,
        "session_id": grant.sid,
    })
}

/// The account a valid device cookie in `headers` vouches for.
fn device_of(state: &WebState, headers: &HeaderMap) -> Option<AccountId> {
    let now = now_unix();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == DEVICE_COOKIE)
        .find_map(|(_, value)| state.signer.verify(value, TokenKind::Device, now).ok())
        .map(|claims| claims.account())
}

fn device_cookie(state: &WebState, account: AccountId, now: i64) -> Option<header::HeaderValue> {
    let grant = Grant {
        account,
        sid: new_session_id(),
        scope: Scope::Mail,
        app: None,
    };
    let token = state
        .signer
        .issue_grant(TokenKind::Device, &grant, DEVICE_TTL_SECS, now);
    header::HeaderValue::from_str(&format!(
        "{DEVICE_COOKIE}={token}; Path=/api/account; Max-Age={DEVICE_TTL_SECS}; HttpOnly; SameSite=Strict"
    ))
    .ok()
}

/// The answer to a failed re-check of the password (and code) for a change.
fn reauth_error(e: SignInError) -> ApiError {
    match e {
        SignInError::SecondFactorRequired => ApiError::Forbidden(
            "totp_required",
            "enter the code from your authenticator app (field totp)".into(),
        ),
        SignInError::InvalidSecondFactor => ApiError::Forbidden(
            "invalid_totp",
            "the code is wrong or was already used".into(),
        ),
        SignInError::Login(LoginError::InvalidCredentials | LoginError::AppPasswordRequired) => {
            ApiError::Forbidden("invalid_credentials", "wrong password".into())
        }
        SignInError::Login(LoginError::Throttled { retry_after_secs }) => {
            ApiError::Throttled(retry_after_secs)
        }
        SignInError::Login(LoginError::Unavailable(_)) => {
            ApiError::Unavailable("sign-in is unavailable right now".into())
        }
    }
}

/// The account password (and, with 2FA on, the current code) of the signed-in user, sent
/// with every change to the account's credentials (issue 13, item 6).
#[derive(Deserialize)]
struct Confirmation {
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// Where a change request comes from: its address, and the account its device cookie (if
/// any) vouches for.
#[derive(Debug, Clone, Copy)]
struct Caller {
    remote: IpAddr,
    device: Option<AccountId>,
}

impl Caller {
    fn of(state: &WebState, req: &Request) -> Caller {
        Caller {
            remote: remote_ip(req),
            device: device_of(state, req.headers()),
        }
    }
}

/// Re-checks the password and code through the login throttle (item 7). A token alone does
/// not make the device known: only the browser's device cookie exempts the check from the
/// per-account lock-out, so a stolen token cannot guess the password from many addresses.
async fn confirm_identity(
    state: &WebState,
    account: &Account,
    confirmation: &Confirmation,
    caller: Caller,
) -> Result<(), ApiError> {
    if confirmation.password.is_empty() {
        return Err(ApiError::Forbidden(
            "password_required",
            "confirm with your account password (field password)".into(),
        ));
    }
    state
        .auth
        .reauthenticate(
            account,
            &confirmation.password,
            confirmation.totp.as_deref(),
            caller.remote,
            caller.device == Some(account.id),
        )
        .await
        .map_err(reauth_error)
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// Web sign-in: the account password (app passwords are for IMAP/SMTP clients and are refused
/// here), then the TOTP or a recovery code when 2FA is on, in one throttled attempt. A browser
/// with a device cookie of the account stays exempt from the per-account lock-out.
async fn login(State(state): State<WebState>, req: Request) -> ApiResult {
    let remote = remote_ip(&req);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let known_device = device_of(&state, req.headers());
    let body: LoginRequest = json_body(req).await?;
    let username = body.username.trim().to_ascii_lowercase();
    let signed_in = state
        .auth
        .sign_in(SignIn {
            username: &username,
            password: &body.password,
            code: body.totp.as_deref(),
            remote,
            app_passwords: false,
            known_device,
        })
        .await;
    let account = match signed_in {
        Ok(v) => v.account,
        Err(SignInError::SecondFactorRequired) => {
            return Err(ApiError::Unauthorized(
                "totp_required",
                "enter the code from your authenticator app".into(),
            ));
        }
        Err(SignInError::InvalidSecondFactor) => {
            return Err(ApiError::Unauthorized(
                "invalid_totp",
                "the code is wrong or was already used".into(),
            ));
        }
        Err(SignInError::Login(
            LoginError::InvalidCredentials | LoginError::AppPasswordRequired,
        )) => {
            return Err(ApiError::Unauthorized(
                "invalid_credentials",
                "wrong address or password".into(),
            ));
        }
        Err(SignInError::Login(LoginError::Throttled { retry_after_secs })) => {
            return Err(ApiError::Throttled(retry_after_secs));
        }
        Err(SignInError::Login(LoginError::Unavailable(_))) => {
            return Err(ApiError::Unavailable(
                "sign-in is unavailable right now".into(),
            ));
        }
    };
    let now = now_unix();
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
    let grant = Grant {
        account: account.id,
        sid,
        scope: Scope::Account,
        app: None,
    };
    let mut body = token_pair(&state, &grant, now);
    body["account"] = json!({ "address": account.address, "displayName": account.display_name });
    let mut response = no_store(StatusCode::OK, body);
    if let Some(cookie) = device_cookie(&state, account.id, now) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
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
    ok(token_pair(&state, &Grant::of(&claims), now))
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
    let claims = bearer_manage(&state, &headers)?;
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
    let claims = bearer_manage(&state, &headers)?;
    ok(json!(
        totp::status(state.store.as_ref(), claims.account()).await?
    ))
}

/// Starts 2FA enrolment; needs the account password in the same request (a stolen session
/// must not be able to put an attacker's authenticator on the account).
async fn totp_enrol(State(state): State<WebState>, req: Request) -> ApiResult {
    let claims = bearer_manage(&state, req.headers())?;
    let caller = Caller::of(&state, &req);
    let body: Confirmation = json_body(req).await?;
    let account = account_of(&state, &claims).await?;
    confirm_identity(&state, &account, &body, caller).await?;
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
    let claims = bearer_manage(&state, req.headers())?;
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

/// Turning 2FA off needs the account password and a current code (or a recovery code), checked
/// through the login throttle like a sign-in (issue 13, item 7).
async fn totp_disable(State(state): State<WebState>, req: Request) -> ApiResult {
    let claims = bearer_manage(&state, req.headers())?;
    let caller = Caller::of(&state, &req);
    let body: Confirmation = json_body(req).await?;
    let account = account_of(&state, &claims).await?;
    confirm_identity(&state, &account, &body, caller).await?;
    totp::disable(state.store.as_ref(), account.id).await?;
    ok(json!({}))
}

async fn app_password_list(State(state): State<WebState>, headers: HeaderMap) -> ApiResult {
    let claims = bearer_manage(&state, &headers)?;
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
    #[serde(flatten)]
    confirmation: Confirmation,
}

/// Creates an app password; the clear text is in this response only. Needs the account
/// password (and code) in the same request.
async fn app_password_add(State(state): State<WebState>, req: Request) -> ApiResult {
    let claims = bearer_manage(&state, req.headers())?;
    let caller = Caller::of(&state, &req);
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
    let account = account_of(&state, &claims).await?;
    confirm_identity(&state, &account, &body.confirmation, caller).await?;
    let password = generate_app_password();
    let clear = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&clear))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(ApiError::Unavailable)?;
    let created = state
        .store
        .app_password_add(account.id, name, &hash)
        .await?;
    ok(
        json!({ "id": created.id, "name": created.name, "createdAt": created.created_at, "password": password }),
    )
}

/// Deletes an app password (needs the account password and code, as JSON body) and revokes
/// every token issued from it.
async fn app_password_delete(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    req: Request,
) -> ApiResult {
    let claims = bearer_manage(&state, req.headers())?;
    let caller = Caller::of(&state, &req);
    let body: Confirmation = json_body(req).await?;
    let account = account_of(&state, &claims).await?;
    confirm_identity(&state, &account, &body, caller).await?;
    state.store.app_password_delete(account.id, id).await?;
    state.auth.forget_account(account.id).await;
    let now = now_unix();
    state
        .signer
        .revoke_credentials(&app_password_revocation(
            account.id,
            id,
            now + CREDENTIAL_REVOCATION_KEEP_SECS,
        ))
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    ok(json!({}))
}

#[derive(Deserialize)]
struct PasswordChange {
    #[serde(rename = "newPassword")]
    new_password: String,
    #[serde(flatten)]
    confirmation: Confirmation,
}

/// Changes the account password (needs the current one, and the code with 2FA on). Every
/// token of the account issued before stops working, except this session's; the other
/// sessions are signed out, and the answer says how many.
async fn password_change(State(state): State<WebState>, req: Request) -> ApiResult {
    let claims = bearer_manage(&state, req.headers())?;
    let caller = Caller::of(&state, &req);
    let body: PasswordChange = json_body(req).await?;
    let account = account_of(&state, &claims).await?;
    check_password_strength(&body.new_password, &account.address).map_err(ApiError::BadRequest)?;
    confirm_identity(&state, &account, &body.confirmation, caller).await?;
    let clear = body.new_password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&clear))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(ApiError::Unavailable)?;
    state.store.account_set_password(account.id, &hash).await?;
    state.auth.forget_account(account.id).await;
    let now = now_unix();
    state
        .signer
        .revoke_credentials(&account_epoch(
            account.id,
            Some(&claims.sid),
            now_ms(),
            now + CREDENTIAL_REVOCATION_KEEP_SECS,
        ))
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let mut signed_out = 0usize;
    for session in sessions::list(state.store.as_ref(), account.id).await? {
        if session.id == claims.sid {
            continue;
        }
        let _ = state.signer.revoke_session(
            &session.id,
            session.expires_at.max(now + REFRESH_TTL_SECS),
            now,
        );
        if sessions::remove(state.store.as_ref(), account.id, &session.id)
            .await
            .is_ok()
        {
            signed_out += 1;
        }
    }
    tracing::info!(
        account = account.id.0,
        signed_out,
        "password changed from the web"
    );
    let mut response = no_store(
        StatusCode::OK,
        json!({
            "changed": true,
            "signedOutSessions": signed_out,
            "keptSession": claims.sid,
            "description": format!(
                "password changed; {signed_out} other session(s) signed out, every token issued before is revoked except this session's"
            ),
        }),
    );
    // The new epoch also ended this browser's device cookie: hand it a fresh one.
    if let Some(cookie) = device_cookie(&state, account.id, now_unix()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn session_list(State(state): State<WebState>, headers: HeaderMap) -> ApiResult {
    let claims = bearer_manage(&state, &headers)?;
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
    let claims = bearer_manage(&state, &headers)?;
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
