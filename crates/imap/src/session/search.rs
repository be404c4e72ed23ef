//! SEARCH / UID SEARCH (RFC 9051 §6.4.4, RFC 4731 ESEARCH, RFC 5182 SEARCHRES, RFC 7162
//! MODSEQ), SORT and THREAD (RFC 5256).

use super::{CmdError, CmdResult, Done, Selected, Session, ViewMsg};
use crate::message::{self, SearchView, search_view_owned};
use crate::objectid;
use crate::parser::{SearchCommand, SearchKey, SearchReturn, SequenceSet, ThreadCommand};
use crate::response::{compress_set, ordered_set};
use bulwark_store::{
    AccountId, BlobHash, EmailId, SearchHeaders, StoreError, ThreadId, Uid, imap_flag_to_keyword,
};
use std::collections::HashMap;

/// RFC 9051 §6.4.4.4: charsets we accept (others → `NO [BADCHARSET]`).
pub(super) fn check_charset(charset: Option<&str>) -> Result<(), CmdError> {
    match charset {
        None | Some("UTF-8") | Some("US-ASCII") => Ok(()),
        Some(other) => Err(CmdError::No {
            code: Some("BADCHARSET (UTF-8 US-ASCII)"),
            text: format!("Charset {other} is not supported"),
        }),
    }
}

/// Most searches one session keeps up to date (RFC 5267 §4.3.1: the server may refuse more,
/// with `NO [NOUPDATE]`); each is evaluated again after every command that may change it.
pub(crate) const MAX_SEARCH_UPDATES: usize = 4;

/// A `UID SEARCH RETURN (UPDATE)` or `UID SORT RETURN (UPDATE)` kept up to date (RFC 5267
/// §4.3): its tag, its key and the UIDs last reported (in sort order for a SORT).
#[derive(Debug, Clone)]
pub(crate) struct SearchUpdate {
    pub(super) tag: String,
    pub(super) key: SearchKey,
    pub(super) result: Vec<u32>,
    /// RFC 5267 §4 CONTEXT=SORT: the sort criteria and each result's sort values.
    pub(super) sort: Option<Box<super::sort::SortContext>>,
}

/// RFC 9394 §3: the results at positions `lo..=hi` (1-based), counted from the last result
/// when `from_end`; positions past the end are left out.
pub(super) fn partial_slice<T>(items: &[T], from_end: bool, lo: u32, hi: u32) -> &[T] {
    let len = items.len();
    let (lo, hi) = (lo as usize, hi as usize);
    let (start, end) = if from_end {
        (len.saturating_sub(hi), len.saturating_sub(lo - 1))
    } else {
        ((lo - 1).min(len), hi.min(len))
    };
    &items[start..end.max(start)]
}

/// ` PARTIAL (range set)` of an ESEARCH response (RFC 9394 §3), `NIL` for no results in
/// the range; `ordered` keeps the results' order (ESORT) instead of sorting them.
pub(super) fn partial_item(
    numbers: &[u32],
    from_end: bool,
    lo: u32,
    hi: u32,
    ordered: bool,
) -> String {
    let part = partial_slice(numbers, from_end, lo, hi);
    let range = if from_end {
        format!("-{lo}:-{hi}")
    } else {
        format!("{lo}:{hi}")
    };
    let set = if part.is_empty() {
        "NIL".to_string()
    } else if ordered {
        ordered_set(part)
    } else {
        compress_set(part)
    };
    format!(" PARTIAL ({range} {set})")
}

/// What evaluating a search key needs besides the session's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    /// Flags, UIDs, sizes, dates: the view is enough.
    View,
    /// FROM/TO/CC/SUBJECT: the stored search headers (RFC 9051 §6.4.4 matches these
    /// against the envelope's fields, which the store holds decoded).
    Summary,
    /// Anything else about the content: the raw message.
    Content,
}

fn need(key: &SearchKey) -> Need {
    use SearchKey::*;
    match key {
        Cc(_) | From(_) | Subject(_) | To(_) => Need::Summary,
        Bcc(_) | Body(_) | Header(..) | Text(_) | SentBefore(_) | SentOn(_) | SentSince(_) => {
            Need::Content
        }
        Not(k) => need(k),
        Or(a, b) => need(a).max(need(b)),
        And(keys) => keys.iter().map(need).max().unwrap_or(Need::View),
        _ => Need::View,
    }
}

