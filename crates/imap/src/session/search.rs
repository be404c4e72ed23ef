//! SEARCH / UID SEARCH (RFC 9051 §6.4.4, RFC 4731 ESEARCH, RFC 5182 SEARCHRES, RFC 7162
//! MODSEQ), SORT and THREAD (RFC 5256).

use super::{CmdError, CmdResult, Done, Selected, Session};
use crate::message::{SearchView, search_view};
use crate::parser::{
    SearchCommand, SearchKey, SearchReturn, SequenceSet, SortCommand, SortKey, ThreadCommand,
};
use crate::response::compress_set;
use bulwark_store::{MessageMeta, imap_flag_to_keyword};
use std::cmp::Ordering;

/// RFC 9051 §6.4.4.4: charsets we accept (others → `NO [BADCHARSET]`).
fn check_charset(charset: Option<&str>) -> Result<(), CmdError> {
    match charset {
        None | Some("UTF-8") | Some("US-ASCII") => Ok(()),
        Some(other) => Err(CmdError::No {
            code: Some("BADCHARSET (UTF-8 US-ASCII)"),
            text: format!("Charset {other} is not supported"),
        }),
    }
}

/// Does evaluating `key` need the message content?
fn needs_content(key: &SearchKey) -> bool {
    use SearchKey::*;
    match key {
        Bcc(_) | Body(_) | Cc(_) | From(_) | Header(..) | Subject(_) | Text(_) | To(_)
        | SentBefore(_) | SentOn(_) | SentSince(_) => true,
        Not(k) => needs_content(k),
        Or(a, b) => needs_content(a) || needs_content(b),
        And(keys) => keys.iter().any(needs_content),
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
    meta: &'a MessageMeta,
    content: Option<&'a SearchView>,
}

fn has_kw(m: &MessageMeta, k: &str) -> bool {
    m.keywords.iter().any(|x| x == k)
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
    let sent = |f: &dyn Fn(i64) -> bool| c.content.and_then(|v| v.sent_day()).is_some_and(f);
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
        // IMAP4rev2 dropped \Recent; we never set it (RFC 9051 §2.3.2).
        Recent | New => false,
        Old => true,
        Bcc(s) => header("bcc", s),
        Cc(s) => header("cc", s),
        From(s) => header("from", s),
        To(s) => header("to", s),
        Subject(s) => header("subject", s),
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
        Not(k) => !matches(k, c),
        Or(a, b) => matches(a, c) || matches(b, c),
        And(keys) => keys.iter().all(|k| matches(k, c)),
    }
}

impl Session {
    /// Indices of the view matching `key`, ascending, with content views when needed.
    async fn evaluate(
        &self,
        key: &SearchKey,
        load_all: bool,
    ) -> Result<(Vec<usize>, Vec<Option<SearchView>>), CmdError> {
        let sel = self.selected()?;
        let content = load_all || needs_content(key);
        let mut views: Vec<Option<SearchView>> = Vec::with_capacity(sel.view.len());
        let mut hits = Vec::new();
        for (i, meta) in sel.view.iter().enumerate() {
            let view = if content {
                self.store
                    .blob_get(&meta.blob)
                    .await?
                    .map(|raw| search_view(&raw))
            } else {
                None
            };
            if matches(
                key,
                &Ctx {
                    sel,
                    index: i,
                    meta,
                    content: view.as_ref(),
                },
            ) {
                hits.push(i);
            }
            views.push(if load_all { view } else { None });
        }
        Ok((hits, views))
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
        let (hits, _) = self.evaluate(&s.key, false).await?;
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
                if opts.is_empty() {
                    opts.push(SearchReturn::All);
                }
                let save = opts.contains(&SearchReturn::Save);
                let (min, max) = (hits.first().copied(), hits.last().copied());
                if save {
                    // RFC 5182 §2.4: with only MIN/MAX, only those are saved.
                    let only_minmax = !opts.contains(&SearchReturn::All)
                        && !opts.contains(&SearchReturn::Count)
                        && (opts.contains(&SearchReturn::Min) || opts.contains(&SearchReturn::Max));
                    let chosen: Vec<usize> = if only_minmax {
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
                            SearchReturn::Save => {}
                        }
                    }
                    if with_modseq && !hits.is_empty() {
                        line.push_str(&format!(" MODSEQ {modseq}"));
                    }
                    out.extend_from_slice(format!("{line}\r\n").as_bytes());
                }
            }
        }
        Done::new(format!("{name} completed"))
    }

    /// RFC 5256 §3 SORT.
    pub(crate) async fn cmd_sort(&mut self, s: SortCommand, out: &mut Vec<u8>) -> CmdResult {
        check_charset(Some(&s.charset))?;
        let (mut hits, views) = self.evaluate(&s.key, true).await?;
        let sel = self.selected()?;
        let cmp_one = |a: usize, b: usize, key: SortKey| -> Ordering {
            let (ma, mb) = (&sel.view[a], &sel.view[b]);
            let (va, vb) = (views[a].as_ref(), views[b].as_ref());
            let text = |v: Option<&SearchView>, f: fn(&SearchView) -> String| {
                v.map(f).unwrap_or_default().to_lowercase()
            };
            match key {
                SortKey::Arrival => ma.received_at.cmp(&mb.received_at),
                SortKey::Size => ma.size.cmp(&mb.size),
                // RFC 5256 §3: DATE falls back to INTERNALDATE.
                SortKey::Date => {
                    let da = va.and_then(|v| v.sent_date()).unwrap_or(ma.received_at);
                    let db = vb.and_then(|v| v.sent_date()).unwrap_or(mb.received_at);
                    da.cmp(&db)
                }
                SortKey::Subject => text(va, |v| v.subject()).cmp(&text(vb, |v| v.subject())),
                SortKey::From => text(va, |v| v.from()).cmp(&text(vb, |v| v.from())),
                SortKey::To => text(va, |v| v.to()).cmp(&text(vb, |v| v.to())),
                SortKey::Cc => text(va, |v| v.cc()).cmp(&text(vb, |v| v.cc())),
            }
        };
        hits.sort_by(|&a, &b| {
            for &(reverse, key) in &s.criteria {
                let o = cmp_one(a, b, key);
                let o = if reverse { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.cmp(&b)
        });
        let list: String = hits
            .iter()
            .map(|&i| {
                format!(
                    " {}",
                    if s.uid {
                        sel.view[i].uid.0
                    } else {
                        i as u32 + 1
                    }
                )
            })
            .collect();
        out.extend_from_slice(format!("* SORT{list}\r\n").as_bytes());
        Done::new(if s.uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        })
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
