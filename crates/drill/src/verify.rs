//! After the load: every acknowledged message must be in INBOX exactly once, read back over
//! IMAP from a live node. Waits (polling, up to a deadline) while spooled mail is replayed.

use crate::imap::ImapClient;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Pause between two looks while acknowledged mail is still missing (spool replay under way).
const POLL: Duration = Duration::from_millis(500);
/// Missing messages double-checked one by one with `SEARCH HEADER Message-ID`.
const SEARCH_CHECKS: usize = 20;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub acked: u64,
    pub found: u64,
    pub lost: u64,
    /// Drill messages (acknowledged or not) present more than once: the extra copies.
    pub duplicated: u64,
    /// Up to a few lost Message-IDs, for the report.
    pub lost_examples: Vec<String>,
}

/// Compares the acknowledged Message-IDs with those in the mailbox.
pub fn compare(acked: &[String], present: &[String], run: &str) -> Counts {
    let mut copies: HashMap<&str, u64> = HashMap::new();
    for id in present {
        *copies.entry(id.as_str()).or_default() += 1;
    }
    let mine = format!("<drill-{run}-");
    let duplicated = copies
        .iter()
        .filter(|(id, _)| id.starts_with(&mine))
        .map(|(_, n)| n.saturating_sub(1))
        .sum();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !copies.contains_key(id.as_str()))
        .collect();
    Counts {
        acked: acked.len() as u64,
        found: (acked.len() - lost.len()) as u64,
        lost: lost.len() as u64,
        duplicated,
        lost_examples: lost.iter().take(5).map(|s| s.to_string()).collect(),
    }
}

/// Reads INBOX from the first node that answers, until nothing acknowledged is missing or
/// `deadline` passes. Returns the counts and the seconds it waited.
pub async fn verify(
    imap_addrs: &[String],
    user: &str,
    pass: &str,
    acked: &[String],
    run: &str,
    deadline: Duration,
) -> Result<(Counts, f64), String> {
    let start = Instant::now();
    let end = start + deadline;
    let mut last_err = String::from("no node to read from");
    let mut last_counts: Option<Counts> = None;
    loop {
        for addr in imap_addrs {
            let mut c = match ImapClient::open_inbox(addr, user, pass).await {
                Ok(c) => c,
                Err(e) => {
                    last_err = e.to_string();
                    continue;
                }
            };
            let present = match c.message_ids().await {
                Ok(p) => p,
                Err(e) => {
                    last_err = e.to_string();
                    continue;
                }
            };
            let mut counts = compare(acked, &present, run);
            if counts.lost == 0 || Instant::now() >= end {
                // RFC 3501 §6.4.4: double-check a few missing ones by searching for them.
                let mut confirmed_lost = Vec::new();
                for id in counts.lost_examples.iter().take(SEARCH_CHECKS) {
                    if let Ok(0) = c.count_message_id(id).await {
                        confirmed_lost.push(id.clone());
                    }
                }
                let wrongly_missing = counts.lost_examples.len() - confirmed_lost.len();
                counts.lost -= wrongly_missing as u64;
                counts.found += wrongly_missing as u64;
                counts.lost_examples = confirmed_lost;
                c.logout().await;
                return Ok((counts, start.elapsed().as_secs_f64()));
            }
            c.logout().await;
            last_counts = Some(counts);
            break;
        }
        if Instant::now() >= end {
            return match last_counts {
                Some(c) => Ok((c, start.elapsed().as_secs_f64())),
                None => Err(format!("cannot read INBOX from any node: {last_err}")),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn counts_lost_and_extra_copies_of_this_run_only() {
        let acked = ids(&[
            "<drill-r-smtp-1@d>",
            "<drill-r-smtp-2@d>",
            "<drill-r-imap-3@d>",
        ]);
        let present = ids(&[
            "<drill-r-smtp-1@d>",
            "<drill-r-smtp-1@d>",
            "<drill-r-imap-3@d>",
            "<drill-r-smtp-9@d>",
            "<drill-r-smtp-9@d>",
            "<other@d>",
            "<other@d>",
        ]);
        let c = compare(&acked, &present, "r");
        assert_eq!(c.acked, 3);
        assert_eq!(c.found, 2);
        assert_eq!(c.lost, 1);
        assert_eq!(c.lost_examples, ids(&["<drill-r-smtp-2@d>"]));
        // smtp-1 twice (acked) and smtp-9 twice (unacknowledged) are both duplicates.
        assert_eq!(c.duplicated, 2);
    }
}