/// Messages whose content one store read fetches during SEARCH.
pub(super) const SEARCH_BATCH: usize = 512;

/// Messages whose stored search headers one store read fetches during SEARCH (about a
/// hundred bytes each).
const SUMMARY_BATCH: usize = 4096;

/// What one batch read brought for SEARCH, in the batch's (UID) order.
#[derive(Default)]
struct Loaded {
    /// One entry per message of the batch (`None`: not read, or the blob is missing).
    contents: Vec<Option<Vec<u8>>>,
    /// Ordered by UID; messages no longer in the mailbox are left out.
    summaries: Vec<(Uid, SearchHeaders)>,
}

/// A batch read running in the background while the previous batch is matched.
type BatchRead = tokio::task::JoinHandle<Result<Loaded, StoreError>>;

/// Does the key use THREADID (RFC 8474 §6), which the view cannot answer?
fn has_thread_id(key: &SearchKey) -> bool {
    match key {
        SearchKey::ThreadId(_) => true,
        SearchKey::Not(k) => has_thread_id(k),
        SearchKey::Or(a, b) => has_thread_id(a) || has_thread_id(b),
        SearchKey::And(keys) => keys.iter().any(has_thread_id),
        _ => false,
    }
}

/// Does the key use the save date (RFC 8514 §4.2), which the view does not keep?
fn has_save_date(key: &SearchKey) -> bool {
    match key {
        SearchKey::SavedBefore(_) | SearchKey::SavedOn(_) | SearchKey::SavedSince(_) => true,
        SearchKey::Not(k) => has_save_date(k),
        SearchKey::Or(a, b) => has_save_date(a) || has_save_date(b),
        SearchKey::And(keys) => keys.iter().any(has_save_date),
        _ => false,
    }
}

fn has_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => has_modseq(k),
        SearchKey::Or(a, b) => has_modseq(a) || has_modseq(b),
        SearchKey::And(keys) => keys.iter().any(has_modseq),
        _ => false,
    }
}

struct Ctx<'a> {
    sel: &'a Selected,
    index: usize,
    meta: &'a ViewMsg,
    content: Option<&'a SearchView>,
    summary: Option<&'a SearchHeaders>,
    /// The thread of each email of the mailbox, read only for THREADID keys.
    threads: &'a HashMap<EmailId, ThreadId>,
    /// The save date of each UID of the view, read only for SAVED* keys (RFC 8514).
    save_dates: &'a HashMap<u32, i64>,
}

fn has_kw(m: &ViewMsg, k: &str) -> bool {
    m.keywords.has(k)
}

/// RFC 3501 §6.4.4: substring, case-insensitive, on a summary field — folded as the
/// content is ([`bulwark_store::fold`]), without allocating when both are ASCII.
fn field_contains(value: &str, needle: &str) -> bool {
    bulwark_store::fold::fold_contains(value, needle)
}

fn in_set(set: &SequenceSet, n: u32, largest: u32, sel: &Selected, uid: u32) -> bool {
    match set {
        SequenceSet::Saved => sel.saved.iter().any(|u| u.0 == uid),
        _ => set.contains(n, largest),
    }
}

