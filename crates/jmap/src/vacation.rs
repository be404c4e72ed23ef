//! VacationResponse (RFC 8621 §8) and the auto-responder that actually answers.
//!
//! Replies follow RFC 3834: sent to the Return-Path, never to automatic mail
//! (`Auto-Submitted`, list mail, bulk precedence, null sender), with
//! `Auto-Submitted: auto-replied`, from the null reverse-path, at most once per sender per
//! [`REPLY_PERIOD_SECS`] (RFC 5230 §4.1's default of 7 days).
//!
//! The responder is a hook of the node's delivery pipeline ([`DeliveryHook::delivered`]):
//! every message the pipeline puts into an INBOX — from SMTP, JMAP submission, on any node —
//! is considered once, after its commit. Settings live in the account's `vacation`
//! collection, the senders already answered in `vacation-replies` (one item per sender,
//! written with compare-and-set, so two nodes never both answer the same sender). The reply
//! goes out through the same pipeline.

use crate::api::args::Args;
use crate::api::{Ctx, MethodError, SetError};
use crate::ids;
use crate::mail::body::{parse_date, utc_date};
use bulwark_core::{DeliveryHook, Pipeline};
use bulwark_store::collections::names::VACATION;
use bulwark_store::item_cache::ItemCache;
use bulwark_store::{
    AccountId, Appended, CollectionItem, Expect, ItemWrite, Store, StoreError, now_unix,
};
use mail_parser::MessageParser;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The file earlier versions kept in `data_dir` (migrated once, then removed).
pub const VACATION_FILE: &str = "jmap-vacation.json";
/// One auto-reply per sender per this many seconds.
pub const REPLY_PERIOD_SECS: i64 = 7 * 24 * 3600;
pub const SINGLETON: &str = "singleton";
/// The collection of senders already answered (id: the sender, value: when, unix seconds).
pub const REPLIES: &str = "vacation-replies";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VacationSettings {
    pub is_enabled: bool,
    pub from_date: Option<i64>,
    pub to_date: Option<i64>,
    pub subject: Option<String>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
}

/// The shape of the legacy file: account id → settings (other fields ignored).
#[derive(Deserialize)]
struct LegacyAccount {
    #[serde(default)]
    settings: VacationSettings,
}

pub struct VacationResponder {
    store: Arc<dyn Store>,
    hostname: String,
    /// The settings as deliveries read them (once per message): cached, dropped when the
    /// collection is written on any node.
    cache: ItemCache,
}

/// Accounts whose settings the responder keeps in memory (≈ 100 bytes each).
const CACHED_ACCOUNTS: usize = 100_000;

impl VacationResponder {
    pub fn new(store: Arc<dyn Store>, hostname: String) -> Self {
        let cache = ItemCache::new(store.clone(), VACATION, CACHED_ACCOUNTS);
        VacationResponder {
            store,
            hostname,
            cache,
        }
    }

    /// The account's settings (defaults: disabled), as stored.
    pub async fn settings(&self, account: AccountId) -> Result<VacationSettings, StoreError> {
        let item = self
            .store
            .collection_get(account, VACATION, Some(&[SINGLETON.to_string()]))
            .await?;
        Ok(decode(item.first()))
    }

    /// The account's settings through the cache (the delivery path).
    async fn cached_settings(&self, account: AccountId) -> Result<VacationSettings, StoreError> {
        Ok(decode(self.cache.get(account, SINGLETON).await?.as_ref()))
    }

    async fn state(&self, account: AccountId) -> Result<String, StoreError> {
        Ok(self
            .store
            .collection_state(account, VACATION)
            .await?
            .0
            .to_string())
    }

