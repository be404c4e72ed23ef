//! Mailbox/get, /query, /queryChanges, /set (RFC 8621 §2). Store names are full `/` paths;
//! JMAP sees `name` (the segment below the nearest existing ancestor) and `parentId`.

use super::query;
use crate::api::args::{Args, filter_properties};
use crate::api::{
    Ctx, MethodError, MethodErrorKind, SetError, check_get_size, check_if_in_state, check_set_size,
    current_state,
};
use crate::ids;
use crate::session::MAX_SIZE_MAILBOX_NAME;
use bulwark_store::changelog::ChangeKind;
use bulwark_store::{AccountId, Mailbox, MailboxId, Role};
use serde_json::{Map, Value, json};
use std::collections::HashSet;

pub const SEPARATOR: char = '/';
const PROPERTIES: [&str; 11] = [
    "id",
    "name",
    "parentId",
    "role",
    "sortOrder",
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
    "myRights",
    "isSubscribed",
];

/// Nearest existing ancestor of `name` among `all` (by path).
fn parent_of<'a>(name: &str, all: &'a [Mailbox]) -> Option<&'a Mailbox> {
    let mut path = name;
    while let Some((up, _)) = path.rsplit_once(SEPARATOR) {
        if let Some(m) = all.iter().find(|m| m.name == up) {
            return Some(m);
        }
        path = up;
    }
    None
}

fn display_name(m: &Mailbox, all: &[Mailbox]) -> String {
    match parent_of(&m.name, all) {
        Some(p) => m.name[p.name.len() + 1..].to_string(),
        None => m.name.clone(),
    }
}

/// The mailbox's `sortOrder` (RFC 8621 §2): the user's, else its role's default.
fn sort_order(m: &Mailbox) -> u32 {
    m.sort_order.unwrap_or_else(|| role_sort_order(m.role))
}

fn role_sort_order(role: Option<Role>) -> u32 {
    match role {
        Some(Role::Inbox) => 1,
        Some(Role::Drafts) => 2,
        Some(Role::Sent) => 3,
        Some(Role::Archive) => 4,
        Some(Role::Junk) => 5,
        Some(Role::Trash) => 6,
        None => 10,
    }
}

async fn to_json(
    ctx: &Ctx<'_>,
    m: &Mailbox,
    all: &[Mailbox],
) -> Result<Map<String, Value>, MethodError> {
    let status = ctx.server.store.mailbox_status(ctx.account, m.id).await?;
    let v = json!({
        "id": ids::mailbox_id(m.id),
        "name": display_name(m, all),
        "parentId": parent_of(&m.name, all).map(|p| ids::mailbox_id(p.id)),
        "role": m.role.map(|r| r.as_jmap()),
        "sortOrder": sort_order(m),
        "totalEmails": status.messages,
        "unreadEmails": status.unseen,
        "totalThreads": status.threads,
        "unreadThreads": status.unseen_threads,
        // RFC 8621 §2: a personal account owns every right.
        "myRights": {
            "mayReadItems": true, "mayAddItems": true, "mayRemoveItems": true, "maySetSeen": true,
            "maySetKeywords": true, "mayCreateChild": true, "mayRename": true,
            "mayDelete": m.role != Some(Role::Inbox), "maySubmit": true,
        },
        "isSubscribed": m.subscribed,
    });
    Ok(match v {
        Value::Object(o) => o,
        _ => Map::new(),
    })
}

pub async fn get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let wanted = args.opt_str_list("ids")?;
    check_get_size(ctx, wanted.as_ref())?;
    let props = args.properties(&PROPERTIES, &PROPERTIES)?;
    let state = current_state(ctx, ChangeKind::Mailbox).await?;
    let all = ctx.server.store.mailbox_list(account).await?;
    let mut list = Vec::new();
    let mut not_found = Vec::new();
    match wanted {
        None => {
            for m in &all {
                list.push(filter_properties(to_json(ctx, m, &all).await?, &props));
            }
        }
        Some(wanted) => {
            for id in wanted {
                let resolved = ctx.resolve_id(&id).unwrap_or_default();
                match ids::parse_mailbox(&resolved).and_then(|mid| all.iter().find(|m| m.id == mid))
                {
                    Some(m) => list.push(filter_properties(to_json(ctx, m, &all).await?, &props)),
                    None => not_found.push(id),
                }
            }
        }
    }
    Ok(crate::api::get_response(account, state, list, not_found))
}

