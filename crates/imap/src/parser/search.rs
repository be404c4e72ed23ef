//! SEARCH (RFC 9051 §6.4.4, RFC 4731 ESEARCH, RFC 5182 SAVE, RFC 7162 MODSEQ) and
//! SORT / THREAD (RFC 5256).

use super::ParseError;
use super::ast::*;
use super::lexer::{Cursor, PResult};
use crate::limits::MAX_SEARCH_DEPTH;

/// Most keys in one search program (flat or nested).
const MAX_SEARCH_KEYS: usize = 1000;

/// Most return options in one `RETURN (...)` (six are known).
const MAX_RETURN_OPTIONS: usize = 16;

/// `"RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")" SP` (RFC 4731 §3,
/// RFC 5182, RFC 9394 §3 PARTIAL), if present.
fn return_options(c: &mut Cursor<'_>) -> PResult<Option<Vec<SearchReturn>>> {
    if !c.try_word("RETURN ") {
        return Ok(None);
    }
    c.expect(b'(')?;
    let mut opts = Vec::new();
    if !c.try_byte(b')') {
        loop {
            if opts.len() >= MAX_RETURN_OPTIONS {
                return Err(ParseError::syntax("too many return options"));
            }
            let o = c.keyword("search return option")?;
            opts.push(match o.as_str() {
                "MIN" => SearchReturn::Min,
                "MAX" => SearchReturn::Max,
                "ALL" => SearchReturn::All,
                "COUNT" => SearchReturn::Count,
                "SAVE" => SearchReturn::Save,
                "UPDATE" => SearchReturn::Update,
                "CONTEXT" => SearchReturn::Context,
                "PARTIAL" => {
                    c.sp()?;
                    partial_range(c)?
                }
                _ => {
                    return Err(ParseError::syntax(&format!(
                        "unknown search return option {o}"
                    )));
                }
            });
            if c.try_byte(b')') {
                break;
            }
            c.sp()?;
        }
    }
    // RFC 9394 §3: PARTIAL and ALL are mutually exclusive, and PARTIAL is given once.
    let partials = opts.iter().filter(|o| o.is_partial()).count();
    if partials > 1 || (partials == 1 && opts.contains(&SearchReturn::All)) {
        return Err(ParseError::syntax(
            "PARTIAL is allowed once and not with ALL",
        ));
    }
    c.sp()?;
    Ok(Some(opts))
}

/// RFC 9394 §5: `partial-range-first = nz-number ":" nz-number` and
/// `partial-range-last = "-" nz-number ":" "-" nz-number`.
fn partial_range(c: &mut Cursor<'_>) -> PResult<SearchReturn> {
    let from_end = c.try_byte(b'-');
    let a = c.nz_number("partial range")?;
    c.expect(b':')?;
    if from_end {
        c.expect(b'-')?;
    }
    let b = c.nz_number("partial range")?;
    Ok(SearchReturn::Partial {
        from_end,
        lo: a.min(b),
        hi: a.max(b),
    })
}

pub(super) fn search(c: &mut Cursor<'_>, uid: bool) -> PResult<SearchCommand> {
    c.sp()?;
    let ret = return_options(c)?;
    let mut charset = None;
    if c.try_word("CHARSET ") {
        charset = Some(c.astring_utf8("charset")?.to_ascii_uppercase());
        c.sp()?;
    }
    let key = program(c)?;
    Ok(SearchCommand {
        uid,
        ret,
        charset,
        key,
    })
}

/// `search-key *(SP search-key)` as one key (an AND when more than one).
fn program(c: &mut Cursor<'_>) -> PResult<SearchKey> {
    let mut count = 0usize;
    let mut keys = vec![search_key(c, 0, &mut count)?];
    while c.try_byte(b' ') {
        keys.push(search_key(c, 0, &mut count)?);
    }
    Ok(if keys.len() == 1 {
        keys.remove(0)
    } else {
        SearchKey::And(keys)
    })
}

