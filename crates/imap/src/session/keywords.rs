//! Keyword case and keyword announcements.
//!
//! * **Case.** Keywords are case-insensitive (RFC 9051 §2.3.2 `flag-keyword` is an atom
//!   compared without regard to case; RFC 8621 §4.1.1 JMAP keywords likewise). The store
//!   keeps them lowercase, which is what JMAP returns. IMAP shows each custom keyword in the
//!   case an IMAP client first wrote it (`$Forwarded`, `NonJunk`), kept per account in the
//!   collection [`names::IMAP_KEYWORDS`] (one item, compare-and-set, so every session and
//!   node shows the same case). Keywords no IMAP client wrote show as registered in the IANA
//!   "IMAP and JMAP Keywords" registry (RFC 5788) when they are there, else lowercase.
//! * **Announcements.** RFC 3501 §7.2.6 / RFC 9051 §7.3.5: the untagged `FLAGS` response
//!   lists the flags in use; a keyword must be announced (with `PERMANENTFLAGS`) before a
//!   FETCH of this session uses it. The selected mailbox remembers what it announced.

use super::{Selected, Session};
use bulwark_store::collections::{Expect, ItemWrite, names};
use bulwark_store::{ModSeq, StoreError, keyword_to_imap_flag};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The item of [`names::IMAP_KEYWORDS`] holding the list.
const CASE_ITEM: &str = "case";
/// Most keywords whose case is remembered per account (a hostile client inventing
/// keywords stops growing the list; later ones show lowercase).
const MAX_REMEMBERED: usize = 1000;
/// Compare-and-set attempts before giving up on remembering a case (another session
/// wrote the list each time; the keyword is stored anyway, only its case is lost).
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

const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// The display case of custom keywords for one account, as this session last read it.
#[derive(Debug, Default)]
pub(crate) struct KeywordCase {
    /// Lowercase → as first written.
    map: HashMap<String, String>,
    /// The item's version when read (`None`: absent or not read yet).
    version: Option<ModSeq>,
    loaded: bool,
    /// Lowercase keywords already looked for in the stored list (no re-read for them).
    looked_up: HashSet<String>,
}

impl KeywordCase {
    /// The IMAP form of a stored (lowercase) keyword: system flags as `\Seen`, custom
    /// keywords in their remembered case.
    pub fn flag(&self, stored: &str) -> String {
        let system = keyword_to_imap_flag(stored);
        if system != stored {
            return system;
        }
        if let Some(shown) = self.map.get(stored) {
            return shown.clone();
        }
        REGISTERED
            .iter()
            .find(|r| r.eq_ignore_ascii_case(stored))
            .map_or_else(|| stored.to_string(), |r| (*r).to_string())
    }

    /// `(\Seen $Forwarded …)`, with `\Recent` last when `recent` (RFC 3501 §2.3.2).
    pub fn flag_list(&self, keywords: &[String], recent: bool) -> String {
        let mut flags: Vec<String> = keywords.iter().map(|k| self.flag(k)).collect();
        if recent {
            flags.push("\\Recent".into());
        }
        format!("({})", flags.join(" "))
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

impl Selected {
    /// Writes `* FLAGS` and `* OK [PERMANENTFLAGS]` for the keywords announced so far.
    pub(crate) fn write_flags(&self, case: &KeywordCase, out: &mut Vec<u8>) {
        let custom: String = self
            .announced
            .iter()
            .map(|k| format!(" {}", case.flag(k)))
            .collect();
        out.extend_from_slice(format!("* FLAGS ({SYSTEM_FLAGS}{custom})\r\n").as_bytes());
        if self.read_only {
            out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
        } else {
            out.extend_from_slice(
                format!("* OK [PERMANENTFLAGS ({SYSTEM_FLAGS}{custom} \\*)] Flags permitted\r\n")
                    .as_bytes(),
            );
        }
    }

    /// RFC 3501 §7.2.6 / RFC 9051 §7.3.5: before any FETCH uses a keyword this session has
    /// not announced, send `FLAGS` (and `PERMANENTFLAGS`) again with it.
    pub(crate) fn announce<'a>(
        &mut self,
        keywords: impl IntoIterator<Item = &'a String>,
        case: &KeywordCase,
        out: &mut Vec<u8>,
    ) {
        let mut grew = false;
        for k in keywords {
            if is_custom(k) && !self.announced.contains(k) {
                self.announced.insert(k.clone());
                grew = true;
            }
        }
        if grew {
            self.write_flags(case, out);
        }
    }
}

/// A stored keyword that is not one of the system flags.
pub(crate) fn is_custom(stored: &str) -> bool {
    keyword_to_imap_flag(stored) == stored
}

/// The custom keywords among stored `keywords`.
pub(crate) fn customs<'a>(keywords: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    keywords
        .into_iter()
        .filter(|k| is_custom(k))
        .cloned()
        .collect()
}

