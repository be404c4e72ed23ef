//! The account's Sieve scripts (RFC 5804 §1.6 / RFC 9661 SieveScript): items of the account
//! collection [`SIEVE`] — `script:{name}` holds a script's source, `active` the name of the
//! one that runs on delivery (at most one, RFC 5804 §2.8). Every writer (ManageSieve, JMAP
//! Sieve, the web client, the CLI) goes through these functions, so names, sizes, counts and
//! "the script compiles" are checked in one place, and compare-and-set keeps renames and
//! activations consistent across nodes.

use crate::limits::{MAX_NAME_CHARS, MAX_SCRIPT_SIZE, MAX_SCRIPTS};
use bulwark_store::collections::names::SIEVE;
use bulwark_store::{AccountId, CollectionItem, Expect, ItemWrite, Store, StoreError};
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
    pub name: String,
    pub active: bool,
    /// Bytes of source.
    pub size: usize,
    /// The item version (a JMAP state / ETag).
    pub version: u64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    source: String,
}

#[derive(Serialize, Deserialize)]
struct Active {
    name: String,
}

fn item_id(name: &str) -> String {
    format!("{SCRIPT_PREFIX}{name}")
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

async fn items(store: &dyn Store, account: AccountId) -> Result<Vec<CollectionItem>, StoreError> {
    store.collection_get(account, SIEVE, None).await
}

fn active_of(items: &[CollectionItem]) -> Option<(String, u64)> {
    let item = items.iter().find(|i| i.id == ACTIVE_ITEM)?;
    let a: Active = serde_json::from_str(&item.value).ok()?;
    Some((a.name, item.version.0))
}

/// The account's scripts, by name.
pub async fn list(store: &dyn Store, account: AccountId) -> Result<Vec<ScriptInfo>, ScriptError> {
    let items = items(store, account).await?;
    let active = active_of(&items).map(|(n, _)| n);
    let mut out: Vec<ScriptInfo> = items
        .iter()
        .filter_map(|i| {
            let name = i.id.strip_prefix(SCRIPT_PREFIX)?;
            let s: Stored = serde_json::from_str(&i.value).ok()?;
            Some(ScriptInfo {
                name: name.to_string(),
                active: active.as_deref() == Some(name),
                size: s.source.len(),
                version: i.version.0,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A script's source.
pub async fn get(
    store: &dyn Store,
    account: AccountId,
    name: &str,
) -> Result<Option<String>, ScriptError> {
    let items = store
        .collection_get(account, SIEVE, Some(&[item_id(name)]))
        .await?;
    Ok(items
        .first()
        .and_then(|i| serde_json::from_str::<Stored>(&i.value).ok())
        .map(|s| s.source))
}

/// The active script (name and source), if any.
pub async fn active(
    store: &dyn Store,
    account: AccountId,
) -> Result<Option<(String, String)>, ScriptError> {
    let items = items(store, account).await?;
    let Some((name, _)) = active_of(&items) else {
        return Ok(None);
    };
    let id = item_id(&name);
    Ok(items
        .iter()
        .find(|i| i.id == id)
        .and_then(|i| serde_json::from_str::<Stored>(&i.value).ok())
        .map(|s| (name, s.source)))
}

/// RFC 5804 §2.6 PUTSCRIPT: stores (or replaces) `name` after checking it compiles.
pub async fn put(
    store: &dyn Store,
    account: AccountId,
    name: &str,
    source: &str,
) -> Result<(), ScriptError> {
    have_space(store, account, name, source.len()).await?;
    check(source.as_bytes())?;
    let value = serde_json::to_string(&Stored {
        source: source.to_string(),
    })
    .map_err(|e| StoreError::Internal(e.to_string()))?;
    store
        .collection_write(
            account,
            vec![ItemWrite::put(SIEVE, &item_id(name), Expect::Any, value)],
        )
        .await?;
    Ok(())
}

/// RFC 5804 §2.10 DELETESCRIPT: the active script cannot be deleted.
pub async fn delete(store: &dyn Store, account: AccountId, name: &str) -> Result<(), ScriptError> {
    let items = items(store, account).await?;
    let id = item_id(name);
    let Some(item) = items.iter().find(|i| i.id == id) else {
        return Err(ScriptError::NotFound(name.to_string()));
    };
    let mut writes = vec![ItemWrite::delete(SIEVE, &id, Expect::Version(item.version))];
    match active_of(&items) {
        Some((active, _)) if active == name => return Err(ScriptError::Active(name.into())),
        // The activation is part of the write: a SETACTIVE of this script racing us on
        // another node makes one of the two fail instead of leaving a dangling active name.
        Some((active, version)) => writes.push(active_write(
            &active,
            Expect::Version(bulwark_store::ModSeq(version)),
        )?),
        None => {}
    }
    write_or_conflict(store, account, writes).await
}

/// RFC 5804 §2.11.1 RENAMESCRIPT (keeps it active if it was).
pub async fn rename(
    store: &dyn Store,
    account: AccountId,
    old: &str,
    new: &str,
) -> Result<(), ScriptError> {
    check_name(new)?;
    let items = items(store, account).await?;
    let old_id = item_id(old);
    let Some(item) = items.iter().find(|i| i.id == old_id) else {
        return Err(ScriptError::NotFound(old.to_string()));
    };
    if old == new {
        return Ok(());
    }
    if items.iter().any(|i| i.id == item_id(new)) {
        return Err(ScriptError::AlreadyExists(new.to_string()));
    }
    let mut writes = vec![
        ItemWrite::delete(SIEVE, &old_id, Expect::Version(item.version)),
        ItemWrite::put(SIEVE, &item_id(new), Expect::Absent, item.value.clone()),
    ];
    if let Some((active, version)) = active_of(&items)
        && active == old
    {
        writes.push(active_write(
            new,
            Expect::Version(bulwark_store::ModSeq(version)),
        )?);
    }
    write_or_conflict(store, account, writes).await
}

/// RFC 5804 §2.8 SETACTIVE: `None` (the empty name) deactivates.
pub async fn set_active(
    store: &dyn Store,
    account: AccountId,
    name: Option<&str>,
) -> Result<(), ScriptError> {
    let items = items(store, account).await?;
    let current = active_of(&items);
    let expect = match &current {
        Some((_, v)) => Expect::Version(bulwark_store::ModSeq(*v)),
        None => Expect::Absent,
    };
    let write = match name {
        None if current.is_none() => return Ok(()),
        None => ItemWrite::delete(SIEVE, ACTIVE_ITEM, expect),
        Some(name) => {
            if !items.iter().any(|i| i.id == item_id(name)) {
                return Err(ScriptError::NotFound(name.to_string()));
            }
            active_write(name, expect)?
        }
    };
    write_or_conflict(store, account, vec![write]).await
}

fn active_write(name: &str, expect: Expect) -> Result<ItemWrite, ScriptError> {
    let value = serde_json::to_string(&Active {
        name: name.to_string(),
    })
    .map_err(|e| StoreError::Internal(e.to_string()))?;
    Ok(ItemWrite::put(SIEVE, ACTIVE_ITEM, expect, value))
}

async fn write_or_conflict(
    store: &dyn Store,
    account: AccountId,
    writes: Vec<ItemWrite>,
) -> Result<(), ScriptError> {
    store.collection_write(account, writes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
        put(s, account, "main", good).await.expect("put");
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
        assert_eq!((l[0].name.as_str(), l[0].active), ("filters", true));
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