fn astring_arg(c: &mut Cursor<'_>, what: &str) -> PResult<String> {
    c.sp()?;
    let s = c.astring(what)?;
    Ok(String::from_utf8_lossy(&s).into_owned())
}

fn date_arg(c: &mut Cursor<'_>) -> PResult<Date> {
    c.sp()?;
    c.date()
}

fn search_key(c: &mut Cursor<'_>, depth: usize, count: &mut usize) -> PResult<SearchKey> {
    if depth > MAX_SEARCH_DEPTH {
        return Err(ParseError::syntax(&format!(
            "search nested too deeply (limit {MAX_SEARCH_DEPTH})"
        )));
    }
    *count += 1;
    if *count > MAX_SEARCH_KEYS {
        return Err(ParseError::syntax(&format!(
            "too many search keys (limit {MAX_SEARCH_KEYS})"
        )));
    }
    if c.try_byte(b'(') {
        let mut keys = vec![search_key(c, depth + 1, count)?];
        while c.try_byte(b' ') {
            keys.push(search_key(c, depth + 1, count)?);
        }
        c.expect(b')')?;
        return Ok(if keys.len() == 1 {
            keys.remove(0)
        } else {
            SearchKey::And(keys)
        });
    }
    if c.at_sequence_set() {
        return Ok(SearchKey::SequenceSet(c.sequence_set()?));
    }
    let name = c.keyword("search key")?;
    Ok(match name.as_str() {
        "ALL" => SearchKey::All,
        "ANSWERED" => SearchKey::Answered,
        "BCC" => SearchKey::Bcc(astring_arg(c, "search string")?),
        "BEFORE" => SearchKey::Before(date_arg(c)?),
        "BODY" => SearchKey::Body(astring_arg(c, "search string")?),
        "CC" => SearchKey::Cc(astring_arg(c, "search string")?),
        "DELETED" => SearchKey::Deleted,
        "DRAFT" => SearchKey::Draft,
        "FLAGGED" => SearchKey::Flagged,
        "FROM" => SearchKey::From(astring_arg(c, "search string")?),
        "HEADER" => {
            let field = astring_arg(c, "header field name")?;
            let value = astring_arg(c, "search string")?;
            SearchKey::Header(field, value)
        }
        "KEYWORD" => {
            c.sp()?;
            SearchKey::Keyword(c.flag()?)
        }
        "LARGER" => {
            c.sp()?;
            SearchKey::Larger(c.number64("size")?)
        }
        "NEW" => SearchKey::New,
        "NOT" => {
            c.sp()?;
            SearchKey::Not(Box::new(search_key(c, depth + 1, count)?))
        }
        "OLD" => SearchKey::Old,
        "ON" => SearchKey::On(date_arg(c)?),
        "OR" => {
            c.sp()?;
            let a = search_key(c, depth + 1, count)?;
            c.sp()?;
            let b = search_key(c, depth + 1, count)?;
            SearchKey::Or(Box::new(a), Box::new(b))
        }
        "RECENT" => SearchKey::Recent,
        "SEEN" => SearchKey::Seen,
        "SENTBEFORE" => SearchKey::SentBefore(date_arg(c)?),
        "SENTON" => SearchKey::SentOn(date_arg(c)?),
        "SENTSINCE" => SearchKey::SentSince(date_arg(c)?),
        "SINCE" => SearchKey::Since(date_arg(c)?),
        // RFC 8514 §4.2
        "SAVEDBEFORE" => SearchKey::SavedBefore(date_arg(c)?),
        "SAVEDON" => SearchKey::SavedOn(date_arg(c)?),
        "SAVEDSINCE" => SearchKey::SavedSince(date_arg(c)?),
        "SAVEDATESUPPORTED" => SearchKey::SaveDateSupported,
        "SMALLER" => {
            c.sp()?;
            SearchKey::Smaller(c.number64("size")?)
        }
        "SUBJECT" => SearchKey::Subject(astring_arg(c, "search string")?),
        "TEXT" => SearchKey::Text(astring_arg(c, "search string")?),
        "TO" => SearchKey::To(astring_arg(c, "search string")?),
        "UID" => {
            c.sp()?;
            SearchKey::Uid(c.sequence_set()?)
        }
        "UNANSWERED" => SearchKey::Unanswered,
        "UNDELETED" => SearchKey::Undeleted,
        "UNDRAFT" => SearchKey::Undraft,
        "UNFLAGGED" => SearchKey::Unflagged,
        "UNKEYWORD" => {
            c.sp()?;
            SearchKey::Unkeyword(c.flag()?)
        }
        "UNSEEN" => SearchKey::Unseen,
        "MODSEQ" => {
            // RFC 7162 §3.1.5: MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer
            c.sp()?;
            if c.peek() == Some(b'"') {
                c.string("entry name")?;
                c.sp()?;
                let t = c.keyword("entry type")?;
                if !matches!(t.as_str(), "PRIV" | "SHARED" | "ALL") {
                    return Err(ParseError::expected("entry type"));
                }
                c.sp()?;
            }
            SearchKey::ModSeq(c.number64("mod-sequence value")?)
        }
        // RFC 8474 §6: `"EMAILID" SP objectid` / `"THREADID" SP objectid`.
        "EMAILID" => {
            c.sp()?;
            SearchKey::EmailId(objectid(c)?)
        }
        "THREADID" => {
            c.sp()?;
            SearchKey::ThreadId(objectid(c)?)
        }
        _ => return Err(ParseError::syntax(&format!("unknown search key {name}"))),
    })
}

