//! PushSubscription (RFC 8620 §7.2): a client (a phone app's push gateway, say) registers an
//! `https` URL; the server proves the URL is the client's with a PushVerification it POSTs
//! there, and once the client echoes its code back, every StateChange of the account is POSTed
//! to the URL ([`crate::webpush`]) until the subscription expires or is destroyed.
//!
//! Subscriptions are an account collection ([`PUSH_SUBSCRIPTIONS`]), so every node sees the
//! same ones and one commit's change reaches the URL once (from the node that made it).

use crate::api::args::Args;
use crate::api::{Ctx, MethodError, SetError};
use bulwark_store::{AccountId, Expect, ItemWrite, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The account collection holding PushSubscriptions (item id = subscription id).
pub const PUSH_SUBSCRIPTIONS: &str = "push-subscriptions";
/// Subscriptions one account may have (a phone, a tablet, a desktop app or two…).
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// Longest lifetime the server grants (RFC 8620 §7.2: the server may shorten `expires`);
/// clients renew by updating `expires`.
pub const MAX_LIFETIME_SECS: i64 = 7 * 24 * 3600;
/// Longest push URL and deviceClientId accepted.
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DEVICE_ID_LEN: usize = 255;

/// One stored subscription. `url` is never returned to clients (§7.2.1: it is write-once
/// and kept private, like `keys`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub device_client_id: String,
    pub url: String,
    /// The code sent in the PushVerification.
    pub code: String,
    /// The client echoed `code` back: StateChanges are pushed.
    pub verified: bool,
    /// Unix seconds.
    pub expires: i64,
    /// `None`: every type.
    pub types: Option<Vec<String>>,
}

impl Subscription {
    pub fn active(&self, now: i64) -> bool {
        self.verified && self.expires > now
    }

    fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("deviceClientId".into(), json!(self.device_client_id));
        // §7.2: the verification code is returned only once the client has set it.
        m.insert(
            "verificationCode".into(),
            if self.verified {
                json!(self.code)
            } else {
                Value::Null
            },
        );
        m.insert(
            "expires".into(),
            json!(crate::mail::body::utc_date(self.expires)),
        );
        m.insert("types".into(), json!(self.types));
        m
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Every subscription of the account, with the store version of each (expired ones too).
pub async fn load(
    store: &dyn bulwark_store::Store,
    account: AccountId,
) -> Result<Vec<(Subscription, bulwark_store::ModSeq)>, StoreError> {
    let items = store
        .collection_get(account, PUSH_SUBSCRIPTIONS, None)
        .await?;
    Ok(items
        .into_iter()
        .filter_map(|i| {
            serde_json::from_str::<Subscription>(&i.value)
                .ok()
                .map(|s| (s, i.version))
        })
        .collect())
}

const PROPERTIES: [&str; 7] = [
    "id",
    "deviceClientId",
    "url",
    "keys",
    "verificationCode",
    "expires",
    "types",
];

/// PushSubscription/get (§7.2.1): the user's subscriptions; `url` and `keys` are never
/// returned. There is no accountId and no state.
pub async fn get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let wanted = args.opt_str_list("ids")?;
    crate::api::check_get_size(ctx, wanted.as_ref())?;
    let props = args.properties(
        &PROPERTIES,
        &[
            "id",
            "deviceClientId",
            "verificationCode",
            "expires",
            "types",
        ],
    )?;
    let now = now();
    let all: Vec<Subscription> = load(ctx.server.store.as_ref(), ctx.account)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .filter(|s| s.expires > now)
        .collect();
    let pick = |s: &Subscription| {
        let full = s.to_json();
        let mut out = Map::new();
        for p in &props {
            if let Some(v) = full.get(p) {
                out.insert(p.clone(), v.clone());
            }
        }
        out.insert("id".into(), json!(s.id));
        Value::Object(out)
    };
    let (list, not_found): (Vec<Value>, Vec<String>) = match wanted {
        None => (all.iter().map(pick).collect(), Vec::new()),
        Some(ids) => {
            let mut list = Vec::new();
            let mut missing = Vec::new();
            for id in ids {
                match all.iter().find(|s| s.id == id) {
                    Some(s) => list.push(pick(s)),
                    None => missing.push(id),
                }
            }
            (list, missing)
        }
    };
    Ok(json!({ "list": list, "notFound": not_found }))
}

