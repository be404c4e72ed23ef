//! The `http` listener: JMAP (RFC 8620/8621/8887) from `bulwark-jmap`, the web client and its
//! account API from `bulwark-web` (at `/`), plus load-balancer probes: `GET /healthz` (the process is alive) and `GET /readyz` (the store answers).

use crate::servers::Shared;
use axum::http::StatusCode;
use axum::routing::get;
use bulwark_auth::token::TokenSigner;
use bulwark_jmap::{JmapConfig, JmapServer};
use bulwark_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves JMAP and the probes on `listener` until the task is dropped.
pub async fn run(listener: TcpListener, shared: Shared, signer: Arc<TokenSigner>) {
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
        ..JmapConfig::default()
    };
    let jmap = JmapServer::new(
        cfg,
        shared.store.clone(),
        shared.auth.clone(),
        signer.clone(),
        shared.queue_wakeup.clone(),
    );
    let web = bulwark_web::router(shared.store.clone(), shared.auth.clone(), signer);
    jmap.vacation().start();
    let app = jmap
        .router()
        .merge(probes(shared.store.clone()))
        // Last: the web router owns the fallback (client-side routes get index.html).
        .merge(web)
        .into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "http listener stopped");
    }
}

fn probes(store: Arc<dyn Store>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let store = store.clone();
                async move {
                    match store.domain_list().await {
                        Ok(_) => (StatusCode::OK, "ready\n".to_string()),
                        Err(e) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("store unavailable: {e}\n"),
                        ),
                    }
                }
            }),
        )
}
