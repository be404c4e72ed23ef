//! Email/get (RFC 8621 §4.2): metadata from the index, everything else parsed from the
//! message blob with mail-parser.

use super::body::{self, DEFAULT_BODY_PROPERTIES, HeaderProperty, parse_header_property};
use crate::api::args::Args;
use crate::api::{Ctx, MethodError, check_get_size, current_state};
use crate::ids;
use bulwark_store::changelog::ChangeKind;
use bulwark_store::{BlobHash, Email};
use mail_parser::{HeaderForm, Message, MessageParser};
use serde_json::{Map, Value, json};

pub const DEFAULT_PROPERTIES: [&str; 24] = [
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "size",
    "receivedAt",
    "messageId",
    "inReplyTo",
    "references",
    "sender",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "sentAt",
    "hasAttachment",
    "preview",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
];
/// How many of [`DEFAULT_PROPERTIES`] (the first ones) describe the stored object rather than
/// the message: Email/parse (RFC 8621 §4.9) has no such metadata and defaults to the rest.
pub const METADATA_PROPERTIES: usize = 7;
/// Properties only sent when asked for (§4.2).
const EXTRA_PROPERTIES: [&str; 2] = ["headers", "bodyStructure"];
pub const ALL_PROPERTIES: [&str; 26] = concat(DEFAULT_PROPERTIES, EXTRA_PROPERTIES);

const fn concat<const A: usize, const B: usize, const N: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> [&'static str; N] {
    assert!(A + B == N);
    let mut out = [""; N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < B {
        out[A + j] = b[j];
        j += 1;
    }
    out
}
/// Longest preview (RFC 8621 §4.1.4: at most 256 characters).
pub const PREVIEW_CHARS: usize = 256;
/// Properties answered from the index without reading the blob.
const INDEX_PROPERTIES: [&str; 12] = [
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "size",
    "receivedAt",
    "hasAttachment",
    "preview",
    "messageId",
    "inReplyTo",
    "references",
];
const BODY_PART_PROPERTIES: [&str; 12] = [
    "partId",
    "blobId",
    "size",
    "headers",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
    "subParts",
];

/// How bodyValues are fetched (§4.2 arguments).
#[derive(Debug, Clone, Default)]
pub struct BodyOptions {
    pub body_properties: Vec<String>,
    pub fetch_text: bool,
    pub fetch_html: bool,
    pub fetch_all: bool,
    pub max_bytes: usize,
}

impl BodyOptions {
    pub fn from_args(args: &Args) -> Result<BodyOptions, MethodError> {
        let body_properties = match args.opt_str_list("bodyProperties")? {
            None => DEFAULT_BODY_PROPERTIES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Some(p) => {
                for x in &p {
                    if !BODY_PART_PROPERTIES.contains(&x.as_str())
                        && parse_header_property(x).is_none()
                    {
                        return Err(MethodError::invalid_arguments(format!(
                            "unknown body property {x}"
                        )));
                    }
                }
                p
            }
        };
        Ok(BodyOptions {
            body_properties,
            fetch_text: args.bool_or("fetchTextBodyValues", false)?,
            fetch_html: args.bool_or("fetchHTMLBodyValues", false)?,
            fetch_all: args.bool_or("fetchAllBodyValues", false)?,
            max_bytes: args
                .opt_uint("maxBodyValueBytes")?
                .map(|n| n as usize)
                .unwrap_or(0),
        })
    }
}

/// Checks `properties`: known names or well-formed `header:` properties.
pub fn email_properties(args: &Args) -> Result<Vec<String>, MethodError> {
    let props = args.properties(&ALL_PROPERTIES, &DEFAULT_PROPERTIES)?;
    for p in &props {
        if p.starts_with("header:") && parse_header_property(p).is_none() {
            return Err(MethodError::invalid_arguments(format!(
                "malformed header property {p}"
            )));
        }
    }
    Ok(props)
}

fn id_list(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

/// Properties of the index entry.
/// Properties of the index entry; `blob_id` is the id the account sees for the email's blob
/// ([`crate::blob::BlobIds::encode`]).
pub fn index_json(e: &Email, blob_id: &BlobHash) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(ids::email_id(e.id)));
    m.insert("blobId".into(), json!(blob_id.0));
    m.insert("threadId".into(), json!(ids::thread_id(e.thread)));
    let mailboxes: Map<String, Value> = e
        .mailboxes
        .iter()
        .map(|(mb, _)| (ids::mailbox_id(*mb), json!(true)))
        .collect();
    m.insert("mailboxIds".into(), Value::Object(mailboxes));
    let keywords: Map<String, Value> = e
        .keywords
        .iter()
        .map(|k| (k.clone(), json!(true)))
        .collect();
    m.insert("keywords".into(), Value::Object(keywords));
    m.insert("size".into(), json!(e.size));
    m.insert("receivedAt".into(), json!(body::utc_date(e.received_at)));
    m.insert("hasAttachment".into(), json!(e.summary.has_attachment));
    m.insert("preview".into(), json!(e.summary.preview));
    m.insert(
        "messageId".into(),
        e.summary
            .message_id
            .as_ref()
            .map(|id| json!([id]))
            .unwrap_or(Value::Null),
    );
    m.insert("inReplyTo".into(), id_list(&e.summary.in_reply_to));
    m.insert("references".into(), id_list(&e.summary.references));
    m
}

