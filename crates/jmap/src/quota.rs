//! JMAP for Quotas (RFC 9425): the account's storage quota as one Quota object, with the
//! figures and limit of [`bulwark_core::quota`] — the rule IMAP QUOTA and delivery apply.
//!
//! * One object, id [`STORAGE_ID`]: `resourceType` `octets`, `scope` `account`, `types`
//!   `["Mail"]`. An account without a limit has no Quota object (as Apache James, the
//!   RFC's reference implementation, filters unlimited quotas out).
//! * The state string is made of the figures themselves (`used` and the limit), so
//!   `Quota/changes` is exact from any earlier state without keeping anything: a limit
//!   that appeared is `created`, one that went away `destroyed`, other changes `updated`.
//! * `Quota/queryChanges` answers `cannotCalculateChanges` (RFC 8620 §5.6 allows it); a
//!   client re-runs `Quota/query`, which is one object at most.

use crate::api::args::{Args, filter_properties};
use crate::api::{Ctx, MethodError, MethodErrorKind};
use crate::ids;
use bulwark_core::quota::{self, Usage};
use serde_json::{Map, Value, json};

/// The id of the storage quota.
pub const STORAGE_ID: &str = "storage";

const PROPS: [&str; 7] = [
    "id",
    "resourceType",
    "used",
    "hardLimit",
    "scope",
    "name",
    "types",
];

async fn usage(
    ctx: &Ctx<'_>,
    args: &Args,
) -> Result<(bulwark_store::AccountId, Usage), MethodError> {
    let account = args.account(ctx.account)?;
    let usage = quota::usage(ctx.server.store.as_ref(), account, ctx.server.cfg.quota).await?;
    Ok((account, usage))
}

/// RFC 9425 §4.1: the Quota object, when the account has a limit.
fn object(usage: &Usage) -> Option<Map<String, Value>> {
    let limit = usage.limit?;
    let v = json!({
        "id": STORAGE_ID,
        "resourceType": "octets",
        "used": usage.used,
        "hardLimit": limit,
        "scope": "account",
        "name": "Mail storage",
        "types": ["Mail"],
        "description": "All mail of the account, every copy counted",
    });
    match v {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// `u{used}` and `l{limit}` (or `l-` when unlimited): changes whenever a figure does.
fn state(usage: &Usage) -> String {
    match usage.limit {
        Some(l) => format!("u{}l{l}", usage.used),
        None => format!("u{}l-", usage.used),
    }
}

/// The figures a state string was made of (`None`: not one of ours).
fn parse_state(s: &str) -> Option<(u64, Option<u64>)> {
    let rest = s.strip_prefix('u')?;
    let (used, limit) = rest.split_once('l')?;
    let used = used.parse().ok()?;
    let limit = match limit {
        "-" => None,
        l => Some(l.parse().ok()?),
    };
    Some((used, limit))
}

/// Quota/get (RFC 9425 §4.2).
pub async fn get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let (account, usage) = usage(ctx, &args).await?;
    let props = args.properties(&PROPS_WITH_DESCRIPTION, &PROPS_WITH_DESCRIPTION)?;
    let obj = object(&usage);
    let mut list = Vec::new();
    let mut not_found = Vec::new();
    match args.opt_str_list("ids")? {
        None => list.extend(obj.map(|o| filter_properties(o, &props))),
        Some(ids) => {
            for id in ids {
                match &obj {
                    Some(o) if id == STORAGE_ID => list.push(filter_properties(o.clone(), &props)),
                    _ => not_found.push(id),
                }
            }
        }
    }
    Ok(json!({
        "accountId": ids::account_id(account),
        "state": state(&usage),
        "list": list,
        "notFound": not_found,
    }))
}

const PROPS_WITH_DESCRIPTION: [&str; 8] = [
    PROPS[0],
    PROPS[1],
    PROPS[2],
    PROPS[3],
    PROPS[4],
    PROPS[5],
    PROPS[6],
    "description",
];

/// Quota/changes (RFC 9425 §4.3, RFC 8620 §5.2).
pub async fn changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let (account, usage) = usage(ctx, &args).await?;
    let since = args.opt_str("sinceState")?.ok_or_else(|| {
        MethodError::new(MethodErrorKind::InvalidArguments, "sinceState is required")
    })?;
    let Some((old_used, old_limit)) = parse_state(since) else {
        return Err(MethodError::new(
            MethodErrorKind::CannotCalculateChanges,
            "sinceState is not a Quota state of this server",
        ));
    };
    let (mut created, mut updated, mut destroyed) = (vec![], vec![], vec![]);
    match (old_limit, usage.limit) {
        (None, Some(_)) => created.push(STORAGE_ID),
        (Some(_), None) => destroyed.push(STORAGE_ID),
        (Some(a), Some(b)) if a != b || old_used != usage.used => updated.push(STORAGE_ID),
        _ => {}
    }
    Ok(json!({
        "accountId": ids::account_id(account),
        "oldState": since,
        "newState": state(&usage),
        "hasMoreChanges": false,
        "created": created,
        "updated": updated,
        "destroyed": destroyed,
        // RFC 9425 §4.3 (as Mailbox/changes): the changed properties, when only counts did.
        "updatedProperties": if updated.is_empty() || old_limit != usage.limit {
            Value::Null
        } else {
            json!(["used"])
        },
    }))
}

