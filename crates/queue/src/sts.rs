//! MTA-STS for outbound mail (RFC 8461 §3.3, §5): which policy a recipient domain has.
//!
//! The `_mta-sts.DOMAIN` TXT record names the policy's id; the policy itself is fetched over
//! HTTPS from `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (certificate checked, no
//! redirects, at most 64 KiB, bounded in time) and cached in the store (global setting
//! `mta-sts:DOMAIN`, shared by every node) until its `max_age` passes. A fetch is only
//! repeated when the TXT id changes or the cached copy expired (§5.1); when DNS or the fetch
//! fails, an unexpired cached policy is still applied (§5.1: a policy cannot be taken away by
//! blocking DNS or HTTPS), and without one the mail goes out as if there were no policy.

use bulwark_core::mta_sts::{self, Policy};
use bulwark_store::Store;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// A whole policy fetch: connect, TLS, request, body.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    id: String,
    body: String,
    /// Unix seconds.
    expires: i64,
}

/// Looks up and caches the policies of recipient domains.
pub(crate) struct Sts {
    pub store: Arc<dyn Store>,
    pub resolver: bulwark_dns::Resolver,
    pub tls: Arc<rustls::ClientConfig>,
    /// 443, or `BULWARK_MTA_STS_PORT` (tests serve policies on a free loopback port).
    pub port: u16,
}

fn cache_key(domain: &str) -> String {
    format!("mta-sts:{domain}")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Sts {
    /// The policy that applies to mail for `domain` now, if any.
    pub async fn policy(&self, domain: &str) -> Option<Policy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cached = self.cached(&domain).await;
        let txt_id = match self.resolver.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => {
                let ids: Vec<String> = records
                    .iter()
                    .filter_map(|r| mta_sts::parse_txt(r))
                    .collect();
                // §3.1: more than one valid record is as none.
                if ids.len() == 1 {
                    ids.into_iter().next()
                } else {
                    None
                }
            }
            Err(e) => {
                if !e.is_empty_answer() {
                    debug!(%domain, error = %e, "MTA-STS TXT lookup failed; using the cache");
                }
                None
            }
        };
        let Some(id) = txt_id else {
            // No (valid) record: a cached, unexpired policy still applies (§5.1).
            return cached.map(|(_, p)| p);
        };
        if let Some((cached_id, policy)) = &cached
            && *cached_id == id
        {
            return Some(policy.clone());
        }
        match self.fetch(&domain).await {
            Ok((body, policy)) => {
                let entry = Cached {
                    id,
                    body,
                    expires: now().saturating_add(i64::try_from(policy.max_age).unwrap_or(0)),
                };
                if let Ok(json) = serde_json::to_string(&entry)
                    && let Err(e) = self
                        .store
                        .global_setting_set(&cache_key(&domain), Some(&json))
                        .await
                {
                    warn!(%domain, error = %e, "cannot cache the MTA-STS policy");
                }
                debug!(%domain, mode = policy.mode.as_str(), "MTA-STS policy fetched");
                Some(policy)
            }
            Err(why) => {
                warn!(%domain, %why, "cannot fetch the MTA-STS policy");
                cached.map(|(_, p)| p)
            }
        }
    }

    async fn cached(&self, domain: &str) -> Option<(String, Policy)> {
        let json = self
            .store
            .global_setting_get(&cache_key(domain))
            .await
            .ok()??;
        let entry: Cached = serde_json::from_str(&json).ok()?;
        if entry.expires <= now() {
            return None;
        }
        let policy = mta_sts::parse_policy(entry.body.as_bytes()).ok()?;
        Some((entry.id, policy))
    }

    async fn fetch(&self, domain: &str) -> Result<(String, Policy), String> {
        tokio::time::timeout(FETCH_TIMEOUT, self.fetch_inner(domain))
            .await
            .map_err(|_| format!("no answer within {}s", FETCH_TIMEOUT.as_secs()))?
    }

    async fn fetch_inner(&self, domain: &str) -> Result<(String, Policy), String> {
        let host = format!("mta-sts.{domain}");
        let ips = self
            .resolver
            .ips(&host)
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        let mut last = format!("{host} has no address");
        for ip in ips.into_iter().take(crate::MAX_ADDRS_PER_HOST) {
            match self.get(&host, SocketAddr::new(ip, self.port)).await {
                Ok(body) => {
                    let policy = mta_sts::parse_policy(body.as_bytes())
                        .map_err(|e| format!("the policy of {domain} is not valid: {e}"))?;
                    return Ok((body, policy));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One `GET /.well-known/mta-sts.txt` (§3.3: 200 only, no redirects, `text/plain`).
    async fn get(&self, host: &str, addr: SocketAddr) -> Result<String, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| format!("bad name {host}"))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP with {host}: {e}"))?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = hyper::Request::get("/.well-known/mta-sts.txt")
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, "Bulwark MTA-STS")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request to {host}: {e}"))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = http_body_util::Limited::new(response.into_body(), mta_sts::MAX_POLICY_BYTES)
            .collect()
            .await;
        conn.abort();
        if status != hyper::StatusCode::OK {
            return Err(format!("{host} answered {status}"));
        }
        if !content_type.starts_with("text/plain") {
            return Err(format!("{host} answered {content_type:?}, not text/plain"));
        }
        let body = body
            .map_err(|e| format!("the policy from {host}: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| format!("the policy from {host} is not UTF-8"))
    }
}
