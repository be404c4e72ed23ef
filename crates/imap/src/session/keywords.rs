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
use bulwark_core::keyword_case::{self, is_custom as custom};
use std::collections::{BTreeSet, HashSet};

const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// The display case of custom keywords for one account, as this session last read it
/// ([`keyword_case::KeywordCase`], shared with `bulwark import`/`export`).
#[derive(Debug, Default)]
pub(crate) struct KeywordCase {
    case: keyword_case::KeywordCase,
    loaded: bool,
    /// Lowercase keywords already looked for in the stored list (no re-read for them).
    looked_up: HashSet<String>,
}

impl KeywordCase {
    /// The IMAP form of a stored (lowercase) keyword: system flags as `\Seen`, custom
    /// keywords in their remembered case.
    pub fn flag(&self, stored: &str) -> String {
        self.case.flag(stored)
    }

    /// `(\Seen $Forwarded …)`, with `\Recent` last when `recent` (RFC 3501 §2.3.2).
    pub fn flag_list(&self, keywords: &[String], recent: bool) -> String {
        let mut flags: Vec<String> = keywords.iter().map(|k| self.flag(k)).collect();
        if recent {
            flags.push("\\Recent".into());
        }
        format!("({})", flags.join(" "))
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
    custom(stored)
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
    async fn load_keyword_case(&mut self) {
        let Ok(account) = self.account_id() else {
            return;
        };
        match keyword_case::KeywordCase::load(self.store.as_ref(), account).await {
            Ok(case) => self.keyword_case.case = case,
            Err(e) => tracing::debug!(error = %e, "IMAP: could not read the keyword case list"),
        }
        self.keyword_case.loaded = true;
    }

    /// Makes sure the case of these stored keywords is known: re-reads the list when one
    /// of them was never looked for (another session may have written it).
    pub(crate) async fn learn_keywords(&mut self, keywords: &BTreeSet<String>) {
        let case = &self.keyword_case;
        let unknown = !case.loaded
            || keywords
                .iter()
                .any(|k| !case.case.knows(k) && !case.looked_up.contains(k));
        if !unknown {
            return;
        }
        self.load_keyword_case().await;
        self.keyword_case.looked_up.extend(keywords.iter().cloned());
    }

    /// Remembers the case of custom keywords a client writes (STORE, APPEND) when it is
    /// the first to write them. Best effort: on failure the keyword still gets stored.
    pub(crate) async fn remember_keyword_case(&mut self, flags: &[String]) {
        let written: Vec<&str> = flags.iter().map(String::as_str).collect();
        if written
            .iter()
            .all(|f| f.starts_with('\\') || !is_custom(&f.to_ascii_lowercase()))
        {
            return;
        }
        let Ok(account) = self.account_id() else {
            return;
        };
        if !self.keyword_case.loaded {
            self.load_keyword_case().await;
        }
        let store = self.store.clone();
        if let Err(e) = self
            .keyword_case
            .case
            .remember(store.as_ref(), account, &written)
            .await
        {
            tracing::debug!(error = %e, "IMAP: could not remember keyword case");
            // Forget the unsaved entries: the next write starts from the store.
            self.keyword_case.loaded = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_lists_put_recent_last() {
        let case = KeywordCase::default();
        assert_eq!(
            case.flag_list(&["$seen".into(), "$forwarded".into()], true),
            "(\\Seen $Forwarded \\Recent)"
        );
        assert!(is_custom("nonjunk") && !is_custom("$deleted"));
    }
}
