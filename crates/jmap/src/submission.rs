//! EmailSubmission (RFC 8621 §7): sending goes through the node's delivery pipeline
//! (`bulwark_core::Pipeline`): local INBOXes, the durable outbound queue for remote
//! recipients and the submission record are committed together. Records live in the
//! account's `submissions` collection (so they survive restarts and are the same on every
//! node); a record's id is derived from the email and its envelope, so a client retrying a
//! submission whose answer it lost gets the first submission back instead of a second copy.

use crate::api::args::{Args, filter_properties};
use crate::api::{Ctx, MethodError, SetError, check_if_in_state, check_set_size};
use crate::identity::identities;
use crate::ids;
use bulwark_core::Recipient;
use bulwark_core::held::{HeldRecord, delivery_of};
use bulwark_store::collections::names::SUBMISSIONS;
use bulwark_store::{AccountId, EmailId, Expect, ItemWrite, ThreadId, now_unix};
use mail_parser::{Address, MessageParser};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Most recipients of one submission.
pub const MAX_RECIPIENTS: usize = 1000;
/// Submission records kept per account (oldest dropped).
pub const MAX_SUBMISSION_RECORDS: usize = 1000;

/// One accepted submission (RFC 8621 §7), stored as JSON in the `submissions` collection:
/// the envelope, delivery status, `undoStatus` and held blob are the core's hold record
/// ([`HeldRecord`], flattened, so the node's hold timers release it like an SMTP hold),
/// plus the JMAP ids. Records from before holds were possible read as `final`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmissionRecord {
    pub identity_id: String,
    pub email_id: EmailId,
    pub thread_id: ThreadId,
    #[serde(flatten)]
    pub hold: HeldRecord,
}

impl std::ops::Deref for SubmissionRecord {
    type Target = HeldRecord;
    fn deref(&self) -> &HeldRecord {
        &self.hold
    }
}

impl std::ops::DerefMut for SubmissionRecord {
    fn deref_mut(&mut self) -> &mut HeldRecord {
        &mut self.hold
    }
}

pub use bulwark_core::held::UndoStatus;

/// Longest hold (RFC 4865 FUTURERELEASE, advertised as `maxDelayedSend`): 30 days.
pub const MAX_DELAYED_SEND_SECS: i64 = bulwark_core::held::MAX_HOLD_SECS;

/// When a submission asks to be released (RFC 4865 `HOLDFOR=seconds` or `HOLDUNTIL=date`
/// in `envelope.mailFrom.parameters`, RFC 8621 §7): `None` to send now.
fn release_time(obj: &Map<String, Value>, now: i64) -> Result<Option<i64>, SetError> {
    let params = obj
        .get("envelope")
        .and_then(|e| e.get("mailFrom"))
        .and_then(|m| m.get("parameters"));
    let params = match params {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err(SetError::invalid_properties(
                &["envelope"],
                "mailFrom parameters must be an object",
            ));
        }
    };
    let bad = |m: &str| SetError::invalid_properties(&["envelope"], m.to_string());
    let get = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    let at = match (get("HOLDFOR"), get("HOLDUNTIL")) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err(bad("HOLDFOR and HOLDUNTIL exclude each other")),
        (Some(v), None) => {
            let secs = v
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|s| *s >= 0)
                .ok_or_else(|| bad("HOLDFOR must be a number of seconds"))?;
            now.saturating_add(secs)
        }
        (None, Some(v)) => v
            .as_str()
            .and_then(crate::mail::body::parse_date)
            .ok_or_else(|| bad("HOLDUNTIL must be a date-time"))?,
    };
    if at - now > MAX_DELAYED_SEND_SECS {
        return Err(bad("the hold is longer than maxDelayedSend"));
    }
    Ok((at > now).then_some(at))
}

/// The same delivery status for every recipient of the record.
pub(crate) fn every_recipient(
    record: &SubmissionRecord,
    reply: &str,
    delivered: &str,
) -> Vec<(String, String, String)> {
    bulwark_core::held::every_recipient(&record.rcpt_to, reply, delivered)
}

