//! The `http` listener: JMAP (RFC 8620/8621/8887) from `bulwark-jmap`, the web client and its
//! account API from `bulwark-web` (at `/`), the web upload and download of mail from
//! `bulwark-migrate` (`/migrate/import`, `/migrate/export`), plus load-balancer probes: `GET /healthz` (the
//! process is alive) and `GET /readyz` (`ready`, or 503 `draining` / `degraded: …`).

use crate::node::NodeState;
use crate::servers::Shared;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bulwark_auth::token::TokenSigner;
use bulwark_jmap::listener::HttpLimits;
use bulwark_jmap::{JmapConfig, JmapServer};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The extra trusted roots of `[push] ca_file`; an unreadable file is logged and skipped
/// (pushes then use the system's roots only).
fn push_roots(path: Option<&std::path::Path>) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let Some(path) = path else {
        return Vec::new();
    };
    let certs = std::fs::File::open(path).map(|f| {
        rustls_pemfile::certs(&mut std::io::BufReader::new(f))
            .filter_map(Result::ok)
            .collect::<Vec<_>>()
    });
    match certs {
        Ok(certs) if !certs.is_empty() => certs,
        Ok(_) => {
            tracing::warn!(path = %path.display(), "push.ca_file holds no certificate");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "push.ca_file cannot be read");
            Vec::new()
        }
    }
}

/// Serves JMAP and the probes on `listener` until `stop` turns true; then requests in flight
/// finish and the task ends.
pub async fn run(
    listener: TcpListener,
    shared: Shared,
    signer: Arc<TokenSigner>,
    clients: bulwark_autoconfig::Settings,
    acme: Option<Arc<bulwark_acme::Challenges>>,
    mut stop: watch::Receiver<bool>,
) {
    let c = &shared.config;
    let base_url = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(_) => format!("http://{}", c.hostname),
    };
    let cfg = JmapConfig {
        hostname: c.hostname.clone(),
        base_url,
        queue_lifetime_secs: i64::try_from(c.outbound.queue_lifetime.as_secs()).unwrap_or(i64::MAX),
        data_dir: Some(c.data_dir.clone()),
        max_message_size: usize::try_from(c.limits.max_message_size).unwrap_or(usize::MAX),
        // Quiet push connections send keep-alives well inside the idle timeout.
        push_keepalive: JmapConfig::default()
            .push_keepalive
            .min(c.limits.http_idle_timeout / 2),
        push: bulwark_jmap::webpush::PushClientConfig {
            allow_private_networks: c.push.allow_private_networks,
            extra_roots: push_roots(c.push.ca_file.as_deref()),
        },
        quota: crate::servers::quota_policy(c),
        ..JmapConfig::default()
    };
    let jmap = JmapServer::new(
        cfg,
        shared.store.clone(),
        shared.auth.clone(),
        signer.clone(),
        shared.queue_wakeup.clone(),
    );
    let dav = bulwark_dav::router(shared.store.clone(), shared.auth.clone(), signer.clone());
    let web = bulwark_web::router(shared.store.clone(), shared.auth.clone(), signer.clone());
    jmap.set_pipeline(shared.pipeline.clone());
    jmap.set_held(shared.held.clone());
    // Before serving: what older versions kept in `data_dir` (identities, vacation) moves
    // into the store.
    jmap.migrate_legacy_files().await;
    let autoconfig = bulwark_autoconfig::router(clients, shared.store.clone());
    // The web client's "Upload mail" and "Download my data" (issue 18).
    let migrate = bulwark_migrate::http::router(
        shared.store.clone(),
        shared.auth.clone(),
        signer.clone(),
        bulwark_migrate::http::HttpConfig {
            max_upload_size: usize::try_from(c.limits.max_import_size).unwrap_or(usize::MAX),
            max_message_size: usize::try_from(c.limits.max_message_size).unwrap_or(usize::MAX),
            quota: crate::servers::quota_policy(c),
        },
    );
    let app = jmap
        .router()
        .merge(autoconfig)
        .merge(dav)
        .merge(migrate)
        // Last: the web router owns the fallback (client-side routes get index.html).
        .merge(web)
        .layer(middleware::from_fn_with_state(
            shared.node.clone(),
            refuse_while_draining,
        ))
        .merge(probes(shared.node.clone()))
        .merge(acme_challenge(acme, shared.store.clone()));
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let limits = HttpLimits {
        max_connections_per_ip: c.limits.max_connections_per_ip,
        max_connections: shared.max_connections,
        trusted_networks: c.limits.trusted_networks.clone().into(),
        header_timeout: c.limits.http_header_timeout,
        idle_timeout: c.limits.http_idle_timeout,
    };
    bulwark_jmap::listener::serve(listener, app, limits, stopped).await;
}

