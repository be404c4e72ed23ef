//! METADATA and METADATA-SERVER (RFC 5464): GETMETADATA and SETMETADATA on the server's
//! entries (mailbox `""`) and each mailbox's.
//!
//! Storage: the account collection [`names::IMAP_METADATA`], one item per mailbox (keyed by
//! mailbox id, so RENAME keeps the entries and the store deletes them with the mailbox)
//! and one for the server, each a JSON object of entry name → base64 value. Every account
//! has its own `/private` and `/shared` entries: mailboxes are not shared between accounts
//! here, so "shared" means "for every client of this user" (RFC 5464 §3).
//! Writes are read-modify-write with compare-and-set, retried on a concurrent change.

use super::{CmdError, CmdResult, Done, Session};
use crate::parser::MetadataDepth;
use crate::response::write_mailbox;
use base64::Engine;
use bulwark_store::collections::{Expect, ItemWrite, names};
use bulwark_store::{ModSeq, StoreError};
use std::collections::BTreeMap;

/// Largest value (bytes): a bigger one is `NO [METADATA MAXSIZE n]` (RFC 5464 §4.3).
pub(crate) const MAX_VALUE_SIZE: usize = 32 * 1024;
/// `NO [METADATA MAXSIZE n]` with n = [`MAX_VALUE_SIZE`] (response codes are static).
const MAXSIZE_CODE: &str = "METADATA MAXSIZE 32768";
/// Most entries on one mailbox (or on the server): past it, `NO [METADATA TOOMANY]`.
pub(crate) const MAX_ENTRIES_PER_MAILBOX: usize = 100;
/// Most bytes of values (with their names) per account, all mailboxes and the server
/// together: past it, `NO [METADATA TOOMANY]`.
pub(crate) const MAX_ACCOUNT_BYTES: usize = 1024 * 1024;
/// Longest entry name (bytes).
const MAX_ENTRY_NAME: usize = 1024;
/// Compare-and-set attempts of one SETMETADATA before `NO [INUSE]`.
const WRITE_ATTEMPTS: usize = 5;

/// The server's item in [`names::IMAP_METADATA`].
const SERVER_ITEM: &str = "server";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Entries of one mailbox (or the server): lowercase name → value.
type Entries = BTreeMap<String, Vec<u8>>;

/// RFC 5464 §3.2 entry names: `/private/…` or `/shared/…`, slash-separated components,
/// no `*` or `%` (§5), no empty component, no trailing slash, no control characters.
/// Names compare case-insensitively (as Dovecot and Cyrus do) and are kept lowercase.
/// `root_ok`: `/private` and `/shared` themselves (to GET everything below with DEPTH).
fn check_entry(name: &str, root_ok: bool) -> Result<String, CmdError> {
    let lower = name.to_ascii_lowercase();
    let bad = |why: &str| CmdError::Bad(format!("Invalid metadata entry name {name:?}: {why}"));
    if lower.len() > MAX_ENTRY_NAME {
        return Err(bad("too long"));
    }
    if lower == "/private" || lower == "/shared" {
        return if root_ok {
            Ok(lower)
        } else {
            Err(bad("an entry needs a name below /private or /shared"))
        };
    }
    if !lower.starts_with("/private/") && !lower.starts_with("/shared/") {
        return Err(bad("it must start with /private/ or /shared/"));
    }
    if lower.contains("//") || lower.ends_with('/') {
        return Err(bad("empty component"));
    }
    if lower.contains(['*', '%']) || lower.chars().any(char::is_control) {
        return Err(bad("* % and control characters are not allowed"));
    }
    Ok(lower)
}

/// Is `name` below `entry` within `depth` (RFC 5464 §4.2.2)? `entry` itself is depth 0.
fn within(entry: &str, name: &str, depth: MetadataDepth) -> bool {
    if name == entry {
        return true;
    }
    let Some(rest) = name.strip_prefix(entry).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    match depth {
        MetadataDepth::Zero => false,
        MetadataDepth::One => !rest.contains('/'),
        MetadataDepth::Infinity => true,
    }
}

fn decode_entries(value: &str) -> Result<Entries, StoreError> {
    let stored: BTreeMap<String, String> = serde_json::from_str(value)
        .map_err(|e| StoreError::Internal(format!("stored metadata is unreadable: {e}")))?;
    stored
        .into_iter()
        .map(|(k, v)| {
            b64()
                .decode(v.as_bytes())
                .map(|v| (k, v))
                .map_err(|e| StoreError::Internal(format!("stored metadata is unreadable: {e}")))
        })
        .collect()
}

