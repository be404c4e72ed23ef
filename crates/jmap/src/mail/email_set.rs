//! Email/set (RFC 8621 §4.6): create from parts (mail-builder), update keywords and
//! mailboxIds (whole or by patch path), destroy.

use super::body::parse_date;
use crate::api::args::Args;
use crate::api::{Ctx, MethodError, SetError, check_if_in_state, check_set_size, current_state};
use crate::{blob, ids};
use bulwark_store::changelog::ChangeKind;
use bulwark_store::{
    AccountId, EmailId, KeywordOp, KeywordUpdate, MailboxId, MembershipUpdate, NewEmail, now_unix,
};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as BAddress;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// Longest keyword (RFC 8621 §4.1.1 follows IMAP atoms; we cap at 255 bytes).
pub const MAX_KEYWORD_LEN: usize = 255;
/// Deepest bodyStructure accepted on create.
pub const MAX_CREATE_DEPTH: usize = 8;

/// RFC 8621 §4.1.1: keywords are IMAP atoms (no `( ) { ] % * " \` or controls), lowercased.
pub fn normalize_keyword(k: &str) -> Option<String> {
    let ok = !k.is_empty()
        && k.len() <= MAX_KEYWORD_LEN
        && k.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"(){]%*\"\\".contains(&b));
    ok.then(|| k.to_ascii_lowercase())
}

/// Parses a `{keyword: true}` object.
pub fn parse_keywords(v: &Value) -> Result<Vec<String>, SetError> {
    let Value::Object(m) = v else {
        return Err(SetError::invalid_properties(
            &["keywords"],
            "keywords must be an object",
        ));
    };
    let mut out = Vec::new();
    for (k, val) in m {
        if val != &Value::Bool(true) {
            return Err(SetError::invalid_properties(
                &["keywords"],
                "keyword values must be true",
            ));
        }
        out.push(normalize_keyword(k).ok_or_else(|| {
            SetError::invalid_properties(&["keywords"], format!("invalid keyword {k}"))
        })?);
    }
    Ok(out)
}

/// Parses a `{mailboxId: true}` object against the account's mailboxes.
pub fn parse_mailbox_ids(
    ctx: &Ctx<'_>,
    v: &Value,
    existing: &[MailboxId],
) -> Result<Vec<MailboxId>, SetError> {
    let Value::Object(m) = v else {
        return Err(SetError::invalid_properties(
            &["mailboxIds"],
            "mailboxIds must be an object",
        ));
    };
    let mut out = Vec::new();
    for (k, val) in m {
        if val != &Value::Bool(true) {
            return Err(SetError::invalid_properties(
                &["mailboxIds"],
                "mailboxIds values must be true",
            ));
        }
        let id = ctx
            .resolve_id(k)
            .and_then(|r| ids::parse_mailbox(&r))
            .filter(|id| existing.contains(id))
            .ok_or_else(|| {
                SetError::invalid_properties(&["mailboxIds"], format!("no mailbox {k}"))
            })?;
        out.push(id);
    }
    if out.is_empty() {
        return Err(SetError::invalid_properties(
            &["mailboxIds"],
            "an email must be in at least one mailbox",
        ));
    }
    Ok(out)
}

fn addresses(v: &Value, prop: &str) -> Result<Option<BAddress<'static>>, SetError> {
    let bad = || SetError::invalid_properties(&[prop], "must be an array of {name, email}");
    let Value::Array(items) = v else {
        return if v.is_null() { Ok(None) } else { Err(bad()) };
    };
    let mut list = Vec::new();
    for item in items {
        let email = item.get("email").and_then(Value::as_str).ok_or_else(bad)?;
        if email.contains(['\r', '\n']) {
            return Err(bad());
        }
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.contains(['\r', '\n']))
            .map(str::to_string);
        list.push(BAddress::new_address(name, email.to_string()));
    }
    Ok(Some(BAddress::new_list(list)))
}

fn message_ids(v: &Value, prop: &str) -> Result<Option<MessageId<'static>>, SetError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let list: Option<Vec<String>> = items
                .iter()
                .map(|i| {
                    i.as_str()
                        .filter(|s| !s.contains(['\r', '\n', '<', '>']))
                        .map(str::to_string)
                })
                .collect();
            list.map(|l| Some(MessageId::new_list(l.into_iter())))
                .ok_or_else(|| SetError::invalid_properties(&[prop], "must be an array of ids"))
        }
        _ => Err(SetError::invalid_properties(
            &[prop],
            "must be an array of ids",
        )),
    }
}

