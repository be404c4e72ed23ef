//! Per-message data for SEARCH (RFC 9051 §6.4.4) and SORT/THREAD (RFC 5256).
//!
//! Matching is a case-insensitive substring test on decoded text: header values with
//! RFC 2047 encoded-words decoded, body text parts with their transfer encoding removed
//! and their charset converted to UTF-8 (RFC 9051 §6.4.4.4 leaves the comparison to the
//! server; both sides are folded with [`bulwark_store::fold`]: NFKD, combining marks
//! removed, case-folded, so RFC 3501 §6.4.4's "substring, case-insensitive" also ignores
//! accents and width).

use std::cell::OnceCell;

use bulwark_store::fold::fold;

use mail_parser::DateTime;
use mail_parser::decoders::charsets::map::charset_decoder;

use super::binary::{cte, decode};
use super::envelope::{Address, parse_address_list};
use super::mime::{Part, PartKind, parse_header, parse_message};

/// A message prepared for SEARCH: headers decoded once, body text decoded on first use.
pub struct SearchView {
    raw: Vec<u8>,
    /// (lowercase field name, folded decoded value), in message order.
    headers: Vec<(String, String)>,
    subject: String,
    date: Option<DateTime>,
    body: OnceCell<String>,
}

/// Prepare `raw` for SEARCH; reuse the view for every search key of this message.
pub fn search_view(raw: &[u8]) -> SearchView {
    search_view_owned(raw.to_vec())
}

/// [`search_view`] taking ownership of the message (no copy).
pub fn search_view_owned(raw: Vec<u8>) -> SearchView {
    let header = parse_header(&raw, 0..raw.len());
    let mut headers = Vec::with_capacity(header.fields.len());
    let (mut subject, mut date) = (None, None);
    for f in &header.fields {
        let name = String::from_utf8_lossy(&raw[f.name.clone()]).to_ascii_lowercase();
        let value = decode_header(&raw[f.value.clone()]);
        if subject.is_none() && name == "subject" {
            subject = Some(value.clone());
        }
        if date.is_none() && name == "date" {
            date = Some(DateTime::parse_rfc822(&value).filter(DateTime::is_valid));
        }
        headers.push((name, fold(&value)));
    }
    SearchView {
        raw,
        headers,
        subject: subject.unwrap_or_default(),
        date: date.flatten(),
        body: OnceCell::new(),
    }
}

impl SearchView {
    /// `HEADER field needle` / FROM / TO / CC / BCC / SUBJECT: any `field` header whose
    /// decoded value contains `needle` (case-insensitive). An empty needle matches when the
    /// field exists (RFC 9051 §6.4.4 `HEADER`).
    pub fn header_contains(&self, field: &str, needle: &str) -> bool {
        let needle = fold(needle);
        self.headers
            .iter()
            .any(|(name, value)| name.eq_ignore_ascii_case(field) && value.contains(&needle))
    }

    /// `BODY needle`: the decoded text parts contain `needle` (case-insensitive).
    pub fn body_contains(&self, needle: &str) -> bool {
        self.body_text().contains(&fold(needle))
    }

    /// `TEXT needle`: a header field (name or decoded value) or the body contains `needle`.
    pub fn text_contains(&self, needle: &str) -> bool {
        let n = fold(needle);
        self.headers
            .iter()
            .any(|(name, value)| name.contains(&n) || value.contains(&n))
            || self.body_text().contains(&n)
    }

    fn body_text(&self) -> &str {
        self.body.get_or_init(|| {
            let root = parse_message(&self.raw);
            let mut text = String::new();
            collect_text(&self.raw, &root, &mut text);
            fold(&text)
        })
    }

    /// The Date header as unix seconds (UTC instant), if it parses.
    pub fn sent_date(&self) -> Option<i64> {
        self.date.as_ref().map(DateTime::to_timestamp)
    }

    /// The calendar day of the Date header in the header's own timezone, as unix seconds at
    /// 00:00 UTC of that day: compare this with [`super::parse_date`] for SENTBEFORE /
    /// SENTON / SENTSINCE, which disregard time and timezone (RFC 9051 §6.4.4).
    pub fn sent_day(&self) -> Option<i64> {
        self.date
            .as_ref()
            .map(|d| d.to_timestamp_local().div_euclid(86_400) * 86_400)
    }

    /// SORT SUBJECT / THREAD key: the RFC 5256 §2.1 base subject (compare ASCII
    /// case-insensitively).
    pub fn subject(&self) -> String {
        base_subject(&self.subject)
    }

