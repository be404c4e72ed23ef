//! The one DNS resolver of a node. Every lookup the server makes — MX and A/AAAA for the
//! outbound queue, TXT for SPF/DKIM/DMARC, PTR for reverse DNS, the records of
//! `bulwark domain dns --check` — goes through a [`Resolver`] built from the `[dns]` config:
//! fixed name servers (`servers = ["IP:PORT", …]`, so tests run against a DNS server on
//! loopback) or the system's (`/etc/resolv.conf`).
//!
//! Every lookup is bounded: one query waits at most `timeout` per name server, and each call
//! here at most [`Resolver::deadline`] in total, whatever the server does. A lookup that runs
//! out of time is [`DnsError::Temporary`]: the caller retries later or records a
//! `temperror`, never a final verdict.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use hickory_resolver;

/// One query's limit when the config gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Records kept from one answer (a hostile zone may answer with thousands).
pub const MAX_RECORDS: usize = 64;

/// Where to ask and how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Name servers `IP:PORT`, asked over UDP (TCP when truncated); empty: the system's.
    pub servers: Vec<SocketAddr>,
    /// How long one query may wait for an answer.
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why a lookup has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// NXDOMAIN: the name does not exist (final).
    #[error("{0} does not exist")]
    NxDomain(String),
    /// The name exists but has no records of this type (final).
    #[error("{0} has no {1} records")]
    NoRecords(String, &'static str),
    /// Timeout, server failure, unreachable servers: try again later.
    #[error("{0}")]
    Temporary(String),
}

impl DnsError {
    /// NXDOMAIN or no records of the type: the answer is final and empty.
    pub fn is_empty_answer(&self) -> bool {
        matches!(self, DnsError::NxDomain(_) | DnsError::NoRecords(..))
    }
}

