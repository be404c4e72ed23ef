//! JMAP for Bulwark: RFC 8620 (Core), RFC 8621 (Mail, Submission, VacationResponse),
//! RFC 8887 (JMAP over WebSocket) and EventSource push (RFC 8620 §7.3), over the same
//! [`Store`] and change log the IMAP server uses.
//!
//! # Invariants
//! * State strings are the account's modseq (one change log for IMAP and JMAP), so an IMAP
//!   STORE shows up in `Email/changes` and a JMAP `Email/set` in IMAP IDLE.
//! * Nothing a client sends produces a 500: request-level problems are RFC 7807 problem
//!   documents (RFC 8620 §3.6.1), method-level problems are `error` responses (§3.6.2).
//! * A JMAP success is returned only after the store call it depends on returned `Ok`
//!   (the store's durability contract).
//! * Bearer tokens are verified locally (signature, expiry, revocation) without a store call.
//!
//! Layout: `http` (routes, auth, token endpoint), `session` (session resource), `api`
//! (request parsing, dispatch, errors, result references), `mail/*` (RFC 8621 types),
//! `submission`, `vacation`, `push` (EventSource + WebSocket), `devices` (the account's list of
//! signed-in sessions, shared with the web client), `legacy` (one-time migration of the JSON
//! files older versions kept in `data_dir`).

pub mod api;
mod blob;
mod blob_ext;
pub mod devices;
mod http;
mod identity;
pub mod ids;
pub mod legacy;
pub mod listener;
mod mail;
mod push;
mod push_subscription;
mod quota;
mod session;
mod sieve;
mod submission;
pub mod vacation;
pub mod webpush;

#[cfg(test)]
mod tests;

use bulwark_auth::Authenticator;
use bulwark_auth::token::TokenSigner;
use bulwark_store::{AccountId, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Settings of the JMAP service. Limits are advertised in the session resource
/// (RFC 8620 §2 `urn:ietf:params:jmap:core`) and enforced.
#[derive(Debug, Clone)]
pub struct JmapConfig {
    pub hostname: String,
    /// Public base URL without trailing slash, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    pub max_size_upload: usize,
    pub max_concurrent_upload: usize,
    pub max_calls_in_request: usize,
    pub max_concurrent_requests: usize,
    pub max_size_request: usize,
    pub max_objects_in_get: usize,
    pub max_objects_in_set: usize,
    /// Largest JMAP Response object (JSON bytes) one request may build; a call whose result
    /// would pass it gets `requestTooLarge`. Advertised as `maxSizeResponse` in the core
    /// capability (a Bulwark extension; RFC 8620 §2 has no such limit).
    pub max_size_response: usize,
    /// Lifetime of access tokens issued by `POST /auth/token`.
    pub token_ttl_secs: i64,
    /// Lifetime of refresh tokens.
    pub refresh_ttl_secs: i64,
    /// How long the outbound queue keeps trying a remote recipient (EmailSubmission).
    pub queue_lifetime_secs: i64,
    /// Where older versions kept JMAP state (identities, vacation response) as JSON files,
    /// migrated once into the store ([`JmapServer::migrate_legacy_files`]); `None`: nothing
    /// to migrate.
    pub data_dir: Option<PathBuf>,
    /// Default `ping` interval bounds for EventSource (seconds).
    pub min_ping_secs: u64,
    /// How often an open EventSource or WebSocket re-checks the credential it was opened
    /// with; it ends once that is revoked, expired or changed (issue 13 item 8).
    pub push_recheck: std::time::Duration,
    /// Keep-alive of push connections (SSE comment, WebSocket ping), so the listener's idle
    /// timeout does not close a quiet but healthy one. Keep it well under that timeout.
    pub push_keepalive: std::time::Duration,
    /// Largest message accepted by Email/import, Email/set create and EmailSubmission.
    pub max_message_size: usize,
    /// How PushSubscription pushes reach the network (`[push]` in the config).
    pub push: webpush::PushClientConfig,
    /// Storage quotas (RFC 9425; `[quota]` in the config).
    pub quota: bulwark_core::quota::QuotaPolicy,
}

impl Default for JmapConfig {
    fn default() -> Self {
        JmapConfig {
            hostname: "localhost".into(),
            base_url: "http://127.0.0.1:8080".into(),
            max_size_upload: 50 * 1024 * 1024,
            max_concurrent_upload: 4,
            max_calls_in_request: 32,
            max_concurrent_requests: 8,
            max_size_request: 10 * 1024 * 1024,
            max_objects_in_get: 500,
            max_objects_in_set: 500,
            max_size_response: 16 * 1024 * 1024,
            token_ttl_secs: 3600,
            refresh_ttl_secs: 30 * 24 * 3600,
            queue_lifetime_secs: 5 * 24 * 3600,
            data_dir: None,
            min_ping_secs: 5,
            push_recheck: std::time::Duration::from_secs(2),
            push_keepalive: std::time::Duration::from_secs(25),
            max_message_size: 50 * 1024 * 1024,
            push: webpush::PushClientConfig::default(),
            quota: bulwark_core::quota::QuotaPolicy::default(),
        }
    }
}

/// The JMAP service: build it once, mount [`JmapServer::router`] or call [`JmapServer::run`].
pub struct JmapServer {
    pub(crate) cfg: JmapConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) signer: Arc<TokenSigner>,
    /// The node's delivery pipeline (this server's own unless [`JmapServer::set_pipeline`]).
    pub(crate) pipeline: std::sync::RwLock<Arc<bulwark_core::Pipeline>>,
    pub(crate) vacation: Arc<vacation::VacationResponder>,
    /// Requests in flight per account (RFC 8620 §2 maxConcurrentRequests).
    pub(crate) in_flight: Mutex<HashMap<AccountId, usize>>,
    /// The blob id key, loaded from the store on first use ([`blob::BlobIds::load`]).
    pub(crate) blob_ids: tokio::sync::OnceCell<blob::BlobIds>,
    /// Uploads in flight per account (RFC 8620 §2 maxConcurrentUpload).
    pub(crate) uploads_in_flight: Mutex<HashMap<AccountId, usize>>,
    /// The HTTPS client of PushSubscription pushes (system roots loaded once, on first use).
    pub(crate) push_client: std::sync::OnceLock<Arc<webpush::PushClient>>,
    /// The node's timers of mail held for later ([`bulwark_core::held::Held`]): the one
    /// given with [`JmapServer::set_held`], else this server's own, started with its router.
    pub(crate) held: std::sync::OnceLock<Arc<bulwark_core::held::Held>>,
}

