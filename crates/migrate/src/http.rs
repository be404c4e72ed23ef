//! The web client's "Upload mail" and "Download my data" (issue 18), on the `http` listener:
//!
//! * `POST /migrate/import[?folder=NAME]`: the body is an mbox (`Content-Type:
//!   application/mbox`, RFC 4155) or one message (`message/rfc822`, RFC 5322), imported by
//!   [`import_bytes`] as `bulwark import` imports a file (default folder INBOX). Any other
//!   type is refused with 415: an HTML form of another site cannot send these types without
//!   a CORS preflight (Fetch standard, CORS-safelisted request headers), which is never
//!   granted here. The answer (200, JSON) comes only after the store write returned.
//! * `GET /migrate/export`: the account's complete Bulwark archive as one tar download
//!   ([`archive_tar`]), streamed.
//!
//! Both need an `Authorization` field, read by [`bulwark_auth::authorize_http`] exactly as
//! for JMAP (Basic with the password or an app password — a two-factor account's own
//! password is refused there — or a Bearer access token): no cookie or other ambient
//! credential is looked at.

use crate::{
    ImportOptions, ImportSummary, SourceKind, archive_tar, archive_tar_name, import_bytes,
};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bulwark_auth::token::TokenSigner;
use bulwark_auth::{Authenticator, HttpAuthError, HttpPrincipal, LoginError};
use bulwark_core::quota::QuotaPolicy;
use bulwark_store::{AccountId, Store};
use serde::Deserialize;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;

/// Uploads read and imported at once (each is held in memory up to `max_upload_size`);
/// more wait their turn.
pub const MAX_CONCURRENT_UPLOADS: usize = 2;
/// Tar chunks queued between the export task and the connection.
const EXPORT_QUEUE: usize = 4;
/// Seconds a client is asked to wait when the store is down (RFC 9110 §10.2.3).
const RETRY_AFTER_SECS: u32 = 30;

/// `application/mbox` (RFC 4155 §2) and `message/rfc822` (RFC 2046 §5.2.1).
pub const MBOX_TYPE: &str = "application/mbox";
pub const MESSAGE_TYPE: &str = "message/rfc822";

/// Limits and policy of the two endpoints.
#[derive(Debug, Clone, Copy)]
pub struct HttpConfig {
    /// Largest upload (`[limits] max_import_size`); larger gets 413 before it is read.
    pub max_upload_size: usize,
    /// Largest message imported (`[limits] max_message_size`); larger ones fail alone.
    pub max_message_size: usize,
    /// The storage quota an upload must fit in (`[quota]`).
    pub quota: QuotaPolicy,
}

#[derive(Clone)]
struct MigrateState {
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    signer: Arc<TokenSigner>,
    cfg: HttpConfig,
    uploads: Arc<Semaphore>,
}

/// `/migrate/import` and `/migrate/export`.
pub fn router(
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    signer: Arc<TokenSigner>,
    cfg: HttpConfig,
) -> Router {
    let state = MigrateState {
        store,
        auth,
        signer,
        cfg,
        uploads: Arc::new(Semaphore::new(MAX_CONCURRENT_UPLOADS)),
    };
    Router::new()
        .route("/migrate/import", post(import_handler))
        .route("/migrate/export", get(export_handler))
        // The upload limit is ours (checked while reading), not axum's default 2 MB.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// A JSON error as the web client's account API writes them: `{error, description}`.
fn error(status: StatusCode, code: &str, description: impl Into<String>) -> Response {
    let body = json!({ "error": code, "description": description.into() });
    (status, axum::Json(body)).into_response()
}

fn unavailable(description: impl Into<String>) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", description);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

fn remote_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

struct User {
    account: AccountId,
    address: String,
}

/// RFC 7235 §4.2 `Authorization`, as for JMAP; `401` with a challenge (RFC 7235 §3.1) when
/// missing or wrong.
async fn authenticate(
    s: &MigrateState,
    headers: &HeaderMap,
    remote: IpAddr,
) -> Result<User, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match bulwark_auth::authorize_http(&s.auth, &s.signer, s.store.as_ref(), value, remote).await {
        Ok(HttpPrincipal {
            account,
            username: Some(address),
        }) => Ok(User { account, address }),
        Ok(HttpPrincipal { username: None, .. })
        | Err(HttpAuthError::Login(LoginError::Unavailable(_))) => Err(unavailable(
            "the account store does not answer; try again shortly",
        )),
        Err(HttpAuthError::Login(e @ LoginError::Throttled { .. })) => Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            e.to_string(),
        )),
        Err(e) => {
            let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string());
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Basic realm=\"bulwark\", charset=\"UTF-8\", Bearer realm=\"bulwark\"",
                ),
            );
            Err(r)
        }
    }
}