/// A body part of the create object with its content resolved.
struct PartSpec {
    ctype: String,
    content: Vec<u8>,
    name: Option<String>,
    cid: Option<String>,
    disposition: Option<String>,
    is_text: bool,
}

async fn resolve_part(
    ctx: &Ctx<'_>,
    p: &Value,
    body_values: Option<&Map<String, Value>>,
) -> Result<PartSpec, SetError> {
    let bad = |why: &str| SetError::invalid_properties(&["bodyStructure"], why.to_string());
    let Value::Object(p) = p else {
        return Err(bad("a body part must be an object"));
    };
    let ctype = p
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("text/plain")
        .to_ascii_lowercase();
    if ctype.contains(['\r', '\n', ';']) {
        return Err(bad("invalid type"));
    }
    let content = if let Some(part_id) = p.get("partId").and_then(Value::as_str) {
        let value = body_values
            .and_then(|b| b.get(part_id))
            .and_then(|v| v.get("value"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                SetError::invalid_properties(
                    &["bodyValues"],
                    format!("no bodyValues entry for part {part_id}"),
                )
            })?;
        value.as_bytes().to_vec()
    } else if let Some(blob_id) = p.get("blobId").and_then(Value::as_str) {
        blob::read_blob(ctx.server, ctx.account, blob_id)
            .await?
            .ok_or_else(|| {
                SetError::new("blobNotFound", format!("no blob {blob_id}"))
                    .with("notFound", json!([blob_id]))
            })?
    } else {
        return Err(bad("a body part needs partId or blobId"));
    };
    let s = |k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.contains(['\r', '\n', '"']))
            .map(str::to_string)
    };
    Ok(PartSpec {
        is_text: ctype.starts_with("text/"),
        ctype,
        content,
        name: s("name"),
        cid: s("cid"),
        disposition: s("disposition"),
    })
}

fn mime_of(spec: PartSpec) -> MimePart<'static> {
    let mut part = if spec.is_text {
        MimePart::new(
            spec.ctype,
            String::from_utf8_lossy(&spec.content).into_owned(),
        )
    } else {
        MimePart::new(spec.ctype, spec.content)
    };
    if let Some(cid) = spec.cid {
        part = part.cid(cid);
    }
    match (spec.disposition.as_deref(), spec.name) {
        (Some("inline"), _) => part = part.inline(),
        (_, Some(name)) => part = part.attachment(name),
        (Some("attachment"), None) => part = part.attachment("attachment"),
        _ => {}
    }
    part
}

/// Builds a MimePart tree from a bodyStructure (boxed recursion: async fns cannot recurse).
fn structure_part<'a>(
    ctx: &'a Ctx<'_>,
    p: &'a Value,
    bv: Option<&'a Map<String, Value>>,
    depth: usize,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<MimePart<'static>, SetError>> + Send + 'a>,
> {
    Box::pin(async move {
        if depth > MAX_CREATE_DEPTH {
            return Err(SetError::invalid_properties(
                &["bodyStructure"],
                "nested too deeply",
            ));
        }
        if let Some(Value::Array(subs)) = p.get("subParts") {
            let ctype = p
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("multipart/mixed")
                .to_ascii_lowercase();
            if !ctype.starts_with("multipart/") {
                return Err(SetError::invalid_properties(
                    &["bodyStructure"],
                    "subParts need a multipart type",
                ));
            }
            let mut children = Vec::new();
            for s in subs {
                children.push(structure_part(ctx, s, bv, depth + 1).await?);
            }
            return Ok(MimePart::new(ctype, children));
        }
        Ok(mime_of(resolve_part(ctx, p, bv).await?))
    })
}

