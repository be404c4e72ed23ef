//! Delivery of PushSubscription pushes (RFC 8620 §7.2): the PushVerification after a create,
//! then a StateChange for every commit of the account, POSTed as JSON over HTTPS with the
//! RFC 8030 `TTL` header.
//!
//! - One worker per subscription coalesces changes: while a push is in flight, newer changes
//!   wait and go out together in the next one, with the states read at that moment.
//! - Failures (no connection, TLS error, 5xx, 429) are retried with backoff, [`ATTEMPTS`]
//!   times; 404 or 410 mean the subscription is gone at the push service and it is dropped.
//! - Only public addresses are contacted (the URL is the client's, so a URL pointing at the
//!   server's own network would let a client probe it), unless
//!   [`PushClientConfig::allow_private_networks`]; the address checked is the one connected
//!   to, so a DNS answer cannot change between the check and the connection.
//! - Each change is pushed by the node that committed it, so several nodes push it once.

use crate::JmapServer;
use crate::push::{Pending, state_change};
use crate::push_subscription::{self, PUSH_SUBSCRIPTIONS, Subscription};
use bulwark_store::{AccountId, StateChange};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Tries per push (the first and the retries).
pub const ATTEMPTS: u32 = 5;
/// Delay before the first retry; doubled each time.
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// Connect + TLS + request + response, per attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// RFC 8030 §5.2 TTL: how long a push service may keep the message for an offline device.
pub const TTL_SECS: u32 = 12 * 3600;
/// Accounts whose subscriptions the sender keeps in memory.
const CACHE_ACCOUNTS: usize = 100_000;

/// How pushes reach the network.
#[derive(Debug, Clone, Default)]
pub struct PushClientConfig {
    /// Also push to loopback, private, link-local and other non-public addresses (for
    /// tests, or a push gateway inside the operator's own network).
    pub allow_private_networks: bool,
    /// Extra trusted roots (PEM), beside the system's.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// Host and port of an `https://` URL, and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Option<Target> {
        let rest = url.strip_prefix("https://")?;
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            h.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => 443,
                None => return None,
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()?),
                None => (authority.to_string(), 443),
            }
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        (host_ok && port != 0).then_some(Target { host, port, path })
    }
}

/// An address on the public internet (not loopback, private, link-local, CGNAT,
/// documentation, multicast, unspecified or IPv4-mapped forms of those).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// Why a push did not land.
#[derive(Debug)]
enum PushError {
    /// Worth another try (network, TLS, 5xx, 429).
    Retry(String),
    /// The push service says the subscription is gone (404, 410).
    Gone,
    /// Will never work (refused address, 4xx).
    Refused(String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Retry(e) => write!(f, "{e} (gave up after {ATTEMPTS} tries)"),
            PushError::Gone => f.write_str("the push service says the subscription is gone"),
            PushError::Refused(e) => f.write_str(e),
        }
    }
}

/// The HTTPS client pushes go through.
pub struct PushClient {
    config: PushClientConfig,
    tls: tokio_rustls::TlsConnector,
}

impl PushClient {
    pub fn new(config: PushClientConfig) -> PushClient {
        let tls = bulwark_net::client_config_with_roots(&config.extra_roots);
        PushClient {
            config,
            tls: tokio_rustls::TlsConnector::from(tls),
        }
    }

    /// One POST of `body` to `url`.
    async fn post(&self, url: &str, body: &str) -> Result<(), PushError> {
        let target = Target::parse(url).ok_or_else(|| PushError::Refused("bad url".into()))?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| PushError::Retry(format!("cannot resolve {}: {e}", target.host)))?
            .collect();
        let addr = addrs
            .iter()
            .copied()
            .find(|a| self.config.allow_private_networks || is_public(a.ip()))
            .ok_or_else(|| {
                PushError::Refused(format!(
                    "{} has no public address (push.allow_private_networks is off)",
                    target.host
                ))
            })?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| PushError::Retry(format!("connect {addr}: {e}")))?;
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|_| PushError::Refused(format!("bad server name {}", target.host)))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| PushError::Retry(format!("TLS with {}: {e}", target.host)))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| PushError::Retry(format!("HTTP with {}: {e}", target.host)))?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let host_header = if target.port == 443 {
            target.host.clone()
        } else if target.host.contains(':') {
            format!("[{}]:{}", target.host, target.port)
        } else {
            format!("{}:{}", target.host, target.port)
        };
        let request = hyper::Request::post(target.path.as_str())
            .header(hyper::header::HOST, host_header)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header("TTL", TTL_SECS.to_string())
            .header(hyper::header::USER_AGENT, "Bulwark JMAP push")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| PushError::Refused(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| PushError::Retry(format!("request to {}: {e}", target.host)))?;
        let status = response.status();
        // Read (a bounded amount of) the answer so the connection ends cleanly.
        let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await;
        conn.abort();
        match status.as_u16() {
            200..=299 => Ok(()),
            404 | 410 => Err(PushError::Gone),
            429 | 500..=599 => Err(PushError::Retry(format!(
                "{} answered {status}",
                target.host
            ))),
            _ => Err(PushError::Refused(format!(
                "{} answered {status}",
                target.host
            ))),
        }
    }

    /// POSTs with retries; `Gone` ends at once.
    async fn post_with_retries(&self, url: &str, body: &str) -> Result<(), PushError> {
        let mut delay = RETRY_BASE;
        let mut last = PushError::Retry("not tried".into());
        for attempt in 1..=ATTEMPTS {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.post(url, body)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(PushError::Retry(e))) => last = PushError::Retry(e),
                Ok(Err(other)) => return Err(other),
                Err(_) => last = PushError::Retry("timed out".into()),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(last)
    }
}

