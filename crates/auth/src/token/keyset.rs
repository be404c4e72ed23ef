//! The signing key set shared by every node through the store (global setting
//! [`KEYSET_SETTING`]), with a local copy in `data_dir` so a node can start and verify while
//! the store is down.
//!
//! Rotation is two-phase so no node ever meets a token signed by a key it does not know
//! yet: a new key is published with `activate_at = now + activation delay` (at least two
//! refresh intervals), so every node has fetched it before any node signs with it; the old key
//! keeps verifying until `retire_at` (its activation + the longest refresh-token lifetime).
//! The signing key at time `t` is the newest key with a secret whose `activate_at <= t`.
//!
//! Secrets are hex inside a JSON document that is sealed with the node's secret key
//! ([`crate::at_rest`], issue 13 item 2) in the store and in the local copy; clear-text
//! documents from before are read and rewritten sealed.

use super::{TokenError, hex, new_kid, storage};
use bulwark_store::Store;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Global setting holding the key set (JSON, sealed with [`crate::at_rest`] when a secret key
/// is configured).
pub const KEYSET_SETTING: &str = "token-keys";
/// Associated data of the sealed key set in the store.
pub(crate) const KEYSET_CONTEXT: &str = "token-keys";
/// Associated data of the sealed local copy.
pub(crate) const KEYSET_CACHE_CONTEXT: &str = "token-keyset-cache";
/// Local copy of the shared key set (mode 0600).
pub const KEYSET_CACHE_FILE: &str = "token-keyset.json";
/// How often a node re-reads the key set from the store.
pub const KEY_REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// Delay between publishing a rotated key and signing with it (every node refreshes twice
/// in between, so each knows the key before it meets a token signed by it).
pub const KEY_ACTIVATION_DELAY_SECS: i64 = 2 * KEY_REFRESH_INTERVAL.as_secs() as i64;
/// How long a rotated-out key keeps verifying: longer than the longest refresh token
/// (30 days for the web client and the JMAP default), plus a day of margin.
pub const KEY_OVERLAP_SECS: i64 = 31 * 24 * 3600;
/// Compare-and-set attempts before giving up on a contended key-set update.
const MAX_CAS_ATTEMPTS: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StoredKey {
    pub kid: String,
    /// Hex Ed25519 secret; absent for verification-only keys (imported legacy keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Hex Ed25519 public key.
    pub public: String,
    pub created_at: i64,
    /// Signs from this unix second on (if it is the newest such key).
    pub activate_at: i64,
    /// Stops verifying at this unix second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
}

/// Every key, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct KeySet {
    pub keys: Vec<StoredKey>,
}

/// A new random key, stored form and signing key.
pub(crate) fn generate_key(now: i64, activate_at: i64) -> (StoredKey, SigningKey) {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let stored = StoredKey {
        kid: new_kid(),
        secret: Some(hex::encode(&signing.to_bytes())),
        public: hex::encode(signing.verifying_key().as_bytes()),
        created_at: now,
        activate_at,
        retire_at: None,
    };
    (stored, signing)
}

/// One decoded key.
#[derive(Clone)]
pub(crate) struct LiveKey {
    pub kid: String,
    pub signing: Option<SigningKey>,
    pub verifying: VerifyingKey,
    pub activate_at: i64,
    pub retire_at: Option<i64>,
}

impl KeySet {
    pub fn fresh(now: i64) -> KeySet {
        KeySet {
            keys: vec![generate_key(now, now).0],
        }
    }

    pub fn parse(json: &str) -> Result<KeySet, TokenError> {
        let set: KeySet = serde_json::from_str(json)
            .map_err(|e| storage(format!("token key set is unreadable: {e}")))?;
        set.decode()?;
        Ok(set)
    }

    pub fn to_json(&self) -> Result<String, TokenError> {
        serde_json::to_string_pretty(self).map_err(storage)
    }

    /// The form kept at rest under `context` (sealed when a secret key is installed, see
    /// [`crate::at_rest`]).
    pub fn to_stored(&self, context: &str) -> Result<String, TokenError> {
        Ok(crate::at_rest::seal(&self.to_json()?, context))
    }

    /// Reads the form kept at rest (sealed, or clear text from before encryption).
    pub fn parse_stored(stored: &str, context: &str) -> Result<KeySet, TokenError> {
        let json = crate::at_rest::open(stored, context).map_err(storage)?;
        KeySet::parse(&json)
    }

    /// Decodes every key; fails if any is malformed or none can sign.
    pub fn decode(&self) -> Result<Vec<LiveKey>, TokenError> {
        let mut live = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            let signing = match &k.secret {
                Some(s) => Some(SigningKey::from_bytes(&hex::decode_to_array(s)?)),
                None => None,
            };
            let public = hex::decode_to_array(&k.public)?;
            let verifying = VerifyingKey::from_bytes(&public)
                .map_err(|e| storage(format!("bad public key {}: {e}", k.kid)))?;
            if let Some(s) = &signing
                && s.verifying_key() != verifying
            {
                return Err(storage(format!(
                    "key {} secret and public key differ",
                    k.kid
                )));
            }
            live.push(LiveKey {
                kid: k.kid.clone(),
                signing,
                verifying,
                activate_at: k.activate_at,
                retire_at: k.retire_at,
            });
        }
        if !live.iter().any(|k| k.signing.is_some()) {
            return Err(storage("token key set has no signing key"));
        }
        Ok(live)
    }

    /// Adds the keys of `other` this set lacks, as verification-only keys retiring after
    /// the overlap (used to import a node's old per-data-dir key).
    pub fn import_verification_keys(&mut self, other: &KeySet, now: i64) {
        for k in &other.keys {
            if self.keys.iter().any(|mine| mine.kid == k.kid) {
                continue;
            }
            self.keys.insert(
                0,
                StoredKey {
                    secret: None,
                    retire_at: Some(k.retire_at.unwrap_or(now.saturating_add(KEY_OVERLAP_SECS))),
                    ..k.clone()
                },
            );
        }
    }

    /// A new signing key active from `now + activation_delay`; keys active before it retire
    /// `overlap` after that; keys already retired at `now` are dropped.
    pub fn rotated(&self, now: i64, activation_delay: i64, overlap: i64) -> KeySet {
        let activate_at = now.saturating_add(activation_delay.max(0));
        let retire_at = activate_at.saturating_add(overlap.max(0));
        let mut keys: Vec<StoredKey> = self
            .keys
            .iter()
            .filter(|k| k.retire_at.is_none_or(|t| t > now))
            .cloned()
            .map(|mut k| {
                if k.retire_at.is_none_or(|t| t > retire_at) {
                    k.retire_at = Some(retire_at);
                }
                k
            })
            .collect();
        keys.push(generate_key(now, activate_at).0);
        KeySet { keys }
    }
}

