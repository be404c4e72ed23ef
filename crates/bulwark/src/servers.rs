//! Wiring: turns the validated [`Config`] into each server crate's own config and starts it.
//! Decides nothing: every policy lives in the crates.

use crate::config::{Config, ListenerName};
use bulwark_auth::Authenticator;
use bulwark_imap::{ImapConfig, ImapServer};
use bulwark_managesieve::{ManageSieveConfig, ManageSieveServer};
use bulwark_net::TlsAcceptor;
use bulwark_pop3::{Pop3Config, Pop3Server};
use bulwark_queue::{QueueConfig, QueueWorker};
use bulwark_smtp::{ListenerKind, SmtpConfig, SmtpServer};
use bulwark_store::{Queued, Store};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What every server shares.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub tls: TlsAcceptor,
    /// Woken when SMTP queues outbound mail, so the queue worker starts at once.
    pub queue_wakeup: Arc<Notify>,
    /// Draining or serving; readiness.
    pub node: Arc<crate::node::NodeState>,
    /// The one delivery pipeline every protocol hands mail to (SMTP, JMAP submission,
    /// vacation replies), with the node's hooks.
    pub pipeline: Arc<bulwark_core::Pipeline>,
    /// The node's timers of mail held for later (SMTP FUTURERELEASE, JMAP sendAt / undo).
    pub held: Arc<bulwark_core::held::Held>,
    /// The node's one DNS resolver (`[dns]`): the queue's MX lookups, the inbound checks.
    pub resolver: bulwark_dns::Resolver,
    /// Connections one listener may hold: `limits.max_connections`, lowered when every
    /// listener at that cap would not fit in the file-descriptor budget
    /// ([`bulwark_net::fd::fair_share`]).
    pub max_connections: usize,
}

/// The SMTP server shared by every SMTP listener (`smtp`, `submission`, `submissions`).
pub fn smtp_server(shared: &Shared) -> Arc<SmtpServer> {
    let c = &shared.config;
    let cfg = SmtpConfig {
        hostname: c.hostname.clone(),
        max_message_size: usize::try_from(c.limits.max_message_size).unwrap_or(usize::MAX),
        max_recipients: c.limits.max_recipients,
        queue_lifetime_secs: secs(c.outbound.queue_lifetime),
        idle_timeout: c.limits.smtp_idle_timeout,
        max_connections_per_ip: c.limits.max_connections_per_ip,
        max_connections: shared.max_connections,
        trusted_networks: c.limits.trusted_networks.clone(),
        allow_plaintext_auth_on_loopback: c.auth.allow_plaintext_on_loopback,
        // The pipeline's checks write the Authentication-Results field instead.
        mark_local_domain_unauthenticated: !c.auth_checks.enabled,
        quota: quota_policy(c),
        greylist: bulwark_core::greylist::GreylistPolicy {
            enabled: c.spam.greylisting,
            delay_secs: secs(c.spam.greylist_delay),
        },
        ..SmtpConfig::default()
    };
    let server = SmtpServer::new(
        cfg,
        shared.store.clone(),
        shared.auth.clone(),
        Some(shared.tls.clone()),
        shared.queue_wakeup.clone(),
    );
    server.set_pipeline(shared.pipeline.clone());
    server
}

/// Starts `server` on one SMTP listener; it stops accepting when the node drains.
pub fn spawn_smtp(
    server: &Arc<SmtpServer>,
    shared: &Shared,
    listener: TcpListener,
    name: ListenerName,
) -> JoinHandle<()> {
    let kind = match name {
        ListenerName::Submission => ListenerKind::Submission,
        ListenerName::Submissions => ListenerKind::Submissions,
        _ => ListenerKind::Mx,
    };
    tokio::spawn(
        server
            .clone()
            .run_until(listener, kind, shared.node.drain_signal()),
    )
}

/// The IMAP server of one listener (`imap` with STARTTLS, `imaps` implicit TLS).
pub fn imap_server(shared: &Shared) -> Arc<ImapServer> {
    let c = &shared.config;
    let cfg = ImapConfig {
        hostname: c.hostname.clone(),
        max_literal_size: usize::try_from(c.limits.max_message_size).unwrap_or(usize::MAX),
        idle_timeout: c.limits.imap_idle_timeout,
        pre_auth_timeout: c.limits.imap_login_timeout,
        max_idle_duration: c.limits.imap_idle_timeout,
        max_connections_per_ip: c.limits.max_connections_per_ip,
        max_connections: shared.max_connections,
        trusted_networks: c.limits.trusted_networks.clone(),
        allow_plaintext_auth_on_loopback: c.auth.allow_plaintext_on_loopback,
        quota: quota_policy(c),
        ..ImapConfig::default()
    };
    ImapServer::new(
        cfg,
        shared.store.clone(),
        shared.auth.clone(),
        Some(shared.tls.clone()),
    )
}

/// Starts `server` on one listener; it stops accepting when the node drains.
pub fn spawn_imap(
    server: &Arc<ImapServer>,
    shared: &Shared,
    listener: TcpListener,
    implicit_tls: bool,
) -> JoinHandle<()> {
    tokio::spawn(
        server
            .clone()
            .run_until(listener, implicit_tls, shared.node.drain_signal()),
    )
}

/// The POP3 server of one listener (`pop3` with STLS, `pop3s` implicit TLS).
pub fn pop3_server(shared: &Shared) -> Arc<Pop3Server> {
    let c = &shared.config;
    let cfg = Pop3Config {
        hostname: c.hostname.clone(),
        idle_timeout: c.limits.pop3_idle_timeout,
        max_connections_per_ip: c.limits.max_connections_per_ip,
        max_connections: shared.max_connections,
        trusted_networks: c.limits.trusted_networks.clone(),
        allow_plaintext_auth_on_loopback: c.auth.allow_plaintext_on_loopback,
        ..Pop3Config::default()
    };
    Pop3Server::new(
        cfg,
        shared.store.clone(),
        shared.auth.clone(),
        Some(shared.tls.clone()),
    )
}

