//! The embedded single-page app: `index.html` for every client route, hashed assets cached
//! forever, the service worker never cached (so an update reaches clients on next load).

use crate::WebState;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

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

/// Text assets worth compressing (issue 17 defect 10: the bundle went out uncompressed).
fn compressible(ctype: &str) -> bool {
    ctype.starts_with("text/")
        || ctype.starts_with("application/json")
        || ctype.starts_with("application/manifest+json")
        || ctype.starts_with("image/svg+xml")
}

/// Does the request take gzip (RFC 9110 §12.5.3; `gzip;q=0` refuses it)?
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The gzip form of an embedded file, compressed once per process.
fn gzipped(path: &str, data: &[u8]) -> Arc<Vec<u8>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
        return hit.clone();
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let packed = enc
        .write_all(data)
        .and_then(|()| enc.finish())
        .unwrap_or_default();
    let packed = Arc::new(packed);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_string(), packed.clone());
    packed
}

fn file_response(path: &str, method: &Method, headers: &HeaderMap) -> Option<Response> {
    let file = Dist::get(path)?;
    let cache = if path.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let ctype = content_type(path, file.metadata.mimetype());
    let text = compressible(&ctype);
    let gzip = text && accepts_gzip(headers);
    let body = match (method == Method::HEAD, gzip) {
        (true, _) => Body::empty(),
        (false, true) => Body::from(gzipped(path, &file.data).as_ref().clone()),
        (false, false) => Body::from(file.data.into_owned()),
    };
    let mut res = Response::new(body);
    let h = res.headers_mut();
    if text {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if let Ok(v) = HeaderValue::from_str(&ctype) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Each encoding is its own representation (RFC 9110 §8.8.3).
    let etag = format!(
        "\"{}{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        if gzip { "-gz" } else { "" }
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

async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = uri.path();
    let rel = path.trim_start_matches('/');
    if !rel.is_empty()
        && !rel.contains("..")
        && let Some(res) = file_response(rel, &method, &headers)
    {
        return res;
    }
    // Client routes (`/mail/inbox/…`) get the app; anything else (missing files, API paths,
    // unknown pages) a 404.
    let last = rel.rsplit('/').next().unwrap_or("");
    if !is_app_route(path) || (last.contains('.') && path != "/index.html") {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    file_response("index.html", &method, &headers)
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "web client not built").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("value"),
            );
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
        let data = b"var x = 1; ".repeat(200);
        let packed = gzipped("test.js", &data);
        assert!(packed.len() < data.len() / 5);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut out)
            .expect("gunzip");
        assert_eq!(out, data);
    }

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
