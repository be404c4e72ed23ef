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

/// Longest policy body read (RFC 8461 §3.3: senders SHOULD NOT read more than 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Longest `max_age` honoured (RFC 8461 §3.2: up to 31557600 seconds, about a year).
pub const MAX_MAX_AGE: u64 = 31_557_600;
/// At most this many `mx` patterns are kept from one policy.
pub const MAX_MX_PATTERNS: usize = 64;

/// A sending MTA's view of a domain's policy (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to a matching MX over TLS with a valid certificate.
    Enforce,
    /// Deliver as before; report what would have failed.
    Testing,
    /// The domain withdrew its policy.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy file (RFC 8461 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Lowercase, without trailing dot; `*.example.com` matches one label.
    pub mx: Vec<String>,
    pub max_age: u64,
}

/// Parses the `_mta-sts` TXT record (RFC 8461 §3.1): `v=STSv1; id=…` first; returns the id.
pub fn parse_txt(record: &str) -> Option<String> {
    let mut fields = record.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next()? != "v=STSv1" {
        return None;
    }
    let mut id = None;
    for field in fields {
        let (key, value) = field.split_once('=')?;
        if key.trim() == "id" {
            let value = value.trim();
            if value.is_empty()
                || value.len() > 32
                || !value.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return None;
            }
            id = Some(value.to_string());
        }
    }
    id
}

/// Parses a policy body. Unknown keys are ignored (§3.2); `version`, `mode` and `max_age` are
/// required, and `mx` unless the mode is `none`.
pub fn parse_policy(body: &[u8]) -> Result<Policy, String> {
    if body.len() > MAX_POLICY_BYTES {
        return Err(format!("the policy is over {MAX_POLICY_BYTES} bytes"));
    }
    let text = std::str::from_utf8(body).map_err(|_| "the policy is not UTF-8".to_string())?;
    let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("not a key: value line: {:?}", truncate(line)));
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_string()),
            "mode" => {
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {:?}", truncate(other))),
                })
            }
            "max_age" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| format!("max_age {:?} is not a number", truncate(value)))?;
                max_age = Some(n.min(MAX_MAX_AGE));
            }
            "mx" => {
                let pattern = value.trim_end_matches('.').to_ascii_lowercase();
                let host = pattern.strip_prefix("*.").unwrap_or(&pattern);
                if host.is_empty() || host.contains('*') || !host.contains('.') {
                    return Err(format!("bad mx pattern {:?}", truncate(value)));
                }
                if mx.len() < MAX_MX_PATTERNS {
                    mx.push(pattern);
                }
            }
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("version is not STSv1".into());
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mode != Mode::None && mx.is_empty() {
        return Err("no mx".into());
    }
    Ok(Policy { mode, mx, max_age })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Policy {
    /// Whether `host` (an MX name) is allowed (RFC 8461 §4.1): equal to a pattern, or a
    /// `*.` pattern with exactly one more label on the left.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .and_then(|left| left.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            None => *p == host,
        })
    }
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

    #[test]
    fn policies_parse_with_their_limits() {
        use super::*;
        let p = parse_policy(
            b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 999999999\r\nextra: x\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, MAX_MAX_AGE);
        assert!(p.allows("MAIL.example.com."));
        assert!(p.allows("mx1.example.net"));
        assert!(!p.allows("a.b.example.net"), "one label only");
        assert!(!p.allows("example.net"));
        assert!(!p.allows("evil-mail.example.com"));
        assert!(!p.allows("xexample.net"));
        let none = parse_policy(b"version: STSv1\nmode: none\nmax_age: 10\n").unwrap();
        assert_eq!(none.mode, Mode::None);
        for bad in [
            &b"mode: enforce\nmx: a.b\nmax_age: 1\n"[..],
            b"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
            b"version: STSv1\nmode: always\nmx: a.b\nmax_age: 1\n",
            b"version: STSv1\nmode: enforce\nmax_age: 1\n",
            b"version: STSv1\nmode: enforce\nmx: a.b\n",
            b"version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 1\n",
            b"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
            b"<html>not a policy</html>",
            b"\xff\xfe",
        ] {
            assert!(
                parse_policy(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_policy(&vec![b'a'; MAX_POLICY_BYTES + 1]).is_err());
        // Our own served policy reads back.
        let ours = parse_policy(policy("mx.example.test").as_bytes()).unwrap();
        assert!(ours.allows("mx.example.test"));
        assert_eq!(
            parse_txt("v=STSv1; id=20260101T00"),
            Some("20260101T00".into())
        );
        assert_eq!(parse_txt("v=STSv1;id=abc;"), Some("abc".into()));
        assert_eq!(parse_txt("id=abc; v=STSv1"), None);
        assert_eq!(parse_txt("v=STSv1; id=a-b"), None);
        assert_eq!(parse_txt("v=spf1 -all"), None);
    }
}