/// Sends the PushVerification (§7.2.2) for a new subscription, in the background.
pub fn send_verification(server: &JmapServer, sub: &Subscription) {
    let client = server.push_client();
    let body = serde_json::json!({
        "@type": "PushVerification",
        "pushSubscriptionId": sub.id,
        "verificationCode": sub.code,
    })
    .to_string();
    let url = sub.url.clone();
    tokio::spawn(async move {
        if let Err(e) = client.post_with_retries(&url, &body).await {
            tracing::info!(error = %e, "JMAP push: PushVerification not delivered");
        }
    });
}

/// What one subscription's worker has to push next.
#[derive(Default)]
struct Queue {
    pending: Option<Pending>,
    running: bool,
}

/// Watches every account's changes and pushes them to the verified subscriptions.
pub struct PushSender {
    server: Weak<JmapServer>,
    /// Active subscriptions per account, refreshed when the collection changes.
    subscriptions: Mutex<HashMap<AccountId, Arc<Vec<Subscription>>>>,
    queues: Mutex<HashMap<String, Arc<Mutex<Queue>>>>,
}

impl PushSender {
    /// Starts the sender for `server` (until the server is dropped).
    pub fn start(server: &Arc<JmapServer>) {
        let sender = Arc::new(PushSender {
            server: Arc::downgrade(server),
            subscriptions: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
        });
        let mut rx = server.store.subscribe_all();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(change) => sender.on_change(&change).await,
                    Err(RecvError::Lagged(_)) => {
                        sender.forget_all();
                    }
                    Err(RecvError::Closed) => {
                        let Some(server) = sender.server.upgrade() else {
                            return;
                        };
                        sender.forget_all();
                        rx = server.store.subscribe_all();
                    }
                }
            }
        });
    }

    fn forget_all(&self) {
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    async fn on_change(self: &Arc<Self>, change: &StateChange) {
        let Some(server) = self.server.upgrade() else {
            return;
        };
        let touches_subscriptions = change
            .collections
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| n == PUSH_SUBSCRIPTIONS));
        if touches_subscriptions {
            self.subscriptions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&change.account);
        }
        // The node that committed the change pushes it (a change from another node's feed
        // was pushed there).
        if !change.local {
            return;
        }
        let subs = match self.cached(change.account) {
            Some(subs) => subs,
            None => {
                let Ok(subs) =
                    push_subscription::active(server.store.as_ref(), change.account).await
                else {
                    return;
                };
                let subs = Arc::new(subs);
                let mut map = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
                if map.len() >= CACHE_ACCOUNTS {
                    map.clear();
                }
                map.insert(change.account, subs.clone());
                subs
            }
        };
        for sub in subs.iter() {
            self.enqueue(&server, change.account, sub, change);
        }
    }

    fn cached(&self, account: AccountId) -> Option<Arc<Vec<Subscription>>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&account)
            .cloned()
    }

    fn enqueue(
        self: &Arc<Self>,
        server: &Arc<JmapServer>,
        account: AccountId,
        sub: &Subscription,
        change: &StateChange,
    ) {
        let queue = self
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(sub.id.clone())
            .or_default()
            .clone();
        let start = {
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            q.pending.get_or_insert_with(Pending::default).add(change);
            !std::mem::replace(&mut q.running, true)
        };
        if !start {
            return;
        }
        let server = server.clone();
        let sender = self.clone();
        let sub = sub.clone();
        tokio::spawn(async move {
            let client = server.push_client();
            loop {
                let pending = {
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    match q.pending.take() {
                        Some(p) => p,
                        None => {
                            q.running = false;
                            break;
                        }
                    }
                };
                let Some(body) =
                    state_change(&server, account, &pending, sub.types.as_deref()).await
                else {
                    continue;
                };
                match client.post_with_retries(&sub.url, &body.to_string()).await {
                    Ok(()) => {}
                    Err(PushError::Gone) => {
                        push_subscription::forget(server.store.as_ref(), account, &sub.id).await;
                    }
                    Err(e) => {
                        tracing::info!(error = %e, subscription = %sub.id, "JMAP push not delivered");
                    }
                }
            }
            sender
                .queues
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, q| Arc::strong_count(q) > 1 || q.lock().is_ok_and(|q| q.running));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_host_port_and_path() {
        let t = Target::parse("https://push.example.test/a/b?c=1").expect("parses");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("push.example.test", 443, "/a/b?c=1")
        );
        let t = Target::parse("https://127.0.0.1:8443").expect("parses");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8443, "/")
        );
        let t = Target::parse("https://[::1]:9/x").expect("parses");
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
        assert!(Target::parse("https://h:0/").is_none());
        assert!(Target::parse("https://h_x/").is_none());
        assert!(Target::parse("http://h/").is_none());
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }
}
