//! Blob ids: a whole stored blob is its SHA-256 hex; a MIME part of a message blob is
//! `{hash}_{partId}` with the part path's `.` written as `-` (Id alphabet, RFC 8620 §1.2).

use bulwark_store::{AccountId, BlobHash, Store, StoreError};
use mail_parser::{MessageParser, PartType};

/// Deepest nesting of message/rfc822 parts we follow.
pub const MAX_PART_DEPTH: usize = 16;

pub fn part_blob_id(hash: &BlobHash, part_id: &str) -> String {
    format!("{}_{}", hash.0, part_id.replace('.', "-"))
}

fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Splits a blob id into the stored hash and the part path (if any).
pub fn parse_blob_id(id: &str) -> Option<(BlobHash, Option<Vec<usize>>)> {
    let (hash, part) = match id.split_once('_') {
        Some((h, p)) => (h, Some(p)),
        None => (id, None),
    };
    if !is_hash(hash) {
        return None;
    }
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
    Some((BlobHash(hash.to_string()), path))
}

/// The bytes of a blob id that `account` may read (RFC 8620 §6: blobs are per account): the
/// stored blob or the decoded content of one of its parts. A blob of another account is
/// `None`, exactly like one that does not exist.
pub async fn read_blob(
    store: &dyn Store,
    account: AccountId,
    id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some((hash, path)) = parse_blob_id(id) else {
        return Ok(None);
    };
    let Some(raw) = store
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
}
