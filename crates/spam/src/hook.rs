//! The spam stage of the delivery pipeline ([`DeliveryHook::inspect`]), after the trust
//! stage (whose `Authentication-Results` it reads): scores mail from unauthenticated
//! clients and acts on the thresholds.

use crate::dnsbl;
use crate::rules::score_message;
use bulwark_core::{DeliveryHook, Folder, Message, Refusal, Verdict};
use bulwark_store::{AccountId, Role};

/// `[spam]` in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpamConfig {
    pub enabled: bool,
    /// From this score a local copy goes to Junk.
    pub junk_score: i32,
    /// From this score the message is refused (`550 5.7.1`); `None`: never (the default:
    /// spam is filed, not refused, so a false positive is never lost).
    pub reject_score: Option<i32>,
    /// DNS block list zones (RFC 5782), each listing worth [`DNSBL_POINTS`].
    pub dnsbl: Vec<String>,
}

/// Points of one block list that lists the client.
pub const DNSBL_POINTS: i32 = 5;

impl Default for SpamConfig {
    fn default() -> Self {
        SpamConfig {
            enabled: true,
            junk_score: 5,
            reject_score: None,
            dnsbl: Vec::new(),
        }
    }
}

/// Points of the trained classifier ([`crate::bayes`]) when it is sure: spam at or above
/// [`BAYES_SPAM_AT`], ham at or below [`BAYES_HAM_AT`].
pub const BAYES_SPAM_POINTS: i32 = 5;
pub const BAYES_HAM_POINTS: i32 = -3;
pub const BAYES_SPAM_AT: f64 = 0.9;
pub const BAYES_HAM_AT: f64 = 0.1;

pub struct SpamHook {
    cfg: SpamConfig,
    resolver: Option<bulwark_dns::Resolver>,
    /// Where the accounts' trained models are (none: no classifier).
    store: Option<std::sync::Arc<dyn bulwark_store::Store>>,
}

impl SpamHook {
    /// `resolver`: for the block lists (none: they are not asked).
    pub fn new(cfg: SpamConfig, resolver: Option<bulwark_dns::Resolver>) -> SpamHook {
        SpamHook {
            cfg,
            resolver,
            store: None,
        }
    }

    /// Also asks each recipient's trained classifier (see [`crate::trainer`]).
    pub fn with_classifier(mut self, store: std::sync::Arc<dyn bulwark_store::Store>) -> SpamHook {
        self.store = Some(store);
        self
    }

    /// The classifier's points for one account (0 while it knows too little).
    async fn bayes_points(
        &self,
        account: AccountId,
        tokens: &std::collections::BTreeSet<u32>,
    ) -> i32 {
        let Some(store) = &self.store else {
            return 0;
        };
        match crate::bayes::Model::load(store.as_ref(), account, tokens).await {
            Ok(model) => match model.probability(tokens) {
                Some(p) if p >= BAYES_SPAM_AT => BAYES_SPAM_POINTS,
                Some(p) if p <= BAYES_HAM_AT => BAYES_HAM_POINTS,
                _ => 0,
            },
            Err(e) => {
                tracing::warn!(error = %e, "spam model unavailable");
                0
            }
        }
    }
}

/// The value of every `Authentication-Results` field among `headers`.
fn auth_results(headers: &[String]) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("Authentication-Results")
                .then(|| value.to_string())
        })
        .collect()
}

#[async_trait::async_trait]
impl DeliveryHook for SpamHook {
    async fn inspect(
        &self,
        message: &Message,
        local: &[AccountId],
        _remote: &[String],
        verdict: &mut Verdict,
    ) {
        let Some(origin) = &message.origin else {
            return; // made by this server (replies, bounces, JMAP)
        };
        if !self.cfg.enabled || origin.authenticated.is_some() || local.is_empty() {
            return;
        }
        let mut score = score_message(&message.local_raw, &auth_results(&verdict.local_headers));
        if let Some(resolver) = &self.resolver
            && !self.cfg.dnsbl.is_empty()
        {
            for zone in dnsbl::listed_in(resolver, origin.ip, &self.cfg.dnsbl).await {
                tracing::info!(ip = %origin.ip, %zone, "client listed in a DNS block list");
                score.add("DNSBL", DNSBL_POINTS);
            }
        }
        // Each recipient's own classifier: its points decide that account's folder; the
        // header shows them when there is one recipient.
        let mut per_account = Vec::new();
        if self.store.is_some() {
            let tokens = crate::bayes::tokens(&message.local_raw);
            for account in local {
                per_account.push((*account, self.bayes_points(*account, &tokens).await));
            }
        }
        if let [(_, points)] = per_account[..]
            && points != 0
        {
            score.add(
                if points > 0 {
                    "BAYES_SPAM"
                } else {
                    "BAYES_HAM"
                },
                points,
            );
            per_account.clear();
        }
        let spam = score.total >= self.cfg.junk_score;
        tracing::info!(ip = %origin.ip, sender = %message.sender, score = score.total, tests = %score.tests(), spam, "spam score");
        verdict.local_headers.push(format!(
            "X-Spam-Status: {}, score={} required={} tests={}\r\n",
            if spam { "Yes" } else { "No" },
            score.total,
            self.cfg.junk_score,
            if score.rules.is_empty() {
                "none".to_string()
            } else {
                score.tests()
            }
        ));
        if self.cfg.reject_score.is_some_and(|r| score.total >= r) {
            verdict.refusal = Some(Refusal::Permanent(format!(
                "550 5.7.1 Message refused as spam (score {})",
                score.total
            )));
        } else if spam && verdict.folder.is_none() {
            verdict.folder = Some(Folder::Role(Role::Junk));
        }
        for (account, points) in per_account {
            if points == 0 || verdict.folders.contains_key(&account) {
                continue;
            }
            let own = score.total + points >= self.cfg.junk_score;
            if own != spam {
                verdict.folders.insert(
                    account,
                    Folder::Role(if own { Role::Junk } else { Role::Inbox }),
                );
            }
        }
    }
}