impl JmapServer {
    pub fn new(
        cfg: JmapConfig,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        signer: Arc<TokenSigner>,
        queue_wakeup: Arc<Notify>,
    ) -> Arc<Self> {
        let vacation = Arc::new(vacation::VacationResponder::new(
            store.clone(),
            cfg.hostname.clone(),
        ));
        let pipeline =
            bulwark_core::Pipeline::new(store.clone(), queue_wakeup, cfg.queue_lifetime_secs);
        pipeline.add_hook(vacation.clone());
        Arc::new(JmapServer {
            cfg,
            store,
            auth,
            signer,
            pipeline: std::sync::RwLock::new(pipeline),
            vacation,
            in_flight: Mutex::new(HashMap::new()),
            uploads_in_flight: Mutex::new(HashMap::new()),
            blob_ids: tokio::sync::OnceCell::new(),
            push_client: std::sync::OnceLock::new(),
            held: std::sync::OnceLock::new(),
        })
    }

    /// Deliver through the node's shared pipeline (with its hooks); adds this server's
    /// vacation responder to its hooks, so mail delivered by SMTP is answered too.
    pub fn set_pipeline(&self, pipeline: Arc<bulwark_core::Pipeline>) {
        pipeline.add_hook(self.vacation.clone());
        *self.pipeline.write().unwrap_or_else(|e| e.into_inner()) = pipeline;
    }

    /// Encodes and decodes the blob ids clients see.
    pub(crate) async fn blob_ids(&self) -> Result<&blob::BlobIds, bulwark_store::StoreError> {
        self.blob_ids
            .get_or_try_init(|| blob::BlobIds::load(self.store.as_ref()))
            .await
    }

    pub(crate) fn pipeline(&self) -> Arc<bulwark_core::Pipeline> {
        self.pipeline
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// All JMAP routes (`/.well-known/jmap`, `/jmap/*`, `/auth/*`); also starts the sender
    /// of PushSubscription pushes (RFC 8620 §7.2), which lives as long as the server.
    pub fn router(self: Arc<Self>) -> axum::Router {
        webpush::PushSender::start(&self);
        self.held();
        http::router(self)
    }

    /// Uses the node's hold timers (one per node, shared with SMTP submission) instead of
    /// starting this server's own. Call before [`JmapServer::router`].
    pub fn set_held(&self, held: Arc<bulwark_core::held::Held>) {
        let _ = self.held.set(held);
    }

    pub(crate) fn held(&self) -> Arc<bulwark_core::held::Held> {
        self.held
            .get_or_init(|| bulwark_core::held::Held::start(&self.pipeline()))
            .clone()
    }

    pub(crate) fn push_client(&self) -> Arc<webpush::PushClient> {
        self.push_client
            .get_or_init(|| Arc::new(webpush::PushClient::new(self.cfg.push.clone())))
            .clone()
    }

    /// Moves what older versions kept as JSON files in `data_dir` (identities, the vacation
    /// response) into the store, once; then the files are removed. Call before serving. A
    /// failure is logged and the file kept for the next start; serving goes on.
    pub async fn migrate_legacy_files(&self) {
        let Some(dir) = &self.cfg.data_dir else {
            return;
        };
        if let Err(e) = identity::migrate_legacy_file(self.store.as_ref(), dir).await {
            tracing::warn!(error = %e, "legacy identities not migrated; will retry at next start");
        }
        if let Err(e) = self.vacation.migrate_legacy_file(dir).await {
            tracing::warn!(error = %e, "cannot move the old vacation file into the store yet");
        }
    }

    /// Serves the router on `listener` with the default [`listener::HttpLimits`] until the
    /// task is dropped.
    pub async fn run(self: Arc<Self>, listener: tokio::net::TcpListener) {
        self.run_with(listener, listener::HttpLimits::default())
            .await;
    }

    /// [`JmapServer::run`] with the given connection limits and timeouts.
    pub async fn run_with(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        limits: listener::HttpLimits,
    ) {
        self.migrate_legacy_files().await;
        let app = self.router();
        listener::serve(listener, app, limits, std::future::pending()).await;
    }

    /// The vacation auto-responder (a hook of the pipeline; [`JmapServer::set_pipeline`]).
    pub fn vacation(&self) -> Arc<vacation::VacationResponder> {
        self.vacation.clone()
    }
}
