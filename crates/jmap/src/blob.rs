//! Blob ids (RFC 8620 §6). The store addresses blobs by their SHA-256; clients never see it.
//! A whole blob's id is `B` + hex(hash ⊕ pad(account)), where pad is an HMAC-SHA256 of the
//! account id under a key shared by every node (global setting [`BLOB_ID_KEY_SETTING`]): the
//! same blob has a different id in each account, and an id says nothing about the content
//! (issue 13 item 3: before, ids were content hashes, so anyone could compute the id of a
//! file they guessed). A MIME part of a message blob is `{blob id}_{partId}` with the part
//! path's `.` written as `-` (Id alphabet, RFC 8620 §1.2). Reading a blob still needs the
//! account to own it ([`read_blob`]); ids of earlier versions (the plain hash) are accepted
//! under the same ownership check, so clients' cached ids keep working.

use bulwark_store::{AccountId, BlobHash, Store, StoreError};
use mail_parser::{MessageParser, PartType};

/// Deepest nesting of message/rfc822 parts we follow.
pub const MAX_PART_DEPTH: usize = 16;
/// Global setting holding the blob id key (hex, sealed at rest when a node key exists).
pub const BLOB_ID_KEY_SETTING: &str = "blob-id-key";

/// Encodes and decodes the blob ids of one server.
#[derive(Clone)]
pub struct BlobIds {
    key: ring::hmac::Key,
}

impl BlobIds {
    pub fn new(key: &[u8]) -> BlobIds {
        BlobIds {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        }
    }

    /// Loads the shared key from the store, creating it on first use (compare-and-set, so
    /// every node ends up with the same key).
    pub async fn load(store: &dyn Store) -> Result<BlobIds, StoreError> {
        let context = "blob-id-key";
        for _ in 0..3 {
            if let Some(stored) = store.global_setting_get(BLOB_ID_KEY_SETTING).await? {
                let hex_key = bulwark_auth::at_rest::open(&stored, context)
                    .map_err(|e| StoreError::Internal(format!("blob id key: {e}")))?;
                let key = hex::decode(hex_key.trim())
                    .map_err(|e| StoreError::Internal(format!("blob id key: {e}")))?;
                return Ok(BlobIds::new(&key));
            }
            let fresh: [u8; 32] = rand::random();
            let sealed = bulwark_auth::at_rest::seal(&hex::encode(fresh), context);
            store
                .global_setting_replace(BLOB_ID_KEY_SETTING, None, &sealed)
                .await?;
        }
        Err(StoreError::Unavailable(
            "the blob id key could not be read".into(),
        ))
    }

    fn pad(&self, account: AccountId) -> [u8; 32] {
        let tag = ring::hmac::sign(&self.key, &account.0.to_be_bytes());
        let mut pad = [0u8; 32];
        pad.copy_from_slice(&tag.as_ref()[..32]);
        pad
    }

    /// The id `account` sees for the stored blob `hash`, as a [`BlobHash`] so that part ids
    /// can be derived from it with [`part_blob_id`].
    pub fn encode(&self, account: AccountId, hash: &BlobHash) -> BlobHash {
        let Ok(raw) = hex::decode(&hash.0) else {
            return hash.clone();
        };
        if raw.len() != 32 {
            return hash.clone();
        }
        let pad = self.pad(account);
        let mixed: Vec<u8> = raw.iter().zip(pad.iter()).map(|(a, b)| a ^ b).collect();
        BlobHash(format!("B{}", hex::encode(mixed)))
    }

    /// Splits a blob id of `account` into the stored hash and the part path (if any).
    pub fn decode(&self, account: AccountId, id: &str) -> Option<(BlobHash, Option<Vec<usize>>)> {
        let (base, path) = split_blob_id(id)?;
        let hash = match base.strip_prefix('B') {
            Some(mixed) if is_hash(mixed) => {
                let raw = hex::decode(mixed).ok()?;
                let pad = self.pad(account);
                let plain: Vec<u8> = raw.iter().zip(pad.iter()).map(|(a, b)| a ^ b).collect();
                hex::encode(plain)
            }
            // An id of an earlier version: the plain hash.
            _ if is_hash(base) => base.to_string(),
            _ => return None,
        };
        Some((BlobHash(hash), path))
    }
}

pub fn part_blob_id(base: &BlobHash, part_id: &str) -> String {
    format!("{}_{}", base.0, part_id.replace('.', "-"))
}

fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Splits a blob id into its base and the part path (if any); checks only the path.
fn split_blob_id(id: &str) -> Option<(&str, Option<Vec<usize>>)> {
    let (base, part) = match id.split_once('_') {
        Some((h, p)) => (h, Some(p)),
        None => (id, None),
    };
    let path = match part {
        None => None,
        Some(p) => {
            let segs: Option<Vec<usize>> = p.split('-').map(|s| s.parse().ok()).collect();
            let segs = segs?;
            if segs.is_empty() || segs.len() > MAX_PART_DEPTH {
                return None;
            }
            Some(segs)
        }
    };
    Some((base, path))
}

