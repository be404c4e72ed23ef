//! Email/query, Email/queryChanges (RFC 8621 §4.4, §4.5) and SearchSnippet/get (§5).
//! Queries run over the account's index in memory; text conditions parse the blobs.

use super::body;
use super::query;
use crate::api::args::Args;
use crate::api::{Ctx, MethodError, MethodErrorKind, current_state};
use crate::ids;
use crate::session::EMAIL_SORT_OPTIONS;
use bulwark_core::header::decode_words;
use bulwark_store::changelog::ChangeKind;
use bulwark_store::email_page::{MAX_PAGE_KEYWORDS, is_page_keyword};
use bulwark_store::fold::{fold, fold_spans, folded_contains};
use bulwark_store::{Email, EmailPageQuery, MailboxId, ThreadId};
use mail_parser::MessageParser;
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// Deepest nesting of filter operators accepted.
pub const MAX_FILTER_DEPTH: usize = 16;
/// Characters of context around the first match in a search snippet preview.
pub const SNIPPET_CONTEXT: usize = 80;

#[derive(Debug, Clone)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Vec<Filter>),
    Conds(Vec<Cond>),
}

#[derive(Debug, Clone)]
enum Cond {
    InMailbox(Option<MailboxId>),
    InMailboxOtherThan(Vec<MailboxId>),
    Before(i64),
    After(i64),
    MinSize(u64),
    MaxSize(u64),
    AllInThread(String),
    SomeInThread(String),
    NoneInThread(String),
    HasKeyword(String),
    NotKeyword(String),
    HasAttachment(bool),
    Text(String),
    From(String),
    To(String),
    Cc(String),
    Bcc(String),
    Subject(String),
    Body(String),
    Header(String, Option<String>),
}

impl Cond {
    fn needs_blob(&self) -> bool {
        matches!(
            self,
            Cond::Text(_) | Cond::Bcc(_) | Cond::Body(_) | Cond::Header(..)
        )
    }
}

impl Cond {
    /// Does the condition read only what an email never changes (its content, size and
    /// arrival), not mailboxes or keywords? (RFC 8620 §5.6 upToId.)
    fn is_immutable(&self) -> bool {
        !matches!(
            self,
            Cond::InMailbox(_)
                | Cond::InMailboxOtherThan(_)
                | Cond::AllInThread(_)
                | Cond::SomeInThread(_)
                | Cond::NoneInThread(_)
                | Cond::HasKeyword(_)
                | Cond::NotKeyword(_)
        )
    }
}

impl Filter {
    fn is_immutable(&self) -> bool {
        match self {
            Filter::And(f) | Filter::Or(f) | Filter::Not(f) => f.iter().all(Filter::is_immutable),
            Filter::Conds(c) => c.iter().all(Cond::is_immutable),
        }
    }
    fn needs_blob(&self) -> bool {
        match self {
            Filter::And(f) | Filter::Or(f) | Filter::Not(f) => f.iter().any(Filter::needs_blob),
            Filter::Conds(c) => c.iter().any(Cond::needs_blob),
        }
    }
    fn terms(&self, out: &mut Vec<String>) {
        match self {
            Filter::And(f) | Filter::Or(f) => f.iter().for_each(|x| x.terms(out)),
            Filter::Not(_) => {}
            Filter::Conds(c) => {
                for c in c {
                    if let Cond::Text(t) | Cond::Subject(t) | Cond::Body(t) = c {
                        out.push(t.clone());
                    }
                }
            }
        }
    }
}

fn unsupported(what: impl Into<String>) -> MethodError {
    MethodError::new(MethodErrorKind::UnsupportedFilter, what)
}