    /// Whether the Subject is a reply or forward (RFC 5256 §2.1 markers removed).
    pub fn subject_is_reply(&self) -> bool {
        base_subject_reply(&self.subject).1
    }

    /// The Subject with encoded-words decoded.
    pub fn decoded_subject(&self) -> &str {
        &self.subject
    }

    fn first_mailbox(&self, field: &str) -> Option<(Option<String>, String, String)> {
        let header = parse_header(&self.raw, 0..self.raw.len());
        let value = header.value(&self.raw, field)?;
        parse_address_list(&value)
            .into_iter()
            .find_map(|a| match a {
                Address::Mailbox {
                    name,
                    mailbox,
                    host,
                    ..
                } => Some((
                    name.map(|n| decode_header(&n)),
                    String::from_utf8_lossy(&mailbox).into_owned(),
                    String::from_utf8_lossy(&host).into_owned(),
                )),
                // RFC 5256 §3 takes the addr-mailbox of the first address as the ENVELOPE
                // has it; RFC 3501 §7.4.2: a group's start marker carries the group name
                // in addr-mailbox (host NIL). So `Cc: team: a@b;` sorts as "team".
                Address::GroupStart(group) => Some((None, decode_header(&group), String::new())),
                Address::GroupEnd => None,
            })
    }

    /// SORT FROM: the addr-mailbox (local part) of the first From address (RFC 5256 §3).
    pub fn from(&self) -> String {
        self.first_mailbox("from")
            .map(|(_, m, _)| m)
            .unwrap_or_default()
    }

    /// SORT TO: the addr-mailbox of the first To address.
    pub fn to(&self) -> String {
        self.first_mailbox("to")
            .map(|(_, m, _)| m)
            .unwrap_or_default()
    }

    /// SORT CC: the addr-mailbox of the first Cc address.
    pub fn cc(&self) -> String {
        self.first_mailbox("cc")
            .map(|(_, m, _)| m)
            .unwrap_or_default()
    }

    /// SORT DISPLAYFROM (RFC 5957): decoded display name of the first From address, else
    /// its `mailbox@host`.
    pub fn display_from(&self) -> String {
        display(self.first_mailbox("from"))
    }

    /// SORT DISPLAYTO (RFC 5957).
    pub fn display_to(&self) -> String {
        display(self.first_mailbox("to"))
    }

    /// Message-ID without angle brackets (for THREAD=REFERENCES, RFC 5256 §2.2).
    pub fn message_id(&self) -> Option<String> {
        let header = parse_header(&self.raw, 0..self.raw.len());
        msg_ids(&header.value(&self.raw, "message-id")?)
            .into_iter()
            .next()
    }

    /// Parent ids for THREAD=REFERENCES: the References ids, or else the first In-Reply-To
    /// id (RFC 5256 §2.2 step 1).
    pub fn references(&self) -> Vec<String> {
        let header = parse_header(&self.raw, 0..self.raw.len());
        let refs = header
            .value(&self.raw, "references")
            .map(|v| msg_ids(&v))
            .unwrap_or_default();
        if !refs.is_empty() {
            return refs;
        }
        let irt = header
            .value(&self.raw, "in-reply-to")
            .map(|v| msg_ids(&v))
            .unwrap_or_default();
        irt.into_iter().take(1).collect()
    }
}

fn display(m: Option<(Option<String>, String, String)>) -> String {
    match m {
        Some((Some(name), _, _)) if !name.trim().is_empty() => name.trim().to_string(),
        Some((_, mailbox, host)) if host.is_empty() => mailbox,
        Some((_, mailbox, host)) => format!("{mailbox}@{host}"),
        None => String::new(),
    }
}

/// `<id>` tokens of a msg-id list, brackets removed.
fn msg_ids(value: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(value);
    s.split('<')
        .skip(1)
        .filter_map(|t| t.split_once('>').map(|(id, _)| id.trim().to_string()))
        .filter(|id| !id.is_empty())
        .collect()
}

/// Decoded text of all text/* leaves (nested messages included).
fn collect_text(raw: &[u8], part: &Part, out: &mut String) {
    match &part.kind {
        PartKind::Multipart(children) => children.iter().for_each(|c| collect_text(raw, c, out)),
        PartKind::Message(inner) => collect_text(raw, inner, out),
        PartKind::Leaf if part.content_type.is("text", "") => {
            let encoding = part.header.value(raw, "content-transfer-encoding");
            let Some(c) = cte(encoding.as_deref()) else {
                return;
            };
            let bytes = decode(c, &raw[part.body.clone()]);
            out.push_str(&decode_charset(part.content_type.param("charset"), &bytes));
            out.push('\n');
        }
        PartKind::Leaf => {}
    }
}