fn matches(key: &SearchKey, c: &Ctx<'_>) -> bool {
    use SearchKey::*;
    let m = c.meta;
    let day = m.received_at.div_euclid(86_400) * 86_400;
    let header =
        |field: &str, needle: &str| c.content.is_some_and(|v| v.header_contains(field, needle));
    // With the content at hand, match the header itself; else the stored summary.
    let envelope = |field: &str, pick: fn(&SearchHeaders) -> &str, needle: &str| match c.content {
        Some(v) => v.header_contains(field, needle),
        None => c.summary.is_some_and(|s| field_contains(pick(s), needle)),
    };
    let sent = |f: &dyn Fn(i64) -> bool| c.content.and_then(|v| v.sent_day()).is_some_and(f);
    // RFC 8514 §4.2: like BEFORE/ON/SINCE, on the save date's day; a message without one
    // (expunged meanwhile) matches none.
    let saved = |f: &dyn Fn(i64) -> bool| {
        c.save_dates
            .get(&m.uid.0)
            .is_some_and(|&d| f(d.div_euclid(86_400) * 86_400))
    };
    match key {
        All => true,
        Answered => has_kw(m, "$answered"),
        Deleted => has_kw(m, "$deleted"),
        Draft => has_kw(m, "$draft"),
        Flagged => has_kw(m, "$flagged"),
        Seen => has_kw(m, "$seen"),
        Unanswered => !has_kw(m, "$answered"),
        Undeleted => !has_kw(m, "$deleted"),
        Undraft => !has_kw(m, "$draft"),
        Unflagged => !has_kw(m, "$flagged"),
        Unseen => !has_kw(m, "$seen"),
        Keyword(k) => has_kw(m, &imap_flag_to_keyword(k)),
        Unkeyword(k) => !has_kw(m, &imap_flag_to_keyword(k)),
        // RFC 3501 §6.4.4: RECENT, NEW (recent and unseen), OLD (not recent). Recent only
        // for IMAP4rev1 sessions (RFC 9051 §2.3.2 dropped it): nothing is recent after
        // ENABLE IMAP4rev2.
        Recent => c.sel.is_recent(m.uid),
        New => c.sel.is_recent(m.uid) && !has_kw(m, "$seen"),
        Old => !c.sel.is_recent(m.uid),
        Bcc(s) => header("bcc", s),
        Cc(s) => envelope("cc", |x| &x.cc, s),
        From(s) => envelope("from", |x| &x.from, s),
        To(s) => envelope("to", |x| &x.to, s),
        Subject(s) => envelope("subject", |x| &x.subject, s),
        Header(f, s) => header(f, s),
        Body(s) => c.content.is_some_and(|v| v.body_contains(s)),
        Text(s) => c.content.is_some_and(|v| v.text_contains(s)),
        // RFC 9051 §6.4.4: dates disregard time and timezone.
        Before(d) => day < d.to_unix(),
        On(d) => day == d.to_unix(),
        Since(d) => day >= d.to_unix(),
        SentBefore(d) => sent(&|s| s < d.to_unix()),
        SentOn(d) => sent(&|s| s == d.to_unix()),
        SentSince(d) => sent(&|s| s >= d.to_unix()),
        SavedBefore(d) => saved(&|s| s < d.to_unix()),
        SavedOn(d) => saved(&|s| s == d.to_unix()),
        SavedSince(d) => saved(&|s| s >= d.to_unix()),
        // RFC 8514 §4.2: every mailbox here keeps save dates.
        SaveDateSupported => true,
        Larger(n) => u64::from(m.size) > *n,
        Smaller(n) => u64::from(m.size) < *n,
        Uid(set) => {
            let largest = c.sel.view.last().map_or(0, |x| x.uid.0);
            in_set(set, m.uid.0, largest, c.sel, m.uid.0)
        }
        SequenceSet(set) => in_set(
            set,
            c.index as u32 + 1,
            c.sel.view.len() as u32,
            c.sel,
            m.uid.0,
        ),
        ModSeq(n) => m.modseq.0 >= *n,
        // RFC 8474 §6: an id this server never gave out matches nothing.
        EmailId(id) => objectid::parse_email(id) == Some(m.email),
        ThreadId(id) => {
            objectid::parse_thread(id).is_some_and(|t| c.threads.get(&m.email) == Some(&t))
        }
        Not(k) => !matches(k, c),
        Or(a, b) => matches(a, c) || matches(b, c),
        And(keys) => keys.iter().all(|k| matches(k, c)),
    }
}

