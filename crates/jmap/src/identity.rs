//! Identity (RFC 8621 §6): one identity per account address (not deletable), plus extra
//! identities. Identities that differ from the defaults (name, signatures, replyTo/bcc) and
//! the extra ones are items of the account's [`names::IDENTITIES`] collection (id = identity
//! id, value = JSON of [`IdentityData`]), so every node sharing the store sees them and
//! `Identity/changes` is answered from the collection's change log.

use crate::api::args::{Args, filter_properties};
use crate::api::{Ctx, MethodError, MethodErrorKind, SetError, check_if_in_state, check_set_size};
use crate::ids;
use crate::legacy::{MigrateError, Migrated, migrate_file};
use crate::mail::changes::ChangesArgs;
use bulwark_store::collections::names;
use bulwark_store::{AccountId, Expect, ItemWrite, ModSeq, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::path::Path;

/// The file older versions kept identities in (migrated once by [`migrate_legacy_file`]).
pub const IDENTITY_FILE: &str = "jmap-identities.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IdentityData {
    pub name: Option<String>,
    /// Only for extra (created) identities.
    pub email: Option<String>,
    pub reply_to: Value,
    pub bcc: Value,
    pub text_signature: String,
    pub html_signature: String,
}

/// The shape of [`IDENTITY_FILE`].
#[derive(Default, Deserialize)]
struct LegacyIdentityFile {
    /// account id → identity id → data.
    #[serde(default)]
    accounts: HashMap<i64, HashMap<String, IdentityData>>,
}

/// Moves `dir/jmap-identities.json` into the store (once; see [`crate::legacy`]).
pub async fn migrate_legacy_file(
    store: &dyn Store,
    dir: &Path,
) -> Result<Option<Migrated>, MigrateError> {
    migrate_file(store, dir, IDENTITY_FILE, |file: LegacyIdentityFile| {
        let mut writes = Vec::new();
        for (account, identities) in file.accounts {
            for (id, data) in identities {
                match serde_json::to_string(&data) {
                    Ok(value) => writes.push((
                        AccountId(account),
                        ItemWrite::put(names::IDENTITIES, &id, Expect::Absent, value),
                    )),
                    Err(e) => tracing::warn!(error = %e, "legacy identity skipped"),
                }
            }
        }
        writes
    })
    .await
}

pub fn identity_id_for(address: &str) -> String {
    format!(
        "I{}",
        hex::encode(&sha2::Sha256::digest(address.as_bytes())[..6])
    )
}

pub(crate) struct Identity {
    pub id: String,
    pub email: String,
    pub data: IdentityData,
    pub may_delete: bool,
    /// Version of the stored item; `None`: a default identity never changed.
    pub version: Option<ModSeq>,
}

/// The stored items of the account's identity collection, by id (items that do not parse
/// are left out, with a warning).
async fn stored_identities(
    store: &dyn Store,
    account: AccountId,
) -> Result<HashMap<String, (ModSeq, IdentityData)>, MethodError> {
    let items = store
        .collection_get(account, names::IDENTITIES, None)
        .await?;
    let mut out = HashMap::with_capacity(items.len());
    for item in items {
        match serde_json::from_str::<IdentityData>(&item.value) {
            Ok(data) => {
                out.insert(item.id, (item.version, data));
            }
            Err(e) => {
                tracing::warn!(account = account.0, id = %item.id, error = %e, "stored identity does not parse")
            }
        }
    }
    Ok(out)
}

pub(crate) async fn identities(
    ctx: &Ctx<'_>,
    account: AccountId,
) -> Result<Vec<Identity>, MethodError> {
    let store = ctx.server.store.as_ref();
    let addresses = store.account_addresses(account).await?;
    let display = store
        .account_get(account)
        .await?
        .map(|a| a.display_name)
        .unwrap_or_default();
    let mut stored = stored_identities(store, account).await?;
    let mut out: Vec<Identity> = addresses
        .iter()
        .map(|a| {
            let id = identity_id_for(a);
            let (version, data) = match stored.remove(&id) {
                Some((v, d)) => (Some(v), d),
                None => (None, IdentityData::default()),
            };
            let data = IdentityData {
                name: data.name.clone().or(Some(display.clone())),
                ..data
            };
            Identity {
                id,
                email: a.clone(),
                data,
                may_delete: false,
                version,
            }
        })
        .collect();
    let mut extra: Vec<(String, (ModSeq, IdentityData))> = stored.into_iter().collect();
    // Stable order: oldest first.
    extra.sort_by(|a, b| (a.1.0, &a.0).cmp(&(b.1.0, &b.0)));
    for (id, (version, data)) in extra {
        if let Some(email) = data.email.clone()
            && addresses.iter().any(|a| a.eq_ignore_ascii_case(&email))
        {
            out.push(Identity {
                id,
                email,
                data,
                may_delete: true,
                version: Some(version),
            });
        }
    }
    Ok(out)
}

