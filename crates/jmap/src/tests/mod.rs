//! Tests through the axum router (tower `oneshot`) and real sockets, on a temp SqliteStore.

mod core_api;
mod devices;
mod identity;
mod listener;
mod mail;
mod outage;
mod push_auth;
mod query_page;
mod quota;
mod sieve;
mod submission;

use crate::{JmapConfig, JmapServer};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bulwark_auth::token::{TokenKind, TokenSigner};
use bulwark_auth::{Authenticator, ThrottleConfig, hash_password};
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{AccountId, NewAccount, Store, now_unix};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse";

pub struct Harness {
    pub _dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub server: Arc<JmapServer>,
    pub alice: AccountId,
    pub bob: AccountId,
    pub token: String,
    pub wakeup: Arc<tokio::sync::Notify>,
}

pub async fn harness_with(cfg: JmapConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.domain_add("example.test").await.unwrap();
    let hash = hash_password(PASSWORD).unwrap();
    let mk = |a: &str| NewAccount {
        address: a.into(),
        display_name: "Test User".into(),
        password_hash: hash.clone(),
    };
    let alice = store
        .account_create(mk("alice@example.test"))
        .await
        .unwrap()
        .id;
    let bob = store
        .account_create(mk("bob@example.test"))
        .await
        .unwrap()
        .id;
    let dyn_store: Arc<dyn Store> = store.clone();
    let auth = Arc::new(Authenticator::new(
        dyn_store.clone(),
        ThrottleConfig::default(),
    ));
    let signer = Arc::new(TokenSigner::ephemeral());
    let token = signer.issue(TokenKind::Access, alice, "test-session", 3600, now_unix());
    let wakeup = Arc::new(tokio::sync::Notify::new());
    let cfg = JmapConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..cfg
    };
    let server = JmapServer::new(cfg, dyn_store, auth, signer, wakeup.clone());
    Harness {
        _dir: dir,
        store,
        server,
        alice,
        bob,
        token,
        wakeup,
    }
}

pub async fn harness() -> Harness {
    harness_with(JmapConfig::default()).await
}

pub const USING: [&str; 4] = [
    "urn:ietf:params:jmap:core",
    "urn:ietf:params:jmap:mail",
    "urn:ietf:params:jmap:submission",
    "urn:ietf:params:jmap:vacationresponse",
];

impl Harness {
    pub fn aid(&self) -> String {
        crate::ids::account_id(self.alice)
    }

    /// Sends a request through the router; returns status, content type and JSON body.
    pub async fn raw(
        &self,
        method: &str,
        uri: &str,
        auth: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = self
            .server
            .clone()
            .router()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, ct, v)
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// POSTs a JMAP request with alice's token; asserts HTTP 200.
    pub async fn api(&self, calls: Value) -> Value {
        self.api_using(&USING, calls).await
    }

    /// [`Harness::api`] with other capabilities in `using`.
    pub async fn api_using(&self, using: &[&str], calls: Value) -> Value {
        let body = json!({ "using": using, "methodCalls": calls });
        let (status, _, v) = self
            .raw(
                "POST",
                "/jmap/api",
                Some(&self.bearer()),
                "application/json",
                body.to_string().into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// One call; returns (response name, arguments).
    pub async fn call(&self, name: &str, mut args: Value) -> (String, Value) {
        if args.get("accountId").is_none() {
            args["accountId"] = json!(self.aid());
        }
        let v = self.api(json!([[name, args, "c0"]])).await;
        let r = &v["methodResponses"][0];
        (r[0].as_str().unwrap_or_default().to_string(), r[1].clone())
    }

    /// One call that must succeed.
    pub async fn ok(&self, name: &str, args: Value) -> Value {
        let (n, v) = self.call(name, args).await;
        assert_eq!(n, name, "{v}");
        v
    }

    pub async fn mailbox_id(&self, account: AccountId, role: bulwark_store::Role) -> String {
        crate::ids::mailbox_id(
            bulwark_core::mailbox_with_role(self.store.as_ref(), account, role)
                .await
                .unwrap(),
        )
    }

    /// Delivers a message into `account`'s INBOX as SMTP would: through the server's
    /// delivery pipeline (so its hooks, the vacation responder, run).
    pub async fn deliver(&self, account: AccountId, raw: &str) -> String {
        let mut m = bulwark_core::Message::new(
            "sender@remote.test",
            Vec::new(),
            Arc::new(raw.as_bytes().to_vec()),
        );
        m.resolved = vec![("rcpt".into(), bulwark_core::Recipient::Local(account))];
        let d = self.server.pipeline().deliver(m).await.unwrap();
        crate::ids::email_id(d.appended[0].email)
    }
}

pub fn message(subject: &str, body: &str) -> String {
    format!(
        "From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\nSubject: {subject}\r\n\
Message-ID: <{}@example.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
}