/// The record an earlier, identical submission left (a retry finds it).
async fn earlier_record(
    ctx: &Ctx<'_>,
    account: AccountId,
    id: &str,
) -> Result<SubmissionRecord, SetError> {
    let items = ctx
        .server
        .store
        .collection_get(account, SUBMISSIONS, Some(&[id.to_string()]))
        .await?;
    items
        .first()
        .and_then(|i| serde_json::from_str(&i.value).ok())
        .ok_or_else(|| SetError::new("serverFail", "the earlier submission is unreadable"))
}

fn encode_record(record: &SubmissionRecord) -> Result<String, SetError> {
    serde_json::to_string(record)
        .map_err(|e| SetError::new("serverFail", format!("cannot encode the record: {e}")))
}

fn submission_json(r: &SubmissionRecord) -> Map<String, Value> {
    let delivery: Map<String, Value> = r
        .delivery
        .iter()
        .map(|(rcpt, reply, delivered)| {
            (
                rcpt.clone(),
                json!({ "smtpReply": reply, "delivered": delivered, "displayed": "unknown" }),
            )
        })
        .collect();
    let v = json!({
        "id": r.id, "identityId": r.identity_id, "emailId": ids::email_id(r.email_id), "threadId": ids::thread_id(r.thread_id),
        "envelope": { "mailFrom": { "email": r.mail_from, "parameters": null },
            "rcptTo": r.rcpt_to.iter().map(|a| json!({ "email": a, "parameters": null })).collect::<Vec<_>>() },
        "sendAt": crate::mail::body::utc_date(r.send_at), "undoStatus": r.undo_status.as_str(), "deliveryStatus": delivery,
        "dsnBlobIds": [], "mdnBlobIds": [],
    });
    v.as_object().cloned().unwrap_or_default()
}

/// The account's submission records, oldest first.
async fn records(ctx: &Ctx<'_>, account: AccountId) -> Result<Vec<SubmissionRecord>, MethodError> {
    let items = ctx
        .server
        .store
        .collection_get(account, SUBMISSIONS, None)
        .await?;
    let mut out: Vec<SubmissionRecord> = items
        .iter()
        .filter_map(|i| serde_json::from_str(&i.value).ok())
        .collect();
    out.sort_by(|a, b| (a.send_at, &a.id).cmp(&(b.send_at, &b.id)));
    Ok(out)
}

async fn submission_state(ctx: &Ctx<'_>, account: AccountId) -> Result<String, MethodError> {
    Ok(ids::state(
        ctx.server
            .store
            .collection_state(account, SUBMISSIONS)
            .await?,
    ))
}

/// The id of a submission: the same email with the same envelope is the same submission.
fn submission_id(email: EmailId, mail_from: &str, rcpt_to: &[String]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(email.0.to_be_bytes());
    h.update(mail_from.as_bytes());
    for r in rcpt_to {
        h.update(b"\0");
        h.update(r.as_bytes());
    }
    format!("S{}", hex::encode(&h.finalize()[..10]))
}

const SUBMISSION_PROPS: [&str; 12] = [
    "id",
    "identityId",
    "emailId",
    "threadId",
    "envelope",
    "sendAt",
    "undoStatus",
    "deliveryStatus",
    "dsnBlobIds",
    "mdnBlobIds",
    "mailFrom",
    "rcptTo",
];

pub async fn submission_get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let wanted = args.opt_str_list("ids")?;
    crate::api::check_get_size(ctx, wanted.as_ref())?;
    let props = args.properties(&SUBMISSION_PROPS, &SUBMISSION_PROPS[..10])?;
    let recs = records(ctx, account).await?;
    let mut list = Vec::new();
    let mut not_found = Vec::new();
    match wanted {
        None => list.extend(
            recs.iter()
                .map(|r| filter_properties(submission_json(r), &props)),
        ),
        Some(w) => {
            for id in w {
                match recs.iter().find(|r| r.id == id) {
                    Some(r) => list.push(filter_properties(submission_json(r), &props)),
                    None => not_found.push(id),
                }
            }
        }
    }
    Ok(
        json!({ "accountId": ids::account_id(account), "state": submission_state(ctx, account).await?, "list": list, "notFound": not_found }),
    )
}

