//! The web client inside the binary: the single-page app built from `web/` (embedded with
//! `rust-embed`), its service worker, and the account-management API under `/api/account/`
//! (sign-in with TOTP, 2FA enrolment, app passwords, sessions).
//!
//! Mounting: `jmap_server.router().merge(bulwark_web::router(store, auth, signer))`. This router
//! owns the fallback (client-side routes get `index.html`), so it must be the only router with
//! a fallback in the merge.
//!
//! Security headers: every response carries a strict Content-Security-Policy ([`CSP`]); the
//! mail reader adds its own, stricter policy inside the sandboxed frame (no remote images
//! until the user allows them).

mod account;
mod assets;
mod sessions;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use bulwark_auth::Authenticator;
use bulwark_auth::token::TokenSigner;
use bulwark_store::Store;
use std::sync::Arc;

pub use account::{ACCESS_TTL_SECS, REFRESH_TTL_SECS};
pub use sessions::{SESSIONS_SETTING_KEY, SessionRecord};

/// Content-Security-Policy of the app. `img-src https:` exists only so the mail frame can show
/// remote images after consent (the frame's own policy forbids them before); the app itself
/// never loads a remote resource. `style-src 'unsafe-inline'` lets mail keep its inline styles;
/// scripts are `'self'` only.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data: blob: https: http:; font-src 'self' data:; connect-src 'self'; \
    frame-src 'self' blob: about:; worker-src 'self'; manifest-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Shared state of the handlers.
#[derive(Clone)]
pub struct WebState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub signer: Arc<TokenSigner>,
}

/// The web client and account API. See the crate docs for how to mount it.
pub fn router(store: Arc<dyn Store>, auth: Arc<Authenticator>, signer: Arc<TokenSigner>) -> Router {
    let state = WebState {
        store,
        auth,
        signer,
    };
    Router::new()
        .nest("/api/account", account::routes())
        .merge(assets::routes())
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut res: axum::response::Response) -> axum::response::Response {
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    );
    res
}

#[cfg(test)]
mod tests;