/// The node's resolver: cheap to clone (the cache is shared).
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    deadline: Duration,
    /// For logs and `bulwark domain dns --check`: who is asked.
    describe: String,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("servers", &self.describe)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Resolver {
    /// Builds the resolver; `Err` when the system configuration cannot be read.
    pub fn new(cfg: &DnsConfig) -> Result<Resolver, String> {
        let provider = TokioRuntimeProvider::default();
        let timeout = if cfg.timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            cfg.timeout
        };
        let (mut builder, servers) = if cfg.servers.is_empty() {
            let builder = TokioResolver::builder(provider)
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?;
            (builder, 2)
        } else {
            let servers = cfg
                .servers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for c in &mut ns.connections {
                        c.port = addr.port();
                    }
                    ns
                })
                .collect();
            let config = ResolverConfig::from_name_servers(servers);
            (
                TokioResolver::builder_with_config(config, provider),
                cfg.servers.len(),
            )
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 1;
        // Names are always given fully qualified: no search list.
        opts.ndots = 0;
        let inner = builder
            .build()
            .map_err(|e| format!("cannot build the DNS resolver: {e}"))?;
        // Each server once, plus one retry's worth, then give up whatever happens.
        let rounds = u32::try_from(servers.clamp(1, 3)).unwrap_or(3) + 1;
        let describe = if cfg.servers.is_empty() {
            "the system's name servers (/etc/resolv.conf)".to_string()
        } else {
            cfg.servers
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        Ok(Resolver {
            inner,
            deadline: timeout.saturating_mul(rounds),
            describe,
        })
    }

    /// The hickory resolver itself, for libraries that take one (mail-auth). Their lookups
    /// are bounded by the per-query timeout only; callers bound the whole with [`Self::deadline`].
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// The longest one call here takes.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The name servers asked, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    async fn lookup(
        &self,
        name: &str,
        kind: RecordType,
        what: &'static str,
    ) -> Result<Vec<RData>, DnsError> {
        let fqdn = fqdn(name);
        let query = self.inner.lookup(fqdn.as_str(), kind);
        match tokio::time::timeout(self.deadline, query).await {
            Err(_) => Err(DnsError::Temporary(format!(
                "{what} lookup for {name} timed out after {}s",
                self.deadline.as_secs()
            ))),
            Ok(Err(e)) => Err(classify(e, name, what)),
            Ok(Ok(lookup)) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == kind)
                .take(MAX_RECORDS)
                .map(|r| r.data.clone())
                .collect()),
        }
    }

    /// MX records as (preference, exchange without the trailing dot; `""` for the root).
    pub async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        let records = self.lookup(domain, RecordType::MX, "MX").await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::MX(mx) => Some((mx.preference, name_text(&mx.exchange.to_utf8()))),
                _ => None,
            })
            .collect())
    }

    /// A and AAAA addresses of `host`.
    pub async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let fqdn = fqdn(host);
        let query = self.inner.lookup_ip(fqdn.as_str());
        match tokio::time::timeout(self.deadline, query).await {
            Err(_) => Err(DnsError::Temporary(format!(
                "address lookup for {host} timed out after {}s",
                self.deadline.as_secs()
            ))),
            Ok(Err(e)) => Err(classify(e, host, "A/AAAA")),
            Ok(Ok(ips)) => Ok(ips.iter().take(MAX_RECORDS).collect()),
        }
    }

    /// A records of `name` only (DNS block lists, RFC 5782 §2.1).
    pub async fn a(&self, name: &str) -> Result<Vec<std::net::Ipv4Addr>, DnsError> {
        let records = self.lookup(name, RecordType::A, "A").await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    /// TXT records, each one string (its character-strings joined, RFC 7208 §3.3).
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let records = self.lookup(name, RecordType::TXT, "TXT").await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// PTR names of `ip` (without trailing dots).
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let name = reverse_name(ip);
        let records = self.lookup(&name, RecordType::PTR, "PTR").await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::PTR(ptr) => Some(name_text(&ptr.0.to_utf8())),
                _ => None,
            })
            .collect())
    }

    /// CNAME targets of `name` (without trailing dots).
    pub async fn cname(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let records = self.lookup(name, RecordType::CNAME, "CNAME").await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::CNAME(c) => Some(name_text(&c.0.to_utf8())),
                _ => None,
            })
            .collect())
    }

    /// SRV records as (priority, weight, port, target without the trailing dot).
    pub async fn srv(&self, name: &str) -> Result<Vec<(u16, u16, u16, String)>, DnsError> {
        let records = self.lookup(name, RecordType::SRV, "SRV").await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                RData::SRV(s) => {
                    Some((s.priority, s.weight, s.port, name_text(&s.target.to_utf8())))
                }
                _ => None,
            })
            .collect())
    }
}

/// `name.` (one trailing dot), so no search list applies.
fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn name_text(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `4.3.2.1.in-addr.arpa` / nibbles `.ip6.arpa` (RFC 1035 §3.5, RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

fn classify(e: NetError, name: &str, what: &'static str) -> DnsError {
    if e.is_nx_domain() {
        DnsError::NxDomain(name.to_string())
    } else if e.is_no_records_found() {
        DnsError::NoRecords(name.to_string(), what)
    } else {
        DnsError::Temporary(format!("{what} lookup for {name} failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().expect("ip")),
            "1.2.0.192.in-addr.arpa"
        );
        let v6 = reverse_name("2001:db8::1".parse().expect("ip"));
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with("8.b.d.0.1.0.0.2.ip6.arpa"), "{v6}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_bounded_temporary_error() {
        // A UDP socket that reads nothing: every query times out.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        let r = Resolver::new(&DnsConfig {
            servers: vec![addr],
            timeout: Duration::from_millis(200),
        })
        .expect("resolver");
        let started = std::time::Instant::now();
        let e = r.txt("example.test").await.expect_err("no answer");
        assert!(matches!(e, DnsError::Temporary(_)), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "bounded");
        let e = r.mx("example.test").await.expect_err("no answer");
        assert!(!e.is_empty_answer());
    }
}