/// `sort = ["UID" SP] "SORT" [SP sort-return-opts] SP sort-criteria SP search-charset
/// 1*(SP search-key)` (RFC 5256, RFC 5267 §3 ESORT `RETURN (...)`).
pub(super) fn sort(c: &mut Cursor<'_>, uid: bool) -> PResult<SortCommand> {
    c.sp()?;
    let ret = return_options(c)?;
    c.expect(b'(')?;
    let mut criteria = Vec::new();
    loop {
        let mut reverse = false;
        let mut name = c.keyword("sort key")?;
        if name == "REVERSE" {
            reverse = true;
            c.sp()?;
            name = c.keyword("sort key")?;
        }
        let key = match name.as_str() {
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            _ => return Err(ParseError::syntax(&format!("unknown sort key {name}"))),
        };
        criteria.push((reverse, key));
        if c.try_byte(b')') {
            break;
        }
        c.sp()?;
    }
    c.sp()?;
    let charset = c.astring_utf8("charset")?.to_ascii_uppercase();
    c.sp()?;
    let key = program(c)?;
    Ok(SortCommand {
        uid,
        ret,
        criteria,
        charset,
        key,
    })
}

/// `thread = ["UID" SP] "THREAD" SP thread-alg SP search-charset 1*(SP search-key)`
pub(super) fn thread(c: &mut Cursor<'_>, uid: bool) -> PResult<ThreadCommand> {
    c.sp()?;
    let algorithm = c.keyword("thread algorithm")?;
    c.sp()?;
    let charset = c.astring_utf8("charset")?.to_ascii_uppercase();
    c.sp()?;
    let key = program(c)?;
    Ok(ThreadCommand {
        uid,
        algorithm,
        charset,
        key,
    })
}

/// RFC 8474 §7: `objectid = 1*255(ALPHA / DIGIT / "_" / "-")`.
pub(super) fn objectid(c: &mut Cursor<'_>) -> PResult<String> {
    let id = c.atom("object id")?;
    if id.is_empty()
        || id.len() > 255
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ParseError::expected("object id"));
    }
    Ok(id.to_string())
}