fn parse_filter(ctx: &Ctx<'_>, v: &Value, depth: usize) -> Result<Filter, MethodError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(unsupported("filter nested too deeply"));
    }
    let Value::Object(m) = v else {
        return Err(MethodError::invalid_arguments("filter must be an object"));
    };
    if let Some(op) = m.get("operator") {
        let Some(Value::Array(conds)) = m.get("conditions") else {
            return Err(MethodError::invalid_arguments(
                "an operator needs a conditions array",
            ));
        };
        let subs = conds
            .iter()
            .map(|c| parse_filter(ctx, c, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        return match op.as_str() {
            Some("AND") => Ok(Filter::And(subs)),
            Some("OR") => Ok(Filter::Or(subs)),
            Some("NOT") => Ok(Filter::Not(subs)),
            _ => Err(unsupported("operator must be AND, OR or NOT")),
        };
    }
    let s = |k: &str, v: &Value| -> Result<String, MethodError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| MethodError::invalid_arguments(format!("{k} must be a string")))
    };
    let date = |k: &str, v: &Value| -> Result<i64, MethodError> {
        v.as_str()
            .and_then(body::parse_date)
            .ok_or_else(|| MethodError::invalid_arguments(format!("{k} must be a UTCDate")))
    };
    let num = |k: &str, v: &Value| -> Result<u64, MethodError> {
        v.as_u64().ok_or_else(|| {
            MethodError::invalid_arguments(format!("{k} must be an unsigned integer"))
        })
    };
    let mailbox = |id: &str| ctx.resolve_id(id).and_then(|r| ids::parse_mailbox(&r));
    let mut conds = Vec::new();
    for (k, v) in m {
        conds.push(match k.as_str() {
            "inMailbox" => Cond::InMailbox(mailbox(&s(k, v)?)),
            "inMailboxOtherThan" => {
                let list = v.as_array().ok_or_else(|| {
                    MethodError::invalid_arguments("inMailboxOtherThan must be an array")
                })?;
                Cond::InMailboxOtherThan(
                    list.iter()
                        .filter_map(|x| x.as_str().and_then(mailbox))
                        .collect(),
                )
            }
            "before" => Cond::Before(date(k, v)?),
            "after" => Cond::After(date(k, v)?),
            "minSize" => Cond::MinSize(num(k, v)?),
            "maxSize" => Cond::MaxSize(num(k, v)?),
            "allInThreadHaveKeyword" => Cond::AllInThread(s(k, v)?.to_lowercase()),
            "someInThreadHaveKeyword" => Cond::SomeInThread(s(k, v)?.to_lowercase()),
            "noneInThreadHaveKeyword" => Cond::NoneInThread(s(k, v)?.to_lowercase()),
            "hasKeyword" => Cond::HasKeyword(s(k, v)?.to_lowercase()),
            "notKeyword" => Cond::NotKeyword(s(k, v)?.to_lowercase()),
            "hasAttachment" => Cond::HasAttachment(v.as_bool().ok_or_else(|| {
                MethodError::invalid_arguments("hasAttachment must be a boolean")
            })?),
            "text" => Cond::Text(fold(&s(k, v)?)),
            "from" => Cond::From(fold(&s(k, v)?)),
            "to" => Cond::To(fold(&s(k, v)?)),
            "cc" => Cond::Cc(fold(&s(k, v)?)),
            "bcc" => Cond::Bcc(fold(&s(k, v)?)),
            "subject" => Cond::Subject(fold(&s(k, v)?)),
            "body" => Cond::Body(fold(&s(k, v)?)),
            "header" => {
                let arr = v
                    .as_array()
                    .filter(|a| !a.is_empty() && a.len() <= 2 && a.iter().all(Value::is_string))
                    .ok_or_else(|| {
                        MethodError::invalid_arguments("header must be [name] or [name, value]")
                    })?;
                let name = arr[0].as_str().unwrap_or_default().to_lowercase();
                Cond::Header(name, arr.get(1).and_then(Value::as_str).map(fold))
            }
            other => return Err(unsupported(format!("unknown filter condition {other}"))),
        });
    }
    Ok(Filter::Conds(conds))
}

/// Text facts of one email, computed only when a condition needs the blob.
#[derive(Default)]
struct Parsed {
    text: String,
    body: String,
    bcc: String,
    headers: Vec<(String, String)>,
}