impl Session {
    /// Indices of the view matching `key`, ascending, with content views when needed.
    /// Content and summaries are read from the store in batches.
    pub(super) async fn evaluate(
        &self,
        key: &SearchKey,
        load_all: bool,
    ) -> Result<(Vec<usize>, Vec<Option<SearchView>>), CmdError> {
        let account = self.account_id()?;
        let sel = self.selected()?;
        let need = if load_all { Need::Content } else { need(key) };
        let threads: HashMap<EmailId, ThreadId> = if has_thread_id(key) {
            self.store
                .mailbox_messages(account, sel.id)
                .await?
                .into_iter()
                .map(|m| (m.email, m.thread))
                .collect()
        } else {
            HashMap::new()
        };
        let save_dates: HashMap<u32, i64> = if has_save_date(key) {
            let uids: Vec<Uid> = sel.view.iter().map(|m| m.uid).collect();
            self.store
                .message_save_dates(account, sel.id, &uids)
                .await?
                .into_iter()
                .map(|(uid, d)| (uid.0, d))
                .collect()
        } else {
            HashMap::new()
        };
        let mut views: Vec<Option<SearchView>> = Vec::with_capacity(sel.view.len());
        let mut hits = Vec::new();
        let batch_len = match need {
            Need::View => sel.view.len().max(1),
            Need::Summary => SUMMARY_BATCH,
            Need::Content => SEARCH_BATCH,
        };
        let bounds: Vec<(usize, usize)> = (0..sel.view.len())
            .step_by(batch_len)
            .map(|start| (start, (start + batch_len).min(sel.view.len())))
            .collect();
        // The next batch is read while this one is matched.
        let mut next = match bounds.first() {
            Some(&(start, end)) => self.read_batch(account, sel, need, start, end),
            None => None,
        };
        for (k, &(start, end)) in bounds.iter().enumerate() {
            let Loaded {
                contents,
                summaries,
            } = match next.take() {
                Some(read) => read
                    .await
                    .map_err(|e| StoreError::Internal(format!("search read failed: {e}")))??,
                None => Loaded::default(),
            };
            if let Some(&(start, end)) = bounds.get(k + 1) {
                next = self.read_batch(account, sel, need, start, end);
            }
            let mut contents = contents.into_iter();
            let mut summaries = summaries.into_iter().peekable();
            for (i, meta) in sel.view.iter().enumerate().take(end).skip(start) {
                let view = contents.next().flatten().map(search_view_owned);
                // Both are in UID order: skip what the store has for UIDs before this one.
                while summaries.next_if(|(uid, _)| *uid < meta.uid).is_some() {}
                let summary = summaries
                    .next_if(|(uid, _)| *uid == meta.uid)
                    .map(|(_, h)| h);
                if matches(
                    key,
                    &Ctx {
                        sel,
                        index: i,
                        meta,
                        content: view.as_ref(),
                        summary: summary.as_ref(),
                        threads: &threads,
                        save_dates: &save_dates,
                    },
                ) {
                    hits.push(i);
                }
                if load_all {
                    views.push(view);
                }
            }
        }
        Ok((hits, views))
    }

    /// Starts reading what matching the view's messages `start..end` needs (`None` when
    /// the view is enough).
    fn read_batch(
        &self,
        account: AccountId,
        sel: &Selected,
        need: Need,
        start: usize,
        end: usize,
    ) -> Option<BatchRead> {
        let msgs = sel.view.get(start..end)?;
        let uids: Vec<Uid> = msgs.iter().map(|m| m.uid).collect();
        let hashes: Vec<BlobHash> = match need {
            Need::View => return None,
            Need::Summary => Vec::new(),
            Need::Content => msgs.iter().map(|m| m.blob.to_hash()).collect(),
        };
        let store = self.store.clone();
        let mailbox = sel.id;
        Some(tokio::spawn(async move {
            let mut loaded = Loaded::default();
            if need == Need::Summary {
                loaded.summaries = store
                    .message_search_headers(account, mailbox, &uids)
                    .await?;
            } else {
                loaded.contents = store.blob_get_many(&hashes).await?;
            }
            Ok(loaded)
        }))
    }