pub async fn submission_changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let a = crate::mail::changes::ChangesArgs::parse(ctx, &args)?;
    let store = &ctx.server.store;
    a.check_not_after(store.collection_state(a.account, SUBMISSIONS).await?)?;
    let c = store
        .collection_changes(a.account, SUBMISSIONS, a.since, a.max)
        .await?;
    Ok(a.response(c.new_state, c.has_more, c.created, c.updated, c.destroyed))
}

pub async fn submission_query(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let filter = args.opt_object("filter")?.cloned().unwrap_or_default();
    let list_of = |k: &str| {
        filter.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
    };
    let mut recs = records(ctx, account).await?;
    if let Some(e) = list_of("emailIds") {
        recs.retain(|r| e.contains(&ids::email_id(r.email_id)));
    }
    if let Some(i) = list_of("identityIds") {
        recs.retain(|r| i.contains(&r.identity_id));
    }
    if let Some(t) = list_of("threadIds") {
        recs.retain(|r| t.contains(&ids::thread_id(r.thread_id)));
    }
    recs.sort_by_key(|r| std::cmp::Reverse(r.send_at));
    let all: Vec<String> = recs.iter().map(|r| r.id.clone()).collect();
    let w = crate::mail::query::window(&all, &args)?;
    Ok(
        json!({ "accountId": ids::account_id(account), "queryState": submission_state(ctx, account).await?,
        "canCalculateChanges": false, "position": w.position, "ids": w.ids, "total": all.len() }),
    )
}

fn addresses_of(a: Option<&Address<'_>>) -> Vec<String> {
    let Some(a) = a else { return vec![] };
    a.iter()
        .filter_map(|x| x.address.as_deref())
        .map(|s| s.to_lowercase())
        .collect()
}

