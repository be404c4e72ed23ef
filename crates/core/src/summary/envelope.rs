//! ENVELOPE (RFC 9051 §7.5.2) and the RFC 5322 §3.4 address-list parser behind it.
//! Values are sent as they appear in the header (RFC 2047 encoded-words are not decoded),
//! only unfolded and trimmed.

use super::header::{Header, parse_header, trim, unfold};
use super::imap_string::{write_nstring, write_string};

/// ENVELOPE of the message in `raw` (only its header is read).
pub fn envelope(raw: &[u8]) -> Vec<u8> {
    let header = parse_header(raw, 0..raw.len());
    let mut out = Vec::with_capacity(256);
    write_envelope(&mut out, raw, &header);
    out
}

/// Header fields an envelope needs, in envelope order.
const ENVELOPE_FIELDS: [&str; 10] = [
    "date",
    "subject",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "in-reply-to",
    "message-id",
];

/// Append `("date" "subject" (from) (sender) (reply-to) (to) (cc) (bcc) "in-reply-to"
/// "message-id")` for `header` (one pass over the fields; the first occurrence wins).
pub fn write_envelope(out: &mut Vec<u8>, raw: &[u8], header: &Header) {
    let mut values: [Option<Vec<u8>>; 10] = Default::default();
    for field in &header.fields {
        let name = &raw[field.name.clone()];
        let slot = ENVELOPE_FIELDS
            .iter()
            .position(|n| name.eq_ignore_ascii_case(n.as_bytes()))
            .and_then(|i| values.get_mut(i));
        if let Some(slot @ None) = slot {
            *slot = Some(unfold(&raw[field.value.clone()]));
        }
    }
    let text = |v: &Option<Vec<u8>>| v.as_deref().filter(|v| !v.is_empty()).map(<[u8]>::to_vec);
    let addrs = |v: &Option<Vec<u8>>| v.as_deref().map(parse_address_list).unwrap_or_default();
    let from = addrs(&values[2]);
    // RFC 9051 §7.5.2: absent or empty Sender / Reply-To default to From.
    let mut sender = addrs(&values[3]);
    if sender.is_empty() {
        sender = from.clone();
    }
    let mut reply_to = addrs(&values[4]);
    if reply_to.is_empty() {
        reply_to = from.clone();
    }
    out.push(b'(');
    write_nstring(out, text(&values[0]).as_deref());
    out.push(b' ');
    write_nstring(out, text(&values[1]).as_deref());
    for list in [
        &from,
        &sender,
        &reply_to,
        &addrs(&values[5]),
        &addrs(&values[6]),
        &addrs(&values[7]),
    ] {
        out.push(b' ');
        write_address_list(out, list);
    }
    out.push(b' ');
    write_nstring(out, text(&values[8]).as_deref());
    out.push(b' ');
    write_nstring(out, text(&values[9]).as_deref());
    out.push(b')');
}

/// One element of an envelope address list (RFC 9051 §7.5.2 `address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Mailbox {
        name: Option<Vec<u8>>,
        /// The obsolete source route (`@a,@b`, RFC 5322 §4.4 `obs-route` without its
        /// colon), sent as the envelope's `addr-adl` (RFC 3501 §7.4.2).
        route: Option<Vec<u8>>,
        mailbox: Vec<u8>,
        host: Vec<u8>,
    },
    /// Start of group syntax: `(NIL NIL "name" NIL)`.
    GroupStart(Vec<u8>),
    /// End of group syntax: `(NIL NIL NIL NIL)`.
    GroupEnd,
}

fn write_address_list(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for addr in list {
        match addr {
            Address::Mailbox {
                name,
                route,
                mailbox,
                host,
            } => {
                out.push(b'(');
                write_nstring(out, name.as_deref());
                out.push(b' ');
                write_nstring(out, route.as_deref());
                out.push(b' ');
                write_string(out, mailbox);
                out.push(b' ');
                write_string(out, host);
                out.push(b')');
            }
            Address::GroupStart(name) => {
                out.extend_from_slice(b"(NIL NIL ");
                write_string(out, name);
                out.extend_from_slice(b" NIL)");
            }
            Address::GroupEnd => out.extend_from_slice(b"(NIL NIL NIL NIL)"),
        }
    }
    out.push(b')');
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Atom or domain literal, with whether whitespace/comment preceded it.
    Word(Vec<u8>, bool),
    Quoted(Vec<u8>, bool),
    Comment(Vec<u8>),
    Special(u8, bool),
}

fn is_special(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'@' | b',' | b';' | b':' | b'\\' | b'"' | b'.' | b'[' | b']'
    )
}

