//! `bulwark serve`: open the store, load TLS, bind every listener, start the servers and the
//! queue worker, and stop on SIGTERM/SIGINT.

use crate::config::{Config, ListenerName};
use crate::servers::{self, Shared};
use anyhow::{Context, bail};
use bulwark_auth::{Authenticator, ThrottleConfig};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long blocking work (a database commit in flight) may take to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Logs go to standard error; `RUST_LOG` wins over `[log] level`.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

pub fn run(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log.level);
    if config.listen.configured().is_empty() {
        bail!(
            "nothing to serve: {} has no [listen] addresses",
            config.source.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(config));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = crate::admin::open_store(&config)?;
    let files = bulwark_net::TlsFiles {
        cert: config.tls.cert.clone(),
        key: config.tls.key.clone(),
    };
    let tls = bulwark_net::load_tls(&files, &config.data_dir, &config.hostname)
        .context("cannot set up TLS")?;
    let listeners = bind_all(&config).await?;

    let throttle = ThrottleConfig {
        window: config.auth.failure_window,
        ip_max_failures: config.auth.ip_max_failures,
        account_delay_after: config.auth.account_delay_after,
        account_delay: config.auth.account_delay,
        account_max_failures: config.auth.account_max_failures,
        account_lockout: config.auth.account_lockout,
    };
    let shared = Shared {
        auth: Arc::new(Authenticator::new(store.clone(), throttle)),
        store,
        tls: bulwark_net::TlsAcceptor::from(tls),
        queue_wakeup: Arc::new(Notify::new()),
        config: Arc::new(config),
    };

    let signer = Arc::new(
        bulwark_auth::token::TokenSigner::load_or_create(&shared.config.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot load the token signing key: {e}"))?,
    );
    // One SMTP server for all SMTP listeners, so connection limits count across ports.
    let smtp = servers::smtp_server(&shared);
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut lines = String::new();
    for (name, listener) in listeners {
        let addr = listener
            .local_addr()
            .with_context(|| format!("{} listener has no address", name.as_str()))?;
        lines.push_str(&format!("listening: {} {addr}\n", name.as_str()));
        tracing::info!(listener = name.as_str(), %addr, "listening");
        tasks.push(match name {
            ListenerName::Smtp | ListenerName::Submission | ListenerName::Submissions => {
                servers::spawn_smtp(&smtp, listener, name)
            }
            ListenerName::Imap => servers::spawn_imap(&shared, listener, false),
            ListenerName::Imaps => servers::spawn_imap(&shared, listener, true),
            ListenerName::Http => {
                tokio::spawn(crate::http::run(listener, shared.clone(), signer.clone()))
            }
        });
    }
    tasks.push(servers::spawn_queue(&shared));
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(lines.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")?;
    drop(stdout);

    let signal = wait_for_signal().await?;
    tracing::info!(
        signal,
        "stopping: no new connections; finishing writes in flight"
    );
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// Binds every configured listener before starting any server, so a taken port fails start-up
/// with a message naming the listener.
async fn bind_all(config: &Config) -> anyhow::Result<Vec<(ListenerName, TcpListener)>> {
    let mut bound = Vec::new();
    for (name, addr) in config.listen.configured() {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} for {} (listen.{} in the config)",
                name.as_str(),
                name.as_str()
            )
        })?;
        bound.push((name, listener));
    }
    Ok(bound)
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        _ = int.recv() => Ok("SIGINT"),
    }
}
