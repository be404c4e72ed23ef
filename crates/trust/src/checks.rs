//! The inbound checks of one message from an unauthenticated SMTP client: SPF for the HELO
//! and MAIL FROM identities (RFC 7208 §2.3, §2.4), every DKIM signature (RFC 6376 §6),
//! DMARC with alignment and the sender domain's policy (RFC 7489 §6.6), and reverse DNS
//! (`iprev`, RFC 8601 §3), and the ARC chain of earlier forwarders (RFC 8617 §5.2; `arc=`
//! when the message has one). mail-auth does the checking and writes the one
//! `Authentication-Results` field (RFC 8601) with our host name as authserv-id; this module
//! bounds the time and turns the DMARC outcome into an action.
//!
//! A DNS answer that does not come is a `temperror` (never a `fail`): the message is
//! delivered (or, if so configured, tempfailed with `451 4.7.0` so the sender retries), never
//! lost.

use bulwark_dns::Resolver;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DmarcOutput, DmarcResult,
    IprevOutput, IprevResult, MessageAuthenticator, SpfOutput, SpfResult,
};
use std::net::IpAddr;
use std::time::Duration;

/// What to check and what to do with the results (`[auth_checks]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksConfig {
    /// Check mail from unauthenticated clients at all.
    pub enabled: bool,
    /// Our host name: the authserv-id of the `Authentication-Results` field.
    pub hostname: String,
    /// Refuse (`550 5.7.1`) mail that fails DMARC of a domain with `p=reject`; `false`:
    /// file it into Junk instead.
    pub dmarc_reject: bool,
    /// File mail that fails DMARC of a domain with `p=quarantine` into Junk.
    pub dmarc_quarantine: bool,
    /// When DMARC cannot be evaluated for lack of a DNS answer: `false` delivers the message
    /// (with `dmarc=temperror`), `true` answers `451 4.7.0` so the sender retries later.
    pub tempfail_on_dns_error: bool,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        ChecksConfig {
            enabled: true,
            hostname: "localhost".into(),
            dmarc_reject: true,
            dmarc_quarantine: true,
            tempfail_on_dns_error: false,
        }
    }
}

/// What the pipeline does with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Deliver,
    /// File into the recipients' Junk mailboxes (the reason is logged).
    Junk(String),
    /// Refuse permanently, with this reply (`550 5.7.1 …`).
    Reject(String),
    /// Refuse for now, with this reply (`451 4.7.0 …`).
    Tempfail(String),
}

/// The outcome of the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The `Authentication-Results` field, CRLF-terminated.
    pub header: String,
    pub action: Action,
    /// Short summary for the log: `spf=pass dkim=pass dmarc=pass iprev=pass`.
    pub summary: String,
}

/// What [`Checker::evaluate`] found (bound to the message it read).
struct Evaluated<'x> {
    results: AuthenticationResults<'x>,
    arc: ArcOutput<'x>,
    action: Action,
    summary: Vec<String>,
}

/// Runs the checks through the node's resolver.
pub struct Checker {
    cfg: ChecksConfig,
    auth: MessageAuthenticator,
    deadline: Duration,
}

impl Checker {
    pub fn new(cfg: ChecksConfig, resolver: &Resolver) -> Checker {
        Checker {
            cfg,
            auth: MessageAuthenticator(resolver.hickory().clone()),
            deadline: resolver.deadline(),
        }
    }

    pub fn config(&self) -> &ChecksConfig {
        &self.cfg
    }

    /// Checks `raw` as received from `ip` after `HELO helo` and `MAIL FROM:<mail_from>`.
    /// Takes at most about twice the resolver's deadline, whatever DNS does.
    pub async fn check(&self, raw: &[u8], ip: IpAddr, helo: &str, mail_from: &str) -> Verdict {
        let message = AuthenticatedMessage::parse(raw);
        let e = self.evaluate(message.as_ref(), ip, helo, mail_from).await;
        Verdict {
            header: e.results.to_header(),
            action: e.action,
            summary: e.summary.join(" "),
        }
    }