/// RFC 8621 §4.4.1: text conditions match the decoded headers (RFC 2047 encoded-words,
/// display names) and body text, folded as IMAP SEARCH folds ([`bulwark_store::fold`]).
fn parse_blob(raw: &[u8]) -> Parsed {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Parsed::default();
    };
    let body = fold(&body::all_text(&msg));
    let headers: Vec<(String, String)> = msg
        .headers()
        .iter()
        .map(|h| {
            let v = msg
                .raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            (h.name.as_str().to_lowercase(), fold(decode_words(v).trim()))
        })
        .collect();
    let bcc = headers
        .iter()
        .filter(|(n, _)| n == "bcc")
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let text = format!(
        "{}\n{}",
        headers
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        body
    );
    Parsed {
        text,
        body,
        bcc,
        headers,
    }
}

struct Env<'a> {
    threads: HashMap<ThreadId, Vec<&'a Email>>,
    parsed: HashMap<bulwark_store::EmailId, Parsed>,
}

fn has_kw(e: &Email, k: &str) -> bool {
    e.keywords.iter().any(|x| x == k)
}

fn eval(f: &Filter, e: &Email, env: &Env<'_>) -> bool {
    match f {
        Filter::And(s) => s.iter().all(|x| eval(x, e, env)),
        Filter::Or(s) => s.iter().any(|x| eval(x, e, env)),
        Filter::Not(s) => !s.iter().any(|x| eval(x, e, env)),
        Filter::Conds(c) => c.iter().all(|c| eval_cond(c, e, env)),
    }
}