/// Builds the RFC 5322 message of an Email/set create object.
pub async fn build_message(ctx: &Ctx<'_>, obj: &Map<String, Value>) -> Result<Vec<u8>, SetError> {
    let mut b = MessageBuilder::new();
    for (prop, v) in obj {
        b = match prop.as_str() {
            "from" => match addresses(v, prop)? {
                Some(a) => b.from(a),
                None => b,
            },
            "to" => match addresses(v, prop)? {
                Some(a) => b.to(a),
                None => b,
            },
            "cc" => match addresses(v, prop)? {
                Some(a) => b.cc(a),
                None => b,
            },
            "bcc" => match addresses(v, prop)? {
                Some(a) => b.bcc(a),
                None => b,
            },
            "replyTo" => match addresses(v, prop)? {
                Some(a) => b.reply_to(a),
                None => b,
            },
            "sender" => match addresses(v, prop)? {
                Some(a) => b.sender(a),
                None => b,
            },
            "subject" => match v {
                Value::String(s) => b.subject(s.replace(['\r', '\n'], " ")),
                Value::Null => b,
                _ => {
                    return Err(SetError::invalid_properties(
                        &["subject"],
                        "subject must be a string",
                    ));
                }
            },
            "sentAt" => match v.as_str().and_then(parse_date) {
                Some(t) => b.date(t),
                None => {
                    return Err(SetError::invalid_properties(
                        &["sentAt"],
                        "sentAt must be a Date",
                    ));
                }
            },
            "messageId" => match message_ids(v, prop)? {
                Some(m) => b.message_id(m),
                None => b,
            },
            "inReplyTo" => match message_ids(v, prop)? {
                Some(m) => b.in_reply_to(m),
                None => b,
            },
            "references" => match message_ids(v, prop)? {
                Some(m) => b.references(m),
                None => b,
            },
            p if p.starts_with("header:") => {
                let hp = super::body::parse_header_property(p).ok_or_else(|| {
                    SetError::invalid_properties(&[p], "malformed header property")
                })?;
                let is_mime = hp.name.to_ascii_lowercase().starts_with("content-");
                match v {
                    Value::String(s) if !is_mime && !s.contains(['\r', '\n']) => {
                        b.header(hp.name.clone(), Raw::new(format!(" {}", s.trim())))
                    }
                    _ => {
                        return Err(SetError::invalid_properties(
                            &[p],
                            "only single-line text values of non-Content headers can be set",
                        ));
                    }
                }
            }
            _ => b,
        };
    }
    if !obj.contains_key("messageId") {
        let rnd: u64 = rand::random();
        b = b.message_id(format!(
            "{rnd:016x}.{}@{}",
            now_unix(),
            ctx.server.cfg.hostname
        ));
    }
    let bv = obj.get("bodyValues").and_then(Value::as_object);
    if let Some(structure) = obj.get("bodyStructure") {
        b = b.body(structure_part(ctx, structure, bv, 0).await?);
    } else {
        let first = |k: &str| {
            obj.get(k)
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .cloned()
        };
        if let Some(t) = first("textBody") {
            let spec = resolve_part(ctx, &t, bv).await?;
            b = b.text_body(String::from_utf8_lossy(&spec.content).into_owned());
        }
        if let Some(h) = first("htmlBody") {
            let spec = resolve_part(ctx, &h, bv).await?;
            b = b.html_body(String::from_utf8_lossy(&spec.content).into_owned());
        }
        if let Some(Value::Array(atts)) = obj.get("attachments") {
            for a in atts {
                let spec = resolve_part(ctx, a, bv).await?;
                let name = spec.name.clone().unwrap_or_else(|| "attachment".into());
                b = match spec.cid.clone() {
                    Some(cid) if spec.disposition.as_deref() == Some("inline") => {
                        b.inline(spec.ctype, cid, spec.content)
                    }
                    _ => b.attachment(spec.ctype, name, spec.content),
                };
            }
        }
        if !obj.contains_key("textBody")
            && !obj.contains_key("htmlBody")
            && !obj.contains_key("attachments")
        {
            b = b.text_body(String::new());
        }
    }
    b.write_to_vec()
        .map_err(|e| SetError::new("serverFail", format!("cannot build the message: {e}")))
}

async fn create_one(
    ctx: &mut Ctx<'_>,
    account: AccountId,
    obj: &Map<String, Value>,
    mailboxes: &[MailboxId],
) -> Result<Value, SetError> {
    let mbs = parse_mailbox_ids(
        ctx,
        obj.get("mailboxIds").unwrap_or(&Value::Null),
        mailboxes,
    )?;
    let keywords = match obj.get("keywords") {
        Some(v) => parse_keywords(v)?,
        None => vec![],
    };
    let received_at = match obj.get("receivedAt") {
        Some(Value::String(s)) => parse_date(s).ok_or_else(|| {
            SetError::invalid_properties(&["receivedAt"], "receivedAt must be a UTCDate")
        })?,
        _ => now_unix(),
    };
    let raw = build_message(ctx, obj).await?;
    if raw.len() > ctx.server.cfg.max_message_size {
        return Err(SetError::new(
            "tooLarge",
            "the message exceeds the size limit",
        ));
    }
    append(ctx, account, raw, mbs, keywords, received_at).await
}