/// Quota/query (RFC 9425 §4.4): filter `name`, `scope`, `resourceType`, `type`; sort
/// `name` or `used`.
pub async fn query(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let (account, usage) = usage(ctx, &args).await?;
    let obj = object(&usage);
    let mut matches = obj.is_some();
    if let Some(filter) = args.opt_object("filter")? {
        for (k, v) in filter {
            let want = v.as_str().ok_or_else(|| {
                MethodError::new(
                    MethodErrorKind::InvalidArguments,
                    format!("filter {k} must be a string"),
                )
            })?;
            let ok = match k.as_str() {
                // RFC 9425 §4.4.1: `name` is a substring match.
                "name" => "Mail storage".to_lowercase().contains(&want.to_lowercase()),
                "scope" => want == "account",
                "resourceType" => want == "octets",
                "type" => want == "Mail",
                _ => {
                    return Err(MethodError::new(
                        MethodErrorKind::UnsupportedFilter,
                        format!("unknown Quota filter {k}"),
                    ));
                }
            };
            matches &= ok;
        }
    }
    if let Some(Value::Array(sort)) = args.get("sort") {
        for c in sort {
            let prop = c.get("property").and_then(Value::as_str).unwrap_or("");
            if prop != "name" && prop != "used" {
                return Err(MethodError::new(
                    MethodErrorKind::UnsupportedSort,
                    format!("Quota cannot be sorted by {prop:?}"),
                ));
            }
        }
    }
    let ids: Vec<&str> = if matches { vec![STORAGE_ID] } else { vec![] };
    let position = args.opt_int("position")?.unwrap_or(0);
    let ids: Vec<&str> = if position == 0 || position == -1 {
        ids
    } else {
        vec![]
    };
    let mut out = json!({
        "accountId": ids::account_id(account),
        "queryState": state(&usage),
        "canCalculateChanges": false,
        "position": 0,
        "ids": ids,
    });
    if args.bool_or("calculateTotal", false)? {
        out["total"] = json!(ids.len());
    }
    Ok(out)
}

/// Quota/queryChanges (RFC 8620 §5.6): not calculated.
pub async fn query_changes(_ctx: &mut Ctx<'_>, _args: Args) -> Result<Value, MethodError> {
    Err(MethodError::new(
        MethodErrorKind::CannotCalculateChanges,
        "Quota query changes are not kept: run Quota/query again (one object at most)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_carry_the_figures() {
        let u = Usage {
            used: 10,
            limit: Some(20),
        };
        assert_eq!(parse_state(&state(&u)), Some((10, Some(20))));
        let u = Usage {
            used: 10,
            limit: None,
        };
        assert_eq!(parse_state(&state(&u)), Some((10, None)));
        assert_eq!(parse_state("12"), None);
        assert_eq!(parse_state("uxl-"), None);
    }
}