    pub(crate) async fn cmd_search(
        &mut self,
        tag: &str,
        s: SearchCommand,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let name = if s.uid { "UID SEARCH" } else { "SEARCH" };
        check_charset(s.charset.as_deref())?;
        let with_modseq = has_modseq(&s.key);
        if with_modseq {
            self.enabled.condstore = true;
        }
        let wants_update = s
            .ret
            .as_ref()
            .is_some_and(|o| o.contains(&SearchReturn::Update));
        if wants_update && !s.uid {
            // Sequence numbers in ADDTO/REMOVEFROM would shift with every expunge; results
            // kept up to date are UIDs here.
            return Err(CmdError::Bad("UPDATE needs UID SEARCH".into()));
        }
        let (hits, _) = self.evaluate(&s.key, false).await?;
        let update_result: Vec<u32> = if wants_update {
            let sel = self.selected()?;
            hits.iter().map(|&i| sel.view[i].uid.0).collect()
        } else {
            Vec::new()
        };
        let sel = self.selected()?;
        let numbers: Vec<u32> = hits
            .iter()
            .map(|&i| {
                if s.uid {
                    sel.view[i].uid.0
                } else {
                    i as u32 + 1
                }
            })
            .collect();
        let modseq = Session::view_modseq(&sel.view, &hits);
        match s.ret {
            None => {
                let list: String = numbers.iter().map(|n| format!(" {n}")).collect();
                let ms = if with_modseq && !hits.is_empty() {
                    format!(" (MODSEQ {modseq})")
                } else {
                    String::new()
                };
                out.extend_from_slice(format!("* SEARCH{list}{ms}\r\n").as_bytes());
            }
            Some(mut opts) => {
                all_unless_a_result_is_asked(&mut opts);
                let save = opts.contains(&SearchReturn::Save);
                let (min, max) = (hits.first().copied(), hits.last().copied());
                if save {
                    // RFC 5182 §2.4: with only MIN/MAX, only those are saved.
                    let only_minmax = !opts.contains(&SearchReturn::All)
                        && !opts.contains(&SearchReturn::Count)
                        && (opts.contains(&SearchReturn::Min) || opts.contains(&SearchReturn::Max));
                    let partial = opts.iter().find_map(|o| match *o {
                        SearchReturn::Partial { from_end, lo, hi } => Some((from_end, lo, hi)),
                        _ => None,
                    });
                    let chosen: Vec<usize> = if let Some((from_end, lo, hi)) = partial {
                        // RFC 9394 §3: with PARTIAL, the returned part is what is saved.
                        partial_slice(&hits, from_end, lo, hi).to_vec()
                    } else if only_minmax {
                        let mut v = Vec::new();
                        if opts.contains(&SearchReturn::Min) {
                            v.extend(min);
                        }
                        if opts.contains(&SearchReturn::Max) {
                            v.extend(max);
                        }
                        v
                    } else {
                        hits.clone()
                    };
                    let uids = chosen.iter().map(|&i| sel.view[i].uid).collect();
                    self.selected_mut()?.saved = uids;
                }
                // RFC 5182 §2.1: SAVE alone produces no ESEARCH response.
                if !(save && opts.len() == 1) {
                    let sel = self.selected()?;
                    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
                    if s.uid {
                        line.push_str(" UID");
                    }
                    for o in &opts {
                        match o {
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
                            SearchReturn::Count => {
                                line.push_str(&format!(" COUNT {}", numbers.len()))
                            }
                            SearchReturn::All => {
                                if !numbers.is_empty() {
                                    line.push_str(&format!(" ALL {}", compress_set(&numbers)));
                                }
                            }
                            SearchReturn::Partial { from_end, lo, hi } => {
                                line.push_str(&partial_item(&numbers, *from_end, *lo, *hi, false));
                            }
                            SearchReturn::Save | SearchReturn::Update | SearchReturn::Context => {}
                        }
                    }
                    if with_modseq && !hits.is_empty() {
                        // RFC 4731 §3.2 / RFC 7162 §3.1.5: with only MIN and/or MAX, the
                        // MODSEQ is the highest of the returned messages, not of all hits.
                        let only_minmax = opts.iter().all(|o| {
                            matches!(
                                o,
                                SearchReturn::Min | SearchReturn::Max | SearchReturn::Save
                            )
                        });
                        let modseq = if only_minmax {
                            let mut returned = Vec::new();
                            if opts.contains(&SearchReturn::Min) {
                                returned.extend(min);
                            }
                            if opts.contains(&SearchReturn::Max) {
                                returned.extend(max);
                            }
                            Session::view_modseq(&sel.view, &returned)
                        } else {
                            modseq
                        };
                        line.push_str(&format!(" MODSEQ {modseq}"));
                    }
                    out.extend_from_slice(format!("{line}\r\n").as_bytes());
                }
            }
        }
        if wants_update {
            self.register_update(tag, s.key, update_result, None, out)?;
        }
        Done::new(format!("{name} completed"))
    }

    /// RFC 5267 §4.3: keeps a UID SEARCH (or UID SORT, with `sort`) with `RETURN (UPDATE)`
    /// up to date. With too many already kept, an untagged `NO [NOUPDATE "tag"]` and the
    /// search stays a one-off.
    pub(super) fn register_update(
        &mut self,
        tag: &str,
        key: SearchKey,
        result: Vec<u32>,
        sort: Option<Box<super::sort::SortContext>>,
        out: &mut Vec<u8>,
    ) -> Result<(), CmdError> {
        let sel = self.selected()?;
        let tag_string =
            String::from_utf8_lossy(&message::quoted_or_literal(tag.as_bytes())).into_owned();
        let kept = sel.updates.as_deref().map_or(&[][..], |u| u.as_slice());
        if kept.len() >= MAX_SEARCH_UPDATES || kept.iter().any(|u| u.tag == tag) {
            out.extend_from_slice(
                format!("* NO [NOUPDATE {tag_string}] Too many searches kept up to date\r\n")
                    .as_bytes(),
            );
            return Ok(());
        }
        self.selected_mut()?
            .updates
            .get_or_insert_with(Default::default)
            .push(SearchUpdate {
                tag: tag.to_string(),
                key,
                result,
                sort,
            });
        Ok(())
    }

