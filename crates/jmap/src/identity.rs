//! Identity (RFC 8621 §6): one identity per account address (not deletable), plus extra
//! identities; names, signatures, replyTo/bcc are kept in `data_dir/jmap-identities.json`.

use crate::api::args::{Args, filter_properties};
use crate::api::{Ctx, MethodError, MethodErrorKind, SetError, check_if_in_state, check_set_size};
use crate::ids;
use bulwark_store::AccountId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

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

#[derive(Default, Serialize, Deserialize)]
struct IdentityFile {
    /// account id → identity id → data.
    accounts: HashMap<i64, HashMap<String, IdentityData>>,
    /// account id → state counter.
    states: HashMap<i64, u64>,
}

pub struct IdentityStore {
    path: Option<PathBuf>,
    data: Mutex<IdentityFile>,
}

impl IdentityStore {
    pub fn new(dir: Option<PathBuf>) -> IdentityStore {
        let path = dir.map(|d| d.join(IDENTITY_FILE));
        let data = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        IdentityStore {
            path,
            data: Mutex::new(data),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut IdentityFile) -> R) -> R {
        let mut d = self.data.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut d)
    }

    fn save(&self) -> Result<(), MethodError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = self
            .with(|d| serde_json::to_vec(d))
            .map_err(|e| MethodError::new(MethodErrorKind::ServerFail, e.to_string()))?;
        write_atomic(path, &bytes).map_err(|e| {
            MethodError::new(
                MethodErrorKind::ServerFail,
                format!("cannot save identities: {e}"),
            )
        })
    }
}

/// Writes a small state file durably (temp file, fsync, rename).
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
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
}

pub(crate) async fn identities(
    ctx: &Ctx<'_>,
    account: AccountId,
) -> Result<Vec<Identity>, MethodError> {
    let addresses = ctx.server.store.account_addresses(account).await?;
    let display = ctx
        .server
        .store
        .account_get(account)
        .await?
        .map(|a| a.display_name)
        .unwrap_or_default();
    let stored = ctx
        .server
        .identities
        .with(|d| d.accounts.get(&account.0).cloned().unwrap_or_default());
    let mut out: Vec<Identity> = addresses
        .iter()
        .map(|a| {
            let id = identity_id_for(a);
            let data = stored.get(&id).cloned().unwrap_or_default();
            let data = IdentityData {
                name: data.name.clone().or(Some(display.clone())),
                ..data
            };
            Identity {
                id,
                email: a.clone(),
                data,
                may_delete: false,
            }
        })
        .collect();
    for (id, data) in stored {
        if let Some(email) = data.email.clone()
            && addresses.iter().any(|a| a.eq_ignore_ascii_case(&email))
        {
            out.push(Identity {
                id,
                email,
                data,
                may_delete: true,
            });
        }
    }
    Ok(out)
}

fn identity_state(ctx: &Ctx<'_>, account: AccountId) -> String {
    ctx.server
        .identities
        .with(|d| d.states.get(&account.0).copied().unwrap_or(0))
        .to_string()
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
        json!({ "accountId": ids::account_id(account), "state": identity_state(ctx, account), "list": list, "notFound": not_found }),
    )
}

pub async fn identity_changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let since = args
        .opt_str("sinceState")?
        .ok_or_else(|| MethodError::invalid_arguments("sinceState is required"))?;
    let state = identity_state(ctx, account);
    // Identity changes are not logged: only "nothing changed" can be answered.
    if since != state {
        return Err(MethodError::new(
            MethodErrorKind::CannotCalculateChanges,
            "identity changes are not logged",
        ));
    }
    Ok(
        json!({ "accountId": ids::account_id(account), "oldState": since, "newState": state, "hasMoreChanges": false,
        "created": [], "updated": [], "destroyed": [] }),
    )
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

pub async fn identity_set(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    check_set_size(ctx, &args)?;
    let old_state = identity_state(ctx, account);
    check_if_in_state(&args, &old_state)?;
    let existing = identities(ctx, account).await?;
    let addresses = ctx.server.store.account_addresses(account).await?;
    let (mut created, mut not_created, mut updated, mut not_updated) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    let (mut destroyed, mut not_destroyed) = (Vec::new(), Map::new());
    let mut changed = false;
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
            let rnd: u32 = rand::random();
            let id = format!("I{rnd:08x}");
            ctx.server.identities.with(|d| {
                d.accounts
                    .entry(account.0)
                    .or_default()
                    .insert(id.clone(), data)
            });
            ctx.created_ids.insert(cid.clone(), id.clone());
            created.insert(cid, json!({ "id": id, "mayDelete": true }));
            changed = true;
        }
    }
    if let Some(Value::Object(update)) = args.take("update") {
        for (id, patch) in update {
            let Some(current) = existing.iter().find(|i| i.id == id) else {
                not_updated.insert(id, SetError::not_found().to_json());
                continue;
            };
            let mut data = current.data.clone();
            match apply_identity_patch(&mut data, patch.as_object().unwrap_or(&Map::new())) {
                Ok(()) => {
                    ctx.server.identities.with(|d| {
                        d.accounts
                            .entry(account.0)
                            .or_default()
                            .insert(id.clone(), data)
                    });
                    updated.insert(id, Value::Null);
                    changed = true;
                }
                Err(e) => {
                    not_updated.insert(id, e.to_json());
                }
            }
        }
    }
    for id in args.opt_str_list("destroy")?.unwrap_or_default() {
        match existing.iter().find(|i| i.id == id) {
            Some(i) if i.may_delete => {
                ctx.server
                    .identities
                    .with(|d| d.accounts.entry(account.0).or_default().remove(&id));
                destroyed.push(id);
                changed = true;
            }
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
    if changed {
        ctx.server
            .identities
            .with(|d| *d.states.entry(account.0).or_insert(0) += 1);
        ctx.server.identities.save()?;
    }
    Ok(json!({
        "accountId": ids::account_id(account), "oldState": old_state, "newState": identity_state(ctx, account),
        "created": created, "updated": updated, "destroyed": destroyed,
        "notCreated": not_created, "notUpdated": not_updated, "notDestroyed": not_destroyed,
    }))
}