    /// The ARC set (RFC 8617 §5.1: `ARC-Seal`, `ARC-Message-Signature`,
    /// `ARC-Authentication-Results`, CRLF-terminated) with which this server forwards `raw`
    /// (exactly these bytes follow it), sealed as `domain` with `key`. The checks are run
    /// again for its `ARC-Authentication-Results` (their DNS answers are cached); a chain
    /// that fails is sealed with `cv=fail` (RFC 8617 §5.1.1). `None` when the message cannot
    /// be read or the chain cannot take another set (a chain already ended by `cv=fail`, or
    /// 50 sets).
    pub async fn seal_forward(
        &self,
        raw: &[u8],
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        key: &crate::keys::DkimKey,
        domain: &str,
    ) -> Option<String> {
        let message = AuthenticatedMessage::parse(raw)?;
        let e = self.evaluate(Some(&message), ip, helo, mail_from).await;
        if !e.arc.can_be_sealed() {
            tracing::info!(%domain, "ARC chain failed: forwarded without a new seal");
            return None;
        }
        match crate::sign::seal_with(key, domain, &message, &e.results, &e.arc) {
            Ok(set) => Some(set),
            Err(why) => {
                tracing::warn!(%domain, error = %why, "ARC sealing failed; forwarded unsealed");
                None
            }
        }
    }

    async fn evaluate<'x>(
        &'x self,
        message: Option<&'x AuthenticatedMessage<'x>>,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
    ) -> Evaluated<'x> {
        let host = self.cfg.hostname.as_str();
        let helo = helo.trim().trim_end_matches('.');
        let mail_from = mail_from.trim();
        // RFC 7208 §2.4: for the null reverse-path, the MAIL FROM identity is postmaster@HELO.
        let mail_from_domain = mail_from
            .rsplit_once('@')
            .map_or(helo, |(_, d)| d)
            .to_ascii_lowercase();
        let deadline = self.deadline;
        let dkim = async {
            match message {
                Some(m) => {
                    bounded(deadline, self.auth.verify_dkim(m), || {
                        vec![DkimOutput::temp_err(timeout_error())]
                    })
                    .await
                }
                None => Vec::new(),
            }
        };
        // RFC 8617 §5.2: the chain of earlier forwarders (mailing lists), if any.
        let arc = async {
            match message {
                Some(m) => {
                    bounded(deadline, self.auth.verify_arc(m), || {
                        ArcOutput::default()
                            .with_result(mail_auth::DkimResult::TempError(timeout_error()))
                    })
                    .await
                }
                None => ArcOutput::default(),
            }
        };
        let spf_helo = bounded(
            deadline,
            self.auth
                .verify_spf(SpfParameters::verify_ehlo(ip, helo, host)),
            || SpfOutput::new(helo.to_string()).with_result(SpfResult::TempError),
        );
        let spf_mail_from = bounded(
            deadline,
            self.auth
                .verify_spf(SpfParameters::verify_mail_from(ip, helo, host, mail_from)),
            || SpfOutput::new(mail_from_domain.clone()).with_result(SpfResult::TempError),
        );
        let iprev = bounded(deadline, self.auth.verify_iprev(ip), || IprevOutput {
            result: IprevResult::TempError(timeout_error()),
            ptr: None,
        });
        let (dkim, arc, spf_helo, spf_mail_from, iprev) =
            tokio::join!(dkim, arc, spf_helo, spf_mail_from, iprev);
        let mut results = AuthenticationResults::new(host);
        let mut summary = Vec::new();
        let mut action = Action::Deliver;
        let from_domain;
        if let Some(m) = message {
            let header_from = m.from.first().map(String::as_str).unwrap_or("");
            from_domain = header_from
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            let dmarc = bounded(
                deadline,
                self.auth.verify_dmarc(DmarcParameters::new(
                    m,
                    &dkim,
                    &mail_from_domain,
                    &spf_mail_from,
                )),
                || {
                    DmarcOutput::new(from_domain.clone())
                        .with_dkim_result(DmarcResult::TempError(timeout_error()))
                        .with_spf_result(DmarcResult::TempError(timeout_error()))
                },
            )
            .await;
            results = results.with_dkim_results(&dkim, header_from);
            summary.push(format!("dkim={}", dkim_word(&dkim)));
            action = self.decide(&dmarc, &from_domain);
            summary.push(format!("dmarc={}", dmarc_word(&dmarc.result())));
            results = results
                .with_spf_ehlo_result(&spf_helo, ip, helo)
                .with_spf_mailfrom_result(&spf_mail_from, ip, mail_from, helo)
                .with_dmarc_result(&dmarc)
                .with_iprev_result(&iprev, ip);
            if arc.result() != &mail_auth::DkimResult::None {
                results = results.with_arc_result(&arc, ip);
                summary.push(format!("arc={}", arc_word(arc.result())));
            }
        } else {
            results = results
                .with_spf_ehlo_result(&spf_helo, ip, helo)
                .with_spf_mailfrom_result(&spf_mail_from, ip, mail_from, helo)
                .with_iprev_result(&iprev, ip);
        }
        summary.insert(0, format!("spf={}", spf_word(spf_mail_from.result())));
        summary.push(format!("iprev={}", iprev_word(iprev.result())));
        Evaluated {
            results,
            arc,
            action,
            summary,
        }
    }

    /// RFC 7489 §6.6.4 / §10.3: the policy of a failing domain, as configured.
    fn decide(&self, dmarc: &DmarcOutput, from_domain: &str) -> Action {
        match dmarc.result() {
            DmarcResult::Fail(_) => match dmarc.policy() {
                Policy::Reject if self.cfg.dmarc_reject => Action::Reject(format!(
                    "550 5.7.1 Message rejected: it fails the DMARC policy of {from_domain} (p=reject)"
                )),
                Policy::Reject | Policy::Quarantine if self.cfg.dmarc_quarantine => {
                    Action::Junk(format!("fails the DMARC policy of {from_domain}"))
                }
                _ => Action::Deliver,
            },
            DmarcResult::TempError(_) if self.cfg.tempfail_on_dns_error => {
                Action::Tempfail(format!(
                    "451 4.7.0 Temporary DNS failure checking the DMARC policy of {from_domain}, try again later"
                ))
            }
            _ => Action::Deliver,
        }
    }
}

