//! JMAP for Sieve Scripts (RFC 9661): SieveScript/get, /changes, /query, /set (with
//! `onSuccessActivateScript` / `onSuccessDeactivateScript`) and /validate, over the one
//! script store every writer uses (`bulwark_sieve::scripts`: names, sizes, counts and
//! "it compiles" checked there). A script's content is a blob of the account: clients
//! upload it and pass its `blobId`, and download it by the `blobId` /get reports.

use crate::api::args::{Args, filter_properties};
use crate::api::{Ctx, MethodError, MethodErrorKind, SetError, check_if_in_state, check_set_size};
use crate::ids;
use crate::mail::changes::ChangesArgs;
use bulwark_sieve::scripts::{self, ScriptError, ScriptInfo};
use bulwark_store::AccountId;
use bulwark_store::collections::names::SIEVE;
use serde_json::{Map, Value, json};

const PROPS: [&str; 4] = ["id", "name", "blobId", "isActive"];

async fn state(ctx: &Ctx<'_>, account: AccountId) -> Result<String, MethodError> {
    Ok(ids::state(
        ctx.server.store.collection_state(account, SIEVE).await?,
    ))
}

async fn object(
    ctx: &Ctx<'_>,
    account: AccountId,
    s: &ScriptInfo,
) -> Result<Map<String, Value>, MethodError> {
    let blob_id = match &s.blob {
        Some(hash) => Value::String(ctx.server.blob_ids().await?.encode(account, hash).0),
        None => Value::Null,
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(s.id));
    m.insert("name".into(), json!(s.name));
    m.insert("blobId".into(), blob_id);
    m.insert("isActive".into(), json!(s.active));
    Ok(m)
}

fn script_error(e: ScriptError) -> SetError {
    match e {
        ScriptError::NotFound(_) => SetError::not_found(),
        ScriptError::AlreadyExists(_) => SetError::new("alreadyExists", e.to_string()),
        ScriptError::Active(_) => SetError::new("sieveIsActive", e.to_string()),
        ScriptError::BadName(_) => SetError::invalid_properties(&["name"], e.to_string()),
        ScriptError::Invalid(_) => SetError::new("invalidSieve", e.to_string()),
        ScriptError::TooManyScripts => SetError::new("overQuota", e.to_string()),
        ScriptError::TooLarge => SetError::new("tooLarge", e.to_string()),
        ScriptError::Store(s) => s.into(),
    }
}

/// SieveScript/get (RFC 9661 §2.1).
pub async fn get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let props = args.properties(&PROPS, &PROPS)?;
    let all = scripts::list(ctx.server.store.as_ref(), account)
        .await
        .map_err(method_error)?;
    let st = state(ctx, account).await?;
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    match args.opt_str_list("ids")? {
        None => {
            for s in &all {
                list.push(filter_properties(object(ctx, account, s).await?, &props));
            }
        }
        Some(wanted) => {
            crate::api::check_get_size(ctx, Some(&wanted))?;
            for id in wanted {
                match all.iter().find(|s| s.id == id) {
                    Some(s) => list.push(filter_properties(object(ctx, account, s).await?, &props)),
                    None => not_found.push(id),
                }
            }
        }
    }
    Ok(
        json!({"accountId": ids::account_id(account), "state": st, "list": list, "notFound": not_found}),
    )
}

fn method_error(e: ScriptError) -> MethodError {
    match e {
        ScriptError::Store(s) => s.into(),
        other => MethodError::new(MethodErrorKind::ServerFail, other.to_string()),
    }
}

/// SieveScript/changes (RFC 9661 §2.2): a change of which script is active reports every
/// script as updated (their `isActive` may have changed).
pub async fn changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let a = ChangesArgs::parse(ctx, &args)?;
    let current = ctx.server.store.collection_state(a.account, SIEVE).await?;
    a.check_not_after(current)?;
    let c = ctx
        .server
        .store
        .collection_changes(a.account, SIEVE, a.since, a.max)
        .await?;
    let ids_of = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter_map(|i| scripts::script_of_item(i).map(str::to_string))
            .collect()
    };
    let created = ids_of(&c.created);
    let mut updated = ids_of(&c.updated);
    let destroyed = ids_of(&c.destroyed);
    let active_changed = c
        .created
        .iter()
        .chain(&c.updated)
        .chain(&c.destroyed)
        .any(|i| scripts::is_active_item(i));
    if active_changed {
        for s in scripts::list(ctx.server.store.as_ref(), a.account)
            .await
            .map_err(method_error)?
        {
            if !created.contains(&s.id) && !updated.contains(&s.id) {
                updated.push(s.id);
            }
        }
    }
    Ok(a.response(c.new_state, c.has_more, created, updated, destroyed))
}

