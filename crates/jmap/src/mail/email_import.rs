//! Email/import (RFC 8621 §4.8), Email/copy (§4.7) and Email/parse (§4.9).

use super::body::parse_date;
use super::email_get::{self, BodyOptions};
use super::email_set::{append, parse_keywords, parse_mailbox_ids};
use crate::api::args::Args;
use crate::api::{Ctx, MethodError, MethodErrorKind, SetError, check_if_in_state, current_state};
use crate::{blob, ids};
use bulwark_store::changelog::ChangeKind;
use bulwark_store::{MailboxId, now_unix};
use mail_parser::MessageParser;
use serde_json::{Map, Value, json};

pub async fn import(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let old_state = current_state(ctx, ChangeKind::Email).await?;
    check_if_in_state(&args, &old_state)?;
    let Some(Value::Object(emails)) = args.take("emails") else {
        return Err(MethodError::invalid_arguments("emails must be an object"));
    };
    if emails.len() > ctx.server.cfg.max_objects_in_set {
        return Err(MethodError::new(
            MethodErrorKind::RequestTooLarge,
            "too many emails in one import",
        ));
    }
    let mailboxes: Vec<MailboxId> = ctx
        .server
        .store
        .mailbox_list(account)
        .await?
        .iter()
        .map(|m| m.id)
        .collect();
    let mut created = Map::new();
    let mut not_created = Map::new();
    for (cid, obj) in emails {
        let r = import_one(ctx, account, &obj, &mailboxes).await;
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
    let new_state = current_state(ctx, ChangeKind::Email).await?;
    Ok(json!({
        "accountId": ids::account_id(account), "oldState": old_state, "newState": new_state,
        "created": created, "notCreated": not_created,
    }))
}

async fn import_one(
    ctx: &Ctx<'_>,
    account: bulwark_store::AccountId,
    obj: &Value,
    mailboxes: &[MailboxId],
) -> Result<Value, SetError> {
    let Value::Object(o) = obj else {
        return Err(SetError::invalid_properties(
            &[],
            "EmailImport must be an object",
        ));
    };
    let blob_id = o
        .get("blobId")
        .and_then(Value::as_str)
        .ok_or_else(|| SetError::invalid_properties(&["blobId"], "blobId is required"))?;
    let raw = blob::read_blob(ctx.server, ctx.account, blob_id)
        .await?
        // RFC 8621 §4.8 lists no blobNotFound for Email/import: an unknown (or another
        // account's) blob is an invalid blobId property.
        .ok_or_else(|| SetError::invalid_properties(&["blobId"], format!("no blob {blob_id}")))?;
    if raw.len() > ctx.server.cfg.max_message_size {
        return Err(SetError::new(
            "tooLarge",
            "the message exceeds the size limit",
        ));
    }
    if MessageParser::default()
        .parse(&raw)
        .is_none_or(|m| m.headers().is_empty())
    {
        return Err(SetError::invalid_properties(
            &["blobId"],
            "the blob is not an RFC 5322 message",
        ));
    }
    let mbs = parse_mailbox_ids(ctx, o.get("mailboxIds").unwrap_or(&Value::Null), mailboxes)?;
    let keywords = match o.get("keywords") {
        Some(v) => parse_keywords(v)?,
        None => vec![],
    };
    let received_at = match o.get("receivedAt") {
        Some(Value::String(s)) => parse_date(s)
            .ok_or_else(|| SetError::invalid_properties(&["receivedAt"], "must be a UTCDate"))?,
        _ => now_unix(),
    };
    append(ctx, account, raw, mbs, keywords, received_at).await
}

/// §4.7 / RFC 8620 §5.4: copying needs a second account; this server exposes one account
/// per user, so a copy within it is invalidArguments and any other account is not found.
pub async fn copy(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let from = args
        .opt_str("fromAccountId")?
        .ok_or_else(|| MethodError::invalid_arguments("fromAccountId is required"))?;
    if ids::parse_account(from) == Some(account) {
        return Err(MethodError::invalid_arguments(
            "fromAccountId must differ from accountId; use Email/set to change mailboxIds",
        ));
    }
    Err(MethodError::new(
        MethodErrorKind::FromAccountNotFound,
        format!("no account {from}"),
    ))
}

pub async fn parse(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let blob_ids = args
        .opt_str_list("blobIds")?
        .ok_or_else(|| MethodError::invalid_arguments("blobIds is required"))?;
    crate::api::check_get_size(ctx, Some(&blob_ids))?;
    let props = match args.opt_str_list("properties")? {
        None => email_get::DEFAULT_PROPERTIES[email_get::METADATA_PROPERTIES..]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(_) => email_get::email_properties(&args)?,
    };
    let opts = BodyOptions::from_args(&args)?;
    let mut parsed = Map::new();
    let mut not_parsable = Vec::new();
    let mut not_found = Vec::new();
    for id in blob_ids {
        let Some(raw) = blob::read_blob(ctx.server, ctx.account, &id).await? else {
            not_found.push(id);
            continue;
        };
        // Parts of a parsed blob are addressed relative to that blob, by this account's id.
        let ids = ctx.server.blob_ids().await?;
        let hash = ids
            .decode(ctx.account, &id)
            .map(|(h, _)| ids.encode(ctx.account, &h))
            .unwrap_or_else(|| bulwark_store::BlobHash(String::new()));
        match MessageParser::default().parse(&raw) {
            Some(msg) if !msg.headers().is_empty() => {
                let mut out = Map::new();
                for p in &props {
                    match p.as_str() {
                        "id" | "threadId" | "mailboxIds" | "keywords" | "receivedAt" => {
                            out.insert(p.clone(), Value::Null);
                        }
                        "blobId" => {
                            out.insert(p.clone(), json!(id));
                        }
                        _ => {}
                    }
                }
                // Parts of a parsed blob are addressed relative to that blob.
                email_get::parsed_json(&msg, &hash, &props, &opts, &mut out);
                parsed.insert(id, Value::Object(out));
            }
            _ => not_parsable.push(id),
        }
    }
    Ok(
        json!({ "accountId": ids::account_id(account), "parsed": parsed, "notParsable": not_parsable, "notFound": not_found }),
    )
}