fn matches_filter(
    f: &Map<String, Value>,
    m: &Mailbox,
    all: &[Mailbox],
) -> Result<bool, MethodError> {
    if let Some(op) = f.get("operator") {
        let conds = f
            .get("conditions")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                MethodError::new(
                    MethodErrorKind::UnsupportedFilter,
                    "operator needs a conditions array",
                )
            })?;
        let mut results = Vec::with_capacity(conds.len());
        for c in conds {
            let c = c.as_object().ok_or_else(|| {
                MethodError::new(
                    MethodErrorKind::UnsupportedFilter,
                    "condition must be an object",
                )
            })?;
            results.push(matches_filter(c, m, all)?);
        }
        return match op.as_str() {
            Some("AND") => Ok(results.iter().all(|b| *b)),
            Some("OR") => Ok(results.iter().any(|b| *b)),
            Some("NOT") => Ok(!results.iter().any(|b| *b)),
            _ => Err(MethodError::new(
                MethodErrorKind::UnsupportedFilter,
                "unknown operator",
            )),
        };
    }
    for (k, v) in f {
        let ok = match k.as_str() {
            "parentId" => {
                let parent = parent_of(&m.name, all).map(|p| ids::mailbox_id(p.id));
                match v {
                    Value::Null => parent.is_none(),
                    Value::String(s) => parent.as_deref() == Some(s.as_str()),
                    _ => {
                        return Err(MethodError::invalid_arguments(
                            "parentId filter must be a string or null",
                        ));
                    }
                }
            }
            "name" => match v.as_str() {
                Some(s) => display_name(m, all)
                    .to_lowercase()
                    .contains(&s.to_lowercase()),
                None => {
                    return Err(MethodError::invalid_arguments(
                        "name filter must be a string",
                    ));
                }
            },
            "role" => match v {
                Value::Null => m.role.is_none(),
                Value::String(s) => m.role.map(|r| r.as_jmap()) == Some(s.as_str()),
                _ => {
                    return Err(MethodError::invalid_arguments(
                        "role filter must be a string or null",
                    ));
                }
            },
            "hasAnyRole" => match v.as_bool() {
                Some(b) => m.role.is_some() == b,
                None => {
                    return Err(MethodError::invalid_arguments(
                        "hasAnyRole must be a boolean",
                    ));
                }
            },
            "isSubscribed" => match v.as_bool() {
                Some(b) => m.subscribed == b,
                None => {
                    return Err(MethodError::invalid_arguments(
                        "isSubscribed must be a boolean",
                    ));
                }
            },
            other => {
                return Err(MethodError::new(
                    MethodErrorKind::UnsupportedFilter,
                    format!("unknown filter {other}"),
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The sorted, filtered mailbox ids for a Mailbox/query.
fn query_ids(args: &Args, all: &[Mailbox]) -> Result<Vec<String>, MethodError> {
    let filter = args.opt_object("filter")?.cloned().unwrap_or_default();
    let mut out: Vec<&Mailbox> = Vec::new();
    for m in all {
        if matches_filter(&filter, m, all)? {
            out.push(m);
        }
    }
    let sort = match args.get("sort") {
        None => vec![],
        Some(Value::Array(s)) => s.clone(),
        Some(_) => return Err(MethodError::invalid_arguments("sort must be an array")),
    };
    let mut keys = Vec::new();
    for c in &sort {
        let prop = c
            .get("property")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !matches!(prop, "name" | "sortOrder") {
            return Err(MethodError::new(
                MethodErrorKind::UnsupportedSort,
                format!("cannot sort by {prop:?}"),
            ));
        }
        keys.push((
            prop == "name",
            c.get("isAscending")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        ));
    }
    out.sort_by(|a, b| {
        for (by_name, asc) in &keys {
            let o = if *by_name {
                display_name(a, all)
                    .to_lowercase()
                    .cmp(&display_name(b, all).to_lowercase())
            } else {
                sort_order(a).cmp(&sort_order(b))
            };
            let o = if *asc { o } else { o.reverse() };
            if o.is_ne() {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    Ok(out.into_iter().map(|m| ids::mailbox_id(m.id)).collect())
}

pub async fn query(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let state = current_state(ctx, ChangeKind::Mailbox).await?;
    let all = ctx.server.store.mailbox_list(account).await?;
    let ids_all = query_ids(&args, &all)?;
    let w = query::window(&ids_all, &args)?;
    let mut out = json!({
        "accountId": ids::account_id(account), "queryState": state, "canCalculateChanges": true,
        "position": w.position, "ids": w.ids,
    });
    if args.bool_or("calculateTotal", false)? {
        out["total"] = json!(ids_all.len());
    }
    if let Some(l) = w.limit_clamped {
        out["limit"] = json!(l);
    }
    Ok(out)
}

pub async fn query_changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let since = args
        .opt_str("sinceQueryState")?
        .ok_or_else(|| MethodError::invalid_arguments("sinceQueryState is required"))?;
    let since_m = ids::parse_state(since).ok_or_else(|| {
        MethodError::new(
            MethodErrorKind::CannotCalculateChanges,
            "unknown query state",
        )
    })?;
    let state = current_state(ctx, ChangeKind::Mailbox).await?;
    let all = ctx.server.store.mailbox_list(account).await?;
    let current = query_ids(&args, &all)?;
    let set = ctx
        .server
        .store
        .changes_since(account, since_m, usize::MAX)
        .await?;
    let f = |v: &Vec<bulwark_store::MailboxId>| -> HashSet<String> {
        v.iter().map(|m| ids::mailbox_id(*m)).collect()
    };
    let mut touched = f(&set.mailboxes.updated);
    touched.extend(f(&set.mailboxes.destroyed));
    let delta = query::QueryDelta {
        current: &current,
        created: f(&set.mailboxes.created),
        touched,
        up_to: None,
    };
    query::query_changes_response(
        &ids::account_id(account),
        since,
        &state,
        &delta,
        args.opt_uint("maxChanges")?,
        args.bool_or("calculateTotal", false)?,
    )
}

fn parse_role(v: &Value) -> Result<Option<Role>, SetError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Role::from_jmap(s).map(Some).ok_or_else(|| {
            SetError::invalid_properties(&["role"], format!("unsupported role {s}"))
        }),
        _ => Err(SetError::invalid_properties(
            &["role"],
            "role must be a string or null",
        )),
    }
}

fn check_name(name: &str) -> Result<(), SetError> {
    if name.is_empty()
        || name.len() > MAX_SIZE_MAILBOX_NAME
        || name.contains(SEPARATOR)
        || name.chars().any(char::is_control)
    {
        return Err(SetError::invalid_properties(
            &["name"],
            "name must be 1-255 characters without '/' or control characters",
        ));
    }
    Ok(())
}

/// Full store path for `name` below the mailbox `parent` (a JMAP id, maybe `#creationId`).
fn full_path(
    ctx: &Ctx<'_>,
    parent: Option<&Value>,
    name: &str,
    all: &[Mailbox],
) -> Result<String, SetError> {
    match parent {
        None | Some(Value::Null) => Ok(name.to_string()),
        Some(Value::String(p)) => {
            let pid = ctx.resolve_id(p).and_then(|r| ids::parse_mailbox(&r));
            let parent = pid
                .and_then(|pid| all.iter().find(|m| m.id == pid))
                .ok_or_else(|| {
                    SetError::invalid_properties(&["parentId"], "no such parent mailbox")
                })?;
            Ok(format!("{}{SEPARATOR}{name}", parent.name))
        }
        Some(_) => Err(SetError::invalid_properties(
            &["parentId"],
            "parentId must be a string or null",
        )),
    }
}

async fn create_one(
    ctx: &mut Ctx<'_>,
    account: AccountId,
    obj: &Map<String, Value>,
) -> Result<Value, SetError> {
    let all = ctx.server.store.mailbox_list(account).await?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| SetError::invalid_properties(&["name"], "name is required"))?;
    check_name(name)?;
    let role = match obj.get("role") {
        Some(v) => parse_role(v)?,
        None => None,
    };
    if let Some(r) = role
        && all.iter().any(|m| m.role == Some(r))
    {
        return Err(SetError::invalid_properties(
            &["role"],
            "another mailbox has this role",
        ));
    }
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "name" | "parentId" | "role" | "isSubscribed" | "sortOrder"
        ) {
            return Err(SetError::invalid_properties(
                &[key.as_str()],
                "property cannot be set",
            ));
        }
    }
    let path = full_path(ctx, obj.get("parentId"), name, &all)?;
    if all.iter().any(|m| m.name.eq_ignore_ascii_case(&path)) {
        return Err(SetError::new(
            "alreadyExists",
            "a mailbox with this name exists",
        ));
    }
    let created = ctx
        .server
        .store
        .mailbox_create(account, &path, role)
        .await?;
    if let Some(sub) = obj.get("isSubscribed").and_then(Value::as_bool) {
        ctx.server
            .store
            .mailbox_set_subscribed(account, created.id, sub)
            .await?;
    }
    let mut order = role_sort_order(role);
    if let Some(v) = obj.get("sortOrder") {
        order = parse_sort_order(v)?;
        ctx.server
            .store
            .mailbox_set_sort_order(account, created.id, Some(order))
            .await?;
    }
    let status = ctx.server.store.mailbox_status(account, created.id).await?;
    Ok(json!({
        "id": ids::mailbox_id(created.id), "sortOrder": order, "totalEmails": status.messages,
        "unreadEmails": status.unseen, "totalThreads": status.threads, "unreadThreads": status.unseen_threads,
        "myRights": { "mayReadItems": true, "mayAddItems": true, "mayRemoveItems": true, "maySetSeen": true,
            "maySetKeywords": true, "mayCreateChild": true, "mayRename": true, "mayDelete": true, "maySubmit": true },
    }))
}

async fn update_one(
    ctx: &mut Ctx<'_>,
    account: AccountId,
    id: MailboxId,
    patch: &Map<String, Value>,
) -> Result<(), SetError> {
    let all = ctx.server.store.mailbox_list(account).await?;
    let mailbox = all
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(SetError::not_found)?
        .clone();
    let mut new_name = None;
    if patch.contains_key("name") || patch.contains_key("parentId") {
        let name = match patch.get("name") {
            Some(Value::String(n)) => n.clone(),
            Some(_) => {
                return Err(SetError::invalid_properties(
                    &["name"],
                    "name must be a string",
                ));
            }
            None => display_name(&mailbox, &all),
        };
        check_name(&name)?;
        let parent = match patch.get("parentId") {
            Some(p) => Some(p.clone()),
            None => parent_of(&mailbox.name, &all).map(|p| json!(ids::mailbox_id(p.id))),
        };
        let path = full_path(ctx, parent.as_ref(), &name, &all)?;
        // RFC 8621 §2.5: a mailbox cannot become its own descendant.
        if path.starts_with(&format!("{}{SEPARATOR}", mailbox.name)) {
            return Err(SetError::invalid_properties(
                &["parentId"],
                "a mailbox cannot move below itself",
            ));
        }
        if path != mailbox.name {
            if mailbox.role == Some(Role::Inbox) {
                return Err(SetError::new("forbidden", "the inbox cannot be renamed"));
            }
            if all
                .iter()
                .any(|m| m.id != id && m.name.eq_ignore_ascii_case(&path))
            {
                return Err(SetError::new(
                    "alreadyExists",
                    "a mailbox with this name exists",
                ));
            }
            new_name = Some(path);
        }
    }
    for (key, value) in patch {
        match key.as_str() {
            "name" | "parentId" => {}
            "role" => {
                let role = parse_role(value)?;
                if role != mailbox.role {
                    if role.is_some() && all.iter().any(|m| m.id != id && m.role == role) {
                        return Err(SetError::invalid_properties(
                            &["role"],
                            "another mailbox has this role",
                        ));
                    }
                    if mailbox.role == Some(Role::Inbox) {
                        return Err(SetError::new("forbidden", "the inbox keeps its role"));
                    }
                }
            }
            "isSubscribed" if value.is_boolean() => {}
            "sortOrder" => {
                parse_sort_order(value)?;
            }
            other => {
                return Err(SetError::invalid_properties(
                    &[other],
                    "property cannot be set or has the wrong type",
                ));
            }
        }
    }
    if let Some(path) = new_name {
        ctx.server.store.mailbox_rename(account, id, &path).await?;
    }
    if let Some(v) = patch.get("role") {
        let role = parse_role(v)?;
        if role != mailbox.role {
            ctx.server.store.mailbox_set_role(account, id, role).await?;
        }
    }
    if let Some(v) = patch.get("sortOrder") {
        let order = parse_sort_order(v)?;
        ctx.server
            .store
            .mailbox_set_sort_order(account, id, Some(order))
            .await?;
    }
    if let Some(sub) = patch.get("isSubscribed").and_then(Value::as_bool)
        && sub != mailbox.subscribed
    {
        ctx.server
            .store
            .mailbox_set_subscribed(account, id, sub)
            .await?;
    }
    Ok(())
}

/// `sortOrder` is an `UnsignedInt` (RFC 8621 §2; here at most 2^32 − 1).
fn parse_sort_order(v: &Value) -> Result<u32, SetError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            SetError::invalid_properties(&["sortOrder"], "sortOrder must be an unsigned integer")
        })
}