    /// RFC 5267 §4.3.5 CANCELUPDATE: the named searches are no longer kept up to date.
    pub(crate) fn cmd_cancel_update(&mut self, tags: &[String]) -> CmdResult {
        let sel = self.selected_mut()?;
        let kept = sel.updates.get_or_insert_with(Default::default);
        let before = kept.len();
        kept.retain(|u| !tags.contains(&u.tag));
        let after = kept.len();
        if kept.is_empty() {
            sel.updates = None;
        }
        if after + tags.len() != before {
            // RFC 5267 §4.3.5: an unknown tag is BAD.
            return Err(CmdError::Bad(
                "CANCELUPDATE names a search that is not kept up to date".into(),
            ));
        }
        Done::new("CANCELUPDATE completed")
    }

    /// RFC 5267 §4.3: after a command (or while IDLE), each search kept up to date is
    /// evaluated again and the difference sent as `REMOVEFROM` / `ADDTO` (position 0: the
    /// result of SEARCH is unordered). Messages expunged but not yet reported stay in the
    /// view, so they leave a result only once their expunge was sent.
    pub(crate) async fn context_updates(&mut self, out: &mut Vec<u8>) {
        let updates = match &self.state {
            super::State::Selected(_, s) => match s.updates.as_deref() {
                Some(u) if !u.is_empty() => u.clone(),
                _ => return,
            },
            _ => return,
        };
        let mut fresh = Vec::with_capacity(updates.len());
        for mut u in updates {
            if let Some(ctx) = u.sort.take() {
                // RFC 5267 §4 CONTEXT=SORT: positions in sort order.
                match self.resort(&u.key, &ctx).await {
                    Ok(entries) => {
                        let now: Vec<u32> = entries.iter().map(|e| e.uid).collect();
                        out.extend_from_slice(
                            super::sort::sort_update_lines(&u.tag, &u.result, &now).as_bytes(),
                        );
                        u.result = now;
                        u.sort = Some(Box::new(super::sort::SortContext {
                            criteria: ctx.criteria,
                            entries,
                        }));
                    }
                    Err(_) => u.sort = Some(ctx),
                }
                fresh.push(u);
                continue;
            }
            let Ok((hits, _)) = self.evaluate(&u.key, false).await else {
                fresh.push(u);
                continue;
            };
            let Ok(sel) = self.selected() else { return };
            let now: Vec<u32> = hits.iter().map(|&i| sel.view[i].uid.0).collect();
            let old: std::collections::HashSet<u32> = u.result.iter().copied().collect();
            let new: std::collections::HashSet<u32> = now.iter().copied().collect();
            let removed: Vec<u32> = u
                .result
                .iter()
                .copied()
                .filter(|n| !new.contains(n))
                .collect();
            let added: Vec<u32> = now.iter().copied().filter(|n| !old.contains(n)).collect();
            let tag =
                String::from_utf8_lossy(&message::quoted_or_literal(u.tag.as_bytes())).into_owned();
            if !removed.is_empty() {
                out.extend_from_slice(
                    format!(
                        "* ESEARCH (TAG {tag}) UID REMOVEFROM (0 {})\r\n",
                        compress_set(&removed)
                    )
                    .as_bytes(),
                );
            }
            if !added.is_empty() {
                out.extend_from_slice(
                    format!(
                        "* ESEARCH (TAG {tag}) UID ADDTO (0 {})\r\n",
                        compress_set(&added)
                    )
                    .as_bytes(),
                );
            }
            u.result = now;
            fresh.push(u);
        }
        if let Ok(sel) = self.selected_mut() {
            sel.updates = Some(Box::new(fresh));
        }
    }