/// Stores a message; the created-object response (id, blobId, threadId, size).
pub async fn append(
    ctx: &Ctx<'_>,
    account: AccountId,
    raw: Vec<u8>,
    mailboxes: Vec<MailboxId>,
    keywords: Vec<String>,
    received_at: i64,
) -> Result<Value, SetError> {
    // RFC 8620 §5.3 `overQuota`: nothing is stored past the account's limit.
    let policy = ctx.server.cfg.quota;
    if !bulwark_core::quota::admits(ctx.server.store.as_ref(), account, policy, raw.len() as u64)
        .await?
    {
        return Err(SetError::new(
            "overQuota",
            "the account is over its storage quota: destroy some mail first",
        ));
    }
    let summary = bulwark_core::summarize(&raw);
    let size = raw.len();
    let new = NewEmail {
        mailboxes,
        raw: Arc::new(raw),
        keywords,
        received_at,
        summary,
    };
    let appended = ctx.server.store.email_append(account, vec![new]).await?;
    let a = appended
        .into_iter()
        .next()
        .ok_or_else(|| SetError::new("serverFail", "the store returned no email"))?;
    let blob_id = ctx.server.blob_ids().await?.encode(account, &a.blob);
    Ok(
        json!({ "id": ids::email_id(a.email), "blobId": blob_id.0, "threadId": ids::thread_id(a.thread), "size": size }),
    )
}