/// `https://host[:port]/…` with a host, no user info and no fragment (§7.2: the server
/// pushes only over TLS).
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if url.len() > MAX_URL_LEN {
        return Err("url is too long");
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("url must not contain spaces or control characters");
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err("url must be an https:// URL");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || url.contains('#') {
        return Err("url must name a host, without user info or fragment");
    }
    crate::webpush::Target::parse(url)
        .map(|_| ())
        .ok_or("url has no valid host and port")
}

fn expires_of(v: Option<&Value>, now: i64) -> Result<i64, SetError> {
    let cap = now + MAX_LIFETIME_SECS;
    match v {
        None | Some(Value::Null) => Ok(cap),
        Some(Value::String(s)) => match crate::mail::body::parse_date(s) {
            Some(t) if t > now => Ok(t.min(cap)),
            Some(_) => Err(SetError::invalid_properties(
                &["expires"],
                "expires must be in the future",
            )),
            None => Err(SetError::invalid_properties(
                &["expires"],
                "expires must be a UTCDate",
            )),
        },
        Some(_) => Err(SetError::invalid_properties(
            &["expires"],
            "expires must be a UTCDate",
        )),
    }
}

fn types_of(v: Option<&Value>) -> Result<Option<Vec<String>>, SetError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() <= 32 => a
            .iter()
            .map(|t| match t {
                Value::String(s) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
                _ => Err(SetError::invalid_properties(
                    &["types"],
                    "types must be data type names",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(SetError::invalid_properties(
            &["types"],
            "types must be null or a list of data type names",
        )),
    }
}

fn create_one(obj: &Value, existing: usize, now: i64) -> Result<Subscription, SetError> {
    let Value::Object(obj) = obj else {
        return Err(SetError::invalid_properties(
            &[],
            "a PushSubscription is an object",
        ));
    };
    for k in obj.keys() {
        if !["deviceClientId", "url", "keys", "expires", "types"].contains(&k.as_str()) {
            return Err(SetError::invalid_properties(
                &[k.as_str()],
                format!("{k} cannot be set on create"),
            ));
        }
    }
    let device = match obj.get("deviceClientId") {
        Some(Value::String(d)) if !d.is_empty() && d.len() <= MAX_DEVICE_ID_LEN => d.clone(),
        _ => {
            return Err(SetError::invalid_properties(
                &["deviceClientId"],
                "deviceClientId is required (a string of at most 255 characters)",
            ));
        }
    };
    let url = match obj.get("url") {
        Some(Value::String(u)) => u.clone(),
        _ => return Err(SetError::invalid_properties(&["url"], "url is required")),
    };
    check_url(&url).map_err(|e| SetError::invalid_properties(&["url"], e))?;
    if !matches!(obj.get("keys"), None | Some(Value::Null)) {
        // RFC 8620 §7.2: with `keys` the push must be encrypted (RFC 8291); without them it
        // goes over TLS in clear JSON. Refused rather than sent unencrypted.
        return Err(SetError::invalid_properties(
            &["keys"],
            "encrypted push (RFC 8291 keys) is not supported; subscribe without keys",
        ));
    }
    if existing >= MAX_SUBSCRIPTIONS {
        return Err(SetError::new(
            "overQuota",
            format!("at most {MAX_SUBSCRIPTIONS} push subscriptions per account"),
        ));
    }
    let code: [u8; 16] = rand::random();
    let id: [u8; 12] = rand::random();
    Ok(Subscription {
        id: format!("P{}", hex::encode(id)),
        device_client_id: device,
        url,
        code: hex::encode(code),
        verified: false,
        expires: expires_of(obj.get("expires"), now)?,
        types: types_of(obj.get("types"))?,
    })
}

/// PushSubscription/set (§7.2.2): create (the server then POSTs a PushVerification to the
/// URL), update `verificationCode` (must equal the code sent), `expires` (capped at
/// [`MAX_LIFETIME_SECS`]) and `types`, destroy. No accountId, no state.
pub async fn set(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    crate::api::check_set_size(ctx, &args)?;
    if args.get("ifInState").is_some() {
        return Err(MethodError::invalid_arguments(
            "PushSubscription/set has no state: ifInState is not allowed",
        ));
    }
    let account = ctx.account;
    let store = ctx.server.store.clone();
    let now = now();
    let mut current: Vec<(Subscription, bulwark_store::ModSeq)> =
        load(store.as_ref(), account).await?;
    let mut created = Map::new();
    let mut not_created = Map::new();
    let mut updated = Map::new();
    let mut not_updated = Map::new();
    let mut destroyed = Vec::new();
    let mut not_destroyed = Map::new();
    // Expired subscriptions go with the first write of the account.
    let mut writes: Vec<ItemWrite> = current
        .iter()
        .filter(|(s, _)| s.expires <= now)
        .map(|(s, v)| ItemWrite::delete(PUSH_SUBSCRIPTIONS, &s.id, Expect::Version(*v)))
        .collect();
    current.retain(|(s, _)| s.expires > now);

    if let Some(Value::Object(create)) = args.get("create") {
        for (cid, obj) in create {
            match create_one(obj, current.len(), now) {
                Ok(sub) => {
                    let value = serde_json::to_string(&sub)
                        .map_err(|e| MethodError::invalid_arguments(e.to_string()))?;
                    let mut w = writes.clone();
                    w.push(ItemWrite::put(
                        PUSH_SUBSCRIPTIONS,
                        &sub.id,
                        Expect::Absent,
                        value,
                    ));
                    match store.collection_write(account, w).await {
                        Ok(_) => {
                            writes.clear();
                            ctx.created_ids.insert(cid.clone(), sub.id.clone());
                            created.insert(
                                cid.clone(),
                                json!({ "id": sub.id, "expires": crate::mail::body::utc_date(sub.expires) }),
                            );
                            crate::webpush::send_verification(ctx.server, &sub);
                            current.push((sub, bulwark_store::ModSeq(0)));
                        }
                        Err(e) => {
                            not_created.insert(cid.clone(), SetError::from(e).to_json());
                        }
                    }
                }
                Err(e) => {
                    not_created.insert(cid.clone(), e.to_json());
                }
            }
        }
    }
    // Versions may have moved with the creations: read again before updating.
    if args.get("update").is_some() || args.get("destroy").is_some() {
        current = load(store.as_ref(), account)
            .await?
            .into_iter()
            .filter(|(s, _)| s.expires > now)
            .collect();
    }
    if let Some(Value::Object(update)) = args.get("update") {
        for (id, patch) in update {
            let id = ctx.resolve_id(id).unwrap_or_else(|| id.clone());
            let Some((sub, version)) = current.iter().find(|(s, _)| s.id == id).cloned() else {
                not_updated.insert(id, SetError::not_found().to_json());
                continue;
            };
            match apply_update(sub, patch, now) {
                Ok((sub, changed_expires)) => {
                    let value = serde_json::to_string(&sub)
                        .map_err(|e| MethodError::invalid_arguments(e.to_string()))?;
                    let mut w = std::mem::take(&mut writes);
                    w.push(ItemWrite::put(
                        PUSH_SUBSCRIPTIONS,
                        &id,
                        Expect::Version(version),
                        value,
                    ));
                    match store.collection_write(account, w).await {
                        Ok(_) => {
                            // §5.3: the properties the server changed from what was asked.
                            let v = changed_expires.then(
                                || json!({ "expires": crate::mail::body::utc_date(sub.expires) }),
                            );
                            updated.insert(id, v.unwrap_or(Value::Null));
                        }
                        Err(e) => {
                            not_updated.insert(id, SetError::from(e).to_json());
                        }
                    }
                }
                Err(e) => {
                    not_updated.insert(id, e.to_json());
                }
            }
        }
    }
    if let Some(Value::Array(ids)) = args.get("destroy") {
        for id in ids.iter().filter_map(Value::as_str) {
            let id = ctx.resolve_id(id).unwrap_or_else(|| id.to_string());
            let Some((_, version)) = current.iter().find(|(s, _)| s.id == id) else {
                not_destroyed.insert(id, SetError::not_found().to_json());
                continue;
            };
            let mut w = std::mem::take(&mut writes);
            w.push(ItemWrite::delete(
                PUSH_SUBSCRIPTIONS,
                &id,
                Expect::Version(*version),
            ));
            match store.collection_write(account, w).await {
                Ok(_) => destroyed.push(Value::String(id)),
                Err(e) => {
                    not_destroyed.insert(id, SetError::from(e).to_json());
                }
            }
        }
    }
    if !writes.is_empty() {
        // Best effort: only expired subscriptions were to go.
        let _ = store.collection_write(account, writes).await;
    }
    let or_null = crate::api::or_null;
    Ok(json!({
        "oldState": null,
        "newState": null,
        "created": or_null(created),
        "updated": or_null(updated),
        "destroyed": if destroyed.is_empty() { Value::Null } else { Value::Array(destroyed) },
        "notCreated": or_null(not_created),
        "notUpdated": or_null(not_updated),
        "notDestroyed": or_null(not_destroyed),
    }))
}

/// Applies an update (only `verificationCode`, `expires` and `types` may change, §7.2.2);
/// also says whether `expires` came out different from what was asked.
fn apply_update(
    mut sub: Subscription,
    patch: &Value,
    now: i64,
) -> Result<(Subscription, bool), SetError> {
    let Value::Object(patch) = patch else {
        return Err(SetError::invalid_properties(&[], "a patch is an object"));
    };
    let mut changed_expires = false;
    for (k, v) in patch {
        match k.as_str() {
            "verificationCode" => match v {
                Value::String(code) if *code == sub.code => sub.verified = true,
                _ => {
                    return Err(SetError::invalid_properties(
                        &["verificationCode"],
                        "verificationCode does not match the code pushed to the URL",
                    ));
                }
            },
            "expires" => {
                let asked = match v {
                    Value::String(s) => crate::mail::body::parse_date(s),
                    _ => None,
                };
                sub.expires = expires_of(Some(v), now)?;
                changed_expires = asked != Some(sub.expires);
            }
            "types" => sub.types = types_of(Some(v))?,
            other => {
                return Err(SetError::invalid_properties(
                    &[other],
                    format!("{other} cannot be changed"),
                ));
            }
        }
    }
    Ok((sub, changed_expires))
}

/// The account's subscriptions that get pushes now.
pub async fn active(
    store: &dyn bulwark_store::Store,
    account: AccountId,
) -> Result<Vec<Subscription>, StoreError> {
    let now = now();
    Ok(load(store, account)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .filter(|s| s.active(now))
        .collect())
}

/// Drops a subscription the push service says is gone (RFC 8030 §7.3: 404 or 410).
pub async fn forget(store: &dyn bulwark_store::Store, account: AccountId, id: &str) {
    let _ = store
        .collection_write(
            account,
            vec![ItemWrite::delete(PUSH_SUBSCRIPTIONS, id, Expect::Any)],
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_with_a_host_are_accepted() {
        assert!(check_url("https://push.example.test/p/abc?x=1").is_ok());
        assert!(check_url("https://127.0.0.1:8443/p").is_ok());
        assert!(check_url("https://[::1]:8443/p").is_ok());
        for bad in [
            "http://push.example.test/p",
            "https:///p",
            "https://user@push.example.test/p",
            "https://push.example.test/p#frag",
            "https://push.example.test/a b",
            "ftp://x",
            "https://host:99999/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://h/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn expires_is_capped_and_must_be_in_the_future() {
        let now = 1_700_000_000;
        assert_eq!(expires_of(None, now).ok(), Some(now + MAX_LIFETIME_SECS));
        let far = json!(crate::mail::body::utc_date(now + 365 * 24 * 3600));
        assert_eq!(
            expires_of(Some(&far), now).ok(),
            Some(now + MAX_LIFETIME_SECS)
        );
        let past = json!(crate::mail::body::utc_date(now - 1));
        assert!(expires_of(Some(&past), now).is_err());
    }

    #[test]
    fn the_code_must_match_and_url_cannot_change() {
        let sub = create_one(
            &json!({"deviceClientId": "phone", "url": "https://p.example.test/x"}),
            0,
            1_700_000_000,
        )
        .expect("created");
        assert!(!sub.verified);
        assert!(
            apply_update(
                sub.clone(),
                &json!({"verificationCode": "nope"}),
                1_700_000_000
            )
            .is_err()
        );
        let (ok, _) = apply_update(
            sub.clone(),
            &json!({"verificationCode": sub.code}),
            1_700_000_000,
        )
        .expect("verified");
        assert!(ok.verified);
        assert!(apply_update(sub, &json!({"url": "https://evil.test/"}), 1_700_000_000).is_err());
        let full = create_one(
            &json!({"deviceClientId": "phone", "url": "https://p.example.test/x"}),
            MAX_SUBSCRIPTIONS,
            1_700_000_000,
        );
        assert!(full.is_err());
        let keyed = create_one(
            &json!({"deviceClientId": "d", "url": "https://p.example.test/x", "keys": {"p256dh": "x", "auth": "y"}}),
            0,
            1_700_000_000,
        );
        assert!(keyed.is_err());
    }
}