    /// RFC 5256 §3 THREAD (REFERENCES and ORDEREDSUBJECT).
    pub(crate) async fn cmd_thread(&mut self, t: ThreadCommand, out: &mut Vec<u8>) -> CmdResult {
        check_charset(Some(&t.charset))?;
        if t.algorithm != "REFERENCES" && t.algorithm != "ORDEREDSUBJECT" {
            return Err(CmdError::Bad(format!(
                "Unknown thread algorithm {}",
                t.algorithm
            )));
        }
        let (hits, views) = self.evaluate(&t.key, true).await?;
        let sel = self.selected()?;
        let msgs: Vec<super::thread::ThreadMsg> = hits
            .iter()
            .map(|&i| {
                let v = views[i].as_ref();
                super::thread::ThreadMsg {
                    number: if t.uid {
                        sel.view[i].uid.0
                    } else {
                        i as u32 + 1
                    },
                    message_id: v.and_then(|v| v.message_id()),
                    references: v.map(|v| v.references()).unwrap_or_default(),
                    subject: v.map(|v| v.subject()).unwrap_or_default(),
                    is_reply: v.is_some_and(|v| v.subject_is_reply()),
                    date: v
                        .and_then(|v| v.sent_date())
                        .unwrap_or(sel.view[i].received_at),
                }
            })
            .collect();
        let text = if t.algorithm == "REFERENCES" {
            super::thread::references(msgs)
        } else {
            super::thread::ordered_subject(msgs)
        };
        let sep = if text.is_empty() { "" } else { " " };
        out.extend_from_slice(format!("* THREAD{sep}{text}\r\n").as_bytes());
        Done::new(if t.uid {
            "UID THREAD completed"
        } else {
            "THREAD completed"
        })
    }
}

/// RFC 4731 §3.1: `RETURN ()` means ALL; so does UPDATE or CONTEXT without a result option
/// (RFC 5267 §4.3): the client needs the result the updates apply to. For SEARCH and SORT.
pub(crate) fn all_unless_a_result_is_asked(opts: &mut Vec<SearchReturn>) {
    if opts
        .iter()
        .all(|o| matches!(o, SearchReturn::Update | SearchReturn::Context))
    {
        opts.push(SearchReturn::All);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::logged_in;

    fn message(from: &str, to: &str, cc: &str, subject: &str) -> String {
        format!(
            "From: {from}\r\nTo: {to}\r\nCc: {cc}\r\nSubject: {subject}\r\n\
             Message-ID: <{}@x>\r\n\r\nbody\r\n",
            subject.len()
        )
    }

    #[tokio::test]
    async fn header_search_decodes_encoded_words_and_ignores_case() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        // RFC 2047 encoded words: "Grüße aus Köln" and the name "Zoë".
        t.append(
            "INBOX",
            "",
            &message(
                "=?UTF-8?Q?Zo=C3=AB?= <zoe@example.org>",
                "Alice <alice@example.test>",
                "Carol <carol@example.net>",
                "=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=",
            ),
        )
        .await;
        t.append(
            "INBOX",
            "",
            &message(
                "bob@example.org",
                "dave@example.test",
                "",
                "Quarterly REPORT",
            ),
        )
        .await;
        t.ok("s SELECT INBOX").await;
        // RFC 9051 §6.4.4: substring matches, case-insensitive.
        for (query, want) in [
            ("a SEARCH SUBJECT report", "* SEARCH 2\r\n"),
            ("b SEARCH SUBJECT \"aus k\"", "* SEARCH 1\r\n"),
            ("c SEARCH CHARSET UTF-8 SUBJECT \"KÖLN\"", "* SEARCH 1\r\n"),
            ("d SEARCH FROM \"ZOË\"", "* SEARCH 1\r\n"),
            ("e SEARCH FROM EXAMPLE.ORG", "* SEARCH 1 2\r\n"),
            ("f SEARCH TO dave", "* SEARCH 2\r\n"),
            ("g SEARCH CC carol", "* SEARCH 1\r\n"),
            // Folded (bulwark_store::fold): accents and ß do not count.
            ("h SEARCH SUBJECT grusse", "* SEARCH 1\r\n"),
            ("h2 SEARCH SUBJECT grosse", "* SEARCH\r\n"),
            ("i SEARCH NOT CC carol", "* SEARCH 2\r\n"),
            ("j UID SEARCH OR FROM bob SUBJECT köln", "* SEARCH 1 2\r\n"),
        ] {
            let out = t.ok(query).await;
            assert!(out.contains(want), "{query} → {out}");
        }
        // RFC 9051 §6.4.4.4: other charsets are refused.
        assert!(super::check_charset(Some("KOI8-R")).is_err());
    }
}
