//! The spam stage of the delivery pipeline ([`DeliveryHook::inspect`]), after the trust
//! stage (whose `Authentication-Results` it reads): scores mail from unauthenticated
//! clients and acts on the thresholds.

use crate::dnsbl;
use crate::rules::{Context, score_message_with};
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
/// Points when the account never had (non-spam) mail from this From address and the message
/// shows another phishing signal ([`crate::rules::PHISHING_RULES`]).
pub const FIRST_FROM_SENDER_POINTS: i32 = 1;
/// How long the context (our domains, our users' names) is reused.
const CONTEXT_TTL: std::time::Duration = std::time::Duration::from_secs(60);
pub const BAYES_HAM_AT: f64 = 0.1;

pub struct SpamHook {
    cfg: SpamConfig,
    resolver: Option<bulwark_dns::Resolver>,
    /// Where the accounts' trained models are (none: no classifier).
    store: Option<std::sync::Arc<dyn bulwark_store::Store>>,
    context: std::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<Context>)>>,
}

impl SpamHook {
    /// `resolver`: for the block lists (none: they are not asked).
    pub fn new(cfg: SpamConfig, resolver: Option<bulwark_dns::Resolver>) -> SpamHook {
        SpamHook {
            cfg,
            resolver,
            store: None,
            context: std::sync::Mutex::new(None),
        }
    }

    /// Also asks each recipient's trained classifier (see [`crate::trainer`]).
    pub fn with_classifier(mut self, store: std::sync::Arc<dyn bulwark_store::Store>) -> SpamHook {
        self.store = Some(store);
        self
    }

    /// Our domains and users' names, read from the store at most every [`CONTEXT_TTL`].
    async fn context(&self) -> std::sync::Arc<Context> {
        if let Some((at, ctx)) = &*self.context.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < CONTEXT_TTL
        {
            return ctx.clone();
        }
        let Some(store) = &self.store else {
            return std::sync::Arc::new(Context::default());
        };
        let local_domains = store
            .domain_list()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        let local_names = store
            .account_list()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                a.display_name
                    .to_lowercase()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|n| n.split(' ').count() >= 2)
            .collect();
        let ctx = std::sync::Arc::new(Context {
            local_domains,
            local_names,
        });
        *self.context.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), ctx.clone()));
        ctx
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
        // Most accounts never trained: one small read says so, before the buckets.
        match crate::bayes::Model::trained(store.as_ref(), account).await {
            Ok(true) => {}
            Ok(false) => return 0,
            Err(e) => {
                tracing::warn!(error = %e, "spam model unavailable");
                return 0;
            }
        }
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
        let ctx = self.context().await;
        let mut score = score_message_with(
            &message.local_raw,
            &auth_results(&verdict.local_headers),
            &ctx,
        );
        if let Some(resolver) = &self.resolver
            && !self.cfg.dnsbl.is_empty()
        {
            for zone in dnsbl::listed_in(resolver, origin.ip, &self.cfg.dnsbl).await {
                tracing::info!(ip = %origin.ip, %zone, "client listed in a DNS block list");
                score.add("DNSBL", DNSBL_POINTS);
            }
        }
        // Each recipient's own rules (its trained classifier, whether it knows the sender):
        // their points decide that account's folder; the header shows them when there is
        // one recipient.
        let mut per_account: Vec<(AccountId, Vec<(&'static str, i32)>)> = Vec::new();
        if let Some(store) = &self.store {
            let tokens = crate::bayes::tokens(&message.local_raw);
            // A first mail is a phishing signal only next to another one (an unknown
            // sender alone is how every correspondence starts).
            let phishy = score
                .rules
                .iter()
                .any(|(r, _)| crate::rules::PHISHING_RULES.contains(r));
            let from = crate::senders::header_from(&message.local_raw);
            for account in local {
                let mut own = Vec::new();
                match self.bayes_points(*account, &tokens).await {
                    p if p > 0 => own.push(("BAYES_SPAM", p)),
                    p if p < 0 => own.push(("BAYES_HAM", p)),
                    _ => {}
                }
                if phishy
                    && let Some(from) = &from
                    && !crate::senders::known(store.as_ref(), *account, from).await
                {
                    own.push(("FIRST_FROM_SENDER", FIRST_FROM_SENDER_POINTS));
                }
                per_account.push((*account, own));
            }
        }
        if let [(_, own)] = &per_account[..] {
            for (rule, points) in own {
                score.add(rule, *points);
            }
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
        // Senders of mail that is not spam are remembered (for FIRST_FROM_SENDER).
        if let (Some(store), Some(from)) =
            (&self.store, crate::senders::header_from(&message.local_raw))
        {
            for account in local {
                let own: i32 = per_account
                    .iter()
                    .find(|(a, _)| a == account)
                    .map_or(0, |(_, r)| r.iter().map(|(_, p)| p).sum());
                if score.total + own < self.cfg.junk_score {
                    crate::senders::remember(store.as_ref(), *account, &from).await;
                }
            }
        }
        for (account, rules) in per_account {
            let points: i32 = rules.iter().map(|(_, p)| p).sum();
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
