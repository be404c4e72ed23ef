//! DNS block lists (RFC 5782): the client's address is listed in `zone` when
//! `<reversed address>.<zone>` has an A record in 127.0.0.0/8. A lookup that fails or takes
//! too long counts as "not listed" (the list is advice; mail is never lost to a slow DNS).

use bulwark_dns::Resolver;
use std::net::IpAddr;

/// RFC 5782 §2.1/§2.4: the query name of `ip` in `zone`.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{zone}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut nibbles = String::with_capacity(64 + zone.len());
            for b in v6.octets().iter().rev() {
                nibbles.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            format!("{nibbles}{zone}")
        }
    }
}

/// The zones of `zones` that list `ip`.
pub async fn listed_in(resolver: &Resolver, ip: IpAddr, zones: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for zone in zones {
        match resolver.a(&query_name(ip, zone)).await {
            Ok(ips) if ips.iter().any(|a| a.octets()[0] == 127) => out.push(zone.clone()),
            Ok(_) => {}
            Err(e) => tracing::debug!(%zone, %ip, error = %e, "block list lookup"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_follow_rfc_5782() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "bl.example"),
            "99.2.0.192.bl.example"
        );
        let v6 = query_name("2001:db8:1:2:3:4:567:89ab".parse().unwrap(), "bl.example");
        assert_eq!(
            v6,
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example"
        );
    }
}
