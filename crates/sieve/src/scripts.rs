//! The account's Sieve scripts (RFC 5804 §1.6 / RFC 9661 SieveScript): items of the account
//! collection [`SIEVE`] — `script:{id}` holds a script's name and source (the id never
//! changes, so a rename is one write and JMAP ids stay stable; the source is also an account
//! blob the item owns, for JMAP `blobId`), `active` the id of the one that runs on delivery
//! (at most one, RFC 5804 §2.8). Every writer (ManageSieve, JMAP
//! Sieve, the web client, the CLI) goes through these functions, so names, sizes, counts and
//! "the script compiles" are checked in one place, and compare-and-set keeps renames and
//! activations consistent across nodes.

use crate::limits::{MAX_NAME_CHARS, MAX_SCRIPT_SIZE, MAX_SCRIPTS};
use bulwark_store::collections::names::SIEVE;
use bulwark_store::{
    AccountId, BlobHash, CollectionItem, Expect, ItemWrite, ModSeq, Store, StoreError,
};
use serde::{Deserialize, Serialize};

const ACTIVE_ITEM: &str = "active";
const SCRIPT_PREFIX: &str = "script:";

/// Why a script operation was refused; each protocol maps it to its wire form (ManageSieve
/// response codes, JMAP SetErrors).
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("no script named {0:?}")]
    NotFound(String),
    #[error("a script named {0:?} exists already")]
    AlreadyExists(String),
    #[error("{0:?} is the active script; deactivate it first")]
    Active(String),
    #[error("invalid script name: {0}")]
    BadName(String),
    /// The script does not compile: the compiler's message with its line.
    #[error("{0}")]
    Invalid(String),
    #[error("at most {MAX_SCRIPTS} scripts per account")]
    TooManyScripts,
    #[error("a script may be at most {MAX_SCRIPT_SIZE} bytes")]
    TooLarge,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One script as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    /// Stable id (JMAP SieveScript id).
    pub id: String,
    pub name: String,
    pub active: bool,
    /// Bytes of source.
    pub size: usize,
    /// The source as an account blob.
    pub blob: Option<BlobHash>,
    /// The item version (a JMAP state / ETag).
    pub version: u64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    name: String,
    source: String,
    #[serde(default)]
    blob: Option<BlobHash>,
}

#[derive(Serialize, Deserialize)]
struct Active {
    id: String,
}

fn item_id(id: &str) -> String {
    format!("{SCRIPT_PREFIX}{id}")
}

/// A new script id: unique per account (time and a counter, hashed short).
fn new_id(name: &str) -> String {
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .hash(&mut h);
    COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut h);
    format!("S{:016x}", h.finish())
}

/// RFC 5804 §1.6: a name is 1–[`MAX_NAME_CHARS`] characters, no control characters (CR,
/// LF, NUL, U+007F–U+009F, U+2028, U+2029).
pub fn check_name(name: &str) -> Result<(), ScriptError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(ScriptError::BadName(format!(
            "1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(ScriptError::BadName("no control characters".into()));
    }
    Ok(())
}

/// The compiler every writer and the filter use (the same limits everywhere).
pub fn compiler() -> sieve::Compiler {
    sieve::Compiler::new()
        .with_max_script_size(MAX_SCRIPT_SIZE)
        .with_max_includes(crate::limits::MAX_NESTED_INCLUDES * 4)
}

/// RFC 5804 §2.12 CHECKSCRIPT: does `source` compile? The error names its line.
pub fn check(source: &[u8]) -> Result<sieve::Sieve, ScriptError> {
    if source.len() > MAX_SCRIPT_SIZE {
        return Err(ScriptError::TooLarge);
    }
    // RFC 5228 §2.1: a script is UTF-8. Checked here because the compiler's tokenizer
    // unwraps the UTF-8 of every word it reads (found by the sieve_script fuzz target).
    if let Err(e) = std::str::from_utf8(source) {
        return Err(ScriptError::Invalid(format!(
            "the script is not UTF-8 (byte {})",
            e.valid_up_to()
        )));
    }
    compiler()
        .compile(source)
        .map_err(|e| ScriptError::Invalid(format!("line {}: {e}", e.line_num())))
}

/// RFC 5804 §2.3 HAVESPACE: could a script of `size` bytes be stored as `name`?
pub async fn have_space(
    store: &dyn Store,
    account: AccountId,
    name: &str,
    size: usize,
) -> Result<(), ScriptError> {
    check_name(name)?;
    if size > MAX_SCRIPT_SIZE {
        return Err(ScriptError::TooLarge);
    }
    let scripts = list(store, account).await?;
    if scripts.len() >= MAX_SCRIPTS && !scripts.iter().any(|s| s.name == name) {
        return Err(ScriptError::TooManyScripts);
    }
    Ok(())
}

/// Every item of the collection, read once.
struct Snapshot {
    items: Vec<CollectionItem>,
}

impl Snapshot {
    async fn read(store: &dyn Store, account: AccountId) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            items: store.collection_get(account, SIEVE, None).await?,
        })
    }

    /// The active script's id and the `active` item's version.
    fn active(&self) -> Option<(String, u64)> {
        let item = self.items.iter().find(|i| i.id == ACTIVE_ITEM)?;
        let a: Active = serde_json::from_str(&item.value).ok()?;
        Some((a.id, item.version.0))
    }

    fn scripts(&self) -> impl Iterator<Item = (&CollectionItem, &str, Stored)> {
        self.items.iter().filter_map(|i| {
            let id = i.id.strip_prefix(SCRIPT_PREFIX)?;
            let s: Stored = serde_json::from_str(&i.value).ok()?;
            Some((i, id, s))
        })
    }

    fn by_name(&self, name: &str) -> Option<(&CollectionItem, &str, Stored)> {
        self.scripts().find(|(_, _, s)| s.name == name)
    }

    fn by_id(&self, id: &str) -> Option<(&CollectionItem, Stored)> {
        self.scripts()
            .find(|(_, i, _)| *i == id)
            .map(|(item, _, s)| (item, s))
    }

    fn active_name(&self) -> Option<String> {
        let (id, _) = self.active()?;
        self.by_id(&id).map(|(_, s)| s.name)
    }
}