    /// Saves new settings; a changed vacation answers everybody once again.
    pub async fn update(
        &self,
        account: AccountId,
        settings: VacationSettings,
    ) -> Result<(), StoreError> {
        if self.settings(account).await? == settings {
            return Ok(());
        }
        let json = serde_json::to_string(&settings)
            .map_err(|e| StoreError::Internal(format!("vacation settings: {e}")))?;
        self.store
            .collection_write(
                account,
                vec![ItemWrite::put(VACATION, SINGLETON, Expect::Any, json)],
            )
            .await?;
        let replied = self.store.collection_get(account, REPLIES, None).await?;
        for chunk in replied.chunks(bulwark_store::collections::MAX_WRITES) {
            let deletes = chunk
                .iter()
                .map(|i| ItemWrite::delete(REPLIES, &i.id, Expect::Version(i.version)))
                .collect();
            match self.store.collection_write(account, deletes).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves the settings of an earlier version's `data_dir/jmap-vacation.json` into the
    /// store (once: items that exist are kept) and removes the file. Returns how many
    /// accounts were moved.
    pub async fn migrate_legacy_file(&self, data_dir: &Path) -> Result<usize, StoreError> {
        let path = data_dir.join(VACATION_FILE);
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(0);
        };
        let legacy: HashMap<i64, LegacyAccount> = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))?;
        let mut moved = 0;
        for (account, a) in legacy {
            let account = AccountId(account);
            if self.store.account_get(account).await?.is_none() {
                continue;
            }
            let json = serde_json::to_string(&a.settings)
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            match self
                .store
                .collection_write(
                    account,
                    vec![ItemWrite::put(VACATION, SINGLETON, Expect::Absent, json)],
                )
                .await
            {
                Ok(_) => moved += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::remove_file(&path)
            .map_err(|e| StoreError::Internal(format!("removing {}: {e}", path.display())))?;
        tracing::info!(accounts = moved, file = %path.display(), "vacation responses moved into the store");
        Ok(moved)
    }

    /// Claims the right to answer `sender` now: true for exactly one caller per period, on
    /// every node (compare-and-set on the sender's item).
    async fn claim(&self, account: AccountId, sender: &str, now: i64) -> Result<bool, StoreError> {
        let id = sender.to_string();
        let current = self
            .store
            .collection_get(account, REPLIES, Some(std::slice::from_ref(&id)))
            .await?;
        let expect = match current.first() {
            Some(item) => {
                let at: i64 = item.value.parse().unwrap_or(0);
                if now - at < REPLY_PERIOD_SECS {
                    return Ok(false);
                }
                Expect::Version(item.version)
            }
            None => Expect::Absent,
        };
        match self
            .store
            .collection_write(
                account,
                vec![ItemWrite::put(REPLIES, &id, expect, now.to_string())],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Answers `incoming` (delivered to `account`) through `pipeline` if the vacation rules
    /// say so. Returns the address replied to.
    pub async fn reply_for(
        &self,
        pipeline: &Arc<Pipeline>,
        account: AccountId,
        incoming: &[u8],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let settings = self.cached_settings(account).await?;
        if !settings.is_enabled
            || settings.from_date.is_some_and(|f| now < f)
            || settings.to_date.is_some_and(|t| now >= t)
        {
            return Ok(None);
        }
        let Some(msg) = MessageParser::default().parse(incoming) else {
            return Ok(None);
        };
        // RFC 3834 §3.1.1: reply to the Return-Path only, never to the null sender.
        let Some(sender) = msg
            .return_address()
            .map(|s| s.trim_matches(['<', '>', ' ']).to_lowercase())
            .filter(|s| s.contains('@') && s.len() <= bulwark_store::collections::MAX_NAME_LEN)
        else {
            return Ok(None);
        };
        let header = |name: &str| msg.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
        // RFC 3834 §2: no replies to automatic or list mail.
        if header("Auto-Submitted").is_some_and(|v| v != "no")
            || header("List-Id").is_some()
            || header("List-Unsubscribe").is_some()
            || header("Precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "list" | "junk"))
        {
            return Ok(None);
        }
        let local = sender.split('@').next().unwrap_or_default();
        if matches!(
            local,
            "mailer-daemon" | "postmaster" | "noreply" | "no-reply"
        ) || local.starts_with("owner-")
            || local.ends_with("-request")
        {
            return Ok(None);
        }
        let addresses = self.store.account_addresses(account).await?;
        if addresses.contains(&sender) {
            return Ok(None);
        }
        if !self.claim(account, &sender, now).await? {
            return Ok(None);
        }
        let me = addresses.first().cloned().unwrap_or_default();
        let display = self
            .store
            .account_get(account)
            .await?
            .map(|a| a.display_name)
            .unwrap_or_default();
        let subject = settings
            .subject
            .clone()
            .unwrap_or_else(|| format!("Auto: {}", msg.subject().unwrap_or_default()));
        let from = if display.is_empty() {
            mail_builder::headers::address::Address::new_address(None::<String>, me.clone())
        } else {
            mail_builder::headers::address::Address::new_address(Some(display), me.clone())
        };
        // The sender's display name, when the From header names the address we answer.
        let sender_name = msg
            .from()
            .and_then(|f| {
                f.iter().find(|a| {
                    a.address
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(&sender))
                })
            })
            .and_then(|a| a.name.as_deref())
            .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>())
            .filter(|n| !n.is_empty());
        let to = mail_builder::headers::address::Address::new_address(sender_name, sender.clone());
        let mut b = mail_builder::MessageBuilder::new()
            .from(from)
            .to(to)
            .subject(subject)
            .header(
                "Auto-Submitted",
                mail_builder::headers::raw::Raw::new("auto-replied"),
            )
            .message_id(format!(
                "{:016x}.{now}@{}",
                rand::random::<u64>(),
                self.hostname
            ));
        if let Some(id) = msg.message_id() {
            b = b.in_reply_to(id.to_string()).references(id.to_string());
        }
        b = b.text_body(
            settings
                .text_body
                .clone()
                .unwrap_or_else(|| "I am away and will read your message later.".into()),
        );
        if let Some(html) = settings.html_body.clone() {
            b = b.html_body(html);
        }
        let raw = Arc::new(
            b.write_to_vec()
                .map_err(|e| StoreError::Internal(e.to_string()))?,
        );
        // RFC 3834 §3.3: auto-replies use the null reverse-path.
        let mut reply = bulwark_core::Message::new("", vec![sender.clone()], raw);
        reply.received_at = now;
        match pipeline.deliver(reply).await {
            Ok(done) if done.refused().next().is_none() => Ok(Some(sender)),
            Ok(_) => Ok(None),
            Err(bulwark_core::DeliveryError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Internal(e.to_string())),
        }
    }
}

#[bulwark_core::async_trait]
impl DeliveryHook for VacationResponder {
    async fn delivered(
        &self,
        pipeline: &Arc<Pipeline>,
        appended: &Appended,
        message: &bulwark_core::Message,
    ) {
        if let Err(e) = self
            .reply_for(pipeline, appended.account, &message.local_raw, now_unix())
            .await
        {
            tracing::warn!(account = %appended.account, error = %e, "vacation reply failed");
        }
    }
}

fn decode(item: Option<&CollectionItem>) -> VacationSettings {
    item.and_then(|i| serde_json::from_str(&i.value).ok())
        .unwrap_or_default()
}

fn to_json(s: &VacationSettings) -> Map<String, Value> {
    let v = json!({
        "id": SINGLETON, "isEnabled": s.is_enabled, "fromDate": s.from_date.map(utc_date), "toDate": s.to_date.map(utc_date),
        "subject": s.subject, "textBody": s.text_body, "htmlBody": s.html_body,
    });
    v.as_object().cloned().unwrap_or_default()
}

const PROPS: [&str; 7] = [
    "id",
    "isEnabled",
    "fromDate",
    "toDate",
    "subject",
    "textBody",
    "htmlBody",
];

pub async fn get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let props = args.properties(&PROPS, &PROPS)?;
    let v = &ctx.server.vacation;
    let (mut list, mut not_found) = (vec![], vec![]);
    let obj = crate::api::args::filter_properties(to_json(&v.settings(account).await?), &props);
    match args.opt_str_list("ids")? {
        None => list.push(obj),
        Some(ids) => {
            for id in ids {
                if id == SINGLETON {
                    list.push(obj.clone())
                } else {
                    not_found.push(id)
                }
            }
        }
    }
    Ok(
        json!({ "accountId": ids::account_id(account), "state": v.state(account).await?, "list": list, "notFound": not_found }),
    )
}

fn apply_patch(s: &mut VacationSettings, patch: &Map<String, Value>) -> Result<(), SetError> {
    for (k, v) in patch {
        let bad = || SetError::invalid_properties(&[k.as_str()], "wrong type");
        match k.as_str() {
            "isEnabled" => s.is_enabled = v.as_bool().ok_or_else(bad)?,
            "fromDate" | "toDate" => {
                let d = match v {
                    Value::Null => None,
                    Value::String(x) => Some(parse_date(x).ok_or_else(bad)?),
                    _ => return Err(bad()),
                };
                if k == "fromDate" {
                    s.from_date = d
                } else {
                    s.to_date = d
                }
            }
            "subject" | "textBody" | "htmlBody" => {
                let t = match v {
                    Value::Null => None,
                    Value::String(x) => Some(x.clone()),
                    _ => return Err(bad()),
                };
                match k.as_str() {
                    "subject" => s.subject = t.map(|x| x.replace(['\r', '\n'], " ")),
                    "textBody" => s.text_body = t,
                    _ => s.html_body = t,
                }
            }
            "id" if v == SINGLETON => {}
            _ => {
                return Err(SetError::invalid_properties(
                    &[k.as_str()],
                    "unknown property",
                ));
            }
        }
    }
    Ok(())
}

pub async fn set(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let v = ctx.server.vacation.clone();
    let old_state = v.state(account).await?;
    crate::api::check_if_in_state(&args, &old_state)?;
    let (mut updated, mut not_updated, mut not_created, mut not_destroyed) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    if let Some(Value::Object(create)) = args.take("create") {
        for (cid, _) in create {
            not_created.insert(
                cid,
                SetError::new("singleton", "VacationResponse is a singleton").to_json(),
            );
        }
    }
    if let Some(Value::Object(update)) = args.take("update") {
        for (id, patch) in update {
            if id != SINGLETON {
                not_updated.insert(id, SetError::not_found().to_json());
                continue;
            }
            let mut s = v.settings(account).await?;
            match patch
                .as_object()
                .ok_or_else(|| SetError::invalid_properties(&[], "patch must be an object"))
                .and_then(|p| apply_patch(&mut s, p))
            {
                Ok(()) => {
                    v.update(account, s).await?;
                    updated.insert(id, Value::Null);
                }
                Err(e) => {
                    not_updated.insert(id, e.to_json());
                }
            }
        }
    }
    for id in args.opt_str_list("destroy")?.unwrap_or_default() {
        not_destroyed.insert(
            id,
            SetError::new("singleton", "VacationResponse is a singleton").to_json(),
        );
    }
    Ok(json!({
        "accountId": ids::account_id(account), "oldState": old_state, "newState": v.state(account).await?,
        "created": {}, "updated": updated, "destroyed": [], "notCreated": not_created, "notUpdated": not_updated,
        "notDestroyed": not_destroyed,
    }))
}