/// SieveScript/query (RFC 9661 §2.3): filters `name` (substring, case-insensitive) and
/// `isActive`; sorts `name` and `isActive`.
pub async fn query(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let mut all = scripts::list(ctx.server.store.as_ref(), account)
        .await
        .map_err(method_error)?;
    if let Some(filter) = args.opt_object("filter")? {
        for (k, v) in filter {
            match (k.as_str(), v) {
                ("name", Value::String(n)) => {
                    let n = n.to_lowercase();
                    all.retain(|s| s.name.to_lowercase().contains(&n));
                }
                ("isActive", Value::Bool(b)) => all.retain(|s| s.active == *b),
                _ => {
                    return Err(MethodError::new(
                        MethodErrorKind::UnsupportedFilter,
                        format!("unsupported SieveScript filter {k}"),
                    ));
                }
            }
        }
    }
    if let Some(Value::Array(sort)) = args.get("sort") {
        for c in sort.iter().rev() {
            let asc = c
                .get("isAscending")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            match c.get("property").and_then(Value::as_str) {
                Some("name") => all.sort_by(|a, b| a.name.cmp(&b.name)),
                Some("isActive") => all.sort_by_key(|s| s.active),
                other => {
                    return Err(MethodError::new(
                        MethodErrorKind::UnsupportedSort,
                        format!("SieveScript cannot be sorted by {other:?}"),
                    ));
                }
            }
            if !asc {
                all.reverse();
            }
        }
    }
    let position = usize::try_from(args.opt_uint("position")?.unwrap_or(0)).unwrap_or(usize::MAX);
    let limit = args
        .opt_uint("limit")?
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let total = all.len();
    let ids: Vec<String> = all
        .into_iter()
        .skip(position)
        .take(limit.unwrap_or(usize::MAX))
        .map(|s| s.id)
        .collect();
    let mut out = json!({
        "accountId": ids::account_id(account),
        "queryState": state(ctx, account).await?,
        "canCalculateChanges": false,
        "position": position.min(total),
        "ids": ids,
    });
    if args.bool_or("calculateTotal", false)? {
        out["total"] = json!(total);
    }
    Ok(out)
}

/// The script source of an uploaded blob (`None`: no such blob of the account).
async fn source_of(ctx: &Ctx<'_>, account: AccountId, blob_id: &str) -> Result<String, SetError> {
    let raw = crate::blob::read_blob(ctx.server, account, blob_id)
        .await?
        .ok_or_else(|| SetError::invalid_properties(&["blobId"], format!("no blob {blob_id}")))?;
    String::from_utf8(raw).map_err(|_| {
        SetError::new(
            "invalidSieve",
            "a Sieve script is UTF-8 text (RFC 5228 §2.2)",
        )
    })
}