/// The state string of Identity: the modseq of the collection's last write.
async fn identity_state(ctx: &Ctx<'_>, account: AccountId) -> Result<ModSeq, MethodError> {
    Ok(ctx
        .server
        .store
        .collection_state(account, names::IDENTITIES)
        .await?)
}

fn identity_json(i: &Identity) -> Map<String, Value> {
    let v = json!({
        "id": i.id, "name": i.data.name.clone().unwrap_or_default(), "email": i.email,
        "replyTo": i.data.reply_to, "bcc": i.data.bcc, "textSignature": i.data.text_signature,
        "htmlSignature": i.data.html_signature, "mayDelete": i.may_delete,
    });
    v.as_object().cloned().unwrap_or_default()
}

const IDENTITY_PROPS: [&str; 8] = [
    "id",
    "name",
    "email",
    "replyTo",
    "bcc",
    "textSignature",
    "htmlSignature",
    "mayDelete",
];

pub async fn identity_get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let wanted = args.opt_str_list("ids")?;
    crate::api::check_get_size(ctx, wanted.as_ref())?;
    let props = args.properties(&IDENTITY_PROPS, &IDENTITY_PROPS)?;
    // The state first: an identity written after it is then reported again by /changes
    // rather than missed.
    let state = identity_state(ctx, account).await?;
    let all = identities(ctx, account).await?;
    let mut list = Vec::new();
    let mut not_found = Vec::new();
    match wanted {
        None => list.extend(
            all.iter()
                .map(|i| filter_properties(identity_json(i), &props)),
        ),
        Some(w) => {
            for id in w {
                match all.iter().find(|i| i.id == id) {
                    Some(i) => list.push(filter_properties(identity_json(i), &props)),
                    None => not_found.push(id),
                }
            }
        }
    }
    Ok(
        json!({ "accountId": ids::account_id(account), "state": ids::state(state), "list": list, "notFound": not_found }),
    )
}

/// RFC 8620 §5.2 from the identity collection's change log.
pub async fn identity_changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let a = ChangesArgs::parse(ctx, &args)?;
    a.check_not_after(identity_state(ctx, a.account).await?)?;
    let c = ctx
        .server
        .store
        .collection_changes(a.account, names::IDENTITIES, a.since, a.max)
        .await?;
    // The identity of an account address exists before it is first stored: its first
    // write is an update for the client, not a create.
    let addresses = ctx.server.store.account_addresses(a.account).await?;
    let is_default = |id: &String| addresses.iter().any(|x| identity_id_for(x) == *id);
    let (defaults, created): (Vec<String>, Vec<String>) =
        c.created.into_iter().partition(|id| is_default(id));
    let mut updated = c.updated;
    updated.extend(defaults);
    Ok(a.response(c.new_state, c.has_more, created, updated, c.destroyed))
}

fn apply_identity_patch(
    data: &mut IdentityData,
    patch: &Map<String, Value>,
) -> Result<(), SetError> {
    for (k, v) in patch {
        match (k.as_str(), v) {
            ("name", Value::String(s)) => data.name = Some(s.clone()),
            ("textSignature", Value::String(s)) => data.text_signature = s.clone(),
            ("htmlSignature", Value::String(s)) => data.html_signature = s.clone(),
            ("replyTo", v @ (Value::Null | Value::Array(_))) => data.reply_to = v.clone(),
            ("bcc", v @ (Value::Null | Value::Array(_))) => data.bcc = v.clone(),
            ("email" | "id" | "mayDelete", _) => {}
            _ => {
                return Err(SetError::invalid_properties(
                    &[k.as_str()],
                    "cannot be set to this value",
                ));
            }
        }
    }
    Ok(())
}

/// What a stored write expects: the version it was read at, or no item yet.
fn expect_of(version: Option<ModSeq>) -> Expect {
    version.map_or(Expect::Absent, Expect::Version)
}

