//! MIME → JMAP: body structure, textBody/htmlBody/attachments, bodyValues and the parsed
//! header forms (RFC 8621 §4.1.2–§4.1.4), on top of mail-parser.

use crate::blob::part_blob_id;
use bulwark_store::BlobHash;
use mail_parser::{
    Address, DateTime, HeaderForm, HeaderValue, Message, MessagePart, MimeHeaders, PartType,
};
use serde_json::{Map, Value, json};

/// Default EmailBodyPart properties (RFC 8621 §4.2 bodyProperties).
pub const DEFAULT_BODY_PROPERTIES: [&str; 10] = [
    "partId",
    "blobId",
    "size",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
];
/// Deepest multipart nesting rendered in bodyStructure.
pub const MAX_BODY_DEPTH: usize = 32;
/// Most EmailBodyParts one of bodyStructure, textBody, htmlBody, attachments (and entries of
/// bodyValues) shows; the rest are left out and the Email says how many parts it has beyond
/// this in `partsOmitted` (issue 13 item 21: 50,000 parts made every Email/get 24 MB).
pub const MAX_BODY_PARTS: usize = 1000;

/// How many more parts one property may render (see [`MAX_BODY_PARTS`]).
pub struct PartBudget {
    left: std::cell::Cell<usize>,
    cut: std::cell::Cell<bool>,
}

impl PartBudget {
    pub fn new() -> Self {
        PartBudget {
            left: std::cell::Cell::new(MAX_BODY_PARTS),
            cut: std::cell::Cell::new(false),
        }
    }

    /// Takes one part; false (and remembers it) once the budget is spent.
    pub fn take(&self) -> bool {
        match self.left.get() {
            0 => {
                self.cut.set(true);
                false
            }
            n => {
                self.left.set(n - 1);
                true
            }
        }
    }

    /// True when some part was left out.
    pub fn was_cut(&self) -> bool {
        self.cut.get()
    }
}

impl Default for PartBudget {
    fn default() -> Self {
        PartBudget::new()
    }
}

/// Unix seconds → RFC 3339 UTCDate (`2026-01-02T03:04:05Z`).
pub fn utc_date(ts: i64) -> String {
    DateTime::from_timestamp(ts).to_rfc3339()
}

/// RFC 3339 date (UTCDate or Date) → unix seconds.
pub fn parse_date(s: &str) -> Option<i64> {
    DateTime::parse_rfc3339(s)
        .filter(|d| d.is_valid())
        .map(|d| d.to_timestamp())
}

fn addr_json(a: &mail_parser::Addr<'_>) -> Value {
    json!({ "name": a.name.as_deref(), "email": a.address.as_deref().unwrap_or_default() })
}

/// A parsed header value in the requested form (§4.1.2); `Null` if it does not parse.
pub fn form_json(v: &HeaderValue<'_>, form: HeaderForm) -> Value {
    match form {
        HeaderForm::Raw | HeaderForm::Text => match v {
            HeaderValue::Text(t) => json!(t),
            HeaderValue::TextList(l) => json!(l.join(", ")),
            HeaderValue::Empty => json!(""),
            _ => Value::Null,
        },
        HeaderForm::Addresses => match v {
            HeaderValue::Address(Address::List(l)) => json!(l.iter().map(addr_json).collect::<Vec<_>>()),
            HeaderValue::Address(Address::Group(g)) => {
                json!(g.iter().flat_map(|g| g.addresses.iter().map(addr_json)).collect::<Vec<_>>())
            }
            _ => json!([]),
        },
        HeaderForm::GroupedAddresses => match v {
            HeaderValue::Address(Address::List(l)) => {
                json!([{ "name": null, "addresses": l.iter().map(addr_json).collect::<Vec<_>>() }])
            }
            HeaderValue::Address(Address::Group(g)) => json!(g
                .iter()
                .map(|g| json!({ "name": g.name.as_deref(), "addresses": g.addresses.iter().map(addr_json).collect::<Vec<_>>() }))
                .collect::<Vec<_>>()),
            _ => json!([]),
        },
        HeaderForm::MessageIds => match v {
            HeaderValue::Text(t) => json!([t]),
            HeaderValue::TextList(l) => json!(l),
            _ => Value::Null,
        },
        HeaderForm::Date => match v {
            HeaderValue::DateTime(d) => json!(d.to_rfc3339()),
            _ => Value::Null,
        },
        HeaderForm::URLs => match v {
            HeaderValue::Address(Address::List(l)) => {
                json!(l.iter().filter_map(|a| a.address.as_deref()).collect::<Vec<_>>())
            }
            _ => Value::Null,
        },
    }
}