/// Splits a plain-hash blob id (an earlier version's) into the hash and the part path.
/// Blob/copy (RFC 8620 §6.3): makes blobs of `fromAccountId` readable in `accountId`.
/// A user reaches only their own account here, so the one copy that can succeed is within
/// it: every blob it can read is already readable there under the same id. A blob it
/// cannot read is `notCopied` with `notFound`; any other source account is
/// `fromAccountNotFound`.
pub async fn copy(
    ctx: &mut crate::api::Ctx<'_>,
    args: crate::api::args::Args,
) -> Result<serde_json::Value, crate::api::MethodError> {
    use crate::api::{MethodError, MethodErrorKind, SetError};
    use serde_json::{Map, Value, json};
    let account = args.account(ctx.account)?;
    let from = args
        .opt_str("fromAccountId")?
        .ok_or_else(|| MethodError::invalid_arguments("fromAccountId is required"))?;
    if crate::ids::parse_account(from) != Some(account) {
        return Err(MethodError::new(
            MethodErrorKind::FromAccountNotFound,
            format!("no account {from}"),
        ));
    }
    let blob_ids = args
        .opt_str_list("blobIds")?
        .ok_or_else(|| MethodError::invalid_arguments("blobIds is required"))?;
    if blob_ids.len() > ctx.server.cfg.max_objects_in_set {
        return Err(MethodError::new(
            MethodErrorKind::RequestTooLarge,
            "too many blobs in one copy",
        ));
    }
    let mut copied = Map::new();
    let mut not_copied = Map::new();
    for id in blob_ids {
        if read_blob(ctx.server, account, &id).await?.is_some() {
            copied.insert(id.clone(), Value::String(id));
        } else {
            let e = SetError::new("notFound", format!("no blob {id}"));
            not_copied.insert(id, e.to_json());
        }
    }
    // §6.3: null when empty.
    let or_null = crate::api::or_null;
    Ok(json!({
        "fromAccountId": from,
        "accountId": crate::ids::account_id(account),
        "copied": or_null(copied),
        "notCopied": or_null(not_copied),
    }))
}

#[cfg(test)]
fn parse_blob_id(id: &str) -> Option<(BlobHash, Option<Vec<usize>>)> {
    let (base, path) = split_blob_id(id)?;
    is_hash(base).then(|| (BlobHash(base.to_string()), path))
}

/// The bytes of a blob id that `account` may read (RFC 8620 §6: blobs are per account): the
/// stored blob or the decoded content of one of its parts. A blob of another account is
/// `None`, exactly like one that does not exist.
pub async fn read_blob(
    server: &crate::JmapServer,
    account: AccountId,
    id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some((hash, path)) = server.blob_ids().await?.decode(account, id) else {
        return Ok(None);
    };
    let Some(raw) = server
        .store
        .blob_get_owned(account, std::slice::from_ref(&hash))
        .await?
        .pop()
        .flatten()
    else {
        return Ok(None);
    };
    match path {
        None => Ok(Some(raw)),
        Some(path) => Ok(part_content(&raw, &path)),
    }
}

/// Decoded content of the part at `path` (indexes into `parts`, descending into nested
/// messages).
pub fn part_content(raw: &[u8], path: &[usize]) -> Option<Vec<u8>> {
    let msg = MessageParser::default().parse(raw)?;
    find_part(&msg, path).map(part_bytes)
}

/// The part at `path`: each index selects from `parts` of the current message, descending
/// into a `message/rfc822` part for the next index.
pub fn find_part<'a, 'x>(
    msg: &'a mail_parser::Message<'x>,
    path: &[usize],
) -> Option<&'a mail_parser::MessagePart<'x>> {
    let (first, rest) = path.split_first()?;
    let part = msg.parts.get(*first)?;
    if rest.is_empty() {
        return Some(part);
    }
    match &part.body {
        PartType::Message(m) => find_part(m, rest),
        _ => None,
    }
}

fn part_bytes(part: &mail_parser::MessagePart<'_>) -> Vec<u8> {
    match &part.body {
        PartType::Message(m) => m.raw_message.to_vec(),
        _ => part.contents().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_parse_whole_and_part_forms() {
        let h = BlobHash::of(b"x");
        assert_eq!(parse_blob_id(&h.0), Some((h.clone(), None)));
        assert_eq!(
            parse_blob_id(&part_blob_id(&h, "2.1")),
            Some((h.clone(), Some(vec![2, 1])))
        );
        assert_eq!(parse_blob_id("zz"), None);
        assert_eq!(parse_blob_id(&format!("{}_x", h.0)), None);
    }

    #[test]
    fn blob_ids_are_per_account_and_hide_the_hash() {
        let ids = BlobIds::new(b"k");
        let h = BlobHash::of(b"a file someone may guess");
        let (a, b) = (AccountId(1), AccountId(2));
        let ia = ids.encode(a, &h);
        let ib = ids.encode(b, &h);
        assert_ne!(ia, ib, "the same blob has another id in another account");
        assert!(!ia.0.contains(&h.0));
        assert_eq!(ids.decode(a, &ia.0), Some((h.clone(), None)));
        assert_eq!(
            ids.decode(a, &part_blob_id(&ia, "1.2")),
            Some((h.clone(), Some(vec![1, 2])))
        );
        // Another account's id decodes to another hash (which that account does not own).
        assert_ne!(ids.decode(b, &ia.0).map(|x| x.0), Some(h.clone()));
        // Another key (another server) gives other ids.
        assert_ne!(BlobIds::new(b"other").encode(a, &h), ia);
        // Earlier versions' plain hashes still parse (ownership is checked on use).
        assert_eq!(ids.decode(a, &h.0), Some((h, None)));
        assert_eq!(ids.decode(a, "Bzz"), None);
    }
}
