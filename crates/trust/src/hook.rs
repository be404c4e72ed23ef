//! The trust stage of the delivery pipeline: checks what comes in, signs what goes out.

use crate::checks::{Action, Checker};
use crate::sign::Signer;
use bulwark_core::{DeliveryHook, Folder, Message, Refusal, Verdict};
use bulwark_store::{AccountId, Role, Store};
use std::sync::Arc;

/// Runs on every message of the pipeline (see [`DeliveryHook::inspect`]):
///
/// * from an unauthenticated SMTP client (the inbound MX): SPF, DKIM, DMARC and iprev; the
///   `Authentication-Results` field on the local copies; DMARC `p=reject` refuses,
///   `p=quarantine` files into Junk (as configured); mail claiming one of our domains gets
///   `x-bulwark=local-domain-unauthenticated` in that field;
/// * from an authenticated SMTP client, or made by this server for remote recipients (JMAP
///   submission, vacation replies, bounces): a `DKIM-Signature` of the header From's domain
///   when it is one of ours and has a key — added once, to the local and the relayed copy.
pub struct TrustHook {
    store: Arc<dyn Store>,
    /// Which sender domains are ours, cached.
    local_domains: bulwark_core::local_domains::LocalDomains,
    checker: Option<Checker>,
    signer: Signer,
}

impl TrustHook {
    /// `checker`: `None` turns the inbound checks off (signing stays on).
    pub fn new(store: Arc<dyn Store>, checker: Option<Checker>) -> TrustHook {
        TrustHook {
            signer: Signer::new(store.clone()),
            local_domains: bulwark_core::local_domains::LocalDomains::new(store.clone()),
            store,
            checker,
        }
    }

    async fn sign(&self, message: &Message, verdict: &mut Verdict) {
        let raw = message
            .remote_raw
            .as_ref()
            .unwrap_or(&message.local_raw)
            .clone();
        let (from, _) = bulwark_core::sender::header_senders(&raw);
        let Some((_, domain)) = from.first().and_then(|a| bulwark_core::split_address(a)) else {
            return;
        };
        match self.store.domain_exists(&domain).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(%domain, error = %e, "cannot tell whether the From domain is ours; not signing");
                return;
            }
        }
        if let Some(header) = self.signer.sign(&raw, &domain).await {
            verdict.headers.push(header);
        }
    }
}

/// ARC sealing of what this server forwards (a Sieve redirect): sealed as the domain of the
/// account it is forwarded for, with that domain's active DKIM key (none: unsealed).
#[async_trait::async_trait]
impl bulwark_core::ForwardSealer for TrustHook {
    async fn seal(
        &self,
        raw: &[u8],
        origin: &bulwark_core::Origin,
        sender: &str,
        account: AccountId,
    ) -> Option<String> {
        let checker = self.checker.as_ref()?;
        let address = match self.store.account_get(account).await {
            Ok(Some(a)) => a.address,
            _ => return None,
        };
        let (_, domain) = bulwark_core::split_address(&address)?;
        let key = self.signer.key_for(&domain).await?;
        checker
            .seal_forward(raw, origin.ip, &origin.helo, sender, &key, &domain)
            .await
    }
}

#[async_trait::async_trait]
impl DeliveryHook for TrustHook {
    async fn inspect(
        &self,
        message: &Message,
        _local: &[AccountId],
        remote: &[String],
        verdict: &mut Verdict,
    ) {
        match &message.origin {
            Some(origin) if origin.authenticated.is_none() => {
                let Some(checker) = &self.checker else {
                    return;
                };
                let v = checker
                    .check(&message.local_raw, origin.ip, &origin.helo, &message.sender)
                    .await;
                tracing::info!(ip = %origin.ip, helo = %origin.helo, sender = %message.sender, results = %v.summary, "inbound authentication checks");
                let mut header = v.header;
                if self
                    .local_domains
                    .claimed_by(&message.sender, &message.local_raw)
                    .await
                    && let Some(field) = header.strip_suffix("\r\n")
                {
                    // Our own method (RFC 8601 §2.7.6): it says "one of ours" without SMTP
                    // AUTH, whatever the domain publishes (clients warn on it).
                    header = format!("{field};\r\n\tx-bulwark=local-domain-unauthenticated\r\n");
                }
                verdict.local_headers.push(header);
                match v.action {
                    Action::Deliver => {}
                    Action::Junk(why) => {
                        tracing::info!(sender = %message.sender, reason = %why, "filed into Junk");
                        verdict.folder = Some(Folder::Role(Role::Junk));
                    }
                    Action::Reject(reply) => {
                        tracing::info!(sender = %message.sender, reason = %reply, "refused by DMARC policy");
                        verdict.refusal = Some(Refusal::Permanent(reply));
                    }
                    Action::Tempfail(reply) => {
                        tracing::info!(sender = %message.sender, reason = %reply, "deferred: DNS did not answer");
                        verdict.refusal = Some(Refusal::Temporary(reply));
                    }
                }
            }
            Some(_) => self.sign(message, verdict).await,
            None if !remote.is_empty() => self.sign(message, verdict).await,
            None => {}
        }
    }
}
