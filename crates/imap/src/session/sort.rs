//! SORT / UID SORT (RFC 5256 §3) with ESORT return options (RFC 5267 §3, RFC 9394 PARTIAL),
//! and CONTEXT=SORT (RFC 5267 §4): a `UID SORT RETURN (UPDATE)` result kept up to date with
//! `ADDTO` / `REMOVEFROM` at positions in sort order.
//!
//! Every sort key of RFC 5256 and RFC 5957 is fixed for a message's life (dates, size,
//! headers), so a result kept up to date keeps each message's sort values: after a change
//! only messages new to the result are read.

use super::search::{SEARCH_BATCH, check_charset, partial_item, partial_slice};
use super::{CmdError, CmdResult, Done, Session, ViewMsg};
use crate::message::{self, SearchView, search_view_owned};
use crate::parser::{SearchKey, SearchReturn, SortCommand, SortKey};
use crate::response::ordered_set;
use bulwark_store::{BlobHash, Uid};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// One sort criterion's value for one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SortValue {
    Number(i64),
    /// Folded with `i;ascii-casemap` (RFC 5256 §3 makes it the default; RFC 4790 §9.2:
    /// US-ASCII a–z map to A–Z, then octets compare; other bytes, UTF-8 included, compare
    /// as they are).
    Text(Box<[u8]>),
}

/// A message of a sorted result: its UID and one value per sort criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SortEntry {
    pub uid: u32,
    values: Box<[SortValue]>,
}

/// What a sort kept up to date remembers (RFC 5267 §4.3): its criteria and its result, in
/// sort order, with each message's sort values.
#[derive(Debug, Clone)]
pub(crate) struct SortContext {
    pub criteria: Vec<(bool, SortKey)>,
    pub entries: Vec<SortEntry>,
}

fn casemap(s: &str) -> SortValue {
    SortValue::Text(s.bytes().map(|c| c.to_ascii_uppercase()).collect())
}

/// Do the criteria need the message content (everything but ARRIVAL and SIZE)?
fn needs_content(criteria: &[(bool, SortKey)]) -> bool {
    criteria
        .iter()
        .any(|(_, k)| !matches!(k, SortKey::Arrival | SortKey::Size))
}

/// The message's value for each criterion (a missing blob sorts as empty strings and the
/// internal date).
fn sort_entry(criteria: &[(bool, SortKey)], m: &ViewMsg, v: Option<&SearchView>) -> SortEntry {
    let text = |f: fn(&SearchView) -> String| casemap(&v.map(f).unwrap_or_default());
    let values = criteria
        .iter()
        .map(|&(_, key)| match key {
            SortKey::Arrival => SortValue::Number(m.received_at),
            SortKey::Size => SortValue::Number(i64::from(m.size)),
            // RFC 5256 §3: DATE falls back to INTERNALDATE.
            SortKey::Date => {
                SortValue::Number(v.and_then(|v| v.sent_date()).unwrap_or(m.received_at))
            }
            SortKey::Subject => text(|v| v.subject()),
            SortKey::From => text(|v| v.from()),
            SortKey::To => text(|v| v.to()),
            SortKey::Cc => text(|v| v.cc()),
            // RFC 5957 §3: compared like the other address keys (i;ascii-casemap).
            SortKey::DisplayFrom => text(|v| v.display_from()),
            SortKey::DisplayTo => text(|v| v.display_to()),
        })
        .collect();
    SortEntry {
        uid: m.uid.0,
        values,
    }
}

