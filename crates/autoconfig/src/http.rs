//! The axum shell: routes, the domain check, content types.

use crate::request::{MAX_REQUEST, autodiscover_request_email};
use crate::{
    Settings, autodiscover_error, autodiscover_json, autodiscover_pox, mobileconfig, thunderbird,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bulwark_store::Store;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
struct Autoconfig {
    settings: Arc<Settings>,
    store: Arc<dyn Store>,
}

/// The autoconfiguration routes (merge into the `http` listener's router).
pub fn router(settings: Settings, store: Arc<dyn Store>) -> Router {
    let state = Autoconfig {
        settings: Arc::new(settings.normalised()),
        store,
    };
    Router::new()
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(thunderbird_handler),
        )
        .route("/mail/config-v1.1.xml", get(thunderbird_handler))
        .route("/autodiscover/autodiscover.xml", post(pox_handler))
        .route("/Autodiscover/Autodiscover.xml", post(pox_handler))
        .route("/autodiscover/autodiscover.json", get(json_handler))
        .route(
            "/autodiscover/autodiscover.json/v1.0/{email}",
            get(json_path_handler),
        )
        .route("/autoconfig/apple.mobileconfig", get(mobileconfig_handler))
        .route("/.well-known/mta-sts.txt", get(mta_sts_handler))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(state)
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{body}\n"),
    )
        .into_response()
}

fn typed(content_type: &'static str, body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The query parameter `name`, any case (`emailaddress`, `EmailAddress`, `Email`).
fn param<'a>(query: &'a HashMap<String, String>, names: &[&str]) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
        .map(|(_, v)| v.as_str())
}

enum Ours {
    Yes(String),
    No(Response),
}

/// Lowercased domain of `email` if it is one of ours, else the answer to give.
async fn our_domain(state: &Autoconfig, domain: &str) -> Ours {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || domain.len() > 253 {
        return Ours::No(text(StatusCode::BAD_REQUEST, "no mail domain given"));
    }
    match state.store.domain_exists(&domain).await {
        Ok(true) => Ours::Yes(domain),
        Ok(false) => Ours::No(text(
            StatusCode::NOT_FOUND,
            &format!("{domain} is not a mail domain of this server"),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "autoconfig: domain lookup failed");
            Ours::No(text(StatusCode::SERVICE_UNAVAILABLE, "try again later"))
        }
    }
}

fn domain_of(email: &str) -> Option<&str> {
    let (local, domain) = email.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some(domain)
}

async fn thunderbird_handler(
    State(state): State<Autoconfig>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    // Thunderbird sends ?emailaddress=; on autoconfig.DOMAIN the host names the domain.
    let domain = match param(&query, &["emailaddress"]) {
        Some(email) => match domain_of(email) {
            Some(d) => d.to_string(),
            None => return text(StatusCode::BAD_REQUEST, "emailaddress is not an address"),
        },
        None => {
            let host = request_host(&headers);
            match host.strip_prefix("autoconfig.") {
                Some(d) => d.to_string(),
                None => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "pass ?emailaddress=you@your.domain",
                    );
                }
            }
        }
    };
    match our_domain(&state, &domain).await {
        Ours::Yes(domain) => typed(
            "application/xml; charset=utf-8",
            thunderbird(&state.settings, &domain),
        ),
        Ours::No(r) => r,
    }
}

fn pox(status: StatusCode, body: String) -> Response {
    let mut r = typed("text/xml; charset=utf-8", body);
    *r.status_mut() = status;
    r
}

/// The host a request names (`Host`, without a port), lowercase.
fn request_host(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host.to_ascii_lowercase()
}

/// RFC 8461 §3.2: `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` for our domains (behind
/// the TLS proxy in front of the http listener, which must hold a certificate for
/// `mta-sts.DOMAIN`).
async fn mta_sts_handler(State(state): State<Autoconfig>, headers: HeaderMap) -> Response {
    let host = request_host(&headers);
    let Some(domain) = host.strip_prefix("mta-sts.") else {
        return text(
            StatusCode::NOT_FOUND,
            "the MTA-STS policy is served on mta-sts.YOUR.DOMAIN",
        );
    };
    match our_domain(&state, domain).await {
        Ours::Yes(_) => typed(
            "text/plain; charset=utf-8",
            bulwark_core::mta_sts::policy(&state.settings.hostname),
        ),
        Ours::No(r) => r,
    }
}

async fn pox_handler(State(state): State<Autoconfig>, body: Bytes) -> Response {
    let email = match autodiscover_request_email(&body) {
        Ok(e) => e,
        Err(e) => {
            return pox(
                StatusCode::BAD_REQUEST,
                autodiscover_error(600, &format!("Invalid Request: {e}")),
            );
        }
    };
    let Some(domain) = domain_of(&email) else {
        return pox(
            StatusCode::BAD_REQUEST,
            autodiscover_error(600, "Invalid Request"),
        );
    };
    match our_domain(&state, domain).await {
        Ours::Yes(_) => pox(StatusCode::OK, autodiscover_pox(&state.settings, &email)),
        Ours::No(r) if r.status() == StatusCode::NOT_FOUND => pox(
            StatusCode::NOT_FOUND,
            autodiscover_error(
                603,
                "Provider not available: the address is not on this server",
            ),
        ),
        Ours::No(r) => r,
    }
}

async fn json_answer(state: &Autoconfig, email: &str, protocol: &str) -> Response {
    let Some(domain) = domain_of(email) else {
        return text(StatusCode::BAD_REQUEST, "Email is not an address");
    };
    if let Ours::No(r) = our_domain(state, domain).await {
        return r;
    }
    let base = state
        .settings
        .web_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", state.settings.hostname));
    match autodiscover_json(&base, protocol) {
        Ok(v) => axum::Json(v).into_response(),
        Err(v) => (StatusCode::BAD_REQUEST, axum::Json(v)).into_response(),
    }
}

async fn json_handler(
    State(state): State<Autoconfig>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let email = param(&query, &["Email"]).unwrap_or("");
    let protocol = param(&query, &["Protocol"]).unwrap_or("");
    json_answer(&state, email, protocol).await
}

async fn json_path_handler(
    State(state): State<Autoconfig>,
    Path(email): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let protocol = param(&query, &["Protocol"]).unwrap_or("");
    json_answer(&state, &email, protocol).await
}

async fn mobileconfig_handler(
    State(state): State<Autoconfig>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(email) = param(&query, &["emailaddress", "email"]) else {
        return text(
            StatusCode::BAD_REQUEST,
            "pass ?emailaddress=you@your.domain",
        );
    };
    let email = email.trim().to_lowercase();
    let Some(domain) = domain_of(&email) else {
        return text(StatusCode::BAD_REQUEST, "emailaddress is not an address");
    };
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return text(StatusCode::BAD_REQUEST, "emailaddress is not an address");
    }
    if let Ours::No(r) = our_domain(&state, domain).await {
        return r;
    }
    let Some(profile) = mobileconfig(&state.settings, &email) else {
        return text(
            StatusCode::NOT_FOUND,
            "this server has no IMAP or submission listener",
        );
    };
    let mut r = typed("application/x-apple-aspen-config", profile);
    let file = format!(
        "attachment; filename=\"{}.mobileconfig\"",
        email.replace(['"', '\\'], "")
    );
    if let Ok(v) = HeaderValue::from_str(&file) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
