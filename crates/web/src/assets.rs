//! The embedded single-page app: `index.html` for every client route, hashed assets cached
//! forever, the service worker never cached (so an update reaches clients on next load).

use crate::WebState;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist"]
struct Dist;

/// Cache policy for content-hashed build outputs (`/assets/name-HASH.js`).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache policy for entry points that must be revalidated on every load.
const REVALIDATE: &str = "no-cache";
/// The client's own routes (besides `/`): these paths and those below them get `index.html`
/// (a reload of a deep link). Every other path that is not a file is a 404, so `/admin`,
/// `/metrics` or a mistyped URL never answer 200 with the app (issue 17 defect 9).
const APP_ROUTES: [&str; 4] = ["/mail", "/settings", "/calendar", "/contacts"];

/// Is `path` the app's start page or one of its client routes?
fn is_app_route(path: &str) -> bool {
    path == "/"
        || path == "/index.html"
        || APP_ROUTES.iter().any(|r| {
            path.strip_prefix(r)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

pub fn routes() -> Router<WebState> {
    Router::new().fallback(serve)
}

/// Content type of an embedded file, by extension.
fn content_type(path: &str, guessed: &str) -> Cow<'static, str> {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    Cow::Borrowed(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => return Cow::Owned(guessed.to_string()),
    })
}

fn file_response(path: &str, method: &Method) -> Option<Response> {
    let file = Dist::get(path)?;
    let cache = if path.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let ctype = content_type(path, file.metadata.mimetype());
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(file.data.into_owned())
    };
    let mut res = Response::new(body);
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctype) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if path == "sw.js" {
        // The worker controls the whole origin.
        h.insert("service-worker-allowed", HeaderValue::from_static("/"));
    }
    Some(res)
}

async fn serve(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = uri.path();
    let rel = path.trim_start_matches('/');
    if !rel.is_empty()
        && !rel.contains("..")
        && let Some(res) = file_response(rel, &method)
    {
        return res;
    }
    // Client routes (`/mail/inbox/…`) get the app; anything else (missing files, API paths,
    // unknown pages) a 404.
    let last = rel.rsplit('/').next().unwrap_or("");
    if !is_app_route(path) || (last.contains('.') && path != "/index.html") {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    file_response("index.html", &method)
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "web client not built").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_apps_own_routes_get_the_app() {
        for path in [
            "/",
            "/mail",
            "/mail/inbox",
            "/settings/security",
            "/calendar/week",
        ] {
            assert!(is_app_route(path), "{path}");
        }
        for path in [
            "/admin",
            "/metrics",
            "/mailx",
            "/x/mail",
            "/jmap/x",
            "/api/account",
            "",
        ] {
            assert!(!is_app_route(path), "{path}");
        }
    }

    #[test]
    fn content_types_are_explicit_for_app_files() {
        assert_eq!(
            content_type("assets/index-abc.js", "x"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("index.html", "x"), "text/html; charset=utf-8");
        assert_eq!(content_type("font.otf", "font/otf"), "font/otf");
    }
}