/// Split an unfolded address header into RFC 5322 lexical tokens.
fn tokenize(s: &[u8]) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut i = 0;
    let mut space = false;
    while i < s.len() {
        let b = s[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                space = true;
                i += 1;
            }
            b'(' => {
                let (mut depth, start) = (0usize, i + 1);
                let mut end = s.len();
                while i < s.len() {
                    match s[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i;
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                toks.push(Tok::Comment(s[start.min(end)..end.min(s.len())].to_vec()));
                space = true;
            }
            b'"' => {
                let mut v = Vec::new();
                i += 1;
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Quoted(v, space));
                space = false;
            }
            b'[' => {
                let start = i;
                while i < s.len() && s[i] != b']' {
                    i += 1;
                }
                i = (i + 1).min(s.len());
                toks.push(Tok::Word(s[start..i].to_vec(), space));
                space = false;
            }
            _ if is_special(b) => {
                toks.push(Tok::Special(b, space));
                space = false;
                i += 1;
            }
            _ => {
                let start = i;
                while i < s.len()
                    && !is_special(s[i])
                    && !matches!(s[i], b' ' | b'\t' | b'\r' | b'\n')
                {
                    i += 1;
                }
                toks.push(Tok::Word(s[start..i].to_vec(), space));
                space = false;
            }
        }
    }
    toks
}

/// A display-name phrase: words joined as in the source (one space where the source had
/// whitespace or a comment), quoted strings unquoted, comments dropped.
fn phrase(toks: &[Tok]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in toks {
        let (text, space): (&[u8], bool) = match t {
            Tok::Word(w, s) | Tok::Quoted(w, s) => (w, *s),
            Tok::Special(b, s) => (std::slice::from_ref(b), *s),
            Tok::Comment(_) => continue,
        };
        if space && !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(text);
    }
    out
}

/// Split an addr-spec (`local@domain`, after an optional obsolete route) into route,
/// mailbox and host.
fn addr_spec(toks: &[Tok]) -> (Option<Vec<u8>>, Vec<u8>, Vec<u8>) {
    // Obsolete route `@a,@b:` (RFC 5322 §4.4 obs-route): what precedes the last ':' is
    // the route, returned as the at-domain-list `@a,@b` (RFC 3501 §7.4.2 addr-adl, as
    // Dovecot and Cyrus send it).
    let (route, toks) = match toks
        .iter()
        .rposition(|t| matches!(t, Tok::Special(b':', _)))
    {
        Some(i) => {
            let mut r = Vec::new();
            for t in &toks[..i] {
                match t {
                    Tok::Word(w, _) | Tok::Quoted(w, _) => r.extend_from_slice(w),
                    Tok::Special(b, _) => r.push(*b),
                    Tok::Comment(_) => {}
                }
            }
            (Some(r).filter(|r| r.starts_with(b"@")), &toks[i + 1..])
        }
        None => (None, toks),
    };
    let at = toks
        .iter()
        .rposition(|t| matches!(t, Tok::Special(b'@', _)));
    let join = |ts: &[Tok]| -> Vec<u8> {
        let mut v = Vec::new();
        for t in ts {
            match t {
                Tok::Word(w, _) | Tok::Quoted(w, _) => v.extend_from_slice(w),
                Tok::Special(b, _) => v.push(*b),
                Tok::Comment(_) => {}
            }
        }
        v
    };
    match at {
        Some(i) => (route, join(&toks[..i]), join(&toks[i + 1..])),
        None => (route, join(toks), Vec::new()),
    }
}

/// Turn the tokens of one mailbox (between commas) into an address, if it has one.
fn mailbox(toks: &[Tok]) -> Option<Address> {
    let lt = toks.iter().position(|t| matches!(t, Tok::Special(b'<', _)));
    let (name, spec) = match lt {
        Some(i) => {
            let gt = toks[i..]
                .iter()
                .position(|t| matches!(t, Tok::Special(b'>', _)))
                .map_or(toks.len(), |j| i + j);
            (phrase(&toks[..i]), &toks[i + 1..gt])
        }
        None => {
            // `user@host (Display Name)`: the comment stands in for the name.
            let comment = toks.iter().rev().find_map(|t| match t {
                Tok::Comment(c) => Some(c.clone()),
                _ => None,
            });
            (comment.unwrap_or_default(), toks)
        }
    };
    let (route, mailbox, host) = addr_spec(spec);
    if mailbox.is_empty() && host.is_empty() {
        return None;
    }
    let name = trim(&name).to_vec();
    Some(Address::Mailbox {
        name: (!name.is_empty()).then_some(name),
        route,
        mailbox,
        host,
    })
}