/// The source kind of a `Content-Type` (RFC 9110 §8.3.1: the media type is case-insensitive,
/// parameters after `;` are ignored).
fn upload_kind(headers: &HeaderMap) -> Option<SourceKind> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next()?.trim().to_ascii_lowercase();
    match media.as_str() {
        MBOX_TYPE => Some(SourceKind::Mbox),
        MESSAGE_TYPE => Some(SourceKind::Eml),
        _ => None,
    }
}

#[derive(Deserialize)]
struct ImportQuery {
    folder: Option<String>,
}

fn too_large(max: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "tooLarge",
        format!(
            "the upload is larger than this server takes ({max} bytes); import bigger files with `bulwark import` on the server"
        ),
    )
}

async fn import_handler(
    State(s): State<MigrateState>,
    Query(query): Query<ImportQuery>,
    req: Request,
) -> Response {
    let remote = remote_ip(&req);
    let user = match authenticate(&s, req.headers(), remote).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(kind) = upload_kind(req.headers()) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupportedMediaType",
            format!(
                "send an mbox as Content-Type: {MBOX_TYPE} or one message (.eml) as {MESSAGE_TYPE}"
            ),
        );
    };
    let folder = match query.folder.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => match bulwark_store::rules::canonical_mailbox_name(name) {
            Ok(n) => Some(n),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalidFolder",
                    format!("folder {name:?}: {e}"),
                );
            }
        },
    };
    let max = s.cfg.max_upload_size;
    // Refused before anything is read when the length is declared (RFC 9110 §15.5.14).
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(max);
    }
    let Ok(_permit) = s.uploads.acquire().await else {
        return unavailable("the server is shutting down");
    };
    let mut data: Vec<u8> = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return error(
                StatusCode::BAD_REQUEST,
                "incomplete",
                "the upload was cut off; nothing was imported",
            );
        };
        if data.len() + chunk.len() > max {
            return too_large(max);
        }
        data.extend_from_slice(&chunk);
    }
    if data.iter().all(u8::is_ascii_whitespace) {
        return error(StatusCode::BAD_REQUEST, "empty", "the upload is empty");
    }
    match bulwark_core::quota::admits(
        s.store.as_ref(),
        user.account,
        s.cfg.quota,
        data.len() as u64,
    )
    .await
    {
        Ok(true) => {}
        // RFC 4918 §11.5: 507, the server cannot store what the request needs.
        Ok(false) => {
            return error(
                StatusCode::INSUFFICIENT_STORAGE,
                "overQuota",
                "the upload does not fit in the account's storage quota; delete some mail (empty Trash too) first",
            );
        }
        Err(e) => return unavailable(format!("the store does not answer: {e}")),
    }
    let opts = ImportOptions {
        folder,
        max_message_size: s.cfg.max_message_size,
    };
    let started = std::time::Instant::now();
    match import_bytes(
        s.store.as_ref(),
        user.account,
        kind,
        &data,
        &opts,
        &mut |_| {},
    )
    .await
    {
        Ok(summary) => {
            tracing::info!(
                account = %user.address,
                kind = kind.describe(),
                bytes = data.len(),
                imported = summary.imported,
                skipped = summary.skipped,
                failed = summary.failed,
                ms = started.elapsed().as_millis() as u64,
                "web upload imported"
            );
            (StatusCode::OK, axum::Json(summary_json(&summary))).into_response()
        }
        // Only a store that stopped answering ends an import; what was stored stays, and
        // the same upload again goes on (duplicates are skipped).
        Err(e) => {
            tracing::warn!(account = %user.address, error = %e, "web upload stopped");
            unavailable(format!("{e:#}"))
        }
    }
}

/// The answer of an upload: `{kind, imported, skipped, failed, failures, foldersCreated}`.
pub fn summary_json(s: &ImportSummary) -> serde_json::Value {
    json!({
        "kind": s.kind.map(SourceKind::describe),
        "imported": s.imported,
        "skipped": s.skipped,
        "failed": s.failed,
        "failures": s.failures,
        "foldersCreated": s.folders_created,
    })
}

async fn export_handler(State(s): State<MigrateState>, req: Request) -> Response {
    let remote = remote_ip(&req);
    let user = match authenticate(&s, req.headers(), remote).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let name = archive_tar_name(&user.address, bulwark_store::now_unix());
    let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(EXPORT_QUEUE);
    let store = s.store.clone();
    let top = name.clone();
    tokio::spawn(async move {
        match archive_tar(store.as_ref(), user.account, &user.address, &top, &tx).await {
            Ok(summary) => tracing::info!(
                account = %user.address,
                messages = summary.messages,
                folders = summary.folders,
                ms = summary.elapsed.as_millis() as u64,
                "web export sent"
            ),
            // The response has begun: end the body with an error, so the client sees a
            // broken download, never a tar that looks whole.
            Err(e) => {
                tracing::warn!(account = %user.address, error = %e, "web export stopped");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    // RFC 6266 §4.1; the name holds only `[A-Za-z0-9@._+-]`.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.tar\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests;
