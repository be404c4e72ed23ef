//! The HTTP shell: authentication as for JMAP (Basic with a password or an app password,
//! accounts with a second factor only with app passwords; Bearer access tokens), the body
//! limit before the body is read, then [`crate::core::handle`].

use crate::core::{Request, Response as DavResponse, User, handle, store_error};
use crate::limits::MAX_RESOURCE_SIZE;
use crate::store::StoreBackend;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use bulwark_auth::token::TokenSigner;
use bulwark_auth::{Authenticator, HttpAuthError, HttpPrincipal, LoginError};
use bulwark_store::Store;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

#[derive(Clone)]
struct DavState {
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    signer: Arc<TokenSigner>,
}

/// `/dav/…` and the RFC 6764 well-known redirects.
pub fn router(store: Arc<dyn Store>, auth: Arc<Authenticator>, signer: Arc<TokenSigner>) -> Router {
    let state = DavState {
        store,
        auth,
        signer,
    };
    Router::new()
        // RFC 6764 §5: the well-known URIs redirect to the context path.
        .route(
            "/.well-known/caldav",
            any(|| async { Redirect::temporary(crate::paths::ROOT) }),
        )
        .route(
            "/.well-known/carddav",
            any(|| async { Redirect::temporary(crate::paths::ROOT) }),
        )
        .route("/dav", any(dav_handler))
        .route("/dav/", any(dav_handler))
        .route("/dav/{*rest}", any(dav_handler))
        .route(
            "/.well-known/caldav/",
            get(|| async { Redirect::temporary(crate::paths::ROOT) }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn unauthorized(detail: &str) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, detail.to_string()).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"bulwark\", charset=\"UTF-8\""),
    );
    r
}

async fn authenticate(s: &DavState, headers: &HeaderMap, remote: IpAddr) -> Result<User, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let store = s.store.as_ref();
    match bulwark_auth::authorize_http(&s.auth, &s.signer, store, value, remote).await {
        Ok(HttpPrincipal {
            account,
            username: Some(username),
        }) => Ok(User { account, username }),
        // A valid token, but the store cannot say whose paths these are: try again later.
        Ok(HttpPrincipal { username: None, .. })
        | Err(HttpAuthError::Login(LoginError::Unavailable(_))) => Err(into_http(store_error(
            bulwark_store::StoreError::Unavailable("auth".into()),
        ))),
        Err(HttpAuthError::Login(LoginError::Throttled { .. })) => {
            Err((StatusCode::TOO_MANY_REQUESTS, "too many failed logins").into_response())
        }
        Err(e) => Err(unauthorized(&e.to_string())),
    }
}

fn into_http(r: DavResponse) -> Response {
    let mut out = Response::new(Body::from(r.body));
    *out.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            out.headers_mut().append(k, v);
        }
    }
    out
}

async fn dav_handler(State(s): State<DavState>, req: axum::extract::Request) -> Response {
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let user = match authenticate(&s, req.headers(), remote).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (parts, body) = req.into_parts();
    let h = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let is_put = parts.method.as_str() == "PUT";
    // Refused before the body is read (RFC 4791 §5.3.2.1 max-resource-size).
    let declared = h("content-length").and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        let (ns, _) = if parts.uri.path().starts_with("/dav/addressbooks/") {
            (crate::xml::CARDDAV, ())
        } else {
            (crate::xml::CALDAV, ())
        };
        into_http(DavResponse::precondition(
            413,
            ns,
            "max-resource-size",
            "the request body is too large",
        ))
    };
    if declared.is_some_and(|n| n > MAX_RESOURCE_SIZE as u64) {
        return too_large();
    }
    let limit = if is_put {
        MAX_RESOURCE_SIZE
    } else {
        crate::limits::MAX_XML_BODY
    };
    let Ok(bytes) = to_bytes(body, limit).await else {
        return too_large();
    };
    let request = Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        depth: h("depth"),
        if_match: h("if-match"),
        if_none_match: h("if-none-match"),
        body: bytes.to_vec(),
    };
    let backend = StoreBackend(s.store.clone());
    into_http(handle(&backend, &user, request).await)
}