fn identity_put(id: &str, expect: Expect, data: &IdentityData) -> Result<ItemWrite, MethodError> {
    let value = serde_json::to_string(data).map_err(|e| {
        tracing::error!(error = %e, "identity does not serialise");
        MethodError::new(MethodErrorKind::ServerFail, "cannot store the identity")
    })?;
    Ok(ItemWrite::put(names::IDENTITIES, id, expect, value))
}

/// RFC 8620 §5.3. All writes of one call go to the store in one compare-and-set batch
/// (each against the version it was read at), so a concurrent change by another client or
/// node fails the whole call with `stateMismatch` instead of being overwritten.
pub async fn identity_set(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    check_set_size(ctx, &args)?;
    // The items first, then the state: a write between the two changes the state, so
    // ifInState then refuses; a write after both is caught by the item's version.
    let existing = identities(ctx, account).await?;
    let old_state = ids::state(identity_state(ctx, account).await?);
    check_if_in_state(&args, &old_state)?;
    let addresses = ctx.server.store.account_addresses(account).await?;
    let (mut created, mut not_created, mut updated, mut not_updated) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    let (mut destroyed, mut not_destroyed) = (Vec::new(), Map::new());
    let mut writes: Vec<ItemWrite> = Vec::new();
    let mut created_ids: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(create)) = args.take("create") {
        for (cid, obj) in create {
            let email = obj
                .get("email")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            if !addresses.contains(&email) {
                not_created.insert(
                    cid,
                    SetError::new("forbiddenFrom", "not one of your addresses").to_json(),
                );
                continue;
            }
            let mut data = IdentityData {
                email: Some(email),
                ..Default::default()
            };
            if let Err(e) = apply_identity_patch(&mut data, obj.as_object().unwrap_or(&Map::new()))
            {
                not_created.insert(cid, e.to_json());
                continue;
            }
            let rnd: u64 = rand::random();
            let id = format!("I{rnd:016x}");
            writes.push(identity_put(&id, Expect::Absent, &data)?);
            created_ids.push((cid, id));
        }
    }
    let destroy = args.opt_str_list("destroy")?.unwrap_or_default();
    if let Some(Value::Object(update)) = args.take("update") {
        for (id, patch) in update {
            let Some(current) = existing.iter().find(|i| i.id == id) else {
                not_updated.insert(id, SetError::not_found().to_json());
                continue;
            };
            if destroy.contains(&id) {
                // RFC 8620 §5.3: willDestroy.
                not_updated.insert(
                    id,
                    SetError::new("willDestroy", "the identity is destroyed in this call")
                        .to_json(),
                );
                continue;
            }
            let mut data = current.data.clone();
            match apply_identity_patch(&mut data, patch.as_object().unwrap_or(&Map::new())) {
                Ok(()) => {
                    writes.push(identity_put(&id, expect_of(current.version), &data)?);
                    updated.insert(id, Value::Null);
                }
                Err(e) => {
                    not_updated.insert(id, e.to_json());
                }
            }
        }
    }
    for id in destroy {
        match existing.iter().find(|i| i.id == id) {
            Some(i) if i.may_delete && !destroyed.contains(&id) => {
                writes.push(ItemWrite::delete(
                    names::IDENTITIES,
                    &id,
                    expect_of(i.version),
                ));
                destroyed.push(id);
            }
            Some(i) if i.may_delete => {}
            Some(_) => {
                not_destroyed.insert(
                    id,
                    SetError::new(
                        "forbidden",
                        "identities of account addresses cannot be destroyed",
                    )
                    .to_json(),
                );
            }
            None => {
                not_destroyed.insert(id, SetError::not_found().to_json());
            }
        }
    }
    let new_state = if writes.is_empty() {
        old_state.clone()
    } else {
        match ctx.server.store.collection_write(account, writes).await {
            Ok(modseq) => ids::state(modseq),
            Err(StoreError::Conflict(_)) => {
                return Err(MethodError::new(
                    MethodErrorKind::StateMismatch,
                    "an identity was changed concurrently; fetch and try again",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    };
    for (cid, id) in created_ids {
        ctx.created_ids.insert(cid.clone(), id.clone());
        created.insert(cid, json!({ "id": id, "mayDelete": true }));
    }
    Ok(json!({
        "accountId": ids::account_id(account), "oldState": old_state, "newState": new_state,
        "created": created, "updated": updated, "destroyed": destroyed,
        "notCreated": not_created, "notUpdated": not_updated, "notDestroyed": not_destroyed,
    }))
}