async fn destroy_one(
    ctx: &mut Ctx<'_>,
    account: AccountId,
    id: MailboxId,
    remove_emails: bool,
) -> Result<(), SetError> {
    let all = ctx.server.store.mailbox_list(account).await?;
    let mailbox = all
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(SetError::not_found)?;
    if mailbox.role == Some(Role::Inbox) {
        return Err(SetError::new("forbidden", "the inbox cannot be destroyed"));
    }
    // RFC 8621 §2.5: mailboxHasChild / mailboxHasEmail.
    if all
        .iter()
        .any(|m| parent_of(&m.name, &all).map(|p| p.id) == Some(id))
    {
        return Err(SetError::new(
            "mailboxHasChild",
            "the mailbox has child mailboxes",
        ));
    }
    if !remove_emails && ctx.server.store.mailbox_status(account, id).await?.messages > 0 {
        return Err(SetError::new("mailboxHasEmail", "the mailbox is not empty"));
    }
    ctx.server.store.mailbox_delete(account, id).await?;
    Ok(())
}

pub async fn set(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    check_set_size(ctx, &args)?;
    let old_state = current_state(ctx, ChangeKind::Mailbox).await?;
    check_if_in_state(&args, &old_state)?;
    let remove_emails = args.bool_or("onDestroyRemoveEmails", false)?;
    let mut created = Map::new();
    let mut not_created = Map::new();
    let mut updated = Map::new();
    let mut not_updated = Map::new();
    let mut destroyed = Vec::new();
    let mut not_destroyed = Map::new();
    match args.take("create") {
        None => {}
        Some(Value::Object(create)) => {
            // A child may name its parent by creation id (`#p`): create parents first,
            // whatever order the map has.
            let mut pending: Vec<(String, Value)> = create.into_iter().collect();
            loop {
                let waiting = |obj: &Value, pending: &[(String, Value)]| {
                    obj.get("parentId")
                        .and_then(Value::as_str)
                        .and_then(|p| p.strip_prefix('#'))
                        .is_some_and(|p| pending.iter().any(|(c, _)| c == p))
                };
                let Some(pos) = pending.iter().position(|(_, o)| !waiting(o, &pending)) else {
                    break;
                };
                let (cid, obj) = pending.remove(pos);
                let result = match &obj {
                    Value::Object(o) => create_one(ctx, account, o).await,
                    _ => Err(SetError::invalid_properties(
                        &[],
                        "create value must be an object",
                    )),
                };
                match result {
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
            for (cid, _) in pending {
                not_created.insert(
                    cid,
                    SetError::invalid_properties(&["parentId"], "parent creation cycle").to_json(),
                );
            }
        }
        Some(_) => return Err(MethodError::invalid_arguments("create must be an object")),
    }
    match args.take("update") {
        None => {}
        Some(Value::Object(update)) => {
            for (id, patch) in update {
                let mid = ctx.resolve_id(&id).and_then(|r| ids::parse_mailbox(&r));
                let result = match (mid, &patch) {
                    (Some(mid), Value::Object(p)) => update_one(ctx, account, mid, p).await,
                    (None, _) => Err(SetError::not_found()),
                    (_, _) => Err(SetError::invalid_properties(&[], "patch must be an object")),
                };
                match result {
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
        let result = match ctx.resolve_id(&id).and_then(|r| ids::parse_mailbox(&r)) {
            Some(mid) => destroy_one(ctx, account, mid, remove_emails).await,
            None => Err(SetError::not_found()),
        };
        match result {
            Ok(()) => destroyed.push(id),
            Err(e) => {
                not_destroyed.insert(id, e.to_json());
            }
        }
    }
    let new_state = current_state(ctx, ChangeKind::Mailbox).await?;
    Ok(json!({
        "accountId": ids::account_id(account), "oldState": old_state, "newState": new_state,
        "created": created, "updated": updated, "destroyed": destroyed,
        "notCreated": not_created, "notUpdated": not_updated, "notDestroyed": not_destroyed,
    }))
}