/// SieveScript/set (RFC 9661 §2.4).
pub async fn set(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    check_set_size(ctx, &args)?;
    let old_state = state(ctx, account).await?;
    check_if_in_state(&args, &old_state)?;
    let store = ctx.server.store.clone();
    let (mut created, mut not_created, mut updated, mut not_updated) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    let (mut destroyed, mut not_destroyed) = (Vec::new(), Map::new());
    let mut failed = false;
    if let Some(Value::Object(create)) = args.take("create") {
        for (cid, obj) in create {
            let r: Result<String, SetError> = async {
                let blob_id = obj.get("blobId").and_then(Value::as_str).ok_or_else(|| {
                    SetError::invalid_properties(&["blobId"], "blobId is required")
                })?;
                let source = source_of(ctx, account, blob_id).await?;
                let name = match obj.get("name") {
                    Some(Value::String(n)) => n.clone(),
                    None | Some(Value::Null) => format!("script-{}", bulwark_store::now_unix()),
                    Some(_) => {
                        return Err(SetError::invalid_properties(&["name"], "must be a string"));
                    }
                };
                if scripts::list(store.as_ref(), account)
                    .await
                    .map_err(script_error)?
                    .iter()
                    .any(|s| s.name == name)
                {
                    return Err(SetError::new(
                        "alreadyExists",
                        format!("a script named {name:?} exists"),
                    ));
                }
                scripts::put(store.as_ref(), account, &name, &source)
                    .await
                    .map_err(script_error)
            }
            .await;
            match r {
                Ok(id) => {
                    ctx.created_ids.insert(cid.clone(), id.clone());
                    created.insert(cid, json!({"id": id, "isActive": false}));
                }
                Err(e) => {
                    failed = true;
                    not_created.insert(cid, e.to_json());
                }
            }
        }
    }
    if let Some(Value::Object(update)) = args.take("update") {
        for (id, patch) in update {
            let r: Result<(), SetError> = async {
                let name = match patch.get("name") {
                    Some(Value::String(n)) => Some(n.clone()),
                    None => None,
                    Some(_) => {
                        return Err(SetError::invalid_properties(&["name"], "must be a string"));
                    }
                };
                let source = match patch.get("blobId").and_then(Value::as_str) {
                    Some(b) => Some(source_of(ctx, account, b).await?),
                    None => None,
                };
                if patch.get("isActive").is_some() {
                    return Err(SetError::invalid_properties(
                        &["isActive"],
                        "server-set: use onSuccessActivateScript",
                    ));
                }
                scripts::update(
                    store.as_ref(),
                    account,
                    &id,
                    name.as_deref(),
                    source.as_deref(),
                )
                .await
                .map_err(script_error)
            }
            .await;
            match r {
                Ok(()) => {
                    updated.insert(id, Value::Null);
                }
                Err(e) => {
                    failed = true;
                    not_updated.insert(id, e.to_json());
                }
            }
        }
    }
    for id in args.opt_str_list("destroy")?.unwrap_or_default() {
        match scripts::delete_id(store.as_ref(), account, &id).await {
            Ok(()) => destroyed.push(id),
            Err(e) => {
                failed = true;
                not_destroyed.insert(id, script_error(e).to_json());
            }
        }
    }
    // RFC 9661 §2.4: the activation happens only if every change above succeeded.
    if !failed {
        let activate = args
            .opt_str("onSuccessActivateScript")?
            .and_then(|id| ctx.resolve_id(id));
        let deactivate = args.bool_or("onSuccessDeactivateScript", false)?;
        let before = scripts::list(store.as_ref(), account)
            .await
            .map_err(method_error)?;
        let was = before.iter().find(|s| s.active).map(|s| s.id.clone());
        let target = match (&activate, deactivate) {
            (Some(id), _) if before.iter().any(|s| &s.id == id) => Some(Some(id.clone())),
            (_, true) => Some(None),
            _ => None,
        };
        if let Some(target) = target
            && target != was
        {
            scripts::set_active_id(store.as_ref(), account, target.as_deref())
                .await
                .map_err(method_error)?;
            if let Some(old) = was {
                report_active(&mut created, &mut updated, &ctx.created_ids, &old, false);
            }
            if let Some(new) = target {
                report_active(&mut created, &mut updated, &ctx.created_ids, &new, true);
            }
        }
    }
    Ok(json!({
        "accountId": ids::account_id(account),
        "oldState": old_state,
        "newState": state(ctx, account).await?,
        "created": created, "notCreated": not_created,
        "updated": updated, "notUpdated": not_updated,
        "destroyed": destroyed, "notDestroyed": not_destroyed,
    }))
}

/// RFC 9661 §2.4: an (de)activated script is reported in created/updated with `isActive`.
fn report_active(
    created: &mut Map<String, Value>,
    updated: &mut Map<String, Value>,
    created_ids: &std::collections::HashMap<String, String>,
    id: &str,
    active: bool,
) {
    if let Some((cid, _)) = created_ids.iter().find(|(_, v)| v.as_str() == id)
        && let Some(Value::Object(o)) = created.get_mut(cid)
    {
        o.insert("isActive".into(), json!(active));
        return;
    }
    updated.insert(id.to_string(), json!({"isActive": active}));
}

/// SieveScript/validate (RFC 9661 §2.5): `error` is null or the SetError the script would get.
pub async fn validate(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let blob_id = args
        .opt_str("blobId")?
        .ok_or_else(|| MethodError::invalid_arguments("blobId is required"))?;
    let error = match source_of(ctx, account, blob_id).await {
        Err(e) => e.to_json(),
        Ok(source) => match scripts::check(source.as_bytes()) {
            Ok(_) => Value::Null,
            Err(e) => script_error(e).to_json(),
        },
    };
    Ok(json!({"accountId": ids::account_id(account), "error": error}))
}

/// The account capability (RFC 9661 §1.3.1).
pub fn account_capability() -> Value {
    use bulwark_sieve::limits::*;
    json!({
        "implementation": "Bulwark (sieve-rs)",
        "maxSizeScriptName": MAX_NAME_CHARS,
        "maxSizeScript": MAX_SCRIPT_SIZE,
        "maxNumberScripts": MAX_SCRIPTS,
        "maxNumberRedirects": MAX_REDIRECTS,
        "sieveExtensions": bulwark_sieve::EXTENSIONS,
        "notificationMethods": null,
        "externalLists": null,
    })
}