/// While draining, new requests get 503 with Retry-After (RFC 9110 §15.6.4) so clients and
/// load balancers go to another node; requests already running finish.
async fn refuse_while_draining(
    State(node): State<Arc<NodeState>>,
    request: Request,
    next: Next,
) -> Response {
    if !node.is_draining() {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "draining: this node is shutting down; retry on another node\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from(crate::serve::DRAIN_RETRY_AFTER_SECS),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What autoconfiguration (Thunderbird, Autodiscover, Apple profiles) offers: `hostname` and
/// the ports of the listeners bound (`bound`), IMAP/POP3/submission with their TLS mode.
pub fn client_settings(
    config: &crate::config::Config,
    bound: &[(crate::config::ListenerName, std::net::SocketAddr)],
) -> bulwark_autoconfig::Settings {
    use crate::config::ListenerName as L;
    use bulwark_autoconfig::{Endpoint, Security};
    let mut s = bulwark_autoconfig::Settings {
        hostname: config.hostname.clone(),
        ..Default::default()
    };
    for (name, addr) in bound {
        let port = addr.port();
        let (list, security) = match name {
            L::Imaps => (&mut s.imap, Security::Tls),
            L::Imap => (&mut s.imap, Security::StartTls),
            L::Pop3s => (&mut s.pop3, Security::Tls),
            L::Pop3 => (&mut s.pop3, Security::StartTls),
            L::Submissions => (&mut s.smtp, Security::Tls),
            L::Submission => (&mut s.smtp, Security::StartTls),
            L::Http => {
                s.web_url
                    .get_or_insert(format!("http://{}:{port}", config.hostname));
                continue;
            }
            L::Smtp | L::ManageSieve => continue,
        };
        list.push(Endpoint { port, security });
    }
    s
}

/// RFC 8555 §8.3: `GET /.well-known/acme-challenge/{token}` answers the key authorization
/// (`application/octet-stream`) while an order is open — on any node, the tokens are in the
/// store. Answered while draining too: the CA does not retry elsewhere.
fn acme_challenge(
    challenges: Option<Arc<bulwark_acme::Challenges>>,
    store: Arc<dyn bulwark_store::Store>,
) -> axum::Router {
    let Some(challenges) = challenges else {
        return axum::Router::new();
    };
    axum::Router::new().route(
        "/.well-known/acme-challenge/{token}",
        get(
            move |axum::extract::Path(token): axum::extract::Path<String>| {
                let challenges = challenges.clone();
                let store = store.clone();
                async move {
                    match challenges.http_response(store.as_ref(), &token).await {
                        Some(key_auth) => (
                            StatusCode::OK,
                            [(header::CONTENT_TYPE, "application/octet-stream")],
                            key_auth,
                        )
                            .into_response(),
                        None => (StatusCode::NOT_FOUND, "no such challenge\n").into_response(),
                    }
                }
            },
        ),
    )
}

fn probes(node: Arc<NodeState>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let node = node.clone();
                async move {
                    let readiness = node.readiness().await;
                    let status = if readiness.is_ready() {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, format!("{}\n", readiness.text()))
                }
            }),
        )
}
