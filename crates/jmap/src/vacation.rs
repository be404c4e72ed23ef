//! VacationResponse (RFC 8621 §8) and the auto-responder that actually answers.
//!
//! Replies follow RFC 3834: sent to the Return-Path, never to automatic mail
//! (`Auto-Submitted`, list mail, bulk precedence, null sender), with
//! `Auto-Submitted: auto-replied`, from the null reverse-path, at most once per sender per
//! [`REPLY_PERIOD_SECS`] (RFC 5230 §4.1's default of 7 days).
//!
//! The responder watches the account's change log ([`VacationResponder::start`]), so mail
//! delivered by SMTP, JMAP or anything else into INBOX is answered without the SMTP crate
//! knowing about vacations. [`VacationResponder::reply_for`] is public for direct use.

use crate::api::args::Args;
use crate::api::{Ctx, MethodError, MethodErrorKind, SetError};
use crate::ids;
use crate::mail::body::{parse_date, utc_date};
use bulwark_core::Recipient;
use bulwark_store::{AccountId, ModSeq, NewQueued, Role, Store, StoreError, now_unix};
use mail_parser::MessageParser;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub const VACATION_FILE: &str = "jmap-vacation.json";
/// One auto-reply per sender per this many seconds.
pub const REPLY_PERIOD_SECS: i64 = 7 * 24 * 3600;
/// Senders remembered per account (oldest forgotten first).
pub const MAX_REMEMBERED_SENDERS: usize = 10_000;
pub const SINGLETON: &str = "singleton";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VacationSettings {
    pub is_enabled: bool,
    pub from_date: Option<i64>,
    pub to_date: Option<i64>,
    pub subject: Option<String>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AccountVacation {
    settings: VacationSettings,
    /// sender (lowercase) → when we last replied.
    replied: HashMap<String, i64>,
    state: u64,
}

pub struct VacationResponder {
    store: Arc<dyn Store>,
    path: Option<PathBuf>,
    hostname: String,
    queue_wakeup: Arc<Notify>,
    queue_lifetime_secs: i64,
    data: Mutex<HashMap<i64, AccountVacation>>,
    watching: Mutex<HashSet<AccountId>>,
}

impl VacationResponder {
    pub fn new(
        store: Arc<dyn Store>,
        dir: Option<PathBuf>,
        hostname: String,
        queue_wakeup: Arc<Notify>,
        queue_lifetime_secs: i64,
    ) -> Self {
        let path = dir.map(|d| d.join(VACATION_FILE));
        let data = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        VacationResponder {
            store,
            path,
            hostname,
            queue_wakeup,
            queue_lifetime_secs,
            data: Mutex::new(data),
            watching: Mutex::new(HashSet::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, AccountVacation>> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&*self.lock()).map_err(std::io::Error::other)?;
        crate::identity::write_atomic(path, &bytes)
    }

    pub fn settings(&self, account: AccountId) -> VacationSettings {
        self.lock()
            .get(&account.0)
            .map(|a| a.settings.clone())
            .unwrap_or_default()
    }

    fn state(&self, account: AccountId) -> String {
        self.lock()
            .get(&account.0)
            .map(|a| a.state)
            .unwrap_or(0)
            .to_string()
    }

    pub fn update(
        self: &Arc<Self>,
        account: AccountId,
        settings: VacationSettings,
    ) -> std::io::Result<()> {
        let enabled = settings.is_enabled;
        {
            let mut d = self.lock();
            let a = d.entry(account.0).or_default();
            if a.settings != settings {
                // A new vacation period answers everybody once again.
                a.replied.clear();
            }
            a.settings = settings;
            a.state += 1;
        }
        self.save()?;
        if enabled {
            self.clone().watch(account);
        }
        Ok(())
    }

    /// Starts watchers for every account whose vacation is enabled (call once at boot).
    pub fn start(self: Arc<Self>) {
        let accounts: Vec<AccountId> = self
            .lock()
            .iter()
            .filter(|(_, a)| a.settings.is_enabled)
            .map(|(k, _)| AccountId(*k))
            .collect();
        for a in accounts {
            self.clone().watch(a);
        }
    }

    fn watch(self: Arc<Self>, account: AccountId) {
        if !self
            .watching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account)
        {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            if let Err(e) = self.clone().watch_loop(account).await {
                tracing::warn!(%account, error = %e, "vacation responder stopped");
            }
            self.watching
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&account);
        });
    }

    async fn watch_loop(self: Arc<Self>, account: AccountId) -> Result<(), StoreError> {
        let mut rx = self.store.subscribe(account);
        let mut last: ModSeq = self.store.account_modseq(account).await?;
        loop {
            match rx.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            }
            if !self.settings(account).is_enabled {
                return Ok(());
            }
            let changes = self.store.changes_since(account, last, usize::MAX).await?;
            last = changes.new_modseq.max(last);
            if changes.emails.created.is_empty() {
                continue;
            }
            let inbox = bulwark_core::inbox_of(self.store.as_ref(), account).await?;
            for email in self
                .store
                .email_get(account, &changes.emails.created)
                .await?
            {
                if !email.mailboxes.iter().any(|(m, _)| *m == inbox) {
                    continue;
                }
                if let Some(raw) = self.store.blob_get(&email.blob).await?
                    && let Err(e) = self.reply_for(account, &raw, now_unix()).await
                {
                    tracing::warn!(%account, error = %e, "vacation reply failed");
                }
            }
        }
    }

    /// Answers `incoming` (delivered to `account`) if the vacation rules say so. Returns the
    /// address replied to.
    pub async fn reply_for(
        &self,
        account: AccountId,
        incoming: &[u8],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let settings = self.settings(account);
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
            .filter(|s| s.contains('@'))
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
        {
            let mut d = self.lock();
            let a = d.entry(account.0).or_default();
            if a.replied
                .get(&sender)
                .is_some_and(|t| now - t < REPLY_PERIOD_SECS)
            {
                return Ok(None);
            }
            if a.replied.len() >= MAX_REMEMBERED_SENDERS
                && let Some(oldest) = a
                    .replied
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, _)| k.clone())
            {
                a.replied.remove(&oldest);
            }
            a.replied.insert(sender.clone(), now);
        }
        if let Err(e) = self.save() {
            tracing::warn!(error = %e, "cannot save vacation reply history");
        }
        let me = addresses.first().cloned().unwrap_or_default();
        let subject = settings
            .subject
            .clone()
            .unwrap_or_else(|| format!("Auto: {}", msg.subject().unwrap_or_default()));
        let mut b = mail_builder::MessageBuilder::new()
            .from(me.as_str())
            .to(sender.as_str())
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
        match bulwark_core::resolve_recipient(self.store.as_ref(), &sender).await? {
            Recipient::Local(a) => {
                bulwark_core::deliver_local(self.store.as_ref(), raw, &[a], now).await?;
            }
            Recipient::Remote => {
                // RFC 3834 §3.3: auto-replies use the null reverse-path.
                self.store
                    .queue_enqueue(NewQueued {
                        sender: String::new(),
                        recipients: vec![sender.clone()],
                        raw,
                        expires_at: now + self.queue_lifetime_secs,
                    })
                    .await?;
                self.queue_wakeup.notify_one();
            }
            Recipient::UnknownUser => return Ok(None),
        }
        let _ = Role::Inbox;
        Ok(Some(sender))
    }
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
    let obj = crate::api::args::filter_properties(to_json(&v.settings(account)), &props);
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
        json!({ "accountId": ids::account_id(account), "state": v.state(account), "list": list, "notFound": not_found }),
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
    let old_state = v.state(account);
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
            let mut s = v.settings(account);
            match patch
                .as_object()
                .ok_or_else(|| SetError::invalid_properties(&[], "patch must be an object"))
                .and_then(|p| apply_patch(&mut s, p))
            {
                Ok(()) => {
                    v.update(account, s).map_err(|e| {
                        MethodError::new(MethodErrorKind::ServerFail, e.to_string())
                    })?;
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
        "accountId": ids::account_id(account), "oldState": old_state, "newState": v.state(account),
        "created": {}, "updated": updated, "destroyed": [], "notCreated": not_created, "notUpdated": not_updated,
        "notDestroyed": not_destroyed,
    }))
}
