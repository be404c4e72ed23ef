//! Our MTA-STS policy (RFC 8461 §3.2): what `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
//! serves for each of our domains, and the `id=` of the `_mta-sts` TXT record that
//! `bulwark domain dns` prints — one text, so the two never disagree.
//!
//! The mode is `testing` (senders report, do not refuse): with the default self-signed
//! certificate an `enforce` policy would make every sender that honours it refuse us.

/// How long senders may cache the policy (seconds).
pub const MAX_AGE: u64 = 86_400;

/// The policy file for mail exchanged with `hostname`.
pub fn policy(hostname: &str) -> String {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    format!("version: STSv1\r\nmode: testing\r\nmx: {host}\r\nmax_age: {MAX_AGE}\r\n")
}

/// `id=` of the TXT record: changes when the policy changes (FNV-1a of it, stable across
/// runs and builds).
pub fn policy_id(hostname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in policy(hostname).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_policy_names_the_mx_and_its_id_follows_it() {
        let p = super::policy("MX.Example.Test.");
        assert!(p.starts_with("version: STSv1\r\n"));
        assert!(p.contains("\r\nmx: mx.example.test\r\n"));
        assert_eq!(
            super::policy_id("mx.example.test"),
            super::policy_id("mx.example.test")
        );
        assert_ne!(
            super::policy_id("mx.example.test"),
            super::policy_id("mx2.example.test")
        );
    }
}
