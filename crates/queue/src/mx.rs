//! Where to deliver a domain's mail: MX records by preference, the implicit MX (A/AAAA of
//! the domain itself) when there are none (RFC 5321 §5.1), null MX (RFC 7505), or a relay.

use crate::client::Target;
use bulwark_dns::{DnsError, Resolver};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};

/// MX hosts tried per attempt (RFC 5321 §5.1 leaves the number to the client).
pub const MAX_MX_HOSTS: usize = 5;
/// Addresses tried per MX host.
pub const MAX_ADDRS_PER_HOST: usize = 2;

/// Why a domain has no usable hosts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RouteError {
    /// Final: NXDOMAIN, null MX, no address records.
    #[error("{0}")]
    Permanent(String),
    /// DNS timeout or server failure: retry later.
    #[error("{0}")]
    Temporary(String),
}

/// An MX record as (preference, exchange host without trailing dot; empty for the root `.`).
pub(crate) type MxRecord = (u16, String);

/// What the MX records say to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MxPlan {
    /// Try these hosts in this order.
    Hosts(Vec<String>),
    /// RFC 7505: the domain accepts no mail.
    NullMx,
}

/// Orders MX records by preference, shuffling equal preferences (RFC 5321 §5.1), and
/// recognises the null MX (RFC 7505 §3: a single record `0 .`; a `.` among real hosts is ignored).
pub(crate) fn plan_from_mx(mut records: Vec<MxRecord>) -> MxPlan {
    let total = records.len();
    records.retain(|(_, host)| !host.is_empty());
    if records.is_empty() && total > 0 {
        return MxPlan::NullMx;
    }
    let random = std::collections::hash_map::RandomState::new();
    records.sort_by_key(|(pref, host)| (*pref, random.hash_one(host)));
    let mut hosts: Vec<String> = Vec::new();
    for (_, host) in records {
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts.truncate(MAX_MX_HOSTS);
    MxPlan::Hosts(hosts)
}

/// The hosts for `domain`, in the order to try them.
pub(crate) async fn route_domain(
    resolver: &Resolver,
    domain: &str,
    port: u16,
) -> Result<Vec<Target>, RouteError> {
    // RFC 5321 §4.1.3: an address literal `[192.0.2.1]` / `[IPv6:2001:db8::1]` names the host.
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip_text = literal
            .strip_prefix("IPv6:")
            .or_else(|| literal.strip_prefix("ipv6:"))
            .unwrap_or(literal);
        let ip: IpAddr = ip_text.parse().map_err(|_| {
            RouteError::Permanent(format!("550 5.1.2 bad address literal [{literal}]"))
        })?;
        return Ok(vec![Target {
            host: ip.to_string(),
            addr: SocketAddr::new(ip, port),
        }]);
    }
    let plan = match resolver.mx(domain).await {
        Ok(records) => plan_from_mx(records),
        Err(DnsError::NxDomain(_)) => {
            return Err(RouteError::Permanent(format!(
                "550 5.1.2 domain {domain} does not exist"
            )));
        }
        // RFC 5321 §5.1: no MX records → the domain itself is the implicit MX.
        Err(DnsError::NoRecords(..)) => {
            MxPlan::Hosts(vec![domain.trim_end_matches('.').to_string()])
        }
        Err(e @ DnsError::Temporary(_)) => {
            return Err(RouteError::Temporary(format!(
                "MX lookup for {domain} failed: {e}"
            )));
        }
    };
    let hosts = match plan {
        MxPlan::NullMx => {
            return Err(RouteError::Permanent(format!(
                "556 5.1.10 domain {domain} does not accept mail (null MX, RFC 7505)"
            )));
        }
        MxPlan::Hosts(hosts) => hosts,
    };
    let mut targets = Vec::new();
    let mut last_error = None;
    for host in &hosts {
        match resolver.ips(host).await {
            Ok(ips) => targets.extend(ips.into_iter().take(MAX_ADDRS_PER_HOST).map(|ip| Target {
                host: host.clone(),
                addr: SocketAddr::new(ip, port),
            })),
            Err(e) if e.is_empty_answer() => {}
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    if !targets.is_empty() {
        return Ok(targets);
    }
    match last_error {
        Some(e) => Err(RouteError::Temporary(e)),
        None => Err(RouteError::Permanent(format!(
            "550 5.1.2 no mail host address found for {domain}"
        ))),
    }
}

/// The relay (`host:port`; the host may be an IP literal) resolved through the node's resolver.
pub(crate) async fn route_relay(
    resolver: &Resolver,
    relay: &str,
) -> Result<Vec<Target>, RouteError> {
    if let Ok(addr) = relay.parse::<SocketAddr>() {
        return Ok(vec![Target {
            host: addr.ip().to_string(),
            addr,
        }]);
    }
    let (host, port) = relay
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| RouteError::Temporary(format!("relay {relay} is not HOST:PORT")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![Target {
            host: host.to_string(),
            addr: SocketAddr::new(ip, port),
        }]);
    }
    let ips = resolver
        .ips(host)
        .await
        .map_err(|e| RouteError::Temporary(format!("cannot resolve relay {relay}: {e}")))?;
    if ips.is_empty() {
        return Err(RouteError::Temporary(format!(
            "relay {relay} has no address"
        )));
    }
    Ok(ips
        .into_iter()
        .take(MAX_ADDRS_PER_HOST)
        .map(|ip| Target {
            host: host.to_string(),
            addr: SocketAddr::new(ip, port),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_records_are_tried_by_preference() {
        let plan = plan_from_mx(vec![
            (20, "b.test".into()),
            (5, "a.test".into()),
            (30, "c.test".into()),
        ]);
        assert_eq!(
            plan,
            MxPlan::Hosts(vec!["a.test".into(), "b.test".into(), "c.test".into()])
        );
    }

    #[test]
    fn equal_preferences_keep_both_hosts_and_duplicates_collapse() {
        let plan = plan_from_mx(vec![
            (10, "x.test".into()),
            (10, "y.test".into()),
            (20, "x.test".into()),
        ]);
        let MxPlan::Hosts(hosts) = plan else {
            panic!("expected hosts")
        };
        assert_eq!(hosts.len(), 2);
        assert!(hosts.contains(&"x.test".to_string()) && hosts.contains(&"y.test".to_string()));
    }

    #[test]
    fn null_mx_means_no_mail_and_is_ignored_among_real_hosts() {
        assert_eq!(plan_from_mx(vec![(0, String::new())]), MxPlan::NullMx);
        assert_eq!(
            plan_from_mx(vec![(0, String::new()), (10, "mx.test".into())]),
            MxPlan::Hosts(vec!["mx.test".into()])
        );
    }

    #[test]
    fn host_list_is_capped() {
        let records = (0..20).map(|i| (i, format!("mx{i}.test"))).collect();
        let MxPlan::Hosts(hosts) = plan_from_mx(records) else {
            panic!("expected hosts")
        };
        assert_eq!(hosts.len(), MAX_MX_HOSTS);
        assert_eq!(hosts[0], "mx0.test");
    }
}
