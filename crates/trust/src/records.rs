//! The DNS records a domain needs to receive and send mail through this server
//! (`bulwark domain dns DOMAIN`), as zone-file lines, and a check of each against what DNS
//! answers (`--check`).

use crate::keys::KeySet;
use bulwark_dns::{DnsError, Resolver};

/// TTL of the suggested records.
pub const TTL: u32 = 3600;
/// Longest character-string in a TXT record (RFC 1035 §3.3).
const TXT_CHUNK: usize = 255;

/// What the records describe: the domain, our host name and the client ports we serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSetup {
    pub domain: String,
    /// The server's public name (MX target, SRV/CNAME target).
    pub hostname: String,
    pub submission: Option<u16>,
    pub submissions: Option<u16>,
    pub imap: Option<u16>,
    pub imaps: Option<u16>,
    pub pop3s: Option<u16>,
}

/// What a record must say to count as right.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// MX: our host name among the exchanges.
    MxHost(String),
    /// A TXT record at the name starting with this tag (`v=spf1`, `v=DMARC1`, …); only one
    /// such record allowed when `single`.
    TxtTag { tag: &'static str, single: bool },
    /// DKIM: a TXT record with this `p=`.
    DkimKey(String),
    /// SRV: this target and port (`.` and 0: the service is not offered, RFC 6186 §4).
    Srv { target: String, port: u16 },
    /// CNAME to our host name (or the same addresses).
    Cname(String),
}

/// One suggested record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, without the trailing dot.
    pub name: String,
    pub rtype: &'static str,
    /// RDATA as written in a zone file.
    pub value: String,
    /// What it is for (shown by `--check`).
    pub purpose: &'static str,
    expect: Expect,
}

impl Record {
    /// `NAME. TTL IN TYPE VALUE`.
    pub fn zone_line(&self) -> String {
        format!("{}. {TTL} IN {} {}", self.name, self.rtype, self.value)
    }
}

/// `"…" "…"`: TXT data split into character-strings of at most 255 bytes.
pub fn txt_value(text: &str) -> String {
    text.as_bytes()
        .chunks(TXT_CHUNK)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every record `setup.domain` needs, in a fixed order.
pub fn records(setup: &DomainSetup, keys: &KeySet, now: i64) -> Vec<Record> {
    let d = setup.domain.trim_end_matches('.').to_ascii_lowercase();
    let host = setup.hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut out = vec![
        Record {
            name: d.clone(),
            rtype: "MX",
            value: format!("10 {host}."),
            purpose: "mail for the domain comes here",
            expect: Expect::MxHost(host.clone()),
        },
        Record {
            name: d.clone(),
            rtype: "TXT",
            value: txt_value(&format!("v=spf1 a:{host} mx -all")),
            purpose: "SPF: which hosts may send as the domain",
            expect: Expect::TxtTag {
                tag: "v=spf1",
                single: true,
            },
        },
    ];
    for key in keys.published(now) {
        out.push(Record {
            name: format!("{}._domainkey.{d}", key.selector),
            rtype: "TXT",
            value: txt_value(&key.dns_txt()),
            purpose: if key.retired.is_none() {
                "DKIM: the key that signs"
            } else {
                "DKIM: a rotated-out key, kept during the grace period"
            },
            expect: Expect::DkimKey(key.public_key.clone()),
        });
    }
    out.push(Record {
        name: format!("_dmarc.{d}"),
        rtype: "TXT",
        value: txt_value(&format!(
            "v=DMARC1; p=quarantine; rua=mailto:postmaster@{d}"
        )),
        purpose: "DMARC: what receivers do with mail that fails SPF and DKIM",
        expect: Expect::TxtTag {
            tag: "v=DMARC1",
            single: true,
        },
    });
    out.push(Record {
        name: format!("_mta-sts.{d}"),
        rtype: "TXT",
        value: txt_value(&format!(
            "v=STSv1; id={}",
            bulwark_core::mta_sts::policy_id(&host)
        )),
        purpose: "MTA-STS (RFC 8461): senders must use TLS",
        expect: Expect::TxtTag {
            tag: "v=STSv1",
            single: true,
        },
    });
    out.push(Record {
        name: format!("mta-sts.{d}"),
        rtype: "CNAME",
        value: format!("{host}."),
        purpose: "MTA-STS: the host that serves the policy",
        expect: Expect::Cname(host.clone()),
    });
    out.push(Record {
        name: format!("_smtp._tls.{d}"),
        rtype: "TXT",
        value: txt_value(&format!("v=TLSRPTv1; rua=mailto:postmaster@{d}")),
        purpose: "TLS-RPT (RFC 8460): where senders report TLS failures",
        expect: Expect::TxtTag {
            tag: "v=TLSRPTv1",
            single: true,
        },
    });
    for (service, port, purpose) in [
        (
            "_submission._tcp",
            setup.submission,
            "client autoconfiguration: submission with STARTTLS (RFC 6186)",
        ),
        (
            "_submissions._tcp",
            setup.submissions,
            "client autoconfiguration: submission over TLS (RFC 8314)",
        ),
        (
            "_imap._tcp",
            setup.imap,
            "client autoconfiguration: IMAP with STARTTLS (RFC 6186)",
        ),
        (
            "_imaps._tcp",
            setup.imaps,
            "client autoconfiguration: IMAP over TLS (RFC 8314)",
        ),
        (
            "_pop3s._tcp",
            setup.pop3s,
            "client autoconfiguration: POP3 over TLS (RFC 8314)",
        ),
    ] {
        let (value, target, port) = match port {
            Some(p) => (format!("0 1 {p} {host}."), host.clone(), p),
            None => ("0 0 0 .".to_string(), String::new(), 0),
        };
        out.push(Record {
            name: format!("{service}.{d}"),
            rtype: "SRV",
            value,
            purpose,
            expect: Expect::Srv { target, port },
        });
    }
    for (label, purpose) in [
        ("autoconfig", "client autoconfiguration (Thunderbird)"),
        ("autodiscover", "client autoconfiguration (Outlook)"),
    ] {
        out.push(Record {
            name: format!("{label}.{d}"),
            rtype: "CNAME",
            value: format!("{host}."),
            purpose,
            expect: Expect::Cname(host.clone()),
        });
    }
    out
}

/// What DNS says about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Ok,
    /// Present but different from the suggestion, and still fine (e.g. another SPF policy).
    Differs(String),
    Missing,
    Wrong(String),
    /// DNS did not answer.
    Unknown(String),
}