/// Picks the signing key at `now`: the newest (latest `activate_at`, then latest in the
/// list) key with a secret that is active; if none is active yet (clock skew), the one
/// activating first.
pub(crate) fn signing_index(keys: &[LiveKey], now: i64) -> Option<usize> {
    let usable = |k: &LiveKey| k.signing.is_some() && k.retire_at.is_none_or(|t| t > now);
    let active = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| usable(k) && k.activate_at <= now)
        .max_by_key(|(i, k)| (k.activate_at, *i))
        .map(|(i, _)| i);
    active.or_else(|| {
        keys.iter()
            .enumerate()
            .filter(|(_, k)| k.signing.is_some())
            .min_by_key(|(_, k)| k.activate_at)
            .map(|(i, _)| i)
    })
}

/// Reads the shared set; if the store has none, publishes `seed` (insert-if-absent, so of
/// several nodes starting at once exactly one wins) and returns what the store then holds.
pub(crate) async fn fetch_or_publish(
    store: &dyn Store,
    seed: impl FnOnce() -> KeySet,
) -> Result<KeySet, TokenError> {
    if let Some(stored) = store
        .global_setting_get(KEYSET_SETTING)
        .await
        .map_err(storage)?
    {
        let set = KeySet::parse_stored(&stored, KEYSET_CONTEXT)?;
        if crate::at_rest::needs_migration(&stored) {
            // Clear text from before encryption at rest: rewrite it sealed (if another node
            // did it first, the compare-and-set simply fails).
            match store
                .global_setting_replace(
                    KEYSET_SETTING,
                    Some(&stored),
                    &set.to_stored(KEYSET_CONTEXT)?,
                )
                .await
            {
                Ok(true) => tracing::info!("token signing keys in the store are now encrypted"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot encrypt the token signing keys yet"),
            }
        }
        return Ok(set);
    }
    let seed = seed();
    let inserted = store
        .global_setting_replace(KEYSET_SETTING, None, &seed.to_stored(KEYSET_CONTEXT)?)
        .await
        .map_err(storage)?;
    if inserted {
        return Ok(seed);
    }
    // Another node won the race: use its set.
    match store
        .global_setting_get(KEYSET_SETTING)
        .await
        .map_err(storage)?
    {
        Some(stored) => KeySet::parse_stored(&stored, KEYSET_CONTEXT),
        None => Err(storage("token key set vanished while it was being created")),
    }
}

/// Applies `change` to the shared set with compare-and-set, retrying when another node
/// changed it in between. Returns the new set.
pub(crate) async fn update_shared(
    store: &dyn Store,
    now: i64,
    change: impl Fn(&KeySet) -> KeySet,
) -> Result<KeySet, TokenError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current_json = store
            .global_setting_get(KEYSET_SETTING)
            .await
            .map_err(storage)?;
        let current = match &current_json {
            Some(stored) => KeySet::parse_stored(stored, KEYSET_CONTEXT)?,
            None => KeySet::fresh(now),
        };
        let next = change(&current);
        if store
            .global_setting_replace(
                KEYSET_SETTING,
                current_json.as_deref(),
                &next.to_stored(KEYSET_CONTEXT)?,
            )
            .await
            .map_err(storage)?
        {
            return Ok(next);
        }
    }
    Err(storage(
        "token key set changed concurrently too often; try again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn rotation_activates_later_and_retires_the_old_key_after_the_overlap() {
        let set = KeySet::fresh(NOW);
        let next = set.rotated(NOW, 120, 1000);
        let live = next.decode().unwrap();
        assert_eq!(live.len(), 2);
        assert_eq!(signing_index(&live, NOW + 119), Some(0));
        assert_eq!(signing_index(&live, NOW + 120), Some(1));
        assert_eq!(next.keys[0].retire_at, Some(NOW + 1120));
        // Rotating again after the old key retired drops it.
        let again = next.rotated(NOW + 2000, 0, 1000);
        assert_eq!(again.keys.len(), 2);
        assert_eq!(again.keys[0].kid, next.keys[1].kid);
    }

    #[test]
    fn set_without_signing_key_or_with_mismatched_keys_is_refused() {
        let mut set = KeySet::fresh(NOW);
        set.keys[0].secret = None;
        assert!(set.decode().is_err());
        let mut set = KeySet::fresh(NOW);
        set.keys[0].public = KeySet::fresh(NOW).keys[0].public.clone();
        assert!(set.decode().is_err());
        assert!(KeySet::parse("{not json").is_err());
    }
}