/// Removes Bcc header fields (RFC 5322 §3.6.3: recipients must not see them).
fn strip_bcc(raw: &[u8]) -> Vec<u8> {
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(raw.len());
    let (head, body) = raw.split_at(header_end);
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    for line in head.split_inclusive(|b| *b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

async fn send_one(
    ctx: &mut Ctx<'_>,
    account: AccountId,
    obj: &Map<String, Value>,
) -> Result<SubmissionRecord, SetError> {
    let store = ctx.server.store.clone();
    let identity_id = obj
        .get("identityId")
        .and_then(Value::as_str)
        .and_then(|i| ctx.resolve_id(i))
        .ok_or_else(|| SetError::invalid_properties(&["identityId"], "identityId is required"))?;
    let identity = identities(ctx, account)
        .await
        .map_err(|e| SetError::new("serverFail", e.description.unwrap_or_default()))?
        .into_iter()
        .find(|i| i.id == identity_id)
        .ok_or_else(|| SetError::invalid_properties(&["identityId"], "no such identity"))?;
    let email_id = obj
        .get("emailId")
        .and_then(Value::as_str)
        .and_then(|i| ctx.resolve_id(i))
        .and_then(|i| ids::parse_email(&i))
        .ok_or_else(|| SetError::invalid_properties(&["emailId"], "emailId is required"))?;
    let email = store
        .email_get(account, &[email_id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| SetError::invalid_properties(&["emailId"], "no such email"))?;
    let raw = store
        .blob_get(&email.blob)
        .await?
        .ok_or_else(|| SetError::new("serverFail", "the email's content is missing"))?;
    let addresses = store.account_addresses(account).await?;
    let msg = MessageParser::default()
        .parse(&raw)
        .ok_or_else(|| SetError::invalid_properties(&["emailId"], "the email cannot be parsed"))?;
    // §7.5: the From (and Sender) header must be one the user may send as — the same rule
    // as SMTP submission's (bulwark_core::sender).
    if let Err(e) = bulwark_core::sender::check_header_senders(&raw, &addresses) {
        return Err(SetError::new("forbiddenFrom", e.to_string()));
    }
    let (mail_from, rcpt_to) = match obj.get("envelope") {
        Some(Value::Object(env)) => {
            let mf = env
                .get("mailFrom")
                .and_then(|m| m.get("email"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            let rcpts: Vec<String> = env
                .get("rcptTo")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.get("email").and_then(Value::as_str))
                        .map(str::to_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            (mf, rcpts)
        }
        None | Some(Value::Null) => {
            let mut r = addresses_of(msg.to());
            r.extend(addresses_of(msg.cc()));
            r.extend(addresses_of(msg.bcc()));
            (identity.email.clone(), r)
        }
        Some(_) => {
            return Err(SetError::invalid_properties(
                &["envelope"],
                "envelope must be an object",
            ));
        }
    };
    if !bulwark_core::sender::may_send_as(&mail_from, &addresses) {
        return Err(SetError::new(
            "forbiddenMailFrom",
            "the envelope sender is not one of your addresses",
        ));
    }
    let mut rcpt_to: Vec<String> = rcpt_to;
    rcpt_to.sort();
    rcpt_to.dedup();
    if rcpt_to.is_empty() {
        return Err(SetError::new(
            "noRecipients",
            "the message has no recipients",
        ));
    }
    if rcpt_to.len() > MAX_RECIPIENTS {
        return Err(SetError::new(
            "tooManyRecipients",
            format!("at most {MAX_RECIPIENTS} recipients"),
        )
        .with("maxRecipients", json!(MAX_RECIPIENTS)));
    }
    let invalid: Vec<&String> = rcpt_to
        .iter()
        .filter(|r| bulwark_core::split_address(r).is_none())
        .collect();
    if !invalid.is_empty() {
        return Err(
            SetError::new("invalidRecipients", "malformed recipient addresses")
                .with("invalidRecipients", json!(invalid)),
        );
    }
    let mut resolved = Vec::with_capacity(rcpt_to.len());
    let mut unknown = Vec::new();
    for r in &rcpt_to {
        match bulwark_core::resolve_recipient(store.as_ref(), r).await? {
            Recipient::UnknownUser => unknown.push(r.clone()),
            found => resolved.push((r.clone(), found)),
        }
    }
    if !unknown.is_empty() {
        return Err(SetError::new("invalidRecipients", "no such local users")
            .with("invalidRecipients", json!(unknown)));
    }
    let outgoing = Arc::new(strip_bcc(&raw));
    if outgoing.len() > ctx.server.cfg.max_message_size {
        return Err(
            SetError::new("tooLarge", "the message exceeds the size limit")
                .with("maxSize", json!(ctx.server.cfg.max_message_size)),
        );
    }
    let now = now_unix();
    let release_at = release_time(obj, now)?;
    let id = submission_id(email_id, &mail_from, &rcpt_to);
    let mut record = SubmissionRecord {
        identity_id,
        email_id,
        thread_id: email.thread,
        hold: HeldRecord {
            id: id.clone(),
            mail_from: mail_from.clone(),
            rcpt_to,
            send_at: now,
            delivery: delivery_of(&resolved),
            undo_status: UndoStatus::Final,
            held: None,
        },
    };
    if let Some(at) = release_at {
        // RFC 4865 / RFC 8621 §7: held until `at`, durable (the message is a blob the record
        // owns) and cancelable until then; released by whichever node's timer fires first.
        let hash = store.blob_put(account, &outgoing).await?;
        record.send_at = at;
        record.undo_status = UndoStatus::Pending;
        record.held = Some(hash.clone());
        record.delivery = every_recipient(&record, "250 2.0.0 held for later delivery", "queued");
        let value = encode_record(&record)?;
        let mut write = ItemWrite::put(SUBMISSIONS, &id, Expect::Absent, value);
        write.blobs = vec![hash];
        return match store.collection_write(account, vec![write]).await {
            Ok(_) => {
                ctx.server.held().schedule(account, SUBMISSIONS, &id, at);
                Ok(record)
            }
            // Held before (the client retries after losing our answer): that submission.
            Err(bulwark_store::StoreError::Conflict(_)) => earlier_record(ctx, account, &id).await,
            Err(e) => Err(e.into()),
        };
    }
    let value = encode_record(&record)?;
    let mut message = bulwark_core::Message::new(&mail_from, Vec::new(), outgoing);
    message.received_at = now;
    message.resolved = resolved;
    message.records = vec![(
        account,
        ItemWrite::put(SUBMISSIONS, &id, Expect::Absent, value),
    )];
    match ctx.server.pipeline().deliver(message).await {
        Ok(_) => {
            trim_records(ctx, account).await;
            Ok(record)
        }
        // Sent before (the client retries after losing our answer): that submission.
        Err(bulwark_core::DeliveryError::AlreadyAccepted) => {
            earlier_record(ctx, account, &id).await
        }
        Err(bulwark_core::DeliveryError::Store(e)) => Err(e.into()),
    }
}

/// Keeps at most [`MAX_SUBMISSION_RECORDS`] per account (the oldest go). Best effort: a
/// failure only leaves a few more records.
async fn trim_records(ctx: &Ctx<'_>, account: AccountId) {
    let Ok(recs) = records(ctx, account).await else {
        return;
    };
    // Held submissions are never trimmed: they still have a message to send.
    let recs: Vec<SubmissionRecord> = recs
        .into_iter()
        .filter(|r| r.undo_status != UndoStatus::Pending)
        .collect();
    if recs.len() <= MAX_SUBMISSION_RECORDS {
        return;
    }
    let writes: Vec<ItemWrite> = recs[..recs.len() - MAX_SUBMISSION_RECORDS]
        .iter()
        .map(|r| ItemWrite::delete(SUBMISSIONS, &r.id, Expect::Any))
        .collect();
    if let Err(e) = ctx.server.store.collection_write(account, writes).await {
        tracing::warn!(%account, error = %e, "cannot trim submission records");
    }
}

pub async fn submission_set(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    check_set_size(ctx, &args)?;
    let old_state = submission_state(ctx, account).await?;
    check_if_in_state(&args, &old_state)?;
    let (mut created, mut not_created, mut updated, mut not_updated) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    let (mut destroyed, mut not_destroyed) = (Vec::new(), Map::new());
    // creation id → (submission id, email id) for the onSuccess* arguments.
    let mut sent: HashMap<String, (String, EmailId)> = HashMap::new();
    match args.take("create") {
        None => {}
        Some(Value::Object(create)) => {
            for (cid, obj) in create {
                let r = match &obj {
                    Value::Object(o) => send_one(ctx, account, o).await,
                    _ => Err(SetError::invalid_properties(
                        &[],
                        "create value must be an object",
                    )),
                };
                match r {
                    Ok(rec) => {
                        ctx.created_ids.insert(cid.clone(), rec.id.clone());
                        sent.insert(cid.clone(), (rec.id.clone(), rec.email_id));
                        created.insert(cid, json!({ "id": rec.id, "sendAt": crate::mail::body::utc_date(rec.send_at), "undoStatus": rec.undo_status.as_str() }));
                    }
                    Err(e) => {
                        not_created.insert(cid, e.to_json());
                    }
                }
            }
        }
        Some(_) => return Err(MethodError::invalid_arguments("create must be an object")),
    }
    if let Some(Value::Object(update)) = args.take("update") {
        for (id, patch) in update {
            match cancel(ctx, account, &id, &patch).await {
                Ok(()) => {
                    updated.insert(id, Value::Null);
                }
                Err(e) => {
                    not_updated.insert(id, e.to_json());
                }
            }
        }
    }
    let recs = records(ctx, account).await?;
    let mut deletes = Vec::new();
    for id in args.opt_str_list("destroy")?.unwrap_or_default() {
        if recs.iter().any(|r| r.id == id) {
            deletes.push(ItemWrite::delete(SUBMISSIONS, &id, Expect::Any));
            destroyed.push(id);
        } else {
            not_destroyed.insert(id, SetError::not_found().to_json());
        }
    }
    if !deletes.is_empty() {
        ctx.server.store.collection_write(account, deletes).await?;
    }
    let response = json!({
        "accountId": ids::account_id(account), "oldState": old_state, "newState": submission_state(ctx, account).await?,
        "created": created, "updated": updated, "destroyed": destroyed,
        "notCreated": not_created, "notUpdated": not_updated, "notDestroyed": not_destroyed,
    });
    on_success_email_set(ctx, account, &args, &sent).await?;
    Ok(response)
}

/// RFC 8621 §7.5 update: only `undoStatus: "canceled"`, and only while the submission is
/// still held (`pending`); a sent one is `cannotUnsend`. Compare-and-set against the record's
/// version, so a release racing the cancel on another node makes exactly one of them win.
async fn cancel(
    ctx: &Ctx<'_>,
    account: AccountId,
    id: &str,
    patch: &Value,
) -> Result<(), SetError> {
    let Value::Object(patch) = patch else {
        return Err(SetError::invalid_properties(&[], "a patch is an object"));
    };
    if let Some(k) = patch.keys().find(|k| k.as_str() != "undoStatus") {
        return Err(SetError::invalid_properties(
            &[k.as_str()],
            format!("{k} cannot be changed"),
        ));
    }
    if patch.get("undoStatus") != Some(&json!("canceled")) {
        return Err(SetError::invalid_properties(
            &["undoStatus"],
            "undoStatus can only be set to canceled",
        ));
    }
    let store = &ctx.server.store;
    let items = store
        .collection_get(account, SUBMISSIONS, Some(&[id.to_string()]))
        .await?;
    let Some(item) = items.first() else {
        return Err(SetError::not_found());
    };
    let mut record: SubmissionRecord = serde_json::from_str(&item.value)
        .map_err(|_| SetError::new("serverFail", "the submission record is unreadable"))?;
    match record.undo_status {
        UndoStatus::Canceled => return Ok(()),
        UndoStatus::Final => {
            return Err(SetError::new(
                "cannotUnsend",
                "the message was already sent",
            ));
        }
        UndoStatus::Pending => {}
    }
    record.undo_status = UndoStatus::Canceled;
    record.held = None;
    record.delivery = every_recipient(&record, "550 5.0.0 canceled before release", "no");
    let value = encode_record(&record)?;
    match store
        .collection_write(
            account,
            vec![ItemWrite::put(
                SUBMISSIONS,
                id,
                Expect::Version(item.version),
                value,
            )],
        )
        .await
    {
        Ok(_) => Ok(()),
        // Released (or changed) meanwhile.
        Err(bulwark_store::StoreError::Conflict(_)) => Err(SetError::new(
            "cannotUnsend",
            "the message was sent meanwhile",
        )),
        Err(e) => Err(e.into()),
    }
}

/// §7.5 onSuccessUpdateEmail / onSuccessDestroyEmail: an implicit Email/set whose response
/// follows the EmailSubmission/set response.
async fn on_success_email_set(
    ctx: &mut Ctx<'_>,
    account: AccountId,
    args: &Args,
    sent: &HashMap<String, (String, EmailId)>,
) -> Result<(), MethodError> {
    let resolve = |key: &str| -> Option<String> {
        match key.strip_prefix('#') {
            Some(cid) => sent.get(cid).map(|(_, e)| ids::email_id(*e)),
            None => sent
                .values()
                .find(|(s, _)| s == key)
                .map(|(_, e)| ids::email_id(*e)),
        }
    };
    let mut update = Map::new();
    if let Some(u) = args.opt_object("onSuccessUpdateEmail")? {
        for (k, patch) in u {
            if let Some(eid) = resolve(k) {
                update.insert(eid, patch.clone());
            }
        }
    }
    let destroy: Vec<String> = args
        .opt_str_list("onSuccessDestroyEmail")?
        .unwrap_or_default()
        .iter()
        .filter_map(|k| resolve(k))
        .collect();
    if update.is_empty() && destroy.is_empty() {
        return Ok(());
    }
    let mut set_args = Map::new();
    set_args.insert("accountId".into(), json!(ids::account_id(account)));
    if !update.is_empty() {
        set_args.insert("update".into(), Value::Object(update));
    }
    if !destroy.is_empty() {
        set_args.insert("destroy".into(), json!(destroy));
    }
    let result = crate::mail::email_set::set(ctx, Args(set_args)).await;
    let entry = match result {
        Ok(v) => ("Email/set".to_string(), v),
        Err(e) => ("error".to_string(), e.to_json()),
    };
    ctx.extra.push(entry);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_header_is_stripped_with_continuations() {
        let raw =
            b"From: a@x\r\nBcc: secret@y,\r\n other@z\r\nTo: b@x\r\n\r\nBcc: in body stays\r\n";
        let out = String::from_utf8(strip_bcc(raw)).unwrap();
        assert_eq!(out, "From: a@x\r\nTo: b@x\r\n\r\nBcc: in body stays\r\n");
    }
}