fn header_prop(name: &str, form: HeaderForm) -> HeaderProperty {
    HeaderProperty {
        name: name.into(),
        form,
        all: false,
    }
}

/// Fills the properties that need the parsed message (§4.1.2–§4.1.4).
pub fn parsed_json(
    msg: &Message<'_>,
    hash: &BlobHash,
    props: &[String],
    opts: &BodyOptions,
    out: &mut Map<String, Value>,
) {
    let mut cut = false;
    for p in props {
        if out.contains_key(p) {
            continue;
        }
        let v = match p.as_str() {
            "messageId" => {
                body::header_property(msg, &header_prop("Message-ID", HeaderForm::MessageIds))
            }
            "inReplyTo" => {
                body::header_property(msg, &header_prop("In-Reply-To", HeaderForm::MessageIds))
            }
            "references" => {
                body::header_property(msg, &header_prop("References", HeaderForm::MessageIds))
            }
            "sender" | "from" | "to" | "cc" | "bcc" | "replyTo" => {
                let name = match p.as_str() {
                    "sender" => "Sender",
                    "from" => "From",
                    "to" => "To",
                    "cc" => "Cc",
                    "bcc" => "Bcc",
                    _ => "Reply-To",
                };
                match body::header_property(msg, &header_prop(name, HeaderForm::Addresses)) {
                    Value::Array(a) if a.is_empty() => Value::Null,
                    v => v,
                }
            }
            "subject" => body::header_property(msg, &header_prop("Subject", HeaderForm::Text)),
            "sentAt" => body::header_property(msg, &header_prop("Date", HeaderForm::Date)),
            "hasAttachment" => json!(msg.attachment_count() > 0),
            "preview" => json!(msg.body_preview(PREVIEW_CHARS).unwrap_or_default()),
            "size" => json!(msg.raw_message.len()),
            "headers" => {
                let root = msg.parts.first();
                json!(root.map(|r| header_list(msg, r)).unwrap_or_default())
            }
            "bodyStructure" => {
                let budget = body::PartBudget::new();
                let v = body::body_part(msg, hash, 0, &opts.body_properties, 0, &budget);
                cut |= budget.was_cut();
                v.unwrap_or(Value::Null)
            }
            "textBody" => parts_json(msg, hash, &msg.text_body, opts, &mut cut),
            "htmlBody" => parts_json(msg, hash, &msg.html_body, opts, &mut cut),
            "attachments" => parts_json(msg, hash, &msg.attachments, opts, &mut cut),
            "bodyValues" => body_values(msg, opts, &mut cut),
            other => match parse_header_property(other) {
                Some(hp) => body::header_property(msg, &hp),
                None => continue,
            },
        };
        out.insert(p.clone(), v);
    }
    if cut {
        // The marker of left-out parts (a Bulwark extension property; see MAX_BODY_PARTS).
        let omitted = msg.parts.len().saturating_sub(body::MAX_BODY_PARTS);
        out.insert("partsOmitted".into(), json!(omitted.max(1)));
    }
}