/// Convert `bytes` in `charset` to UTF-8 (unknown charsets: lossy UTF-8).
pub(crate) fn decode_charset(charset: Option<&[u8]>, bytes: &[u8]) -> String {
    let charset = charset.unwrap_or(b"us-ascii");
    let utf8_like = ["utf-8", "utf8", "us-ascii", "ascii"]
        .iter()
        .any(|c| charset.eq_ignore_ascii_case(c.as_bytes()));
    match charset_decoder(charset) {
        Some(decoder) if !utf8_like => decoder(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Unfold a raw header value and decode RFC 2047 encoded-words.
pub(crate) fn decode_header(value: &[u8]) -> String {
    bulwark_core::header::decode_words(value)
}

/// RFC 5256 §2.1 base subject: decode, normalise whitespace, then strip `(fwd)` trailers,
/// `Re:`/`Fw:`/`Fwd:` leaders, `[blob]`s and `[fwd: ...]` wrappers until nothing changes.
pub fn base_subject(subject: &str) -> String {
    base_subject_reply(subject).0
}

/// [`base_subject`], and whether a reply/forward marker was removed on the way (a
/// `subj-refwd` leader, a `(fwd)` trailer or a `[fwd: …]` wrapper; RFC 5256 §2.1, used
/// by THREAD=REFERENCES step 5).
pub fn base_subject_reply(subject: &str) -> (String, bool) {
    let mut reply = false;
    // (1) decode encoded-words, tabs and continuations to spaces, collapse runs of spaces.
    let decoded = decode_header(subject.as_bytes());
    let mut s = decoded
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    loop {
        // (2) remove trailing "(fwd)" and whitespace.
        loop {
            let t = s.trim_end();
            if t.len() >= 5
                && t.is_char_boundary(t.len() - 5)
                && t[t.len() - 5..].eq_ignore_ascii_case("(fwd)")
            {
                s = t[..t.len() - 5].to_string();
                reply = true;
            } else {
                s = t.to_string();
                break;
            }
        }
        // (3) leaders and (4) a leading blob, repeated until neither applies.
        loop {
            let before = s.len();
            let (rest, refwd) = strip_leader(&s);
            reply |= refwd;
            s = rest.to_string();
            if let Some(rest) = strip_blob(&s).filter(|r| !r.is_empty()) {
                s = rest.to_string();
            }
            if s.len() == before {
                break;
            }
        }
        // (5) "[fwd:" ... "]" wrapper: unwrap and start over at (2).
        if s.len() >= 6 && s.as_bytes()[..5].eq_ignore_ascii_case(b"[fwd:") && s.ends_with(']') {
            s = s[5..s.len() - 1].to_string();
            reply = true;
            continue;
        }
        return (s, reply);
    }
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: the rest after a leading blob.
fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find([']', '['])?;
    if rest.as_bytes()[end] != b']' {
        return None;
    }
    Some(rest[end + 1..].trim_start_matches([' ', '\t']))
}

/// `subj-leader = (*subj-blob subj-refwd) / WSP`; returns `s` unchanged when absent, and
/// whether a `subj-refwd` was removed.
fn strip_leader(s: &str) -> (&str, bool) {
    if s.starts_with([' ', '\t']) {
        return (s.trim_start_matches([' ', '\t']), false);
    }
    let mut r = s;
    while let Some(rest) = strip_blob(r) {
        r = rest;
    }
    for word in ["fwd", "fw", "re"] {
        if r.len() >= word.len() && r.as_bytes()[..word.len()].eq_ignore_ascii_case(word.as_bytes())
        {
            // subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
            let mut t = r[word.len()..].trim_start_matches([' ', '\t']);
            if let Some(after_blob) = strip_blob(t) {
                t = after_blob;
            }
            if let Some(after) = t.strip_prefix(':') {
                return (after, true);
            }
        }
    }
    (s, false)
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::*;

    #[test]
    fn header_search_decodes_encoded_words() {
        let v = search_view(LATIN1_LF);
        let cases: &[(&str, &str, bool)] = &[
            ("from", "andré", true),
            ("FROM", "ANDRÉ PIRARD", true),
            ("from", "pirard@example.test", true),
            ("subject", "you understand the example", true),
            ("subject", "=?ISO", false),
            ("to", "", false),
            ("date", "", true),
            ("x-missing", "a", false),
        ];
        for (field, needle, want) in cases {
            assert_eq!(v.header_contains(field, needle), *want, "{field} {needle}");
        }
    }

    #[test]
    fn body_search_decodes_transfer_encoding_and_charset() {
        let v = search_view(LATIN1_LF);
        assert!(v.body_contains("voilà le café"));
        assert!(v.body_contains("CRÈME"));
        assert!(v.body_contains("softbreak"));
        assert!(!v.body_contains("=E9"));
        assert!(!v.body_contains("andré"));
        assert!(v.text_contains("andré"));
        assert!(v.text_contains("crème"));
        assert!(v.text_contains("content-transfer-encoding"));
    }

    #[test]
    fn body_search_covers_all_text_parts_but_not_attachments() {
        let alt = search_view(ALTERNATIVE.as_bytes());
        assert!(alt.body_contains("café time"));
        assert!(alt.body_contains("&eacute;"));
        let mixed = search_view(MIXED.as_bytes());
        assert!(mixed.body_contains("plain part"));
        assert!(mixed.body_contains("inner body"));
        assert!(!mixed.body_contains("AAECA"));
        assert!(!mixed.body_contains("preamble"));
    }

    #[test]
    fn sent_date_and_day_use_the_header_timezone() {
        let v = search_view(LATIN1_LF);
        // Tue, 1 Feb 1994 23:30:00 +0100 = 22:30 UTC; the day is 1 Feb in the header's zone.
        assert_eq!(v.sent_date(), Some(760_060_800 + 22 * 3600 + 1800));
        assert_eq!(v.sent_day(), Some(760_060_800));
        let late = search_view(b"Date: Tue, 1 Feb 1994 23:30:00 -0500\r\n\r\n");
        assert_eq!(late.sent_day(), Some(760_060_800));
        assert_eq!(
            late.sent_date(),
            Some(760_060_800 + 86_400 + 4 * 3600 + 1800)
        );
        assert_eq!(search_view(b"Date: garbage\r\n\r\n").sent_date(), None);
        assert_eq!(search_view(b"\r\n").sent_date(), None);
    }

    #[test]
    fn sort_keys_come_from_the_first_address() {
        let v = search_view(LATIN1_LF);
        assert_eq!(v.from(), "pirard");
        assert_eq!(v.display_from(), "André Pirard");
        assert_eq!(v.to(), "");
        let p = search_view(PLAIN.as_bytes());
        assert_eq!(p.to(), "bob");
        assert_eq!(p.display_to(), "bob@example.test");
        assert_eq!(p.subject(), "Hello");
        assert_eq!(p.message_id().as_deref(), Some("1@example.test"));
        let r = search_view(b"In-Reply-To: <a@x> <b@x>\r\n\r\n");
        assert_eq!(r.references(), vec!["a@x".to_string()]);
        let r = search_view(b"References: <a@x>\r\n <b@x>\r\nIn-Reply-To: <c@x>\r\n\r\n");
        assert_eq!(r.references(), vec!["a@x".to_string(), "b@x".to_string()]);
    }

    #[test]
    fn base_subject_follows_rfc5256() {
        let cases: &[(&str, &str)] = &[
            ("Hello", "Hello"),
            ("Re: Hello", "Hello"),
            ("RE: re: Fwd:  Hello", "Hello"),
            ("Re[2]: Hello", "Hello"),
            ("[list] Re: Hello", "Hello"),
            ("Re: [list] Hello (fwd)", "Hello"),
            ("Hello (fwd) (FWD)  ", "Hello"),
            ("[Fwd: Re: Hello]", "Hello"),
            ("[fwd: [fwd: Hello]]", "Hello"),
            ("[only-blob]", "[only-blob]"),
            ("Re:", ""),
            ("Hello\t  world", "Hello world"),
            ("=?utf-8?q?Re=3A_Gr=C3=BC=C3=9Fe?=", "Grüße"),
            ("Réponse: x", "Réponse: x"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(base_subject(input), *want, "{input:?}");
        }
        for (input, reply) in [
            ("Hello", false),
            ("[list] Hello", false),
            ("Re: Hello", true),
            ("Hello (fwd)", true),
            ("[Fwd: Hello]", true),
            ("[list] Fw[2]: Hello", true),
        ] {
            assert_eq!(base_subject_reply(input).1, reply, "{input:?}");
        }
    }
}