/// A `header:Name[:asForm][:all]` property request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProperty {
    pub name: String,
    pub form: HeaderForm,
    pub all: bool,
}

/// Parses `header:Name[:asForm][:all]` (RFC 8621 §4.1.3); `None` if malformed.
pub fn parse_header_property(p: &str) -> Option<HeaderProperty> {
    let rest = p.strip_prefix("header:")?;
    let mut segs = rest.split(':');
    let name = segs
        .next()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))?
        .to_string();
    let mut form = HeaderForm::Raw;
    let mut all = false;
    for seg in segs {
        match seg {
            "all" if !all => all = true,
            "asRaw" => form = HeaderForm::Raw,
            "asText" => form = HeaderForm::Text,
            "asAddresses" => form = HeaderForm::Addresses,
            "asGroupedAddresses" => form = HeaderForm::GroupedAddresses,
            "asMessageIds" => form = HeaderForm::MessageIds,
            "asDate" => form = HeaderForm::Date,
            "asURLs" => form = HeaderForm::URLs,
            _ => return None,
        }
    }
    Some(HeaderProperty { name, form, all })
}

/// The value of a header property for the message's top-level headers.
pub fn header_property(msg: &Message<'_>, hp: &HeaderProperty) -> Value {
    let values = msg.header_as(hp.name.as_str(), hp.form);
    let values: Vec<Value> = values
        .iter()
        .map(|v| match hp.form {
            // asRaw: the raw bytes as they appear after the colon.
            HeaderForm::Raw => form_json(v, HeaderForm::Raw),
            f => form_json(v, f),
        })
        .collect();
    if hp.all {
        json!(values)
    } else {
        values.into_iter().last().unwrap_or(Value::Null)
    }
}

fn raw_headers(raw: &[u8], part: &MessagePart<'_>) -> Vec<Value> {
    part.headers
        .iter()
        .map(|h| {
            let value = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .trim_end_matches(['\r', '\n'])
                        .to_string()
                })
                .unwrap_or_default();
            json!({ "name": h.name.as_str(), "value": value })
        })
        .collect()
}

fn content_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => match &part.body {
            PartType::Multipart(_) => "multipart/mixed".into(),
            PartType::Message(_) => "message/rfc822".into(),
            PartType::Html(_) => "text/html".into(),
            PartType::Text(_) => "text/plain".into(),
            _ => "application/octet-stream".into(),
        },
    }
}

