//! Running the account's active Sieve script on delivery: a hook of the delivery pipeline
//! ([`DeliveryHook::inspect`]) that turns the script's actions into what the pipeline does
//! with that account's copy ([`bulwark_core::Filing`]: mailboxes and flags, or nothing for
//! `discard`), a refusal for `reject`/`ereject` (RFC 5429), and messages sent after the
//! commit (`redirect`, RFC 5228 §4.2; `vacation` replies, RFC 5230).
//!
//! Everything the script may ask about (its `include`d scripts, which mailboxes exist,
//! which ids were seen for `duplicate`/`vacation :days`) is read before the run, so the run
//! itself is plain computation under the interpreter's instruction limit; ids it marks as
//! seen are written after it. A script that fails to compile or to run keeps the message in
//! INBOX (RFC 5228 §2.10.6: implicit keep) and logs why. A message that already went
//! through this account's redirect (`X-Sieve-Redirected-From`) is not redirected again.

use crate::limits::{CPU_LIMIT, MAX_NESTED_INCLUDES, MAX_OUT_MESSAGES, MAX_REDIRECTS};
use crate::scripts;
use bulwark_core::{DeliveryHook, Filing, Folder, Message, Outgoing, Refusal, Verdict};
use bulwark_store::collections::names::{SIEVE, SIEVE_SEEN};
use bulwark_store::item_cache::ItemCache;
use bulwark_store::{AccountId, Expect, ItemWrite, Role, Store, now_unix};
use sieve::{Envelope, Event, Input, Recipient as SieveRecipient, Runtime};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Accounts whose scripts the hook keeps compiled.
const CACHED_ACCOUNTS: usize = 100_000;
/// The header a redirected copy carries (Dovecot's name), to stop loops.
pub const REDIRECTED_FROM: &str = "X-Sieve-Redirected-From";

/// The delivery-pipeline hook.
pub struct SieveFilter {
    store: Arc<dyn Store>,
    /// The `sieve` collection as deliveries read it (the active name, the scripts).
    cache: ItemCache,
    /// Compiled active scripts by account: (item version, script).
    compiled: Mutex<HashMap<AccountId, (u64, Arc<sieve::Sieve>)>>,
    runtime: Runtime,
}

impl SieveFilter {
    pub fn new(store: Arc<dyn Store>, hostname: &str) -> SieveFilter {
        let runtime = Runtime::new()
            .with_cpu_limit(CPU_LIMIT)
            .with_max_nested_includes(MAX_NESTED_INCLUDES)
            .with_max_redirects(MAX_REDIRECTS)
            .with_max_out_messages(MAX_OUT_MESSAGES)
            .with_local_hostname(hostname.to_string())
            .with_vacation_default_subject("Automatic reply");
        SieveFilter {
            cache: ItemCache::new(store.clone(), SIEVE, CACHED_ACCOUNTS),
            store,
            compiled: Mutex::new(HashMap::new()),
            runtime,
        }
    }