/// Applies one update patch (§4.6: keywords, mailboxIds, and their `/` patch paths).
async fn update_one(
    ctx: &Ctx<'_>,
    account: AccountId,
    id: EmailId,
    patch: &Map<String, Value>,
    mailboxes: &[MailboxId],
) -> Result<(), SetError> {
    let email = ctx
        .server
        .store
        .email_get(account, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(SetError::not_found)?;
    let mut kw_replace: Option<Vec<String>> = None;
    let mut kw_add = Vec::new();
    let mut kw_remove = Vec::new();
    let current_mbs: HashSet<MailboxId> = email.mailboxes.iter().map(|(m, _)| *m).collect();
    let mut target_mbs = current_mbs.clone();
    for (path, value) in patch {
        if path == "keywords" {
            kw_replace = Some(parse_keywords(value)?);
        } else if let Some(k) = path.strip_prefix("keywords/") {
            let k = normalize_keyword(k)
                .ok_or_else(|| SetError::invalid_properties(&[path.as_str()], "invalid keyword"))?;
            match value {
                Value::Bool(true) => kw_add.push(k),
                Value::Null | Value::Bool(false) => kw_remove.push(k),
                _ => {
                    return Err(SetError::invalid_properties(
                        &[path.as_str()],
                        "must be true or null",
                    ));
                }
            }
        } else if path == "mailboxIds" {
            target_mbs = parse_mailbox_ids(ctx, value, mailboxes)?
                .into_iter()
                .collect();
        } else if let Some(m) = path.strip_prefix("mailboxIds/") {
            let mid = ctx
                .resolve_id(m)
                .and_then(|r| ids::parse_mailbox(&r))
                .filter(|x| mailboxes.contains(x))
                .ok_or_else(|| SetError::invalid_properties(&[path.as_str()], "no such mailbox"))?;
            match value {
                Value::Bool(true) => target_mbs.insert(mid),
                Value::Null | Value::Bool(false) => target_mbs.remove(&mid),
                _ => {
                    return Err(SetError::invalid_properties(
                        &[path.as_str()],
                        "must be true or null",
                    ));
                }
            };
        } else {
            // Everything else on an Email is immutable (§4.6).
            return Err(SetError::invalid_properties(
                &[path.as_str()],
                "property is immutable",
            ));
        }
    }
    if target_mbs.is_empty() {
        return Err(SetError::invalid_properties(
            &["mailboxIds"],
            "an email must be in at least one mailbox",
        ));
    }
    let mut updates = Vec::new();
    if let Some(all) = kw_replace {
        let mut all: Vec<String> = all
            .into_iter()
            .chain(kw_add)
            .filter(|k| !kw_remove.contains(k))
            .collect();
        all.sort();
        all.dedup();
        updates.push(KeywordUpdate {
            email: id,
            op: KeywordOp::Replace,
            keywords: all,
            unchanged_since: None,
        });
    } else {
        if !kw_add.is_empty() {
            updates.push(KeywordUpdate {
                email: id,
                op: KeywordOp::Add,
                keywords: kw_add,
                unchanged_since: None,
            });
        }
        if !kw_remove.is_empty() {
            updates.push(KeywordUpdate {
                email: id,
                op: KeywordOp::Remove,
                keywords: kw_remove,
                unchanged_since: None,
            });
        }
    }
    if !updates.is_empty() {
        ctx.server
            .store
            .email_set_keywords(account, updates)
            .await?;
    }
    if target_mbs != current_mbs {
        let add: Vec<MailboxId> = target_mbs.difference(&current_mbs).copied().collect();
        let remove: Vec<MailboxId> = current_mbs.difference(&target_mbs).copied().collect();
        ctx.server
            .store
            .email_set_mailboxes(
                account,
                vec![MembershipUpdate {
                    email: id,
                    add,
                    remove,
                }],
            )
            .await?;
    }
    Ok(())
}

pub async fn set(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    check_set_size(ctx, &args)?;
    let old_state = current_state(ctx, ChangeKind::Email).await?;
    check_if_in_state(&args, &old_state)?;
    let mailboxes: Vec<MailboxId> = ctx
        .server
        .store
        .mailbox_list(account)
        .await?
        .iter()
        .map(|m| m.id)
        .collect();
    let (mut created, mut not_created) = (Map::new(), Map::new());
    let (mut updated, mut not_updated) = (Map::new(), Map::new());
    let (mut destroyed, mut not_destroyed) = (Vec::new(), Map::new());
    match args.take("create") {
        None => {}
        Some(Value::Object(create)) => {
            for (cid, obj) in create {
                let r = match &obj {
                    Value::Object(o) => create_one(ctx, account, o, &mailboxes).await,
                    _ => Err(SetError::invalid_properties(
                        &[],
                        "create value must be an object",
                    )),
                };
                match r {
                    Ok(v) => {
                        if let Some(id) = v.get("id").and_then(Value::as_str) {
                            ctx.created_ids.insert(cid.clone(), id.to_string());
                        }
                        created.insert(cid, v);
                    }
                    Err(e) => {
                        not_created.insert(cid, e.to_json());
                    }
                }
            }
        }
        Some(_) => return Err(MethodError::invalid_arguments("create must be an object")),
    }
    match args.take("update") {
        None => {}
        Some(Value::Object(update)) => {
            for (id, patch) in update {
                let r = match (
                    ctx.resolve_id(&id).and_then(|r| ids::parse_email(&r)),
                    &patch,
                ) {
                    (Some(eid), Value::Object(p)) => {
                        update_one(ctx, account, eid, p, &mailboxes).await
                    }
                    (None, _) => Err(SetError::not_found()),
                    _ => Err(SetError::invalid_properties(&[], "patch must be an object")),
                };
                match r {
                    Ok(()) => {
                        updated.insert(id, Value::Null);
                    }
                    Err(e) => {
                        not_updated.insert(id, e.to_json());
                    }
                }
            }
        }
        Some(_) => return Err(MethodError::invalid_arguments("update must be an object")),
    }
    for id in args.opt_str_list("destroy")?.unwrap_or_default() {
        let eid = ctx.resolve_id(&id).and_then(|r| ids::parse_email(&r));
        let exists = match eid {
            Some(eid) => !ctx
                .server
                .store
                .email_get(account, &[eid])
                .await?
                .is_empty(),
            None => false,
        };
        match eid.filter(|_| exists) {
            Some(eid) => match ctx.server.store.email_destroy(account, &[eid]).await {
                Ok(()) => destroyed.push(id),
                Err(e) => {
                    not_destroyed.insert(id, SetError::from(e).to_json());
                }
            },
            None => {
                not_destroyed.insert(id, SetError::not_found().to_json());
            }
        }
    }
    let new_state = current_state(ctx, ChangeKind::Email).await?;
    Ok(json!({
        "accountId": ids::account_id(account), "oldState": old_state, "newState": new_state,
        "created": created, "updated": updated, "destroyed": destroyed,
        "notCreated": not_created, "notUpdated": not_updated, "notDestroyed": not_destroyed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_atoms_and_lowercased() {
        assert_eq!(normalize_keyword("$Seen").as_deref(), Some("$seen"));
        assert_eq!(normalize_keyword("a b"), None);
        assert_eq!(normalize_keyword("a(b"), None);
        assert_eq!(normalize_keyword(""), None);
    }
}
