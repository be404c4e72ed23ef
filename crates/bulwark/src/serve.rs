//! `bulwark serve`: open the store, load TLS, bind every listener, start the servers and the
//! queue worker; reload the config on SIGHUP; drain and exit on SIGTERM/SIGINT.

use crate::config::{Config, ListenerName};
use crate::control::{self, PidFile, ReloadStatus, RunningServer};
use crate::node::NodeState;
use crate::reload::{self, LogHandle, ReloadableCert, Reloaded};
use crate::servers::{self, Shared};
use anyhow::{Context, bail};
use bulwark_auth::{Authenticator, ThrottleConfig};
use bulwark_imap::ImapServer;
use bulwark_managesieve::ManageSieveServer;
use bulwark_pop3::Pop3Server;
use bulwark_queue::QueueWorker;
use bulwark_smtp::SmtpServer;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long blocking work (a database commit in flight) may take to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often a drain looks whether every session has ended.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// Seconds a client told "draining" by HTTP should wait before retrying (elsewhere).
pub const DRAIN_RETRY_AFTER_SECS: u64 = 5;

pub fn run(config: Config, node_override: Option<String>) -> anyhow::Result<()> {
    let log = reload::init_logging(&config.log.level);
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
    let result = runtime.block_on(serve(config, node_override, log));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

/// What runs, for the drain to wait on.
struct Running {
    smtp: Arc<SmtpServer>,
    imap: Vec<Arc<ImapServer>>,
    pop3: Vec<Arc<Pop3Server>>,
    managesieve: Vec<Arc<ManageSieveServer>>,
    listeners: Vec<JoinHandle<()>>,
    http: Vec<JoinHandle<()>>,
    queue: JoinHandle<()>,
    /// Tells the http listeners to stop (after the other sessions ended).
    http_stop: watch::Sender<bool>,
}

impl Running {
    fn open_sessions(&self) -> usize {
        self.smtp.open_connections()
            + self
                .imap
                .iter()
                .map(|s| s.open_connections())
                .sum::<usize>()
            + self
                .pop3
                .iter()
                .map(|s| s.open_connections())
                .sum::<usize>()
            + self
                .managesieve
                .iter()
                .map(|s| s.open_connections())
                .sum::<usize>()
    }
}

async fn serve(
    config: Config,
    node_override: Option<String>,
    log: Option<LogHandle>,
) -> anyhow::Result<()> {
    let store = crate::admin::open_store(&config).await?;
    let (certs, tls) = ReloadableCert::load(&config)?;
    // ACME: the challenge responder (http-01 on the http listener, tls-alpn-01 on the TLS
    // listeners) and the task that keeps the certificate fresh.
    let acme_challenges = config
        .acme
        .as_ref()
        .map(|_| bulwark_acme::Challenges::new());
    let acceptor = match &acme_challenges {
        Some(c) => bulwark_net::TlsAcceptor::with_acme_alpn(
            tls,
            Arc::new(bulwark_acme::AlpnResponder {
                challenges: c.clone(),
                store: store.clone(),
                domains: config
                    .acme
                    .iter()
                    .flat_map(|a| a.domains.iter().map(|d| d.to_ascii_lowercase()))
                    .collect(),
            }),
        ),
        None => bulwark_net::TlsAcceptor::from(tls),
    };
    let acme_task = match (&config.acme, &acme_challenges) {
        (Some(settings), Some(challenges)) => {
            let installer = certs.clone();
            Some(
                bulwark_acme::Acme {
                    settings: settings.clone(),
                    store: store.clone(),
                    challenges: challenges.clone(),
                    node_id: node_override
                        .clone()
                        .unwrap_or_else(|| config.node_id.clone()),
                    install: Arc::new(move |key| installer.install(key)),
                    poll: acme_poll(),
                }
                .spawn(),
            )
        }
        _ => None,
    };
    let listeners = bind_all(&config).await?;
    let node = NodeState::new(store.clone());
    let max_connections = connection_cap(&config, listeners.len());
    let queue_wakeup = Arc::new(Notify::new());
    let resolver = bulwark_dns::Resolver::new(&servers::dns_config(&config))
        .map_err(|e| anyhow::anyhow!("cannot set up DNS: {e}"))?;
    let pipeline = bulwark_core::Pipeline::new(
        store.clone(),
        queue_wakeup.clone(),
        i64::try_from(config.outbound.queue_lifetime.as_secs()).unwrap_or(i64::MAX),
    );
    // One set of hold timers per node, for SMTP FUTURERELEASE and JMAP send-later alike.
    let held = bulwark_core::held::Held::start(&pipeline);
    let shared = Shared {
        resolver,
        held,
        max_connections,
        auth: Arc::new(
            Authenticator::with_offline_cache(
                store.clone(),
                throttle_config(&config),
                &config.data_dir,
                bulwark_auth::OfflineCacheConfig {
                    max_age: config.auth.offline_cache_max_age,
                },
            )
            .context("cannot open the local login cache")?,
        ),
        pipeline,
        store,
        tls: acceptor,
        queue_wakeup,
        config: Arc::new(config),
        node: node.clone(),
    };
    // SPF/DKIM/DMARC checks and DKIM signing: the first stage of the pipeline.
    let trust = servers::trust_hook(&shared);
    shared.pipeline.add_hook(trust.clone());
    // ARC seals on what Sieve redirects out (RFC 8617), from the same checks.
    shared.pipeline.set_forward_sealer(trust);
    // Viruses (ClamAV, when configured): refused before anything else looks at the message.
    if let Some(hook) = servers::clamav_hook(&shared) {
        shared.pipeline.add_hook(hook);
    }
    // Spam and phishing scores: X-Spam-Status, Junk, optionally refusal; each account's
    // classifier, trained from its moves into and out of Junk.
    shared.pipeline.add_hook(servers::spam_hook(&shared));
    if shared.config.spam.enabled {
        bulwark_spam::trainer::spawn(shared.store.clone());
    }
    // The account's active Sieve script: folders, flags, discard, reject, redirect, vacation.
    shared
        .pipeline
        .add_hook(Arc::new(bulwark_sieve::SieveFilter::new(
            shared.store.clone(),
            &shared.config.hostname,
        )));
    // Storage quotas: the recipient stage refuses a copy that would pass the account's limit.
    shared
        .pipeline
        .add_hook(Arc::new(bulwark_core::quota::QuotaHook::new(
            shared.store.clone(),
            servers::quota_policy(&shared.config),
        )));
    // Signing keys are shared by every node through the store (cached in data_dir, so a node
    // starts and verifies tokens during a store outage); a task picks up rotations.
    let signer = Arc::new(
        bulwark_auth::token::TokenSigner::load_shared(
            shared.store.as_ref(),
            &shared.config.data_dir,
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the token signing keys: {e}"))?,
    );
    let key_refresh = signer.spawn_refresh(shared.store.clone());
    // Deletes blobs nothing references any more (expunged mail, unused uploads).
    let blob_collector = bulwark_core::collector::spawn(shared.store.clone());
    // Signals are watched before anyone can learn our pid from the pid file.
    let mut signals = Signals::new()?;
    // Issue 13 item 2: clear-text TOTP secrets from before are rewritten sealed.
    let migrate_store = shared.store.clone();
    tokio::spawn(async move {
        match bulwark_auth::totp::migrate_all(migrate_store.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(accounts = n, "TOTP secrets encrypted at rest"),
            Err(e) => tracing::warn!(error = %e, "cannot encrypt the stored TOTP secrets yet"),
        }
    });
    // One SMTP server for all SMTP listeners, so connection limits count across ports.
    let smtp = servers::smtp_server(&shared);
    smtp.set_held(shared.held.clone());
    // Store outage: SMTP accepts into a durable local spool, replayed once the store answers.
    let spool = bulwark_core::spool::Spool::open(
        &shared.config.data_dir,
        bulwark_core::spool::SpoolLimits {
            max_bytes: shared.config.limits.spool_max_bytes,
            max_messages: shared.config.limits.spool_max_messages,
        },
    )
    .map_err(|e| anyhow::anyhow!("cannot open the local spool: {e}"))?;
    // The spool judges recipients by the last known local domains when the store goes away:
    // learn them before accepting any mail, so an outage right after start is covered too.
    match shared.store.domain_list().await {
        Ok(list) => spool.remember_domains(&list),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the local domains at start; the spool uses the ones it remembers")
        }
    }
    // Through the node's pipeline: its hooks judge replayed mail like any other.
    let spool_replay = spool.spawn_replay_through(shared.pipeline.clone());
    smtp.set_spool(spool.clone());
    node.set_spool(spool);
    let (http_stop, _) = watch::channel(false);
    let mut imap = Vec::new();
    let mut pop3 = Vec::new();
    let mut managesieve = Vec::new();
    let mut tasks = Vec::new();
    let mut http = Vec::new();
    let mut http_addr = None;
    let mut lines = String::new();
    // What autoconfiguration tells clients: the ports this node really listens on.
    let bound: Vec<(ListenerName, std::net::SocketAddr)> = listeners
        .iter()
        .filter_map(|(name, l)| Some((*name, l.local_addr().ok()?)))
        .collect();
    let client_settings = crate::http::client_settings(&shared.config, &bound);
    for (name, listener) in listeners {
        let addr = listener
            .local_addr()
            .with_context(|| format!("{} listener has no address", name.as_str()))?;
        lines.push_str(&format!("listening: {} {addr}\n", name.as_str()));
        tracing::info!(listener = name.as_str(), %addr, "listening");
        match name {
            ListenerName::Smtp | ListenerName::Submission | ListenerName::Submissions => {
                tasks.push(servers::spawn_smtp(&smtp, &shared, listener, name));
            }
            ListenerName::Imap | ListenerName::Imaps => {
                let server = servers::imap_server(&shared);
                let tls = name == ListenerName::Imaps;
                tasks.push(servers::spawn_imap(&server, &shared, listener, tls));
                imap.push(server);
            }
            ListenerName::Pop3 | ListenerName::Pop3s => {
                let server = servers::pop3_server(&shared);
                let tls = name == ListenerName::Pop3s;
                tasks.push(servers::spawn_pop3(&server, &shared, listener, tls));
                pop3.push(server);
            }
            ListenerName::ManageSieve => {
                let server = servers::managesieve_server(&shared);
                tasks.push(servers::spawn_managesieve(&server, &shared, listener));
                managesieve.push(server);
            }
            ListenerName::Http => {
                http_addr.get_or_insert(addr);
                http.push(tokio::spawn(crate::http::run(
                    listener,
                    shared.clone(),
                    signer.clone(),
                    client_settings.clone(),
                    acme_challenges.clone(),
                    http_stop.subscribe(),
                )));
            }
        }
    }
    let (queue_worker, queue) = servers::spawn_queue(&shared);
    let running = Running {
        smtp,
        imap,
        pop3,
        managesieve,
        listeners: tasks,
        http,
        queue,
        http_stop,
    };
    let _pid_file = PidFile::create(
        &shared.config.data_dir,
        &RunningServer {
            pid: std::process::id() as i32,
            node_id: shared.config.node_id.clone(),
            http: http_addr,
        },
    )?;
    if let Some(addr) = http_addr {
        // The first thing a new user wants: where the web client is.
        let host = if addr.ip().is_unspecified() {
            shared.config.hostname.clone()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        lines.push_str(&format!(
            "web client: open http://{host}:{}/ in a browser\n",
            addr.port()
        ));
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(lines.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")?;
    drop(stdout);
    tracing::info!(
        node = %shared.config.node_id,
        store = %shared.config.store.describe(&shared.config.data_dir),
        "serving"
    );

    let live = Live {
        log,
        certs,
        queue: queue_worker,
        node_override,
        generation: control::read_reload_status(&shared.config.data_dir)
            .map(|s| s.generation)
            .unwrap_or(0),
    };
    let config = serve_until_stop(&mut signals, (*shared.config).clone(), live).await;
    drain(&config, &node, running, &mut signals).await;
    key_refresh.abort();
    blob_collector.abort();
    if let Some(task) = acme_task {
        task.abort();
    }
    spool_replay.abort();
    Ok(())
}

/// How often the ACME task looks at the store: [`bulwark_acme::DEFAULT_POLL`], or
/// `BULWARK_ACME_POLL` seconds (for tests: a forced renewal within seconds).
fn acme_poll() -> Duration {
    std::env::var("BULWARK_ACME_POLL")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(bulwark_acme::DEFAULT_POLL, Duration::from_secs)
}

/// The parts a reload changes while running.
struct Live {
    log: Option<LogHandle>,
    certs: Arc<ReloadableCert>,
    queue: Arc<QueueWorker>,
    node_override: Option<String>,
    /// Counts reloads (in the status file `bulwark config reload` waits on).
    generation: u64,
}

/// Handles SIGHUP until SIGTERM/SIGINT; returns the config in force then.
async fn serve_until_stop(signals: &mut Signals, mut config: Config, mut live: Live) -> Config {
    loop {
        match signals.next().await {
            SignalEvent::Reload => config = apply_reload(config, &mut live),
            SignalEvent::Stop(name) => {
                tracing::info!(signal = name, "draining");
                return config;
            }
        }
    }
}

fn apply_reload(running: Config, live: &mut Live) -> Config {
    live.generation += 1;
    let (config, ok, message) =
        match reload::reread(&running.source, &running, live.node_override.as_deref()) {
            Reloaded::Refused { message } => {
                tracing::error!("config reload refused:\n{message}");
                (running, false, message)
            }
            Reloaded::Applied {
                config,
                mut message,
            } => {
                let config = *config;
                if config.log != running.log
                    && let Some(handle) = &live.log
                {
                    match tracing_subscriber::EnvFilter::try_new(&config.log.level) {
                        Ok(filter) => {
                            let _ = handle.reload(filter);
                        }
                        Err(e) => message.push_str(&format!("\nlog.level not applied: {e}")),
                    }
                }
                if config.tls != running.tls
                    && let Err(e) = live.certs.replace(&config)
                {
                    message.push_str(&format!("\ntls not applied: {e:#}"));
                }
                if config.outbound != running.outbound {
                    let resolver = live.queue.config().resolver;
                    live.queue
                        .set_config(servers::queue_config(&config, resolver));
                }
                tracing::info!("{message}");
                (config, true, message)
            }
        };
    let status = ReloadStatus {
        generation: live.generation,
        ok,
        message,
    };
    if let Err(e) = control::write_reload_status(&config.data_dir, &status) {
        tracing::warn!("cannot write the reload status: {e:#}");
    }
    config
}

/// Stops accepting, lets sessions end (bounded by the drain timeout), then stops the rest.
async fn drain(config: &Config, node: &NodeState, running: Running, signals: &mut Signals) {
    let timeout = control::take_drain_request(&config.data_dir).unwrap_or(config.drain_timeout);
    let deadline = Instant::now() + timeout;
    node.start_drain();
    tracing::info!(
        timeout_secs = timeout.as_secs(),
        "draining: /readyz says draining, listeners closed, sessions finishing"
    );
    let sessions_ended = async {
        while running.open_sessions() > 0 || !running.queue.is_finished() {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    };
    let ended = tokio::select! {
        () = sessions_ended => true,
        () = tokio::time::sleep_until(deadline) => false,
        () = signals.second_stop() => false,
    };
    if !ended {
        tracing::warn!(
            open = running.open_sessions(),
            "drain timeout: closing the sessions still open"
        );
    }
    // JMAP requests in flight finish; new ones were answered 503 while draining.
    running.http_stop.send_replace(true);
    let http_done = async {
        for task in &running.http {
            while !task.is_finished() {
                tokio::time::sleep(DRAIN_POLL).await;
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline.max(Instant::now() + DRAIN_POLL), http_done).await;
    for task in running
        .listeners
        .iter()
        .chain(&running.http)
        .chain(std::iter::once(&running.queue))
    {
        task.abort();
    }
    tracing::info!("drained; exiting");
}

/// Raises the open-file limit, sets the descriptor budget all listeners share, and returns
/// the per-listener connection cap (issue 13 item 4: 20,000 idle HTTP connections took every
/// descriptor and with them every protocol).
fn connection_cap(config: &Config, listeners: usize) -> usize {
    let wanted = config.limits.max_connections;
    match bulwark_net::fd::install_fd_budget() {
        Ok((limit, budget)) => {
            let cap = bulwark_net::fd::fair_share(wanted, listeners, budget);
            tracing::info!(
                soft = limit.soft,
                hard = limit.hard,
                budget,
                "open-file limit"
            );
            if cap < wanted {
                tracing::warn!(
                    max_connections = wanted,
                    cap,
                    listeners,
                    "the open-file limit is too low for limits.max_connections on every \
                     listener; each listener holds at most {cap} connections (raise the hard \
                     RLIMIT_NOFILE, e.g. LimitNOFILE= in the systemd unit)"
                );
            }
            cap
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            wanted
        }
    }
}

fn throttle_config(config: &Config) -> ThrottleConfig {
    ThrottleConfig {
        window: config.auth.failure_window,
        ip_max_failures: config.auth.ip_max_failures,
        account_delay_after: config.auth.account_delay_after,
        account_delay: config.auth.account_delay,
        account_max_failures: config.auth.account_max_failures,
        account_lockout: config.auth.account_lockout,
    }
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

enum SignalEvent {
    Reload,
    Stop(&'static str),
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
        })
    }

    async fn next(&mut self) -> SignalEvent {
        tokio::select! {
            _ = self.term.recv() => SignalEvent::Stop("SIGTERM"),
            _ = self.int.recv() => SignalEvent::Stop("SIGINT"),
            _ = self.hup.recv() => SignalEvent::Reload,
        }
    }

    /// A second SIGTERM/SIGINT during a drain: stop waiting.
    async fn second_stop(&mut self) {
        loop {
            if let SignalEvent::Stop(name) = self.next().await {
                tracing::warn!(
                    signal = name,
                    "second stop signal: not waiting for sessions"
                );
                return;
            }
        }
    }
}