/// Starts `server` on one POP3 listener; it stops accepting when the node drains.
pub fn spawn_pop3(
    server: &Arc<Pop3Server>,
    shared: &Shared,
    listener: TcpListener,
    implicit_tls: bool,
) -> JoinHandle<()> {
    tokio::spawn(
        server
            .clone()
            .run_until(listener, implicit_tls, shared.node.drain_signal()),
    )
}

/// The ManageSieve server of the `managesieve` listener (STARTTLS with the node's certificate).
pub fn managesieve_server(shared: &Shared) -> Arc<ManageSieveServer> {
    let c = &shared.config;
    let cfg = ManageSieveConfig {
        max_connections_per_ip: c.limits.max_connections_per_ip,
        max_connections: shared.max_connections,
        trusted_networks: c.limits.trusted_networks.clone(),
        allow_plaintext_auth_on_loopback: c.auth.allow_plaintext_on_loopback,
        ..ManageSieveConfig::default()
    };
    ManageSieveServer::new(
        cfg,
        shared.store.clone(),
        shared.auth.clone(),
        Some(shared.tls.clone()),
    )
}

/// Starts `server` on the ManageSieve listener; it stops accepting when the node drains.
pub fn spawn_managesieve(
    server: &Arc<ManageSieveServer>,
    shared: &Shared,
    listener: TcpListener,
) -> JoinHandle<()> {
    tokio::spawn(
        server
            .clone()
            .run_until(listener, shared.node.drain_signal()),
    )
}

/// The queue worker's settings: this node's id is the lease owner; MX lookups through
/// `resolver` (the node's).
pub fn queue_config(c: &Config, resolver: Option<bulwark_dns::Resolver>) -> QueueConfig {
    QueueConfig {
        hostname: c.hostname.clone(),
        relay: c.outbound.relay.clone(),
        smtp_port: c.outbound.mx_port,
        resolver,
        node_id: c.node_id.clone(),
        retry_base_secs: secs(c.outbound.retry_base),
        retry_max_secs: secs(c.outbound.retry_max),
        mta_sts: c.outbound.mta_sts,
        tls_ca_file: c.outbound.tls_ca_file.clone(),
        ..QueueConfig::default()
    }
}

/// Starts the outbound queue worker (its bounces are delivered through the node's pipeline);
/// it stops leasing when the node drains and ends after
/// the pass in flight.
pub fn spawn_queue(shared: &Shared) -> (Arc<QueueWorker>, JoinHandle<()>) {
    // Bounces go through the node's pipeline (its hooks); it shares the queue wake-up.
    let worker = QueueWorker::with_pipeline(
        queue_config(&shared.config, Some(shared.resolver.clone())),
        shared.pipeline.clone(),
    );
    let task = tokio::spawn(worker.clone().run_until(shared.node.drain_signal()));
    (worker, task)
}

/// The `[dns]` section as the resolver's settings.
/// The spam stage (`[spam]`), after the trust stage whose results it reads.
pub fn spam_hook(shared: &Shared) -> Arc<bulwark_spam::SpamHook> {
    let c = &shared.config.spam;
    let cfg = bulwark_spam::SpamConfig {
        enabled: c.enabled,
        junk_score: i32::try_from(c.junk_score).unwrap_or(i32::MAX),
        reject_score: c.reject_score.map(|r| i32::try_from(r).unwrap_or(i32::MAX)),
        dnsbl: c.dnsbl.clone(),
    };
    Arc::new(
        bulwark_spam::SpamHook::new(cfg, Some(shared.resolver.clone()))
            .with_classifier(shared.store.clone()),
    )
}

/// The virus stage (`[spam] clamav`), if a clamd socket is configured.
pub fn clamav_hook(shared: &Shared) -> Option<Arc<bulwark_spam::ClamAvHook>> {
    let c = &shared.config.spam;
    c.clamav.clone().map(|socket| {
        Arc::new(bulwark_spam::ClamAvHook::new(
            socket,
            c.clamav_defer_on_error,
        ))
    })
}

/// `[quota]`: the storage limit of accounts without their own.
pub fn quota_policy(c: &Config) -> bulwark_core::quota::QuotaPolicy {
    bulwark_core::quota::QuotaPolicy {
        default_storage: c.quota.default_storage,
    }
}

pub fn dns_config(c: &Config) -> bulwark_dns::DnsConfig {
    bulwark_dns::DnsConfig {
        servers: c.dns.servers.clone(),
        timeout: c.dns.timeout,
    }
}

/// The trust stage of the pipeline: inbound checks (unless `[auth_checks] enabled = false`)
/// and DKIM signing with the domains' keys.
pub fn trust_hook(shared: &Shared) -> Arc<bulwark_trust::TrustHook> {
    let c = &shared.config;
    let checker = c.auth_checks.enabled.then(|| {
        bulwark_trust::Checker::new(
            bulwark_trust::ChecksConfig {
                enabled: true,
                hostname: c.hostname.clone(),
                dmarc_reject: c.auth_checks.dmarc_reject,
                dmarc_quarantine: c.auth_checks.dmarc_quarantine,
                tempfail_on_dns_error: c.auth_checks.tempfail_on_dns_error,
            },
            &shared.resolver,
        )
    });
    Arc::new(bulwark_trust::TrustHook::new(shared.store.clone(), checker))
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The queue as a table for `bulwark queue list`.
pub fn format_queue(entries: &[Queued]) -> String {
    bulwark_queue::format_queue_table(entries)
}
