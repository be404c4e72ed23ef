#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
//! The store under a database outage: a TCP proxy between the store and PostgreSQL is cut
//! (every connection closed, new ones refused) or turned into a black hole (connections
//! accepted, nothing answered), then restored. Every call must fail fast with
//! `Unavailable`, and calls plus change fan-out must recover by themselves.
//! Needs `BULWARK_TEST_PG` (see `scripts/pg-test-server`); skipped without it.

use bulwark_store::conformance::{append_one, new_account};
use bulwark_store::*;
use bulwark_store_pg::testing::fresh_database_url;
use bulwark_store_pg::{CALL_TIMEOUT, CONNECT_TIMEOUT, PgStore};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Slack on top of a timeout for scheduling on a busy 2-core machine.
const SLACK: Duration = Duration::from_secs(2);
/// How long recovery (reconnect, LISTEN again, catch-up) may take after the proxy is back.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between polls of something that has its own deadline.
const POLL_PAUSE: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    /// New connections are closed at once.
    Down,
    /// New connections are accepted and never answered.
    BlackHole,
}

/// A loopback TCP proxy to PostgreSQL that can fail on command.
struct Proxy {
    addr: std::net::SocketAddr,
    mode: Arc<Mutex<Mode>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = Arc::new(Mutex::new(Mode::Up));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (m, c) = (mode.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let current = *m.lock().expect("mode");
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    match current {
                        Mode::Down => {}
                        Mode::BlackHole => {
                            // Hold the socket open and say nothing.
                            std::future::pending::<()>().await;
                        }
                        Mode::Up => {
                            if let Ok(mut server) = TcpStream::connect(&upstream).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        }
                    }
                    drop(client);
                });
                c.lock().expect("connections").push(task.abort_handle());
            }
        })
        .abort_handle();
        Proxy {
            addr,
            mode,
            connections,
            accept,
        }
    }

    fn drop_connections(&self) {
        for task in self.connections.lock().expect("connections").drain(..) {
            task.abort();
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
        if mode != Mode::Up {
            self.drop_connections();
        }
    }
}

/// `postgres://user@HOST:PORT/db` → (`HOST:PORT`, the URL with `replacement` as authority).
fn split_authority(url: &str, replacement: &str) -> (String, String) {
    let start = url.find('@').expect("user@ in test URL") + 1;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let authority = url[start..end].to_string();
    let proxied = format!("{}{replacement}{}", &url[..start], &url[end..]);
    (authority, proxied)
}

/// A store that talks to PostgreSQL through a proxy, plus a direct one on the same
/// database (another "node"); `None` when PostgreSQL tests are disabled.
async fn proxied_store() -> Option<(Proxy, Arc<PgStore>, Arc<PgStore>)> {
    let url = match fresh_database_url().await {
        Ok(Some(url)) => url,
        Ok(None) => {
            eprintln!("skipped: BULWARK_TEST_PG not set (start one with scripts/pg-test-server)");
            return None;
        }
        Err(e) => panic!("test PostgreSQL is not usable: {e}"),
    };
    let (upstream, _) = split_authority(&url, "");
    let proxy = Proxy::start(upstream).await;
    let (_, proxied_url) = split_authority(&url, &proxy.addr.to_string());
    let direct = PgStore::connect(&url).await.expect("direct store");
    let proxied = PgStore::connect(&proxied_url).await.expect("proxied store");
    Some((proxy, proxied, direct))
}

async fn expect_unavailable_within<T: std::fmt::Debug>(
    what: &str,
    bound: Duration,
    call: impl std::future::Future<Output = Result<T>>,
) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(bound + SLACK, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for more than {:?}", bound + SLACK));
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{what}: {outcome:?}"
    );
    assert!(
        started.elapsed() <= bound + SLACK,
        "{what} took {:?}",
        started.elapsed()
    );
}

/// Polls `ping` until it succeeds or the deadline passes.
async fn wait_until_answering(store: &PgStore) {
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        match store.ping().await {
            Ok(()) => return,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(POLL_PAUSE).await;
            }
            Err(e) => panic!("store did not recover: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_during_an_outage_and_recover_with_change_fan_out() {
    let Some((proxy, store, other_node)) = proxied_store().await else {
        return;
    };
    let (account, inbox) = new_account(&(store.clone() as Arc<dyn Store>)).await;
    let mut changes = store.subscribe(account.id);

    proxy.set(Mode::Down);
    expect_unavailable_within("domain_list", CONNECT_TIMEOUT, store.domain_list()).await;
    expect_unavailable_within(
        "mailbox_list",
        CONNECT_TIMEOUT,
        store.mailbox_list(account.id),
    )
    .await;
    expect_unavailable_within("ping", CONNECT_TIMEOUT, store.ping()).await;

    // Another node writes while this one is cut off: this node's listener misses the
    // NOTIFY and must catch up after it reconnects.
    let other: Arc<dyn Store> = other_node.clone();
    let missed = append_one(&other, account.id, inbox.id, "while cut off").await;

    proxy.set(Mode::Up);
    wait_until_answering(&store).await;
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let change = tokio::time::timeout(left, changes.recv())
            .await
            .expect("no catch-up change after reconnecting")
            .expect("channel open");
        if change.modseq >= missed.modseq {
            assert!(change.mailboxes.contains(&inbox.id), "{change:?}");
            break;
        }
    }

    // LISTEN is back: a later change of the other node arrives too.
    let later = append_one(&other, account.id, inbox.id, "after recovery").await;
    loop {
        let change = tokio::time::timeout(RECOVERY_DEADLINE, changes.recv())
            .await
            .expect("no change after LISTEN was re-established")
            .expect("channel open");
        if change.modseq >= later.modseq {
            break;
        }
    }
    let mine: Arc<dyn Store> = store.clone();
    append_one(&mine, account.id, inbox.id, "writes work again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_accepts_but_never_answers_is_unavailable_within_the_bound() {
    let Some((proxy, store, _other)) = proxied_store().await else {
        return;
    };
    proxy.set(Mode::BlackHole);
    // Pooled connections were dropped: each call opens a new one, which hangs at startup.
    expect_unavailable_within("domain_list", CONNECT_TIMEOUT, store.domain_list()).await;
    expect_unavailable_within("ping", CALL_TIMEOUT, store.ping()).await;
    proxy.set(Mode::Up);
    wait_until_answering(&store).await;
}