/// The account's scripts, by name.
pub async fn list(store: &dyn Store, account: AccountId) -> Result<Vec<ScriptInfo>, ScriptError> {
    let snap = Snapshot::read(store, account).await?;
    let active = snap.active().map(|(id, _)| id);
    let mut out: Vec<ScriptInfo> = snap
        .scripts()
        .map(|(item, id, s)| ScriptInfo {
            id: id.to_string(),
            active: active.as_deref() == Some(id),
            size: s.source.len(),
            name: s.name,
            blob: s.blob,
            version: item.version.0,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A script's source, by name.
pub async fn get(
    store: &dyn Store,
    account: AccountId,
    name: &str,
) -> Result<Option<String>, ScriptError> {
    let snap = Snapshot::read(store, account).await?;
    Ok(snap.by_name(name).map(|(_, _, s)| s.source))
}

/// The active script (name and source), if any.
pub async fn active(
    store: &dyn Store,
    account: AccountId,
) -> Result<Option<(String, String)>, ScriptError> {
    let snap = Snapshot::read(store, account).await?;
    let Some((id, _)) = snap.active() else {
        return Ok(None);
    };
    Ok(snap.by_id(&id).map(|(_, s)| (s.name, s.source)))
}

async fn stored_value(
    store: &dyn Store,
    account: AccountId,
    name: &str,
    source: &str,
) -> Result<(String, BlobHash), ScriptError> {
    let blob = store.blob_put(account, source.as_bytes()).await?;
    let value = serde_json::to_string(&Stored {
        name: name.to_string(),
        source: source.to_string(),
        blob: Some(blob.clone()),
    })
    .map_err(|e| StoreError::Internal(e.to_string()))?;
    Ok((value, blob))
}

/// RFC 5804 §2.6 PUTSCRIPT: stores (or replaces) `name` after checking it compiles;
/// returns its id.
pub async fn put(
    store: &dyn Store,
    account: AccountId,
    name: &str,
    source: &str,
) -> Result<String, ScriptError> {
    have_space(store, account, name, source.len()).await?;
    check(source.as_bytes())?;
    let snap = Snapshot::read(store, account).await?;
    let (id, expect) = match snap.by_name(name) {
        Some((item, id, _)) => (id.to_string(), Expect::Version(item.version)),
        None => (new_id(name), Expect::Absent),
    };
    let (value, blob) = stored_value(store, account, name, source).await?;
    let mut write = ItemWrite::put(SIEVE, &item_id(&id), expect, value);
    write.blobs = vec![blob];
    store.collection_write(account, vec![write]).await?;
    Ok(id)
}

/// RFC 9661 SieveScript/set update: a new name and/or source for script `id`.
pub async fn update(
    store: &dyn Store,
    account: AccountId,
    id: &str,
    name: Option<&str>,
    source: Option<&str>,
) -> Result<(), ScriptError> {
    let snap = Snapshot::read(store, account).await?;
    let Some((item, old)) = snap.by_id(id) else {
        return Err(ScriptError::NotFound(id.to_string()));
    };
    let name = name.unwrap_or(&old.name);
    check_name(name)?;
    if name != old.name && snap.by_name(name).is_some() {
        return Err(ScriptError::AlreadyExists(name.to_string()));
    }
    let source = source.unwrap_or(&old.source);
    check(source.as_bytes())?;
    let (value, blob) = stored_value(store, account, name, source).await?;
    let mut write = ItemWrite::put(SIEVE, &item_id(id), Expect::Version(item.version), value);
    write.blobs = vec![blob];
    store.collection_write(account, vec![write]).await?;
    Ok(())
}

/// RFC 5804 §2.10 DELETESCRIPT: the active script cannot be deleted.
pub async fn delete(store: &dyn Store, account: AccountId, name: &str) -> Result<(), ScriptError> {
    let snap = Snapshot::read(store, account).await?;
    let Some((_, id, _)) = snap.by_name(name) else {
        return Err(ScriptError::NotFound(name.to_string()));
    };
    let id = id.to_string();
    delete_id(store, account, &id).await
}

/// Deletes script `id` (not while it is active).
pub async fn delete_id(store: &dyn Store, account: AccountId, id: &str) -> Result<(), ScriptError> {
    let snap = Snapshot::read(store, account).await?;
    let Some((item, stored)) = snap.by_id(id) else {
        return Err(ScriptError::NotFound(id.to_string()));
    };
    let mut writes = vec![ItemWrite::delete(
        SIEVE,
        &item_id(id),
        Expect::Version(item.version),
    )];
    match snap.active() {
        Some((active, _)) if active == id => return Err(ScriptError::Active(stored.name)),
        // The activation is part of the write: a SETACTIVE of this script racing us on
        // another node makes one of the two fail instead of leaving a dangling active id.
        Some((active, version)) => {
            writes.push(active_write(&active, Expect::Version(ModSeq(version)))?)
        }
        None => {}
    }
    store.collection_write(account, writes).await?;
    Ok(())
}

/// RFC 5804 §2.11.1 RENAMESCRIPT (an active script stays active: the id does not change).
pub async fn rename(
    store: &dyn Store,
    account: AccountId,
    old: &str,
    new: &str,
) -> Result<(), ScriptError> {
    check_name(new)?;
    let snap = Snapshot::read(store, account).await?;
    let Some((_, id, _)) = snap.by_name(old) else {
        return Err(ScriptError::NotFound(old.to_string()));
    };
    if old == new {
        return Ok(());
    }
    let id = id.to_string();
    update(store, account, &id, Some(new), None).await
}

/// RFC 5804 §2.8 SETACTIVE: `None` (the empty name) deactivates.
pub async fn set_active(
    store: &dyn Store,
    account: AccountId,
    name: Option<&str>,
) -> Result<(), ScriptError> {
    let id = match name {
        None => None,
        Some(name) => {
            let snap = Snapshot::read(store, account).await?;
            let Some((_, id, _)) = snap.by_name(name) else {
                return Err(ScriptError::NotFound(name.to_string()));
            };
            Some(id.to_string())
        }
    };
    set_active_id(store, account, id.as_deref()).await
}

/// Activates script `id` (`None`: none is active).
pub async fn set_active_id(
    store: &dyn Store,
    account: AccountId,
    id: Option<&str>,
) -> Result<(), ScriptError> {
    let snap = Snapshot::read(store, account).await?;
    let current = snap.active();
    let expect = match &current {
        Some((_, v)) => Expect::Version(ModSeq(*v)),
        None => Expect::Absent,
    };
    let write = match id {
        None if current.is_none() => return Ok(()),
        None => ItemWrite::delete(SIEVE, ACTIVE_ITEM, expect),
        Some(id) => {
            if snap.by_id(id).is_none() {
                return Err(ScriptError::NotFound(id.to_string()));
            }
            active_write(id, expect)?
        }
    };
    store.collection_write(account, vec![write]).await?;
    Ok(())
}

/// The name of the active script, if any (for the filter's cache: by id).
pub async fn active_name(
    store: &dyn Store,
    account: AccountId,
) -> Result<Option<String>, ScriptError> {
    Ok(Snapshot::read(store, account).await?.active_name())
}

fn active_write(id: &str, expect: Expect) -> Result<ItemWrite, ScriptError> {
    let value = serde_json::to_string(&Active { id: id.to_string() })
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    Ok(ItemWrite::put(SIEVE, ACTIVE_ITEM, expect, value))
}

/// The `sieve` item ids of one script and of the active marker (for JMAP /changes).
pub fn script_of_item(item_id: &str) -> Option<&str> {
    item_id.strip_prefix(SCRIPT_PREFIX)
}

/// Whether a changed item is the active marker.
pub fn is_active_item(item_id: &str) -> bool {
    item_id == ACTIVE_ITEM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_script_is_refused_not_a_panic() {
        // The fuzzer's find: an invalid UTF-8 byte inside a word.
        let mut script = b"keep;\r\nkeep\"-10191-10191".to_vec();
        script.push(0xd6);
        script.extend_from_slice(b"1114\0\0\nkeep;");
        match check(&script) {
            Err(ScriptError::Invalid(m)) => assert!(m.contains("not UTF-8"), "{m}"),
            other => panic!("expected Invalid, got {:?}", other.map(|_| ())),
        }
        assert!(check("keep; # caf\u{e9}\r\n".as_bytes()).is_ok());
    }
    use bulwark_store::NewAccount;
    use bulwark_store::sqlite::SqliteStore;

    #[tokio::test]
    async fn scripts_are_checked_listed_activated_renamed_and_deleted() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SqliteStore::open(dir.path()).expect("open");
        store.domain_add("example.test").await.expect("domain");
        let account = store
            .account_create(NewAccount {
                address: "alice@example.test".into(),
                display_name: String::new(),
                password_hash: "x".into(),
            })
            .await
            .expect("account")
            .id;
        let s = store.as_ref();
        let good =
            "require \"fileinto\";\nif header :contains \"subject\" \"x\" { fileinto \"Work\"; }\n";
        let id = put(s, account, "main", good).await.expect("put");
        let bad = put(s, account, "bad", "require \"fileinto\";\nif header {\n").await;
        assert!(
            matches!(&bad, Err(ScriptError::Invalid(m)) if m.starts_with("line ")),
            "{bad:?}"
        );
        assert!(matches!(
            put(s, account, "", good).await,
            Err(ScriptError::BadName(_))
        ));
        assert!(matches!(
            put(s, account, "a\nb", good).await,
            Err(ScriptError::BadName(_))
        ));
        let big = format!("# {}\nkeep;\n", "x".repeat(MAX_SCRIPT_SIZE));
        assert!(matches!(
            put(s, account, "big", &big).await,
            Err(ScriptError::TooLarge)
        ));
        set_active(s, account, Some("main"))
            .await
            .expect("activate");
        assert!(matches!(
            delete(s, account, "main").await,
            Err(ScriptError::Active(_))
        ));
        assert!(matches!(
            set_active(s, account, Some("nope")).await,
            Err(ScriptError::NotFound(_))
        ));
        rename(s, account, "main", "filters").await.expect("rename");
        let l = list(s, account).await.expect("list");
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].name.as_str(), l[0].active, l[0].id.as_str()),
            ("filters", true, id.as_str())
        );
        let blob = l[0].blob.clone().expect("blob");
        assert_eq!(
            store.blob_get(&blob).await.expect("blob").as_deref(),
            Some(good.as_bytes())
        );
        assert_eq!(
            active(s, account).await.expect("active").map(|a| a.0),
            Some("filters".into())
        );
        put(s, account, "other", "keep;").await.expect("put");
        assert!(matches!(
            rename(s, account, "other", "filters").await,
            Err(ScriptError::AlreadyExists(_))
        ));
        set_active(s, account, None).await.expect("deactivate");
        assert_eq!(active(s, account).await.expect("active"), None);
        delete(s, account, "filters").await.expect("delete");
        assert_eq!(get(s, account, "filters").await.expect("get"), None);
        assert_eq!(
            get(s, account, "other").await.expect("get").as_deref(),
            Some("keep;")
        );
        for i in 0..MAX_SCRIPTS - 1 {
            put(s, account, &format!("s{i}"), "keep;")
                .await
                .expect("put");
        }
        assert!(matches!(
            put(s, account, "one-more", "keep;").await,
            Err(ScriptError::TooManyScripts)
        ));
        // Replacing an existing one is not a new script.
        put(s, account, "s0", "discard;").await.expect("replace");
    }
}