/// Sort order: criterion by criterion (REVERSE flips one), then by UID — which is the
/// order of sequence numbers, RFC 5256 §3's final tie-break.
fn compare(criteria: &[(bool, SortKey)], a: &SortEntry, b: &SortEntry) -> Ordering {
    for (i, &(reverse, _)) in criteria.iter().enumerate() {
        let o = a.values[i].cmp(&b.values[i]);
        let o = if reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.uid.cmp(&b.uid)
}

/// The `* ESEARCH` response of an ESORT (RFC 5267 §3): MIN and MAX are the first and
/// last in sort order, ALL and PARTIAL keep the sort order.
fn esort_line(tag: &str, uid: bool, opts: &[SearchReturn], numbers: &[u32]) -> String {
    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    for o in opts {
        match *o {
            SearchReturn::Min => {
                if let Some(n) = numbers.first() {
                    line.push_str(&format!(" MIN {n}"));
                }
            }
            SearchReturn::Max => {
                if let Some(n) = numbers.last() {
                    line.push_str(&format!(" MAX {n}"));
                }
            }
            SearchReturn::Count => line.push_str(&format!(" COUNT {}", numbers.len())),
            SearchReturn::All => {
                if !numbers.is_empty() {
                    line.push_str(&format!(" ALL {}", ordered_set(numbers)));
                }
            }
            SearchReturn::Partial { from_end, lo, hi } => {
                line.push_str(&partial_item(numbers, from_end, lo, hi, true));
            }
            SearchReturn::Save | SearchReturn::Update | SearchReturn::Context => {}
        }
    }
    line.push_str("\r\n");
    line
}

/// Runs of consecutive positions (1-based) in `list` whose UID `pick` selects: `(position
/// of the run's first message, the run's UIDs in list order)`.
fn runs(list: &[u32], pick: impl Fn(u32) -> bool) -> Vec<(usize, Vec<u32>)> {
    let mut out: Vec<(usize, Vec<u32>)> = Vec::new();
    let mut open = false;
    for (i, &uid) in list.iter().enumerate() {
        if !pick(uid) {
            open = false;
            continue;
        }
        match out.last_mut() {
            Some((_, run)) if open => run.push(uid),
            _ => out.push((i + 1, vec![uid])),
        }
        open = true;
    }
    out
}

/// RFC 5267 §4.3.2 / §4.3.3 for a SORT context: the `REMOVEFROM` and `ADDTO` responses
/// that turn the result `old` into `new` (both UIDs in sort order). Each response is one
/// run of adjacent messages with the position of its first one, so that applying them in
/// the order sent keeps every position right: removals first, last position first (each
/// counted in the result as the client holds it), then additions, first position first
/// (positions in the updated result). Messages that stay keep their relative order, as
/// their sort values never change.
pub(crate) fn sort_update_lines(tag: &str, old: &[u32], new: &[u32]) -> String {
    let tag = String::from_utf8_lossy(&message::quoted_or_literal(tag.as_bytes())).into_owned();
    let new_set: HashSet<u32> = new.iter().copied().collect();
    let old_set: HashSet<u32> = old.iter().copied().collect();
    let mut out = String::new();
    for (pos, run) in runs(old, |u| !new_set.contains(&u)).into_iter().rev() {
        out.push_str(&format!(
            "* ESEARCH (TAG {tag}) UID REMOVEFROM ({pos} {})\r\n",
            ordered_set(&run)
        ));
    }
    for (pos, run) in runs(new, |u| !old_set.contains(&u)) {
        out.push_str(&format!(
            "* ESEARCH (TAG {tag}) UID ADDTO ({pos} {})\r\n",
            ordered_set(&run)
        ));
    }
    out
}

impl Session {
    /// Sort entries for the view's messages at `indices`, reading their content in batches
    /// when the criteria need it.
    async fn sort_entries(
        &self,
        criteria: &[(bool, SortKey)],
        indices: &[usize],
    ) -> Result<Vec<SortEntry>, CmdError> {
        let sel = self.selected()?;
        let mut entries = Vec::with_capacity(indices.len());
        if !needs_content(criteria) {
            entries.extend(
                indices
                    .iter()
                    .map(|&i| sort_entry(criteria, &sel.view[i], None)),
            );
            return Ok(entries);
        }
        for batch in indices.chunks(SEARCH_BATCH) {
            let hashes: Vec<BlobHash> = batch.iter().map(|&i| sel.view[i].blob.to_hash()).collect();
            let contents = self.store.blob_get_many(&hashes).await?;
            for (&i, raw) in batch.iter().zip(contents) {
                let view = raw.map(search_view_owned);
                entries.push(sort_entry(criteria, &sel.view[i], view.as_ref()));
            }
        }
        Ok(entries)
    }

    /// RFC 5267 §4.3 with CONTEXT=SORT: the sort kept up to date evaluated again; the
    /// values of messages already in the result are reused.
    pub(super) async fn resort(
        &self,
        key: &SearchKey,
        ctx: &SortContext,
    ) -> Result<Vec<SortEntry>, CmdError> {
        let (hits, _) = self.evaluate(key, false).await?;
        let sel = self.selected()?;
        let known: HashMap<u32, &SortEntry> = ctx.entries.iter().map(|e| (e.uid, e)).collect();
        let mut entries = Vec::with_capacity(hits.len());
        let mut fresh = Vec::new();
        for &i in &hits {
            match known.get(&sel.view[i].uid.0) {
                Some(e) => entries.push((*e).clone()),
                None => fresh.push(i),
            }
        }
        entries.extend(self.sort_entries(&ctx.criteria, &fresh).await?);
        entries.sort_by(|a, b| compare(&ctx.criteria, a, b));
        Ok(entries)
    }

    /// RFC 5256 §3 SORT, with RFC 5267 §3 ESORT return options (and RFC 9394 PARTIAL) and
    /// RFC 5267 §4 CONTEXT=SORT (`RETURN (UPDATE)`).
    pub(crate) async fn cmd_sort(
        &mut self,
        tag: &str,
        s: SortCommand,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        check_charset(Some(&s.charset))?;
        let wants_update = s
            .ret
            .as_ref()
            .is_some_and(|o| o.contains(&SearchReturn::Update));
        if wants_update && !s.uid {
            // As for SEARCH: positions and UIDs stay meaningful across expunges, sequence
            // numbers would not.
            return Err(CmdError::Bad("UPDATE needs UID SORT".into()));
        }
        let content = needs_content(&s.criteria);
        let (hits, views) = self.evaluate(&s.key, content).await?;
        let sel = self.selected()?;
        let mut entries: Vec<SortEntry> = hits
            .iter()
            .map(|&i| {
                let view = views.get(i).and_then(|v| v.as_ref());
                sort_entry(&s.criteria, &sel.view[i], view)
            })
            .collect();
        drop(views);
        entries.sort_by(|a, b| compare(&s.criteria, a, b));
        // Sequence numbers: the view is in UID order.
        let numbers: Vec<u32> = entries
            .iter()
            .map(|e| {
                if s.uid {
                    e.uid
                } else {
                    sel.view.partition_point(|m| m.uid.0 < e.uid) as u32 + 1
                }
            })
            .collect();
        match s.ret {
            None => {
                let list: String = numbers.iter().map(|n| format!(" {n}")).collect();
                out.extend_from_slice(format!("* SORT{list}\r\n").as_bytes());
            }
            Some(mut opts) => {
                // RFC 5267 §3: as for SEARCH.
                super::search::all_unless_a_result_is_asked(&mut opts);
                if opts.contains(&SearchReturn::Save) {
                    // RFC 5267 §3 with RFC 5182: the saved result is a set (its order is
                    // lost); with PARTIAL only the returned part.
                    let chosen: &[SortEntry] = match opts.iter().find_map(|o| match *o {
                        SearchReturn::Partial { from_end, lo, hi } => Some((from_end, lo, hi)),
                        _ => None,
                    }) {
                        Some((from_end, lo, hi)) => partial_slice(&entries, from_end, lo, hi),
                        None => &entries,
                    };
                    let mut uids: Vec<Uid> = chosen.iter().map(|e| Uid(e.uid)).collect();
                    uids.sort_unstable();
                    self.selected_mut()?.saved = uids;
                }
                if !(opts.len() == 1 && opts[0] == SearchReturn::Save) {
                    out.extend_from_slice(esort_line(tag, s.uid, &opts, &numbers).as_bytes());
                }
            }
        }
        if wants_update {
            let ctx = SortContext {
                criteria: s.criteria,
                entries,
            };
            self.register_update(tag, s.key, numbers, Some(Box::new(ctx)), out)?;
        }
        Done::new(if s.uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::logged_in;
    use super::*;

    #[test]
    fn sort_update_positions_follow_the_sort_order() {
        // RFC 5267 §4.3.3: removals, last run first, positions in the result as held.
        let old = [5, 3, 9, 1, 7];
        let new = [5, 1];
        assert_eq!(
            sort_update_lines("t", &old, &new),
            "* ESEARCH (TAG \"t\") UID REMOVEFROM (5 7)\r\n\
             * ESEARCH (TAG \"t\") UID REMOVEFROM (2 3,9)\r\n"
        );
        // RFC 5267 §4.3.2: additions at their positions in the updated result, in order.
        let old = [5, 1];
        let new = [8, 5, 4, 6, 1, 2];
        assert_eq!(
            sort_update_lines("t", &old, &new),
            "* ESEARCH (TAG \"t\") UID ADDTO (1 8)\r\n\
             * ESEARCH (TAG \"t\") UID ADDTO (3 4,6)\r\n\
             * ESEARCH (TAG \"t\") UID ADDTO (6 2)\r\n"
        );
        assert_eq!(sort_update_lines("t", &[1, 2], &[1, 2]), "");
    }

    /// Applies update lines as a client would, in the order sent.
    fn apply(mut list: Vec<u32>, lines: &str) -> Vec<u32> {
        for line in lines.lines() {
            let (kind, rest) = if let Some(r) = line.split_once("REMOVEFROM (") {
                ("remove", r.1)
            } else if let Some(r) = line.split_once("ADDTO (") {
                ("add", r.1)
            } else {
                panic!("unexpected {line}");
            };
            let rest = rest.trim_end_matches(')');
            let (pos, set) = rest.split_once(' ').expect("pair");
            let pos: usize = pos.parse().expect("position");
            let uids: Vec<u32> = set
                .split(',')
                .flat_map(|p| match p.split_once(':') {
                    Some((a, b)) => {
                        let (a, b): (u32, u32) = (a.parse().expect("n"), b.parse().expect("n"));
                        (a..=b).collect::<Vec<_>>()
                    }
                    None => vec![p.parse().expect("n")],
                })
                .collect();
            if kind == "remove" {
                let got: Vec<u32> = list.drain(pos - 1..pos - 1 + uids.len()).collect();
                assert_eq!(got, uids, "{line}");
            } else {
                for (k, u) in uids.into_iter().enumerate() {
                    list.insert(pos - 1 + k, u);
                }
            }
        }
        list
    }

    #[test]
    fn sort_update_lines_applied_in_order_give_the_new_result() {
        let cases: [(&[u32], &[u32]); 4] = [
            (&[1, 2, 3, 4, 5, 6], &[2, 4, 6, 7]),
            (&[10, 1, 20, 2, 30], &[11, 10, 2, 31, 30, 32]),
            (&[], &[3, 1, 2]),
            (&[3, 1, 2], &[]),
        ];
        for (old, new) in cases {
            let lines = sort_update_lines("x", old, new);
            assert_eq!(apply(old.to_vec(), &lines), new.to_vec(), "{lines}");
        }
    }

    fn mail(subject: &str, size_pad: usize) -> String {
        format!(
            "From: a@example.org\r\nSubject: {subject}\r\n\r\n{}\r\n",
            "x".repeat(size_pad)
        )
    }

    #[tokio::test]
    async fn context_sort_sends_addto_and_removefrom_at_sort_positions() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        for s in ["delta", "alpha", "charlie"] {
            t.append("INBOX", "", &mail(s, 1)).await;
        }
        t.ok("s SELECT INBOX").await;
        // RFC 5267 §4: the initial result in sort order, then updates at sort positions.
        let out = t
            .ok("u1 UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 UNDELETED")
            .await;
        assert!(
            out.contains("* ESEARCH (TAG \"u1\") UID ALL 2:3,1\r\n"),
            "{out}"
        );
        // "bravo" (UID 4) goes between alpha and charlie: position 2.
        let out = t.append("INBOX", "", &mail("bravo", 1)).await;
        let out = out + &t.ok("n NOOP").await;
        assert!(
            out.contains("* ESEARCH (TAG \"u1\") UID ADDTO (2 4)\r\n"),
            "{out}"
        );
        // Deleting charlie (UID 3, now position 3) removes it from there.
        let out = t.ok("st UID STORE 3 +FLAGS.SILENT (\\Deleted)").await;
        assert!(
            out.contains("* ESEARCH (TAG \"u1\") UID REMOVEFROM (3 3)\r\n"),
            "{out}"
        );
        // An unrelated change sends nothing.
        let out = t.ok("st2 UID STORE 1 +FLAGS.SILENT (\\Seen)").await;
        assert!(!out.contains("ESEARCH"), "{out}");
        // CANCELUPDATE ends it (RFC 5267 §4.3.5).
        t.ok("c CANCELUPDATE \"u1\"").await;
        let out = t.ok("st3 UID STORE 3 -FLAGS.SILENT (\\Deleted)").await;
        assert!(!out.contains("ESEARCH"), "{out}");
        // UPDATE needs UID SORT.
        let out = t.run("b SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL").await;
        assert!(out.contains("b BAD"), "{out}");
    }

    #[tokio::test]
    async fn context_sort_with_reverse_size_and_count() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        for pad in [10, 300, 100] {
            t.append("INBOX", "", &mail("s", pad)).await;
        }
        t.ok("s SELECT INBOX").await;
        let out = t
            .ok("u2 UID SORT RETURN (UPDATE COUNT) (REVERSE SIZE) UTF-8 ALL")
            .await;
        assert!(
            out.contains("* ESEARCH (TAG \"u2\") UID COUNT 3\r\n"),
            "{out}"
        );
        // The biggest goes first; sizes need no content read.
        let out = t.append("INBOX", "", &mail("s", 1000)).await;
        let out = out + &t.ok("n NOOP").await;
        assert!(
            out.contains("* ESEARCH (TAG \"u2\") UID ADDTO (1 4)\r\n"),
            "{out}"
        );
        // The smallest between: UID 5 (size between 10 and 100 pads) at position 4.
        let out = t.append("INBOX", "", &mail("s", 50)).await;
        let out = out + &t.ok("n2 NOOP").await;
        assert!(
            out.contains("* ESEARCH (TAG \"u2\") UID ADDTO (4 5)\r\n"),
            "{out}"
        );
        // Expunge of UID 2 (position 2) once reported.
        t.ok("d UID STORE 2 +FLAGS.SILENT (\\Deleted)").await;
        let out = t.ok("e EXPUNGE").await;
        assert!(
            out.contains("* ESEARCH (TAG \"u2\") UID REMOVEFROM (2 2)\r\n"),
            "{out}"
        );
        assert!(out.find("EXPUNGE\r\n") < out.find("REMOVEFROM"), "{out}");
    }
}
