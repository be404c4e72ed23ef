//! Development server for the web client: JMAP + web router over a fresh SQLite store in a
//! temp dir, with two accounts and optional seeded mail. Not the product (`bulwark serve` is);
//! used to work on the UI and by the 50,000-message list test.
//!
//! `cargo run -p bulwark-web --example dev_server -- [SEED_COUNT]`
//! Prints `listening: http 127.0.0.1:PORT`. Accounts: alice@example.test / bob@example.test,
//! password `correct horse`.

use bulwark_auth::token::TokenSigner;
use bulwark_auth::{Authenticator, ThrottleConfig, hash_password};
use bulwark_jmap::{JmapConfig, JmapServer};
use bulwark_store::{NewAccount, Store, now_unix};
use std::sync::Arc;

const PASSWORD: &str = "correct horse";
/// Messages delivered per store transaction while seeding.
const SEED_BATCH: usize = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seed: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = bulwark_store::sqlite::SqliteStore::open(dir.path())?;
    store.domain_add("example.test").await?;
    let mut accounts = vec![];
    for (user, name) in [("alice", "Alice Example"), ("bob", "Bob Example")] {
        let a = store
            .account_create(NewAccount {
                address: format!("{user}@example.test"),
                display_name: name.into(),
                password_hash: hash_password(PASSWORD).map_err(anyhow::Error::msg)?,
            })
            .await?;
        accounts.push(a.id);
    }
    let now = now_unix();
    let mut done = 0;
    while done < seed {
        let n = SEED_BATCH.min(seed - done);
        let mut batch = Vec::with_capacity(n);
        let inbox = bulwark_core::inbox_of(store.as_ref(), accounts[0]).await?;
        for i in done..done + n {
            let raw = format!(
                "From: Sender {i} <sender{i}@example.org>\r\nTo: alice@example.test\r\nSubject: Seeded message number {i}\r\n\
                 Message-ID: <seed{i}@example.org>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nBody of message {i}.\r\n"
            );
            let raw = Arc::new(raw.into_bytes());
            batch.push((
                accounts[0],
                bulwark_store::NewEmail {
                    mailboxes: vec![inbox],
                    summary: bulwark_core::summarize(&raw),
                    raw,
                    keywords: if i % 3 == 0 {
                        vec![]
                    } else {
                        vec!["$seen".into()]
                    },
                    received_at: now - (seed - i) as i64 * 60,
                },
            ));
        }
        store.deliver(batch).await?;
        done += n;
    }
    let auth = Arc::new(Authenticator::new(store.clone(), ThrottleConfig::default()));
    let signer = Arc::new(TokenSigner::load_or_create(dir.path())?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cfg = JmapConfig {
        base_url: format!("http://{addr}"),
        data_dir: Some(dir.path().to_path_buf()),
        ..JmapConfig::default()
    };
    let jmap = JmapServer::new(
        cfg,
        store.clone(),
        auth.clone(),
        signer.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let app = jmap
        .router()
        .merge(bulwark_web::router(store, auth, signer));
    println!("listening: http {addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