fn encode_entries(entries: &Entries) -> String {
    let stored: BTreeMap<&str, String> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), b64().encode(v)))
        .collect();
    serde_json::to_string(&stored).unwrap_or_default()
}

/// Bytes an entry counts against [`MAX_ACCOUNT_BYTES`].
fn entries_bytes(entries: &Entries) -> usize {
    entries.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// A value as `string` or, with a NUL, as `literal8` (RFC 5464 §5 `value = nstring /
/// literal8`; RFC 9051 §9 keeps NUL out of plain literals).
fn write_value(out: &mut Vec<u8>, value: &[u8], utf8: bool) {
    if value.contains(&0) {
        out.extend_from_slice(format!("~{{{}}}\r\n", value.len()).as_bytes());
        out.extend_from_slice(value);
    } else {
        crate::response::write_string(out, value, utf8);
    }
}

/// Every METADATA item of the account: item id → entry name → a digest of the value (what
/// NOTIFY compares to see which entries changed, RFC 5465 §5.7–§5.8).
pub(crate) type EntryDigests = BTreeMap<String, BTreeMap<String, u64>>;

/// The server's item id (for NOTIFY's ServerMetadataChange).
pub(crate) fn is_server_item(item: &str) -> bool {
    item == SERVER_ITEM
}

impl Session {
    /// A digest of every METADATA entry of the account (see [`EntryDigests`]).
    pub(crate) async fn metadata_digests(&self) -> Result<EntryDigests, CmdError> {
        use std::hash::{Hash, Hasher};
        let account = self.account_id()?;
        let items = self
            .store
            .collection_get(account, names::IMAP_METADATA, None)
            .await?;
        let mut out = EntryDigests::new();
        for item in items {
            let entries = decode_entries(&item.value)?;
            let digests = entries
                .into_iter()
                .map(|(k, v)| {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    v.hash(&mut h);
                    (k, h.finish())
                })
                .collect();
            out.insert(item.id, digests);
        }
        Ok(out)
    }

    /// The collection item of the mailbox named `name` (`""`: the server), and the name
    /// as the client wrote it, decoded.
    async fn metadata_item(&self, name: &str) -> Result<(String, String), CmdError> {
        if name.is_empty() {
            return Ok((SERVER_ITEM.to_string(), String::new()));
        }
        let name = self.decode_mailbox_name(name);
        let mailbox = self
            .find_mailbox(&name)
            .await?
            .ok_or_else(|| CmdError::no("NONEXISTENT", format!("Mailbox {name} does not exist")))?;
        Ok((names::imap_metadata_item(mailbox.id), name))
    }

    /// The stored entries of one item and its version (`None`: no entries yet).
    async fn read_entries(&self, item: &str) -> Result<(Entries, Option<ModSeq>), CmdError> {
        let account = self.account_id()?;
        let found = self
            .store
            .collection_get(account, names::IMAP_METADATA, Some(&[item.to_string()]))
            .await?;
        match found.into_iter().next() {
            Some(i) => Ok((decode_entries(&i.value)?, Some(i.version))),
            None => Ok((Entries::new(), None)),
        }
    }

    /// RFC 5464 §4.2 GETMETADATA: one `* METADATA mailbox (entry value …)` with every
    /// entry asked for (NIL when it has no value) and, with DEPTH, those below it. Values
    /// larger than MAXSIZE are left out and reported as `OK [METADATA LONGENTRIES n]`, n
    /// the largest left out (§4.2.1).
    pub(crate) async fn cmd_get_metadata(
        &mut self,
        mailbox: &str,
        wanted: &[String],
        max_size: Option<u64>,
        depth: MetadataDepth,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let wanted: Vec<String> = wanted
            .iter()
            .map(|e| check_entry(e, true))
            .collect::<Result<_, _>>()?;
        let (item, name) = self.metadata_item(mailbox).await?;
        let (entries, _) = self.read_entries(&item).await?;
        let mut shown: Vec<(&str, Option<&[u8]>)> = Vec::new();
        let mut longest_left_out: Option<usize> = None;
        for entry in &wanted {
            let root = entry == "/private" || entry == "/shared";
            if !root && !entries.contains_key(entry) && !shown.iter().any(|(n, _)| n == entry) {
                shown.push((entry, None));
            }
            for (k, v) in entries.range(entry.clone()..) {
                if !k.starts_with(entry.as_str()) {
                    break;
                }
                if !within(entry, k, depth) || shown.iter().any(|(n, _)| n == k) {
                    continue;
                }
                if max_size.is_some_and(|m| v.len() as u64 > m) {
                    longest_left_out = Some(longest_left_out.unwrap_or(0).max(v.len()));
                    continue;
                }
                shown.push((k, Some(v)));
            }
        }
        let utf8 = self.utf8();
        if !shown.is_empty() {
            out.extend_from_slice(b"* METADATA ");
            write_mailbox(out, &name, utf8);
            out.extend_from_slice(b" (");
            for (i, (k, v)) in shown.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                crate::response::write_string(out, k.as_bytes(), utf8);
                out.push(b' ');
                match v {
                    Some(v) => write_value(out, v, utf8),
                    None => out.extend_from_slice(b"NIL"),
                }
            }
            out.extend_from_slice(b")\r\n");
        }
        match longest_left_out {
            Some(n) => Done::with_code(
                format!("METADATA LONGENTRIES {n}"),
                "GETMETADATA completed (some values are larger than MAXSIZE)",
            ),
            None => Done::new("GETMETADATA completed"),
        }
    }

    /// RFC 5464 §4.3 SETMETADATA: all entries or none. A NIL value removes the entry.
    pub(crate) async fn cmd_set_metadata(
        &mut self,
        mailbox: &str,
        changes: Vec<(String, Option<Vec<u8>>)>,
    ) -> CmdResult {
        let mut checked = Vec::with_capacity(changes.len());
        for (entry, value) in changes {
            let entry = check_entry(&entry, false)?;
            if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_SIZE) {
                return Err(CmdError::no(
                    MAXSIZE_CODE,
                    format!("The value of {entry} is larger than {MAX_VALUE_SIZE} bytes"),
                ));
            }
            checked.push((entry, value));
        }
        let (item, _) = self.metadata_item(mailbox).await?;
        let account = self.account_id()?;
        for _ in 0..WRITE_ATTEMPTS {
            let (mut entries, version) = self.read_entries(&item).await?;
            for (entry, value) in &checked {
                match value {
                    Some(v) => entries.insert(entry.clone(), v.clone()),
                    None => entries.remove(entry),
                };
            }
            if entries.len() > MAX_ENTRIES_PER_MAILBOX {
                return Err(CmdError::no(
                    "METADATA TOOMANY",
                    format!("At most {MAX_ENTRIES_PER_MAILBOX} entries per mailbox"),
                ));
            }
            // The account's total, other items as stored plus this one as it would be.
            let others: usize = self
                .store
                .collection_get(account, names::IMAP_METADATA, None)
                .await?
                .iter()
                .filter(|i| i.id != item)
                .filter_map(|i| decode_entries(&i.value).ok())
                .map(|e| entries_bytes(&e))
                .sum();
            if others + entries_bytes(&entries) > MAX_ACCOUNT_BYTES {
                return Err(CmdError::no(
                    "METADATA TOOMANY",
                    format!("At most {MAX_ACCOUNT_BYTES} bytes of metadata per account"),
                ));
            }
            let expect = version.map_or(Expect::Absent, Expect::Version);
            let write = if entries.is_empty() {
                if version.is_none() {
                    return Done::new("SETMETADATA completed");
                }
                ItemWrite::delete(names::IMAP_METADATA, &item, expect)
            } else {
                ItemWrite::put(
                    names::IMAP_METADATA,
                    &item,
                    expect,
                    encode_entries(&entries),
                )
            };
            match self.store.collection_write(account, vec![write]).await {
                Ok(_) => return Done::new("SETMETADATA completed"),
                // Another session wrote in between: read again and retry.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CmdError::no(
            "INUSE",
            "SETMETADATA failed: changed at the same time by another session; try again",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::logged_in;
    use super::*;

    #[test]
    fn maxsize_code_names_the_limit() {
        assert_eq!(MAXSIZE_CODE, format!("METADATA MAXSIZE {MAX_VALUE_SIZE}"));
    }

    #[test]
    fn entry_names_follow_rfc_5464() {
        assert_eq!(
            check_entry("/Private/Comment", false).expect("ok"),
            "/private/comment"
        );
        assert!(check_entry("/shared/vendor/x/y", false).is_ok());
        for bad in [
            "/private",
            "/other/x",
            "private/x",
            "/shared//x",
            "/shared/x/",
            "/shared/*",
            "/shared/a%",
            "/shared/a\u{1}",
        ] {
            assert!(check_entry(bad, false).is_err(), "{bad}");
        }
        assert!(check_entry("/shared", true).is_ok());
        assert!(within("/shared", "/shared/a", MetadataDepth::One));
        assert!(!within("/shared", "/shared/a/b", MetadataDepth::One));
        assert!(within("/shared", "/shared/a/b", MetadataDepth::Infinity));
        assert!(!within("/shared/a", "/shared/ab", MetadataDepth::Infinity));
        assert!(!within("/shared/a", "/shared/a/b", MetadataDepth::Zero));
    }

    #[tokio::test]
    async fn set_get_depth_maxsize_and_limits() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        // RFC 5464 §4.3 / §4.2: server entries (mailbox "").
        t.ok("a SETMETADATA \"\" (/shared/comment \"Server note\")")
            .await;
        let out = t.ok("b GETMETADATA \"\" /shared/comment").await;
        assert!(
            out.contains("* METADATA \"\" (\"/shared/comment\" \"Server note\")\r\n"),
            "{out}"
        );
        // Mailbox entries, a literal value, case-insensitive names, NIL when absent.
        t.ok("c SETMETADATA INBOX (/private/comment {5+}\r\nhello /shared/x/y \"deep\")")
            .await;
        let out = t
            .ok("d GETMETADATA INBOX (/PRIVATE/comment /shared/missing)")
            .await;
        assert!(
            out.contains(
                "* METADATA \"INBOX\" (\"/private/comment\" \"hello\" \"/shared/missing\" NIL)\r\n"
            ),
            "{out}"
        );
        // DEPTH (§4.2.2).
        let out = t.ok("e GETMETADATA (DEPTH 1) INBOX /shared").await;
        assert!(!out.contains("/shared/x/y"), "{out}");
        let out = t.ok("f GETMETADATA (DEPTH infinity) INBOX /shared").await;
        assert!(out.contains("(\"/shared/x/y\" \"deep\")"), "{out}");
        // MAXSIZE (§4.2.1): larger values are left out and counted.
        let out = t
            .ok("g GETMETADATA (MAXSIZE 4) INBOX (/private/comment)")
            .await;
        assert!(out.contains("g OK [METADATA LONGENTRIES 5]"), "{out}");
        assert!(!out.contains("hello"), "{out}");
        // NIL removes (§4.3).
        t.ok("h SETMETADATA INBOX (/private/comment NIL)").await;
        let out = t.ok("i GETMETADATA INBOX /private/comment").await;
        assert!(out.contains("(\"/private/comment\" NIL)"), "{out}");
        // Limits: value size, entries per mailbox.
        let big = "x".repeat(MAX_VALUE_SIZE + 1);
        let out = t
            .run(&format!(
                "j SETMETADATA INBOX (/shared/big {{{}+}}\r\n{big})",
                big.len()
            ))
            .await;
        assert!(
            out.contains(&format!("j NO [METADATA MAXSIZE {MAX_VALUE_SIZE}]")),
            "{out}"
        );
        let many: Vec<String> = (0..=MAX_ENTRIES_PER_MAILBOX)
            .map(|i| format!("/shared/n{i} \"v\""))
            .collect();
        let out = t
            .run(&format!("k SETMETADATA INBOX ({})", many.join(" ")))
            .await;
        assert!(out.contains("k NO [METADATA TOOMANY]"), "{out}");
        // Bad names are BAD; a missing mailbox is NONEXISTENT.
        let out = t.run("l SETMETADATA INBOX (/bogus/x \"v\")").await;
        assert!(out.contains("l BAD"), "{out}");
        let out = t.run("m GETMETADATA Nope /shared/comment").await;
        assert!(out.contains("m NO [NONEXISTENT]"), "{out}");
    }

    #[tokio::test]
    async fn rename_keeps_and_delete_drops_mailbox_metadata() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        t.ok("a CREATE Work").await;
        t.ok("b SETMETADATA Work (/private/comment \"mine\")").await;
        t.ok("c RENAME Work Job").await;
        let out = t.ok("d GETMETADATA Job /private/comment").await;
        assert!(out.contains("(\"/private/comment\" \"mine\")"), "{out}");
        t.ok("e DELETE Job").await;
        t.ok("f CREATE Job").await;
        let out = t.ok("g GETMETADATA Job /private/comment").await;
        assert!(out.contains("(\"/private/comment\" NIL)"), "{out}");
        // A value with a NUL goes out as literal8.
        t.ok("h SETMETADATA Job (/shared/bin ~{3+}\r\na\0b)").await;
        let out = t.ok("i GETMETADATA Job /shared/bin").await;
        assert!(out.contains("\"/shared/bin\" ~{3}\r\na\0b)"), "{out}");
    }
}