fn header_list(msg: &Message<'_>, part: &mail_parser::MessagePart<'_>) -> Vec<Value> {
    part.headers
        .iter()
        .map(|h| {
            let value = msg
                .raw_message
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

fn parts_json(
    msg: &Message<'_>,
    hash: &BlobHash,
    parts: &[u32],
    opts: &BodyOptions,
    cut: &mut bool,
) -> Value {
    let budget = body::PartBudget::new();
    let list: Vec<Value> = parts
        .iter()
        .map_while(|i| body::body_part(msg, hash, *i as usize, &opts.body_properties, 0, &budget))
        .collect();
    *cut |= budget.was_cut();
    Value::Array(list)
}

fn body_values(msg: &Message<'_>, opts: &BodyOptions, cut: &mut bool) -> Value {
    let mut wanted: Vec<u32> = Vec::new();
    if opts.fetch_text || opts.fetch_all {
        wanted.extend(&msg.text_body);
    }
    if opts.fetch_html || opts.fetch_all {
        wanted.extend(&msg.html_body);
    }
    if wanted.len() > body::MAX_BODY_PARTS {
        wanted.truncate(body::MAX_BODY_PARTS);
        *cut = true;
    }
    let mut out = Map::new();
    for idx in wanted {
        if let Some(part) = msg.parts.get(idx as usize)
            && matches!(
                part.body,
                mail_parser::PartType::Text(_) | mail_parser::PartType::Html(_)
            )
        {
            out.insert(idx.to_string(), body::body_value(part, opts.max_bytes));
        }
    }
    Value::Object(out)
}

/// Can `p` be answered from the index or the message's top-level header alone (no body)?
fn header_only(p: &str) -> bool {
    INDEX_PROPERTIES.contains(&p)
        || matches!(
            p,
            "messageId"
                | "inReplyTo"
                | "references"
                | "sender"
                | "from"
                | "to"
                | "cc"
                | "bcc"
                | "replyTo"
                | "subject"
                | "sentAt"
        )
        || (p.starts_with("header:") && !p.contains(":all"))
}

/// Does any requested property need the blob?
pub fn needs_blob(props: &[String]) -> bool {
    props
        .iter()
        .any(|p| !INDEX_PROPERTIES.contains(&p.as_str()))
}

pub async fn get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let wanted = args.opt_str_list("ids")?;
    check_get_size(ctx, wanted.as_ref())?;
    let props = email_properties(&args)?;
    let opts = BodyOptions::from_args(&args)?;
    let state = current_state(ctx, ChangeKind::Email).await?;
    let wanted = match wanted {
        Some(w) => w,
        // §5.1: ids null means all, bounded by maxObjectsInGet.
        None => {
            let all = ctx.server.store.email_list(account).await?;
            if all.len() > ctx.server.cfg.max_objects_in_get {
                return Err(MethodError::new(
                    crate::api::MethodErrorKind::RequestTooLarge,
                    "too many emails; pass ids",
                ));
            }
            all.iter().map(|e| ids::email_id(e.id)).collect()
        }
    };
    let parsed: Vec<(String, Option<bulwark_store::EmailId>)> = wanted
        .into_iter()
        .map(|id| {
            let e = ctx.resolve_id(&id).and_then(|r| ids::parse_email(&r));
            (id, e)
        })
        .collect();
    let lookup: Vec<bulwark_store::EmailId> = parsed.iter().filter_map(|(_, e)| *e).collect();
    let found = ctx.server.store.email_get(account, &lookup).await?;
    let mut list = Vec::new();
    let mut not_found = Vec::new();
    let mut emails: Vec<&Email> = Vec::new();
    for (raw_id, eid) in parsed {
        match eid.and_then(|eid| found.iter().find(|e| e.id == eid)) {
            Some(email) => emails.push(email),
            None => not_found.push(raw_id),
        }
    }
    // One batched read for every blob needed (recent ones come from the store's cache).
    let blobs = if needs_blob(&props) {
        let hashes: Vec<BlobHash> = emails.iter().map(|e| e.blob.clone()).collect();
        ctx.server.store.blob_get_many(&hashes).await?
    } else {
        Vec::new()
    };
    let headers_only = props.iter().all(|p| header_only(p));
    let blob_ids = ctx.server.blob_ids().await?.clone();
    for (k, email) in emails.into_iter().enumerate() {
        let blob_id = blob_ids.encode(account, &email.blob);
        let mut full = index_json(email, &blob_id);
        full.retain(|k, _| k == "id" || props.contains(k));
        match blobs.get(k) {
            Some(Some(raw)) => {
                let parser = MessageParser::default();
                let msg = if headers_only {
                    parser.parse_headers(raw)
                } else {
                    parser.parse(raw)
                };
                if let Some(msg) = msg {
                    parsed_json(&msg, &blob_id, &props, &opts, &mut full);
                }
            }
            Some(None) => tracing::warn!(email = %email.id, "blob of email is missing"),
            None => {}
        }
        list.push(Value::Object(full));
    }
    Ok(crate::api::get_response(account, state, list, not_found))
}

#[cfg(test)]
mod property_list_tests {
    use super::*;

    #[test]
    fn metadata_properties_come_first_and_all_properties_extend_the_defaults() {
        let (meta, message) = DEFAULT_PROPERTIES.split_at(METADATA_PROPERTIES);
        assert_eq!(
            meta,
            [
                "id",
                "blobId",
                "threadId",
                "mailboxIds",
                "keywords",
                "size",
                "receivedAt"
            ]
        );
        assert_eq!(message.first(), Some(&"messageId"));
        assert_eq!(
            &ALL_PROPERTIES[..DEFAULT_PROPERTIES.len()],
            &DEFAULT_PROPERTIES[..]
        );
        assert_eq!(
            &ALL_PROPERTIES[DEFAULT_PROPERTIES.len()..],
            ["headers", "bodyStructure"]
        );
    }

    #[test]
    fn header_properties_read_from_the_header_alone_equal_the_full_parse() {
        let raw = concat!(
            "From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.org>, Ann <ann@example.org>\r\n",
            "Sender: s@example.org\r\nTo: Team: a@example.org, b@example.org;\r\n",
            "Cc: c@example.org\r\nReply-To: r@example.org\r\n",
            "Subject: =?ISO-8859-1?Q?caf=E9?= au\r\n lait\r\n",
            "Date: Mon, 4 Mar 2024 10:00:00 +0100\r\nMessage-ID: <m1@x>\r\n",
            "In-Reply-To: <p@x>\r\nReferences: <o@x> <p@x>\r\nX-Custom: one\r\n",
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n",
            "--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b--\r\n"
        );
        let props: Vec<String> = [
            "messageId",
            "inReplyTo",
            "references",
            "sender",
            "from",
            "to",
            "cc",
            "bcc",
            "replyTo",
            "subject",
            "sentAt",
            "header:X-Custom:asText",
            "header:Subject",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(props.iter().all(|p| header_only(p)));
        let hash = BlobHash("0".repeat(64));
        let opts = BodyOptions::default();
        let parser = MessageParser::default();
        let mut full = Map::new();
        let mut head = Map::new();
        parsed_json(
            &parser.parse(raw).expect("parse"),
            &hash,
            &props,
            &opts,
            &mut full,
        );
        let only = parser.parse_headers(raw).expect("parse headers");
        parsed_json(&only, &hash, &props, &opts, &mut head);
        assert_eq!(full, head);
        assert_eq!(full["subject"], json!("café au lait"));
        assert!(!header_only("textBody") && !header_only("bodyValues") && !header_only("headers"));
    }
}