async fn bounded<T>(
    deadline: Duration,
    fut: impl std::future::Future<Output = T>,
    on_timeout: impl FnOnce() -> T,
) -> T {
    match tokio::time::timeout(deadline, fut).await {
        Ok(v) => v,
        Err(_) => on_timeout(),
    }
}

fn timeout_error() -> mail_auth::Error {
    mail_auth::Error::Dns(mail_auth::DnsError::Resolver("DNS timeout".into()))
}

fn dkim_word(dkim: &[DkimOutput]) -> &'static str {
    use mail_auth::DkimResult as D;
    if dkim.is_empty() {
        return "none";
    }
    if dkim.iter().any(|d| matches!(d.result(), D::Pass)) {
        return "pass";
    }
    match dkim.first().map(|d| d.result()) {
        Some(D::Fail(_)) => "fail",
        Some(D::Neutral(_)) => "neutral",
        Some(D::TempError(_)) => "temperror",
        Some(D::PermError(_)) => "permerror",
        _ => "none",
    }
}

fn arc_word(r: &mail_auth::DkimResult) -> &'static str {
    use mail_auth::DkimResult as D;
    match r {
        D::Pass => "pass",
        D::Fail(_) => "fail",
        D::Neutral(_) => "neutral",
        D::TempError(_) => "temperror",
        D::PermError(_) => "permerror",
        D::None => "none",
    }
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn iprev_word(r: &IprevResult) -> &'static str {
    match r {
        IprevResult::Pass => "pass",
        IprevResult::Fail(_) => "fail",
        IprevResult::TempError(_) => "temperror",
        IprevResult::PermError(_) => "permerror",
        IprevResult::None => "none",
    }
}