/// An EmailBodyPart (§4.1.4) for part `idx` of `msg`; multiparts include subParts, as far
/// as `budget` goes (`None` once it is spent).
pub fn body_part(
    msg: &Message<'_>,
    hash: &BlobHash,
    idx: usize,
    props: &[String],
    depth: usize,
    budget: &PartBudget,
) -> Option<Value> {
    let Some(part) = msg.parts.get(idx) else {
        return Some(Value::Null);
    };
    if !budget.take() {
        return None;
    }
    let ctype = content_type(part);
    let is_multipart = matches!(part.body, PartType::Multipart(_));
    let mut full = Map::new();
    let part_id = idx.to_string();
    full.insert(
        "partId".into(),
        if is_multipart {
            Value::Null
        } else {
            json!(part_id)
        },
    );
    full.insert(
        "blobId".into(),
        if is_multipart {
            Value::Null
        } else {
            json!(part_blob_id(hash, &part_id))
        },
    );
    let size = match &part.body {
        PartType::Multipart(_) => 0,
        PartType::Message(m) => m.raw_message.len(),
        _ => part.contents().len(),
    };
    full.insert("size".into(), json!(size));
    full.insert("headers".into(), json!(raw_headers(&msg.raw_message, part)));
    full.insert("name".into(), json!(part.attachment_name()));
    full.insert(
        "charset".into(),
        if ctype.starts_with("text/") {
            json!(
                part.content_type()
                    .and_then(|c| c.attribute("charset"))
                    .unwrap_or("us-ascii")
            )
        } else {
            Value::Null
        },
    );
    full.insert("type".into(), json!(ctype));
    full.insert(
        "disposition".into(),
        json!(
            part.content_disposition()
                .map(|d| d.ctype().to_ascii_lowercase())
        ),
    );
    full.insert(
        "cid".into(),
        json!(part.content_id().map(|c| c.trim_matches(['<', '>']))),
    );
    let language = match part.content_language() {
        HeaderValue::Text(t) => json!([t]),
        HeaderValue::TextList(l) => json!(l),
        _ => Value::Null,
    };
    full.insert("language".into(), language);
    full.insert("location".into(), json!(part.content_location()));
    if let PartType::Multipart(children) = &part.body {
        let subs: Vec<Value> = if depth >= MAX_BODY_DEPTH {
            vec![]
        } else {
            children
                .iter()
                .map_while(|c| body_part(msg, hash, *c as usize, props, depth + 1, budget))
                .collect()
        };
        full.insert("subParts".into(), json!(subs));
    }
    let mut out = Map::new();
    for p in props {
        if let Some(v) = full.get(p) {
            out.insert(p.clone(), v.clone());
        } else if let Some(hp) = parse_header_property(p) {
            let vals: Vec<Value> = part
                .headers
                .iter()
                .filter(|h| h.name.as_str().eq_ignore_ascii_case(&hp.name))
                .map(|h| form_json(&h.value, hp.form))
                .collect();
            out.insert(
                p.clone(),
                if hp.all {
                    json!(vals)
                } else {
                    vals.into_iter().last().unwrap_or(Value::Null)
                },
            );
        }
    }
    if is_multipart && props.iter().all(|p| p != "subParts") {
        // subParts is always present on multiparts in bodyStructure (§4.1.4).
        if let Some(s) = full.get("subParts") {
            out.insert("subParts".into(), s.clone());
        }
    }
    Some(Value::Object(out))
}

/// The text of a part for bodyValues (§4.1.4 EmailBodyValue).
pub fn body_value(part: &MessagePart<'_>, max_bytes: usize) -> Value {
    let text: &str = match &part.body {
        PartType::Text(t) | PartType::Html(t) => t,
        _ => "",
    };
    let (value, truncated) = if max_bytes > 0 && text.len() > max_bytes {
        let mut end = max_bytes;
        while end > 0 && !text.is_char_boundary(end) {
            end -= 1;
        }
        (&text[..end], true)
    } else {
        (text, false)
    };
    json!({ "value": value, "isEncodingProblem": part.is_encoding_problem, "isTruncated": truncated })
}

/// Plain text of every text part (for `text`/`body` filters and snippets).
pub fn all_text(msg: &Message<'_>) -> String {
    let mut out = String::new();
    for part in &msg.parts {
        match &part.body {
            PartType::Text(t) => {
                out.push_str(t);
                out.push('\n');
            }
            PartType::Html(h) => {
                out.push_str(&strip_html(h));
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Crude HTML → text (tags dropped) for searching.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_property_syntax_follows_rfc_8621() {
        let hp = parse_header_property("header:From:asAddresses:all").unwrap();
        assert_eq!(
            (hp.name.as_str(), hp.form, hp.all),
            ("From", HeaderForm::Addresses, true)
        );
        assert_eq!(
            parse_header_property("header:X-A").unwrap().form,
            HeaderForm::Raw
        );
        assert!(parse_header_property("header::asText").is_none());
        assert!(parse_header_property("header:X:asBogus").is_none());
        assert!(parse_header_property("header:X:all:all").is_none());
    }

    #[test]
    fn dates_round_trip_as_utc() {
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_date("2026-01-02T03:04:05Z"), Some(1767323045));
        assert_eq!(parse_date("yesterday"), None);
    }
}