    /// The account's active script, compiled (cached by version).
    async fn active_script(&self, account: AccountId) -> Option<(String, Arc<sieve::Sieve>)> {
        let active = self.cache.get(account, "active").await.ok()??;
        let id = serde_json::from_str::<serde_json::Value>(&active.value)
            .ok()?
            .get("id")?
            .as_str()?
            .to_string();
        let item = self
            .cache
            .get(account, &format!("script:{id}"))
            .await
            .ok()??;
        let stored = serde_json::from_str::<serde_json::Value>(&item.value).ok()?;
        let name = stored.get("name")?.as_str()?.to_string();
        if let Some((v, s)) = self.lock().get(&account)
            && *v == item.version.0
        {
            return Some((name, s.clone()));
        }
        let source = stored.get("source")?.as_str()?.to_string();
        match scripts::check(source.as_bytes()) {
            Ok(compiled) => {
                let compiled = Arc::new(compiled);
                let mut map = self.lock();
                if map.len() >= CACHED_ACCOUNTS {
                    map.clear();
                }
                map.insert(account, (item.version.0, compiled.clone()));
                Some((name, compiled))
            }
            Err(e) => {
                tracing::warn!(%account, script = %name, error = %e, "active Sieve script does not compile; mail is kept in INBOX");
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, (u64, Arc<sieve::Sieve>)>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the script may ask about, read before the run.
struct Known {
    address: String,
    mailboxes: HashSet<String>,
    includes: HashMap<String, Arc<sieve::Sieve>>,
    seen: HashSet<String>,
}

/// What one run decided.
#[derive(Default)]
struct Decision {
    filing: Filing,
    refusal: Option<Refusal>,
    outgoing: Vec<Outgoing>,
    newly_seen: Vec<(String, u64)>,
}

fn seen_id(id: &str) -> String {
    use std::hash::{Hash, Hasher};
    // Not secret: only keeps item ids short and free of odd characters.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    format!("{:016x}{}", h.finish(), id.len())
}

impl SieveFilter {
    async fn known(&self, account: AccountId) -> Option<Known> {
        let store = self.store.as_ref();
        let address = store.account_get(account).await.ok()??.address;
        let mailboxes = store
            .mailbox_list(account)
            .await
            .ok()?
            .into_iter()
            .map(|m| m.name)
            .collect();
        let mut includes = HashMap::new();
        for info in scripts::list(store, account).await.ok()? {
            if let Ok(Some(src)) = scripts::get(store, account, &info.name).await
                && let Ok(s) = scripts::check(src.as_bytes())
            {
                includes.insert(info.name, Arc::new(s));
            }
        }
        let now = now_unix();
        let seen = store
            .collection_get(account, SIEVE_SEEN, None)
            .await
            .ok()?
            .into_iter()
            .filter(|i| i.value.parse::<i64>().is_ok_and(|until| until > now))
            .map(|i| i.id)
            .collect();
        Some(Known {
            address,
            mailboxes,
            includes,
            seen,
        })
    }

    /// One run of `script` for the copy of `message` meant for `recipient`.
    /// `raw`: the copy as it will be stored (with the fields earlier stages add, such as
    /// `Authentication-Results` and `X-Spam-Status`, so scripts can test them).
    fn run(
        &self,
        script: Arc<sieve::Sieve>,
        name: &str,
        message: &Message,
        raw: &[u8],
        recipient: &str,
        known: &Known,
    ) -> Result<Decision, String> {
        let looped = redirected_by(raw, &known.address);
        let mut instance = self
            .runtime
            .filter(raw)
            .with_envelope(Envelope::From, message.sender.as_str())
            .with_envelope(Envelope::To, recipient)
            .with_user_address(known.address.as_str());
        let mut d = Decision::default();
        let mut created: HashMap<usize, Vec<u8>> = HashMap::new();
        let mut input = Input::script(name.to_string(), script);
        while let Some(result) = instance.run(input) {
            let event = result.map_err(|e| format!("{e:?}"))?;
            input = match event {
                Event::IncludeScript { name, optional } => {
                    let key = match &name {
                        sieve::Script::Personal(n) => Some(n.as_str()),
                        sieve::Script::Global(_) => None,
                    };
                    match key.and_then(|k| known.includes.get(k)) {
                        Some(s) => Input::script(name.clone(), s.clone()),
                        None if optional => Input::False,
                        None => return Err(format!("include {name:?}: no such script")),
                    }
                }
                Event::MailboxExists { mailboxes, .. } => mailboxes
                    .iter()
                    .all(|m| match m {
                        sieve::Mailbox::Name(n) => {
                            known.mailboxes.contains(n) || n.eq_ignore_ascii_case("INBOX")
                        }
                        sieve::Mailbox::Id(_) => false,
                    })
                    .into(),
                Event::ListContains { .. } | Event::Function { .. } => Input::False,
                Event::DuplicateId { id, expiry, .. } => {
                    let key = seen_id(&id);
                    let dup =
                        known.seen.contains(&key) || d.newly_seen.iter().any(|(k, _)| *k == key);
                    if !dup {
                        d.newly_seen.push((key, expiry));
                    }
                    dup.into()
                }
                Event::SetEnvelope { .. } | Event::Notify { .. } => Input::True,
                Event::Keep { flags, .. } => {
                    d.filing.folders.push(Folder::Default);
                    add_flags(&mut d.filing, flags);
                    Input::True
                }
                Event::FileInto {
                    folder,
                    flags,
                    special_use,
                    ..
                } => {
                    let f = special_use
                        .as_deref()
                        // RFC 8579 `:specialuse "\\Junk"` → the role of that name.
                        .and_then(|u| {
                            Role::from_jmap(&u.trim_start_matches('\\').to_ascii_lowercase())
                        })
                        .map(Folder::Role)
                        .unwrap_or(Folder::Named(folder));
                    d.filing.folders.push(f);
                    add_flags(&mut d.filing, flags);
                    Input::True
                }
                Event::Discard => Input::True,
                Event::Reject { reason, .. } => {
                    let reason: String = reason
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .take(200)
                        .collect();
                    d.refusal = Some(Refusal::Permanent(format!("550 5.7.1 {reason}")));
                    Input::True
                }
                Event::CreatedMessage {
                    message_id,
                    message,
                } => {
                    created.insert(message_id, message);
                    Input::True
                }
                Event::SendMessage {
                    recipient: to,
                    message_id,
                    ..
                } => {
                    let recipients = match to {
                        SieveRecipient::Address(a) => vec![a],
                        SieveRecipient::List(l) => vec![l],
                        SieveRecipient::Group(g) => g,
                    };
                    if message_id == 0 {
                        // RFC 5228 §4.2 redirect: the message as received, envelope sender kept.
                        if looped
                            || recipients
                                .iter()
                                .any(|r| r.eq_ignore_ascii_case(&known.address))
                        {
                            tracing::warn!(account = %known.address, "Sieve redirect back to this account skipped (loop); the message is kept");
                            d.filing.folders.push(Folder::Default);
                        } else {
                            let mut out =
                                format!("{REDIRECTED_FROM}: {}\r\n", known.address).into_bytes();
                            out.extend_from_slice(raw);
                            d.outgoing.push(Outgoing {
                                account: AccountId(0),
                                sender: message.sender.clone(),
                                recipients,
                                raw: out,
                                forward: true,
                            });
                        }
                    } else if let Some(reply) = created.remove(&message_id) {
                        // RFC 5230 §5.6: an automatic reply goes from the null sender.
                        d.outgoing.push(Outgoing {
                            account: AccountId(0),
                            sender: String::new(),
                            recipients,
                            raw: reply,
                            forward: false,
                        });
                    }
                    Input::True
                }
            };
        }
        Ok(d)
    }
}

fn add_flags(filing: &mut Filing, flags: Vec<String>) {
    for f in flags {
        let k = match f.to_ascii_lowercase().as_str() {
            "\\seen" => "$seen".to_string(),
            "\\flagged" => "$flagged".to_string(),
            "\\answered" => "$answered".to_string(),
            "\\draft" => "$draft".to_string(),
            "\\deleted" => "$deleted".to_string(),
            other if other.starts_with('\\') => continue,
            other => other.to_string(),
        };
        if !filing.keywords.contains(&k) {
            filing.keywords.push(k);
        }
    }
}

/// Did this message already pass through `address`'s redirect?
fn redirected_by(raw: &[u8], address: &str) -> bool {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let needle = format!(
        "{}: {}",
        REDIRECTED_FROM.to_ascii_lowercase(),
        address.to_ascii_lowercase()
    );
    head.lines().any(|l| l.trim_end() == needle)
}

#[async_trait::async_trait]
impl DeliveryHook for SieveFilter {
    async fn inspect(
        &self,
        message: &Message,
        local: &[AccountId],
        _remote: &[String],
        verdict: &mut Verdict,
    ) {
        let mut stored: Option<Vec<u8>> = None;
        for &account in local {
            let Some((name, script)) = self.active_script(account).await else {
                continue;
            };
            let Some(known) = self.known(account).await else {
                tracing::warn!(%account, "cannot read what the Sieve script needs; mail is kept in INBOX");
                continue;
            };
            let recipient = message
                .resolved
                .iter()
                .find(|(_, r)| *r == bulwark_core::Recipient::Local(account))
                .map(|(a, _)| a.clone())
                .unwrap_or_else(|| known.address.clone());
            let raw = stored.get_or_insert_with(|| {
                let mut raw: Vec<u8> = verdict.local_headers.concat().into_bytes();
                raw.extend_from_slice(&message.local_raw);
                raw
            });
            let decision = match self.run(script, &name, message, raw, &recipient, &known) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(%account, script = %name, error = %e, "Sieve script failed; the message is kept (RFC 5228 §2.10.6)");
                    continue;
                }
            };
            if !decision.newly_seen.is_empty() {
                let now = now_unix();
                let writes = decision
                    .newly_seen
                    .iter()
                    .map(|(id, expiry)| {
                        let until = now.saturating_add(i64::try_from(*expiry).unwrap_or(i64::MAX));
                        ItemWrite::put(SIEVE_SEEN, id, Expect::Any, until.to_string())
                    })
                    .collect();
                if let Err(e) = self.store.collection_write(account, writes).await {
                    tracing::warn!(%account, error = %e, "cannot record Sieve duplicate ids");
                }
            }
            if let Some(r) = decision.refusal {
                verdict.refusals.insert(account, r);
            }
            verdict.filings.insert(account, decision.filing);
            verdict
                .outgoing
                .extend(decision.outgoing.into_iter().map(|mut o| {
                    o.account = account;
                    o
                }));
        }
    }
}
