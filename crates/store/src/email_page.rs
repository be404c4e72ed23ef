//! One page of a list view ([`crate::Store::email_query_page`]): the emails of a mailbox (or
//! of the whole account), optionally narrowed by keywords, ordered by `received_at`, windowed
//! by position and limit. Backends answer it with an indexed, windowed read instead of
//! loading every email of the account; [`EmailPageQuery::page_of`] is the reference answer
//! over a full listing (the trait's default and the conformance check use it).

use crate::{Email, EmailId, MailboxId, Result, StoreError};
use std::cmp::Ordering;

/// Most keyword conditions one page query may carry (each is one SQL condition).
pub const MAX_PAGE_KEYWORDS: usize = 16;

/// What a list view asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailPageQuery {
    /// Only emails in this mailbox; `None`: every email of the account.
    pub mailbox: Option<MailboxId>,
    /// Only emails that have every one of these keywords (stored form: lowercase, no space).
    pub has_keywords: Vec<String>,
    /// Only emails that have none of these keywords.
    pub not_keywords: Vec<String>,
    /// Oldest first instead of newest first. Equal `received_at`: the higher id comes first
    /// in both directions (JMAP Email/query's tie-break).
    pub ascending: bool,
    /// Index of the first email returned (0-based).
    pub position: usize,
    /// Most emails returned.
    pub limit: usize,
    /// Count every matching email ([`EmailPage::total`]).
    pub calculate_total: bool,
}

/// The answer to an [`EmailPageQuery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailPage {
    /// The emails at `position..position + limit`, in order.
    pub ids: Vec<EmailId>,
    /// The position asked, clamped to the number of matching emails.
    pub position: usize,
    /// The number of matching emails: present when asked (it may be present otherwise).
    pub total: Option<usize>,
}

impl EmailPageQuery {
    /// Rejects keywords the stored form cannot hold (empty, or containing a space: stored
    /// keywords are space-separated), which a backend's text match would misread.
    pub fn validate(&self) -> Result<()> {
        let keywords = self.has_keywords.iter().chain(&self.not_keywords);
        if keywords.clone().count() > MAX_PAGE_KEYWORDS {
            return Err(StoreError::Invalid(format!(
                "more than {MAX_PAGE_KEYWORDS} keyword conditions"
            )));
        }
        for k in keywords {
            if !is_page_keyword(k) {
                return Err(StoreError::Invalid(format!(
                    "keyword {k:?} cannot be matched (empty or with a space)"
                )));
            }
        }
        Ok(())
    }

    /// Whether a backend must count the matches after finding `ids`: when asked, and to
    /// clamp a position that may lie past the end (an empty page).
    pub fn needs_total(&self, ids: &[EmailId]) -> bool {
        self.calculate_total || (ids.is_empty() && self.position > 0)
    }

    /// The page of `ids`, its position clamped to `total` when known.
    pub fn page(&self, ids: Vec<EmailId>, total: Option<usize>) -> EmailPage {
        EmailPage {
            ids,
            position: total.map_or(self.position, |t| self.position.min(t)),
            total,
        }
    }

    /// Whether `email` belongs to the result (ignores the window).
    pub fn matches(&self, email: &Email) -> bool {
        let has = |k: &String| email.keywords.contains(k);
        self.mailbox
            .is_none_or(|m| email.mailboxes.iter().any(|(x, _)| *x == m))
            && self.has_keywords.iter().all(has)
            && !self.not_keywords.iter().any(has)
    }

    /// The order of the result: `received_at` (ascending or descending), then id descending.
    pub fn order(&self, a: &Email, b: &Email) -> Ordering {
        let by_time = a.received_at.cmp(&b.received_at);
        let by_time = if self.ascending {
            by_time
        } else {
            by_time.reverse()
        };
        by_time.then_with(|| b.id.cmp(&a.id))
    }

    /// The reference answer over every email of the account.
    pub fn page_of(&self, all: Vec<Email>) -> EmailPage {
        let mut hits: Vec<Email> = all.into_iter().filter(|e| self.matches(e)).collect();
        hits.sort_by(|a, b| self.order(a, b));
        let total = hits.len();
        let position = self.position.min(total);
        let end = position.saturating_add(self.limit).min(total);
        EmailPage {
            ids: hits[position..end].iter().map(|e| e.id).collect(),
            position,
            total: Some(total),
        }
    }
}

/// A keyword a page query can match exactly against the stored space-separated list.
pub fn is_page_keyword(k: &str) -> bool {
    !k.is_empty() && !k.contains(' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, BlobHash, EmailSummary, ModSeq, ThreadId, Uid};

    fn email(id: i64, received_at: i64, mailbox: i64, keywords: &[&str]) -> Email {
        Email {
            id: EmailId(id),
            account: AccountId(1),
            thread: ThreadId(id),
            blob: BlobHash(String::new()),
            size: 1,
            received_at,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            mailboxes: vec![(MailboxId(mailbox), Uid(1))],
            modseq: ModSeq(1),
            summary: EmailSummary::default(),
        }
    }

    #[test]
    fn page_of_orders_by_time_then_higher_id_first_in_both_directions() {
        let all = || {
            vec![
                email(1, 10, 1, &[]),
                email(2, 20, 1, &[]),
                email(3, 10, 1, &[]),
                email(4, 5, 2, &[]),
            ]
        };
        let mut q = EmailPageQuery {
            limit: 10,
            ..EmailPageQuery::default()
        };
        let ids = |p: EmailPage| p.ids.iter().map(|e| e.0).collect::<Vec<_>>();
        assert_eq!(ids(q.page_of(all())), vec![2, 3, 1, 4]);
        q.ascending = true;
        assert_eq!(ids(q.page_of(all())), vec![4, 3, 1, 2]);
        q.mailbox = Some(MailboxId(1));
        q.position = 1;
        q.limit = 1;
        let page = q.page_of(all());
        assert_eq!(
            (ids(page.clone()), page.position, page.total),
            (vec![1], 1, Some(3))
        );
    }

    #[test]
    fn page_of_clamps_position_and_filters_keywords() {
        let all = vec![email(1, 1, 1, &["$seen"]), email(2, 2, 1, &["$seen", "a"])];
        let q = EmailPageQuery {
            has_keywords: vec!["$seen".into()],
            not_keywords: vec!["a".into()],
            position: 5,
            limit: 10,
            ..EmailPageQuery::default()
        };
        let page = q.page_of(all.clone());
        assert_eq!((page.ids.len(), page.position, page.total), (0, 1, Some(1)));
        let q = EmailPageQuery { position: 0, ..q };
        assert_eq!(q.page_of(all).ids, vec![EmailId(1)]);
    }

    #[test]
    fn validate_rejects_keywords_a_text_match_would_misread() {
        let bad = |k: &str| EmailPageQuery {
            has_keywords: vec![k.into()],
            ..EmailPageQuery::default()
        };
        assert!(bad("$seen").validate().is_ok());
        assert!(bad("").validate().is_err());
        assert!(bad("a b").validate().is_err());
    }
}
