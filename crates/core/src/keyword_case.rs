//! The case in which custom keywords are shown.
//!
//! Keywords are case-insensitive (RFC 9051 §2.3.2 `flag-keyword` is an atom compared
//! without regard to case; RFC 8621 §4.1.1 JMAP keywords likewise). The store keeps them
//! lowercase, which is what JMAP returns. IMAP, and the files `bulwark export` writes, show
//! each custom keyword in the case it was first written in (`$Forwarded`, `NonJunk`) by an
//! IMAP client or an imported mailbox. The list is kept per account in the collection
//! [`names::IMAP_KEYWORDS`] (one item, compare-and-set, so every session, node and tool
//! shows the same case). Keywords nobody wrote show as registered in the IANA "IMAP and
//! JMAP Keywords" registry (RFC 5788) when they are there, else lowercase.

use bulwark_store::collections::{Expect, ItemWrite, names};
use bulwark_store::{AccountId, ModSeq, Store, StoreError, keyword_to_imap_flag};
use std::collections::HashMap;

/// The item of [`names::IMAP_KEYWORDS`] holding the list.
const CASE_ITEM: &str = "case";
/// Most keywords whose case is remembered per account (a hostile client inventing
/// keywords stops growing the list; later ones show lowercase).
pub const MAX_REMEMBERED: usize = 1000;
/// Compare-and-set attempts before giving up on remembering a case (another writer wrote
/// the list each time; the keyword is stored anyway, only its case is lost).
const CAS_ATTEMPTS: usize = 4;

/// Keywords registered with their case in the IANA "IMAP and JMAP Keywords" registry.
const REGISTERED: [&str; 9] = [
    "$Forwarded",
    "$MDNSent",
    "$Junk",
    "$NotJunk",
    "$Phishing",
    "$Important",
    "$SubmitPending",
    "$Submitted",
    "$MailFlagBit0",
];

/// The display case of custom keywords for one account, as last read from the store.
#[derive(Debug, Default, Clone)]
pub struct KeywordCase {
    /// Lowercase → as first written.
    map: HashMap<String, String>,
    /// The item's version when read (`None`: absent or not read).
    version: Option<ModSeq>,
}

impl KeywordCase {
    /// Reads the account's list.
    pub async fn load(store: &dyn Store, account: AccountId) -> Result<Self, StoreError> {
        let items = store
            .collection_get(
                account,
                names::IMAP_KEYWORDS,
                Some(&[CASE_ITEM.to_string()]),
            )
            .await?;
        let mut case = Self::default();
        if let Some(item) = items.into_iter().next() {
            case.parse(&item.value, item.version);
        }
        Ok(case)
    }

    /// Whether the case of this stored (lowercase) keyword is remembered.
    pub fn knows(&self, stored: &str) -> bool {
        self.map.contains_key(stored)
    }

    /// A stored (lowercase) custom keyword in its remembered or registered case.
    pub fn shown(&self, stored: &str) -> String {
        if let Some(shown) = self.map.get(stored) {
            return shown.clone();
        }
        REGISTERED
            .iter()
            .find(|r| r.eq_ignore_ascii_case(stored))
            .map_or_else(|| stored.to_string(), |r| (*r).to_string())
    }

    /// A message's stored keywords for export: custom ones as [`KeywordCase::shown`], the
    /// system ones (`$seen`, …) as stored.
    pub fn shown_keywords(&self, stored: &[String]) -> Vec<String> {
        stored
            .iter()
            .map(|k| {
                if is_custom(k) {
                    self.shown(k)
                } else {
                    k.clone()
                }
            })
            .collect()
    }

    /// The IMAP form of a stored keyword: system flags as `\Seen`, custom keywords as
    /// [`KeywordCase::shown`].
    pub fn flag(&self, stored: &str) -> String {
        let system = keyword_to_imap_flag(stored);
        if system != stored {
            return system;
        }
        self.shown(stored)
    }

    /// Remembers the case of custom keywords (`written` as the client or file wrote them)
    /// that nobody wrote before; re-reads and retries when another writer got there
    /// first. `self` is the list as stored afterwards. System flags (`\Seen`, `$seen`)
    /// are ignored.
    pub async fn remember(
        &mut self,
        store: &dyn Store,
        account: AccountId,
        written: &[&str],
    ) -> Result<(), StoreError> {
        let written: Vec<&str> = written
            .iter()
            .copied()
            .filter(|f| !f.starts_with('\\') && is_custom(&f.to_ascii_lowercase()))
            .collect();
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                *self = Self::load(store, account).await?;
            }
            let mut added = false;
            for f in &written {
                let lower = f.to_ascii_lowercase();
                if !self.map.contains_key(&lower) && self.map.len() < MAX_REMEMBERED {
                    self.map.insert(lower, (*f).to_string());
                    added = true;
                }
            }
            if !added {
                return Ok(());
            }
            let expect = match self.version {
                Some(v) => Expect::Version(v),
                None => Expect::Absent,
            };
            let write = ItemWrite::put(names::IMAP_KEYWORDS, CASE_ITEM, expect, self.serialize());
            match store.collection_write(account, vec![write]).await {
                Ok(version) => {
                    self.version = Some(version);
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn parse(&mut self, value: &str, version: ModSeq) {
        let list: Vec<String> = serde_json::from_str(value).unwrap_or_default();
        self.map = list
            .into_iter()
            .map(|k| (k.to_ascii_lowercase(), k))
            .collect();
        self.version = Some(version);
    }

    fn serialize(&self) -> String {
        let mut list: Vec<&String> = self.map.values().collect();
        list.sort();
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
    }
}

/// A stored keyword that is not one of the system flags.
pub fn is_custom(stored: &str) -> bool {
    keyword_to_imap_flag(stored) == stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_show_remembered_then_registered_case() {
        let mut case = KeywordCase::default();
        case.parse(r#"["NonJunk","$label1"]"#, ModSeq(3));
        assert_eq!(case.flag("$seen"), "\\Seen");
        assert_eq!(case.flag("nonjunk"), "NonJunk");
        assert_eq!(case.flag("$label1"), "$label1");
        assert_eq!(case.flag("$forwarded"), "$Forwarded");
        assert_eq!(case.flag("work"), "work");
        assert!(case.knows("nonjunk") && !case.knows("work"));
        assert!(is_custom("nonjunk") && !is_custom("$deleted"));
    }
}