impl Finding {
    /// Whether this makes `--check` fail.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Finding::Missing | Finding::Wrong(_) | Finding::Unknown(_)
        )
    }
}

fn dns_problem(e: DnsError) -> Finding {
    if e.is_empty_answer() {
        Finding::Missing
    } else {
        Finding::Unknown(e.to_string())
    }
}

/// Compares `record` with what `resolver` answers.
pub async fn check(resolver: &Resolver, record: &Record) -> Finding {
    match &record.expect {
        Expect::MxHost(host) => match resolver.mx(&record.name).await {
            Ok(mx) if mx.iter().any(|(_, h)| h == host) => Finding::Ok,
            Ok(mx) if mx.is_empty() => Finding::Missing,
            Ok(mx) => Finding::Wrong(format!(
                "MX points to {} instead of {host}",
                mx.iter()
                    .map(|(p, h)| format!("{p} {h}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => dns_problem(e),
        },
        Expect::TxtTag { tag, single } => match resolver.txt(&record.name).await {
            Ok(txt) => {
                let found: Vec<&String> = txt.iter().filter(|t| has_tag(t, tag)).collect();
                let suggested = unquote(&record.value);
                match found.as_slice() {
                    [] => Finding::Missing,
                    [_, _, ..] if *single => Finding::Wrong(format!(
                        "{} records starting with {tag}; there must be one",
                        found.len()
                    )),
                    [one, ..] if same_tags(one, &suggested) => Finding::Ok,
                    [one, ..] => Finding::Differs(format!("found \"{one}\"")),
                }
            }
            Err(e) => dns_problem(e),
        },
        Expect::DkimKey(public_key) => match resolver.txt(&record.name).await {
            Ok(txt) => {
                let keys: Vec<String> = txt.iter().filter_map(|t| tag_value(t, "p")).collect();
                if keys.iter().any(|p| p == public_key) {
                    Finding::Ok
                } else if keys.is_empty() {
                    Finding::Missing
                } else {
                    Finding::Wrong("p= is another key than this selector's".into())
                }
            }
            Err(e) => dns_problem(e),
        },
        Expect::Srv { target, port } => match resolver.srv(&record.name).await {
            Ok(srv) if srv.iter().any(|(_, _, p, t)| t == target && p == port) => Finding::Ok,
            Ok(srv) if srv.is_empty() => Finding::Missing,
            Ok(srv) => Finding::Wrong(format!(
                "found {}",
                srv.iter()
                    .map(|(pr, w, p, t)| format!("{pr} {w} {p} {t}."))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => dns_problem(e),
        },
        Expect::Cname(host) => match resolver.cname(&record.name).await {
            Ok(c) if c.iter().any(|t| t == host) => Finding::Ok,
            Ok(c) if !c.is_empty() => Finding::Wrong(format!("CNAME to {}", c.join(", "))),
            Ok(_) | Err(DnsError::NoRecords(..)) => {
                // An A/AAAA with our addresses does as well as the CNAME.
                match (resolver.ips(&record.name).await, resolver.ips(host).await) {
                    (Ok(a), Ok(b)) if a.iter().any(|ip| b.contains(ip)) => Finding::Ok,
                    (Ok(a), _) if !a.is_empty() => {
                        Finding::Wrong(format!("addresses are not {host}'s"))
                    }
                    (Err(e), _) if !e.is_empty_answer() => Finding::Unknown(e.to_string()),
                    _ => Finding::Missing,
                }
            }
            Err(e) => dns_problem(e),
        },
    }
}

/// The text inside the zone-file quotes, joined.
fn unquote(value: &str) -> String {
    value
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect()
}

/// Whether a TXT record starts with `tag` (`v=spf1`, case-insensitive) as a whole word.
pub fn has_tag(txt: &str, tag: &str) -> bool {
    let t = txt.trim_start().as_bytes();
    let tag = tag.as_bytes();
    t.len() >= tag.len()
        && t[..tag.len()].eq_ignore_ascii_case(tag)
        && t.get(tag.len())
            .is_none_or(|&c| c == b';' || c.is_ascii_whitespace())
}

/// The value of `name=` in a `tag=value; …` record (RFC 6376 §3.2), spaces removed.
pub fn tag_value(txt: &str, name: &str) -> Option<String> {
    txt.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim() == name).then(|| v.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

/// Same record text up to case and spacing.
fn same_tags(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.split(|c: char| c == ';' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(" ")
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, generate};

    fn setup() -> DomainSetup {
        DomainSetup {
            domain: "example.test".into(),
            hostname: "mx.example.test".into(),
            submission: Some(587),
            submissions: Some(465),
            imap: None,
            imaps: Some(993),
            pop3s: None,
        }
    }

    #[test]
    fn every_record_as_a_zone_line() {
        let mut keys = KeySet::default();
        keys.keys
            .push(generate(Algorithm::Rsa, "s1", 0).expect("rsa"));
        let lines: Vec<String> = records(&setup(), &keys, 0)
            .iter()
            .map(Record::zone_line)
            .collect();
        let text = lines.join("\n");
        assert!(text.contains("example.test. 3600 IN MX 10 mx.example.test."));
        assert!(text.contains("example.test. 3600 IN TXT \"v=spf1 a:mx.example.test mx -all\""));
        assert!(text.contains("_dmarc.example.test. 3600 IN TXT \"v=DMARC1;"));
        assert!(
            text.contains("_submission._tcp.example.test. 3600 IN SRV 0 1 587 mx.example.test.")
        );
        assert!(text.contains("_imap._tcp.example.test. 3600 IN SRV 0 0 0 ."));
        assert!(text.contains("_pop3s._tcp.example.test. 3600 IN SRV 0 0 0 ."));
        assert!(text.contains("autodiscover.example.test. 3600 IN CNAME mx.example.test."));
        assert!(text.contains("_smtp._tls.example.test. 3600 IN TXT \"v=TLSRPTv1;"));
        assert!(text.contains("_mta-sts.example.test. 3600 IN TXT \"v=STSv1; id="));
        // An RSA key is longer than one character-string: split, and joined it is the record.
        let dkim = lines
            .iter()
            .find(|l| l.starts_with("s1._domainkey.example.test. 3600 IN TXT "))
            .expect("dkim line");
        assert!(dkim.matches('"').count() >= 4, "{dkim}");
        assert_eq!(
            unquote(dkim.split_once(" TXT ").expect("txt").1),
            keys.keys[0].dns_txt()
        );
    }

    #[test]
    fn tags_compare_loosely() {
        assert!(has_tag("v=spf1 -all", "v=spf1"));
        assert!(!has_tag("v=spf10 -all", "v=spf1"));
        // Found by the fuzzer: a tag length that falls inside a multi-byte character.
        assert!(!has_tag("\u{5}\u{fffd}\u{fffd}\u{4}", "v=spf1"));
        assert!(same_tags("v=DMARC1;p=reject", "v=dmarc1; p=reject"));
        assert_eq!(
            tag_value("v=DKIM1; k=rsa; p=AB CD", "p").as_deref(),
            Some("ABCD")
        );
    }
}