impl Session {
    /// Reads the account's keyword case list.
    async fn load_keyword_case(&mut self) -> Result<(), StoreError> {
        let account = match self.account_id() {
            Ok(a) => a,
            Err(_) => return Ok(()),
        };
        let items = self
            .store
            .collection_get(
                account,
                names::IMAP_KEYWORDS,
                Some(&[CASE_ITEM.to_string()]),
            )
            .await?;
        match items.into_iter().next() {
            Some(item) => self.keyword_case.parse(&item.value, item.version),
            None => {
                self.keyword_case.map.clear();
                self.keyword_case.version = None;
            }
        }
        self.keyword_case.loaded = true;
        Ok(())
    }

    /// Makes sure the case of these stored keywords is known: re-reads the list when one
    /// of them was never looked for (another session may have written it).
    pub(crate) async fn learn_keywords(&mut self, keywords: &BTreeSet<String>) {
        let case = &self.keyword_case;
        let unknown = !case.loaded
            || keywords
                .iter()
                .any(|k| !case.map.contains_key(k) && !case.looked_up.contains(k));
        if !unknown {
            return;
        }
        if let Err(e) = self.load_keyword_case().await {
            tracing::debug!(error = %e, "IMAP: could not read the keyword case list");
        }
        self.keyword_case.looked_up.extend(keywords.iter().cloned());
    }

    /// Remembers the case of custom keywords a client writes (STORE, APPEND) when it is
    /// the first to write them. Best effort: on failure the keyword still gets stored.
    pub(crate) async fn remember_keyword_case(&mut self, flags: &[String]) {
        let written: Vec<&String> = flags
            .iter()
            .filter(|f| !f.starts_with('\\') && is_custom(&f.to_ascii_lowercase()))
            .collect();
        if written.is_empty() {
            return;
        }
        let Ok(account) = self.account_id() else {
            return;
        };
        for attempt in 0..CAS_ATTEMPTS {
            if (attempt > 0 || !self.keyword_case.loaded)
                && let Err(e) = self.load_keyword_case().await
            {
                tracing::debug!(error = %e, "IMAP: could not read the keyword case list");
                return;
            }
            let case = &mut self.keyword_case;
            let mut added = false;
            for f in &written {
                let lower = f.to_ascii_lowercase();
                if !case.map.contains_key(&lower) && case.map.len() < MAX_REMEMBERED {
                    case.map.insert(lower, (*f).clone());
                    added = true;
                }
            }
            if !added {
                return;
            }
            let expect = match case.version {
                Some(v) => Expect::Version(v),
                None => Expect::Absent,
            };
            let write = ItemWrite::put(names::IMAP_KEYWORDS, CASE_ITEM, expect, case.serialize());
            match self.store.collection_write(account, vec![write]).await {
                Ok(version) => {
                    self.keyword_case.version = Some(version);
                    return;
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "IMAP: could not remember keyword case");
                    // Forget the unsaved entries: the next write starts from the store.
                    self.keyword_case.loaded = false;
                    return;
                }
            }
        }
    }
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
        assert_eq!(
            case.flag_list(&["$seen".into(), "nonjunk".into()], true),
            "(\\Seen NonJunk \\Recent)"
        );
        assert!(is_custom("nonjunk") && !is_custom("$deleted"));
    }
}