fn eval_cond(c: &Cond, e: &Email, env: &Env<'_>) -> bool {
    let thread = || {
        env.threads
            .get(&e.thread)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let parsed = || env.parsed.get(&e.id);
    let sm = &e.summary;
    match c {
        Cond::InMailbox(m) => m.is_some_and(|m| e.mailboxes.iter().any(|(x, _)| *x == m)),
        Cond::InMailboxOtherThan(list) => e.mailboxes.iter().any(|(x, _)| !list.contains(x)),
        Cond::Before(t) => e.received_at < *t,
        Cond::After(t) => e.received_at >= *t,
        Cond::MinSize(n) => u64::from(e.size) >= *n,
        Cond::MaxSize(n) => u64::from(e.size) < *n,
        Cond::AllInThread(k) => thread().iter().all(|x| has_kw(x, k)),
        Cond::SomeInThread(k) => thread().iter().any(|x| has_kw(x, k)),
        Cond::NoneInThread(k) => !thread().iter().any(|x| has_kw(x, k)),
        Cond::HasKeyword(k) => has_kw(e, k),
        Cond::NotKeyword(k) => !has_kw(e, k),
        Cond::HasAttachment(b) => sm.has_attachment == *b,
        Cond::From(t) => folded_contains(&sm.from, t),
        Cond::To(t) => folded_contains(&sm.to, t),
        Cond::Cc(t) => folded_contains(&sm.cc, t),
        Cond::Subject(t) => folded_contains(&sm.subject, t),
        Cond::Text(t) => parsed().is_some_and(|p| p.text.contains(t)),
        Cond::Body(t) => parsed().is_some_and(|p| p.body.contains(t)),
        Cond::Bcc(t) => parsed().is_some_and(|p| p.bcc.contains(t)),
        Cond::Header(name, value) => parsed().is_some_and(|p| {
            p.headers
                .iter()
                .any(|(n, v)| n == name && value.as_ref().is_none_or(|want| v.contains(want)))
        }),
    }
}

#[derive(Debug, Clone)]
struct SortKey {
    property: String,
    keyword: Option<String>,
    ascending: bool,
}

impl SortKey {
    /// Sorting by keywords depends on what changes; the rest is fixed at arrival.
    fn is_immutable(&self) -> bool {
        !matches!(
            self.property.as_str(),
            "hasKeyword" | "allInThreadHaveKeyword" | "someInThreadHaveKeyword"
        )
    }
}

fn parse_sort(args: &Args) -> Result<Vec<SortKey>, MethodError> {
    let Some(v) = args.get("sort") else {
        return Ok(vec![SortKey {
            property: "receivedAt".into(),
            keyword: None,
            ascending: false,
        }]);
    };
    let Value::Array(items) = v else {
        return Err(MethodError::invalid_arguments("sort must be an array"));
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Object(o) = item else {
            return Err(MethodError::invalid_arguments(
                "a Comparator must be an object",
            ));
        };
        let property = o
            .get("property")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let thread_kw = matches!(
            property.as_str(),
            "allInThreadHaveKeyword" | "someInThreadHaveKeyword"
        );
        if !EMAIL_SORT_OPTIONS.contains(&property.as_str()) && !thread_kw {
            return Err(MethodError::new(
                MethodErrorKind::UnsupportedSort,
                format!("cannot sort by {property:?}"),
            ));
        }
        let keyword = o
            .get("keyword")
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        if (property == "hasKeyword" || thread_kw) && keyword.is_none() {
            return Err(MethodError::invalid_arguments(format!(
                "sort by {property} needs a keyword"
            )));
        }
        if let Some(c) = o.get("collation").and_then(Value::as_str)
            && !matches!(c, "i;ascii-casemap" | "i;octet")
        {
            return Err(MethodError::new(
                MethodErrorKind::UnsupportedSort,
                format!("collation {c} is not supported"),
            ));
        }
        let ascending = o
            .get("isAscending")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        out.push(SortKey {
            property,
            keyword,
            ascending,
        });
    }
    Ok(out)
}

fn compare(a: &Email, b: &Email, keys: &[SortKey], env: &Env<'_>) -> Ordering {
    for k in keys {
        let kw = k.keyword.as_deref().unwrap_or_default();
        let thread_all = |e: &Email| {
            env.threads
                .get(&e.thread)
                .is_some_and(|t| t.iter().all(|x| has_kw(x, kw)))
        };
        let thread_some = |e: &Email| {
            env.threads
                .get(&e.thread)
                .is_some_and(|t| t.iter().any(|x| has_kw(x, kw)))
        };
        let o = match k.property.as_str() {
            "receivedAt" => a.received_at.cmp(&b.received_at),
            "sentAt" => a.summary.sent_at.cmp(&b.summary.sent_at),
            "size" => a.size.cmp(&b.size),
            "from" => a
                .summary
                .from
                .to_lowercase()
                .cmp(&b.summary.from.to_lowercase()),
            "to" => a
                .summary
                .to
                .to_lowercase()
                .cmp(&b.summary.to.to_lowercase()),
            "subject" => base_subject(&a.summary.subject).cmp(&base_subject(&b.summary.subject)),
            "hasKeyword" => has_kw(a, kw).cmp(&has_kw(b, kw)),
            "allInThreadHaveKeyword" => thread_all(a).cmp(&thread_all(b)),
            "someInThreadHaveKeyword" => thread_some(a).cmp(&thread_some(b)),
            _ => Ordering::Equal,
        };
        let o = if k.ascending { o } else { o.reverse() };
        if o.is_ne() {
            return o;
        }
    }
    b.id.cmp(&a.id)
}

/// Subject without reply/forward prefixes, lowercased (RFC 5256 base subject, simplified).
fn base_subject(s: &str) -> String {
    let mut s = s.trim().to_lowercase();
    loop {
        let before = s.len();
        for p in ["re:", "fwd:", "fw:", "aw:"] {
            if let Some(rest) = s.strip_prefix(p) {
                s = rest.trim_start().to_string();
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// Runs the query: all matching email ids in order (before windowing).
async fn run_query(ctx: &Ctx<'_>, args: &Args) -> Result<(Vec<String>, Vec<Email>), MethodError> {
    let filter = match args.get("filter") {
        Some(f) => parse_filter(ctx, f, 0)?,
        None => Filter::Conds(vec![]),
    };
    let sort = parse_sort(args)?;
    let collapse = args.bool_or("collapseThreads", false)?;
    let all = ctx.server.store.email_list(ctx.account).await?;
    let mut env = Env {
        threads: HashMap::new(),
        parsed: HashMap::new(),
    };
    for e in &all {
        env.threads.entry(e.thread).or_default().push(e);
    }
    if filter.needs_blob() {
        for e in &all {
            if let Some(raw) = ctx.server.store.blob_get(&e.blob).await? {
                env.parsed.insert(e.id, parse_blob(&raw));
            }
        }
    }
    let mut hits: Vec<&Email> = all.iter().filter(|e| eval(&filter, e, &env)).collect();
    hits.sort_by(|a, b| compare(a, b, &sort, &env));
    let mut seen_threads = HashSet::new();
    let ids_all: Vec<String> = hits
        .into_iter()
        // §4.4.3 collapseThreads: only the first email of each thread.
        .filter(|e| !collapse || seen_threads.insert(e.thread))
        .map(|e| ids::email_id(e.id))
        .collect();
    drop(env);
    Ok((ids_all, all))
}

/// Adds the conditions of `f` to `page`; false when `f` is not a list view's filter (an
/// inMailbox of a known mailbox, keywords the store can match, AND of those).
fn page_conditions(f: &Filter, page: &mut EmailPageQuery) -> bool {
    match f {
        Filter::And(subs) => subs.iter().all(|s| page_conditions(s, page)),
        Filter::Or(_) | Filter::Not(_) => false,
        Filter::Conds(conds) => conds.iter().all(|c| match c {
            Cond::InMailbox(Some(m)) if page.mailbox.is_none_or(|x| x == *m) => {
                page.mailbox = Some(*m);
                true
            }
            Cond::HasKeyword(k) if is_page_keyword(k) => {
                page.has_keywords.push(k.clone());
                true
            }
            Cond::NotKeyword(k) if is_page_keyword(k) => {
                page.not_keywords.push(k.clone());
                true
            }
            _ => false,
        }),
    }
}

/// The list-view shape of Email/query (a filter [`page_conditions`] takes, one receivedAt
/// comparator, no collapseThreads, no anchor, a non-negative position), which the store
/// answers with a windowed read; `None` for anything else (the general path). Arguments
/// are checked in the general path's order, so a bad one gives the same error.
fn page_query(
    ctx: &Ctx<'_>,
    args: &Args,
) -> Result<Option<(EmailPageQuery, Option<usize>)>, MethodError> {
    let filter = match args.get("filter") {
        Some(f) => parse_filter(ctx, f, 0)?,
        None => Filter::Conds(vec![]),
    };
    let sort = parse_sort(args)?;
    let collapse = args.bool_or("collapseThreads", false)?;
    let (limit, limit_clamped) = query::limit(args)?;
    let anchor = args.opt_str("anchor")?;
    let position = args.opt_int("position")?.unwrap_or(0);
    let calculate_total = args.bool_or("calculateTotal", false)?;
    let [key] = sort.as_slice() else {
        return Ok(None);
    };
    let mut page = EmailPageQuery {
        ascending: key.ascending,
        position: usize::try_from(position).unwrap_or(0),
        limit,
        calculate_total,
        ..EmailPageQuery::default()
    };
    let fits = key.property == "receivedAt"
        && !collapse
        && anchor.is_none()
        && position >= 0
        && page_conditions(&filter, &mut page)
        && page.has_keywords.len() + page.not_keywords.len() <= MAX_PAGE_KEYWORDS;
    Ok(fits.then_some((page, limit_clamped)))
}

pub async fn query(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let state = current_state(ctx, ChangeKind::Email).await?;
    if let Some((page_args, limit_clamped)) = page_query(ctx, &args)? {
        let page = ctx
            .server
            .store
            .email_query_page(ctx.account, &page_args)
            .await?;
        let ids: Vec<String> = page.ids.into_iter().map(ids::email_id).collect();
        let mut out = json!({
            "accountId": ids::account_id(account), "queryState": state, "canCalculateChanges": true,
            "position": page.position, "ids": ids, "collapseThreads": false,
        });
        if let Some(total) = page.total.filter(|_| page_args.calculate_total) {
            out["total"] = json!(total);
        }
        if let Some(l) = limit_clamped {
            out["limit"] = json!(l);
        }
        return Ok(out);
    }
    let (ids_all, _) = run_query(ctx, &args).await?;
    let w = query::window(&ids_all, &args)?;
    let mut out = json!({
        "accountId": ids::account_id(account), "queryState": state, "canCalculateChanges": true,
        "position": w.position, "ids": w.ids, "collapseThreads": args.bool_or("collapseThreads", false)?,
    });
    if args.bool_or("calculateTotal", false)? {
        out["total"] = json!(ids_all.len());
    }
    if let Some(l) = w.limit_clamped {
        out["limit"] = json!(l);
    }
    Ok(out)
}

pub async fn query_changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let since = args
        .opt_str("sinceQueryState")?
        .ok_or_else(|| MethodError::invalid_arguments("sinceQueryState is required"))?
        .to_string();
    let since_m = ids::parse_state(&since).ok_or_else(|| {
        MethodError::new(
            MethodErrorKind::CannotCalculateChanges,
            "unknown query state",
        )
    })?;
    let state = current_state(ctx, ChangeKind::Email).await?;
    let (current, all) = run_query(ctx, &args).await?;
    let set = ctx
        .server
        .store
        .changes_since(account, since_m, usize::MAX)
        .await?;
    let f = |v: &Vec<bulwark_store::EmailId>| -> HashSet<String> {
        v.iter().map(|e| ids::email_id(*e)).collect()
    };
    let collapse = args.bool_or("collapseThreads", false)?;
    let filter = match args.get("filter") {
        Some(Value::Null) | None => None,
        Some(v) => Some(parse_filter(ctx, v, 0)?),
    };
    // §5.6: with a filter and sort on immutable properties only, an update cannot move an
    // email into, out of or within the results; only creations and destructions count.
    let immutable = !collapse
        && filter.as_ref().is_none_or(Filter::is_immutable)
        && parse_sort(&args)?.iter().all(SortKey::is_immutable);
    let mut touched = f(&set.emails.destroyed);
    if !immutable {
        touched.extend(f(&set.emails.updated));
    }
    if collapse {
        // A change anywhere in a thread may change which email represents it.
        let threads: HashSet<ThreadId> = set
            .threads
            .created
            .iter()
            .chain(&set.threads.updated)
            .chain(&set.threads.destroyed)
            .copied()
            .collect();
        touched.extend(
            all.iter()
                .filter(|e| threads.contains(&e.thread))
                .map(|e| ids::email_id(e.id)),
        );
    }
    let up_to = match args.opt_str("upToId")? {
        Some(id) if immutable => current.iter().position(|x| x == id),
        _ => None,
    };
    let delta = query::QueryDelta {
        current: &current,
        created: f(&set.emails.created),
        touched,
        up_to,
    };
    query::query_changes_response(
        &ids::account_id(account),
        &since,
        &state,
        &delta,
        args.opt_uint("maxChanges")?,
        args.bool_or("calculateTotal", false)?,
    )
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Marks every occurrence of the (folded) terms with `<mark>` (RFC 8621 §5.1), matched
/// on the folded text and mapped back to the original characters.
fn highlight(text: &str, terms: &[String]) -> Option<String> {
    let (folded, spans) = fold_spans(text);
    let mut marks: Vec<(usize, usize)> = Vec::new();
    for t in terms.iter().filter(|t| !t.is_empty()) {
        let mut from = 0;
        while let Some(pos) = folded[from..].find(t.as_str()) {
            let (start, last) = (from + pos, from + pos + t.len() - 1);
            if let (Some(a), Some(b)) = (spans.get(start), spans.get(last)) {
                marks.push((a.start, b.end));
            }
            from += pos + t.len();
        }
    }
    if marks.is_empty() {
        return None;
    }
    marks.sort();
    let mut out = String::new();
    let mut at = 0;
    for (s, e) in marks {
        if s < at || !text.is_char_boundary(s) || !text.is_char_boundary(e) {
            continue;
        }
        out.push_str(&escape_html(&text[at..s]));
        out.push_str("<mark>");
        out.push_str(&escape_html(&text[s..e]));
        out.push_str("</mark>");
        at = e;
    }
    out.push_str(&escape_html(&text[at..]));
    Some(out)
}

pub async fn search_snippets(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let email_ids = args
        .opt_str_list("emailIds")?
        .ok_or_else(|| MethodError::invalid_arguments("emailIds is required"))?;
    crate::api::check_get_size(ctx, Some(&email_ids))?;
    let mut terms = Vec::new();
    if let Some(f) = args.get("filter") {
        parse_filter(ctx, f, 0)?.terms(&mut terms);
    }
    let lookup: Vec<_> = email_ids
        .iter()
        .filter_map(|i| ids::parse_email(i))
        .collect();
    let found = ctx.server.store.email_get(account, &lookup).await?;
    let mut list = Vec::new();
    let mut not_found = Vec::new();
    for id in email_ids {
        let Some(e) = ids::parse_email(&id).and_then(|eid| found.iter().find(|x| x.id == eid))
        else {
            not_found.push(id);
            continue;
        };
        let subject = highlight(&e.summary.subject, &terms);
        let mut preview = None;
        if !terms.is_empty()
            && let Some(raw) = ctx.server.store.blob_get(&e.blob).await?
            && let Some(msg) = MessageParser::default().parse(&raw)
        {
            let text: String = body::all_text(&msg)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let (folded, spans) = fold_spans(&text);
            if let Some(pos) = terms
                .iter()
                .filter_map(|t| folded.find(t.as_str()))
                .min()
                .and_then(|p| spans.get(p))
                .map(|r| r.start)
            {
                let chars: Vec<(usize, char)> = text.char_indices().collect();
                let ci = chars.iter().position(|(b, _)| *b >= pos).unwrap_or(0);
                let start = chars
                    .get(ci.saturating_sub(SNIPPET_CONTEXT / 2))
                    .map(|c| c.0)
                    .unwrap_or(0);
                let end = chars
                    .get(ci + SNIPPET_CONTEXT * 2)
                    .map(|c| c.0)
                    .unwrap_or(text.len());
                preview = highlight(&text[start..end], &terms);
            }
        }
        list.push(json!({ "emailId": id, "subject": subject, "preview": preview }));
    }
    // RFC 8621 §5.1: notFound is null when every email was found.
    let not_found = if not_found.is_empty() {
        Value::Null
    } else {
        json!(not_found)
    };
    Ok(json!({ "accountId": ids::account_id(account), "list": list, "notFound": not_found }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlight_marks_terms_and_escapes_html() {
        assert_eq!(
            highlight("Hello <World>", &["world".into()]).as_deref(),
            Some("Hello &lt;<mark>World</mark>&gt;")
        );
        assert_eq!(highlight("nothing", &["x".into()]), None);
    }

    #[test]
    fn list_view_filters_become_page_conditions_and_others_do_not() {
        let page = |f: Filter| {
            let mut q = EmailPageQuery::default();
            page_conditions(&f, &mut q).then_some(q)
        };
        let inbox = Cond::InMailbox(Some(MailboxId(7)));
        let q = page(Filter::And(vec![
            Filter::Conds(vec![inbox.clone(), Cond::NotKeyword("$seen".into())]),
            Filter::Conds(vec![Cond::HasKeyword("$flagged".into())]),
        ]));
        assert_eq!(
            q.map(|q| (q.mailbox, q.has_keywords, q.not_keywords)),
            Some((
                Some(MailboxId(7)),
                vec!["$flagged".to_string()],
                vec!["$seen".to_string()]
            ))
        );
        assert!(page(Filter::Conds(vec![])).is_some());
        // Unknown mailbox, two mailboxes, a keyword with a space, OR/NOT, other conditions.
        assert!(page(Filter::Conds(vec![Cond::InMailbox(None)])).is_none());
        let archive = Cond::InMailbox(Some(MailboxId(8)));
        assert!(page(Filter::Conds(vec![inbox.clone(), archive])).is_none());
        assert!(page(Filter::Conds(vec![Cond::HasKeyword("a b".into())])).is_none());
        assert!(page(Filter::Or(vec![Filter::Conds(vec![inbox.clone()])])).is_none());
        assert!(page(Filter::Not(vec![Filter::Conds(vec![inbox])])).is_none());
        assert!(page(Filter::Conds(vec![Cond::Subject("x".into())])).is_none());
    }

    #[test]
    fn base_subject_strips_reply_prefixes() {
        assert_eq!(base_subject("Re: Fwd: RE: Hello"), "hello");
    }
}