/// Parse an RFC 5322 §3.4 address-list (mailboxes and groups) leniently.
pub fn parse_address_list(value: &[u8]) -> Vec<Address> {
    let toks = tokenize(value);
    let mut out = Vec::new();
    let (mut start, mut in_angle, mut in_group) = (0usize, false, false);
    for (i, tok) in toks.iter().enumerate() {
        let Tok::Special(b, _) = tok else { continue };
        match b {
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            b',' if !in_angle => {
                out.extend(mailbox(&toks[start..i]));
                start = i + 1;
            }
            b':' if !in_angle && !in_group => {
                out.push(Address::GroupStart(phrase(&toks[start..i])));
                in_group = true;
                start = i + 1;
            }
            b';' if !in_angle && in_group => {
                out.extend(mailbox(&toks[start..i]));
                out.push(Address::GroupEnd);
                in_group = false;
                start = i + 1;
            }
            _ => {}
        }
    }
    out.extend(mailbox(&toks[start.min(toks.len())..]));
    if in_group {
        out.push(Address::GroupEnd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(raw: &str) -> String {
        String::from_utf8(envelope(raw.as_bytes())).unwrap_or_default()
    }

    #[test]
    fn rfc9051_style_envelope_is_exact() {
        // After the RFC 9051 §7.5.2 FETCH example.
        let raw = "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n\
            From: Terry Gray <gray@cac.washington.edu>\r\n\
            Subject: IMAP4rev2 WG mtg summary and minutes\r\n\
            To: imap@cac.washington.edu\r\n\
            cc: minutes@CNRI.Reston.VA.US,\r\n John Klensin <KLENSIN@MIT.EDU>\r\n\
            Message-Id: <B27397-0100000@cac.washington.edu>\r\n\
            \r\nbody\r\n";
        assert_eq!(
            env(raw),
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev2 WG mtg summary and minutes\" \
             ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
             ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
             ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
             ((NIL NIL \"imap\" \"cac.washington.edu\")) \
             ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) \
             NIL NIL \"<B27397-0100000@cac.washington.edu>\")"
        );
    }

    #[test]
    fn missing_headers_give_nil_and_sender_defaults_to_from() {
        assert_eq!(
            env("X-Other: 1\r\n\r\nbody"),
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
        assert_eq!(env(""), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
        assert_eq!(
            env("From: a@b\nSender:\nReply-To: r@b\n\n"),
            "(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"r\" \"b\")) NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn encoded_words_and_quotes_stay_raw() {
        let raw = "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\
            From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n\
            To: \"Doe, \\\"J\\\"\" <j@x.org>, John Q. Public <jqp@y.org>, bob@z.org (Bob B)\r\n\r\n";
        assert_eq!(
            env(raw),
            "(NIL \"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\" \
             ((\"=?ISO-8859-1?Q?Andr=E9?= Pirard\" NIL \"PIRARD\" \"vm1.ulg.ac.be\")) \
             ((\"=?ISO-8859-1?Q?Andr=E9?= Pirard\" NIL \"PIRARD\" \"vm1.ulg.ac.be\")) \
             ((\"=?ISO-8859-1?Q?Andr=E9?= Pirard\" NIL \"PIRARD\" \"vm1.ulg.ac.be\")) \
             ((\"Doe, \\\"J\\\"\" NIL \"j\" \"x.org\")(\"John Q. Public\" NIL \"jqp\" \"y.org\")(\"Bob B\" NIL \"bob\" \"z.org\")) \
             NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn groups_render_start_and_end_markers() {
        let cases: &[(&str, &str)] = &[
            (
                "undisclosed-recipients:;",
                "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))",
            ),
            (
                "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, x@y",
                "((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")\
                 (\"John\" NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL)(NIL NIL \"x\" \"y\"))",
            ),
            (
                "Team: a@b",
                "((NIL NIL \"Team\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL))",
            ),
        ];
        for (to, want) in cases {
            let out = env(&format!("To: {to}\r\n\r\n"));
            let got = out.split(' ').collect::<Vec<_>>();
            let expected = format!("(NIL NIL NIL NIL NIL {want} NIL NIL NIL NIL)");
            assert_eq!(out, expected, "To: {to} ({} tokens)", got.len());
        }
    }

    #[test]
    fn odd_addresses_do_not_break_the_list() {
        let cases: &[(&str, &str)] = &[
            (
                "<@route1,@route2:user@host>",
                "((NIL \"@route1,@route2\" \"user\" \"host\"))",
            ),
            (
                "Joe <@relay.test:joe@example.test>",
                "((\"Joe\" \"@relay.test\" \"joe\" \"example.test\"))",
            ),
            ("localonly", "((NIL NIL \"localonly\" \"\"))"),
            ("<>", "NIL"),
            ("a@[127.0.0.1]", "((NIL NIL \"a\" \"[127.0.0.1]\"))"),
            (
                "\"unterminated <a@b>",
                "((NIL NIL \"unterminated <a@b>\" \"\"))",
            ),
            (",,,", "NIL"),
        ];
        for (to, want) in cases {
            let out = env(&format!("To: {to}\r\n\r\n"));
            assert_eq!(
                out,
                format!("(NIL NIL NIL NIL NIL {want} NIL NIL NIL NIL)"),
                "To: {to}"
            );
        }
    }

    #[test]
    fn eight_bit_values_become_literals() {
        let out = envelope("Subject: caf\u{e9}\r\n\r\n".as_bytes());
        assert_eq!(
            out,
            b"(NIL {5}\r\ncaf\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
    }
}
