//! IMAP URLs of one message or part of it (RFC 5092 `imessagepart`), as CATENATE (RFC 4469
//! §5) uses them: absolute (`imap://user@host/INBOX;UIDVALIDITY=9/;UID=20/;SECTION=1.2`)
//! or relative to the server (`/INBOX;UIDVALIDITY=9/;UID=20`). Sans-I/O: this only reads
//! the text; the session resolves it.

/// Longest URL accepted (bytes).
pub const MAX_URL_LEN: usize = 4096;

/// One message, or a section of it, named by an IMAP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUrl {
    /// `iuserinfo` without `;AUTH=…`, decoded; `None` for a server-relative URL.
    pub user: Option<String>,
    /// `host` of an absolute URL (with any `:port` dropped).
    pub host: Option<String>,
    /// The mailbox name, %-decoded (RFC 5092 §3.2: UTF-8).
    pub mailbox: String,
    pub uid_validity: Option<u32>,
    pub uid: u32,
    /// `;SECTION=`, %-decoded (a FETCH section spec without the brackets).
    pub section: Option<String>,
    /// `;PARTIAL=offset[.length]`.
    pub partial: Option<(u32, Option<u32>)>,
    /// `;EXPIRE=…;URLAUTH=…` (RFC 4467): the text from `;EXPIRE=` or `;URLAUTH=` on.
    pub urlauth: Option<String>,
}

/// RFC 3986 %-decoding; `None` for a broken escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Strips a case-insensitive ASCII `prefix`.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn nz_number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n > 0)
}

/// Parses an IMAP URL of a message (RFC 5092 §11: `imessagepart` with optional
/// `iurlauth`). `None` when it is not one (or too long).
pub fn parse(url: &str) -> Option<MessageUrl> {
    if url.len() > MAX_URL_LEN || url.bytes().any(|c| c <= b' ' || c == 0x7f) {
        return None;
    }
    let (user, host, path) = match strip_prefix_ci(url, "imap://") {
        Some(rest) => {
            let slash = rest.find('/')?;
            let (server, path) = rest.split_at(slash);
            let (userinfo, hostport) = match server.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, server),
            };
            let host = match hostport.rsplit_once(':') {
                Some((h, port)) if port.bytes().all(|c| c.is_ascii_digit()) => h,
                _ => hostport,
            };
            if host.is_empty() {
                return None;
            }
            // RFC 5092 §3.2: `enc-user [iauth]`, `iauth = ";AUTH=" ( "*" / enc-auth-type )`.
            let user = match userinfo {
                Some(u) => {
                    let name = match u.find(';') {
                        Some(i) => &u[..i],
                        None => u,
                    };
                    Some(percent_decode(name)?)
                }
                None => None,
            };
            (user, Some(host.to_ascii_lowercase()), path)
        }
        None => (None, None, url),
    };
    let path = path.strip_prefix('/')?;
    // `enc-mailbox [uidvalidity] iuid [isection] [ipartial] [iurlauth]`: the mailbox
    // runs up to the first `;UIDVALIDITY=` or `/;UID=`.
    let mut rest;
    let mailbox_end = find_ci(path, ";UIDVALIDITY=")
        .or_else(|| find_ci(path, "/;UID="))
        .unwrap_or(path.len());
    let mailbox = percent_decode(&path[..mailbox_end])?;
    if mailbox.is_empty() {
        return None;
    }
    rest = &path[mailbox_end..];
    let mut uid_validity = None;
    if let Some(r) = strip_prefix_ci(rest, ";UIDVALIDITY=") {
        let end = r.find('/').unwrap_or(r.len());
        uid_validity = Some(nz_number(&r[..end])?);
        rest = &r[end..];
    }
    let r = strip_prefix_ci(rest, "/;UID=")?;
    let end = r.find(['/', ';']).unwrap_or(r.len());
    let uid = nz_number(&r[..end])?;
    rest = &r[end..];
    let mut section = None;
    if let Some(r) = strip_prefix_ci(rest, "/;SECTION=") {
        let end = find_ci(r, "/;PARTIAL=")
            .or_else(|| find_ci(r, ";EXPIRE="))
            .or_else(|| find_ci(r, ";URLAUTH="))
            .unwrap_or(r.len());
        section = Some(percent_decode(&r[..end])?);
        rest = &r[end..];
    }
    let mut partial = None;
    if let Some(r) = strip_prefix_ci(rest, "/;PARTIAL=") {
        let end = r.find(';').unwrap_or(r.len());
        let range = &r[..end];
        partial = Some(match range.split_once('.') {
            Some((o, l)) => (o.parse().ok()?, Some(nz_number(l)?)),
            None => (range.parse().ok()?, None),
        });
        if !range.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            return None;
        }
        rest = &r[end..];
    }
    let urlauth = if rest.is_empty() {
        None
    } else if strip_prefix_ci(rest, ";EXPIRE=").is_some()
        || strip_prefix_ci(rest, ";URLAUTH=").is_some()
    {
        Some(rest.to_string())
    } else {
        return None;
    };
    Some(MessageUrl {
        user,
        host,
        mailbox,
        uid_validity,
        uid,
        section,
        partial,
        urlauth,
    })
}

/// The URLAUTH part of a URL (RFC 4467 §7: `iurlauth-rump = [expire] ";URLAUTH=" access`,
/// `iurlauth = iurlauth-rump iua-verifier`, `iua-verifier = ":" uauth-mechanism ":"
/// enc-urlauth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlAuth<'a> {
    /// The URL up to and including the access identifier: what the token signs.
    pub rump: &'a str,
    /// `;EXPIRE=` date-time (RFC 3339), as written.
    pub expire: Option<&'a str>,
    /// `authuser`, `anonymous`, `user+name` or `submit+name` (as written).
    pub access: &'a str,
    /// `(mechanism, token)` of an authorized URL; `None` in a rump (GENURLAUTH).
    pub verifier: Option<(&'a str, &'a str)>,
}

/// Splits the URLAUTH part off a URL; `None` when it has none or it is malformed.
pub fn split_urlauth(url: &str) -> Option<UrlAuth<'_>> {
    let at = find_ci(url, ";URLAUTH=")?;
    let expire = find_ci(&url[..at], ";EXPIRE=").map(|e| &url[e + ";EXPIRE=".len()..at]);
    let after = &url[at + ";URLAUTH=".len()..];
    // The access identifier ends at the first ':' (user names are %-encoded).
    let (access, verifier) = match after.find(':') {
        Some(i) => {
            let (mech, token) = after[i + 1..].split_once(':')?;
            if mech.is_empty() || token.is_empty() || token.contains(':') {
                return None;
            }
            (&after[..i], Some((mech, token)))
        }
        None => (after, None),
    };
    if access.is_empty() {
        return None;
    }
    let rump = &url[..at + ";URLAUTH=".len() + access.len()];
    Some(UrlAuth {
        rump,
        expire,
        access,
        verifier,
    })
}

/// Byte offset of the first case-insensitive match of ASCII `needle`.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_server_relative_message_urls() {
        let u = parse("imap://alice%40example.test;AUTH=*@Mail.Example.Test:143/INBOX;UIDVALIDITY=9/;UID=20/;SECTION=1.2/;PARTIAL=10.5")
            .expect("url");
        assert_eq!(u.user.as_deref(), Some("alice@example.test"));
        assert_eq!(u.host.as_deref(), Some("mail.example.test"));
        assert_eq!(u.mailbox, "INBOX");
        assert_eq!(u.uid_validity, Some(9));
        assert_eq!(u.uid, 20);
        assert_eq!(u.section.as_deref(), Some("1.2"));
        assert_eq!(u.partial, Some((10, Some(5))));
        assert_eq!(u.urlauth, None);
        let u =
            parse("/Work%2FStuff%20%C3%A9;uidvalidity=3/;uid=7/;section=HEADER.FIELDS%20(SUBJECT)")
                .expect("relative");
        assert_eq!((u.user, u.host), (None, None));
        assert_eq!(u.mailbox, "Work/Stuff é");
        assert_eq!(u.section.as_deref(), Some("HEADER.FIELDS (SUBJECT)"));
        let u = parse("/INBOX/;UID=5").expect("no uidvalidity");
        assert_eq!(
            (u.mailbox.as_str(), u.uid, u.uid_validity),
            ("INBOX", 5, None)
        );
        let u = parse("imap://a@h/INBOX;UIDVALIDITY=1/;UID=2;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=submit+a:internal:00ff")
            .expect("urlauth");
        assert!(u.urlauth.is_some_and(|s| s.starts_with(";EXPIRE=")));
    }

    #[test]
    fn urlauth_parts_split_off() {
        let url = "imap://joe@h/INBOX/;UID=20/;SECTION=1.2;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=submit+fred:internal:91354a47";
        let a = split_urlauth(url).expect("urlauth");
        assert_eq!(a.expire, Some("2030-01-01T00:00:00Z"));
        assert_eq!(a.access, "submit+fred");
        assert_eq!(a.verifier, Some(("internal", "91354a47")));
        assert!(a.rump.ends_with(";URLAUTH=submit+fred"));
        let rump = split_urlauth("imap://joe@h/INBOX/;UID=20;urlauth=authuser").expect("rump");
        assert_eq!((rump.access, rump.verifier), ("authuser", None));
        assert_eq!(split_urlauth("imap://joe@h/INBOX/;UID=20"), None);
        assert_eq!(split_urlauth("imap://joe@h/INBOX/;UID=20;URLAUTH="), None);
        assert_eq!(
            split_urlauth("imap://joe@h/INBOX/;UID=20;URLAUTH=a:internal"),
            None
        );
        // The message part still parses with the URLAUTH part on.
        let u = parse(url).expect("message url");
        assert_eq!((u.uid, u.section.as_deref()), (20, Some("1.2")));
    }

    #[test]
    fn arbitrary_pieces_never_panic() {
        // A cheap stand-in for fuzz/fuzz_targets/imap_url.rs in every test run.
        const PIECES: [&str; 16] = [
            "imap://",
            "/",
            ";UID=",
            ";UIDVALIDITY=",
            "/;SECTION=",
            "/;PARTIAL=",
            ";URLAUTH=",
            ";EXPIRE=",
            ":",
            "@",
            "%",
            "%4",
            "%41",
            "é",
            "1.2",
            "0",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            let mut s = String::new();
            for _ in 0..(seed % 9) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(PIECES[(seed % PIECES.len() as u64) as usize]);
            }
            let _ = parse(&s);
            let _ = split_urlauth(&s);
            let _ = crate::parser::parse_section(&s);
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        }
    }

    #[test]
    fn malformed_urls_are_refused() {
        for bad in [
            "",
            "INBOX/;UID=1",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/;UID=1",
            "/INBOX;UIDVALIDITY=/;UID=1",
            "/INBOX/;UID=1/;PARTIAL=a",
            "/INBOX/;UID=1/;PARTIAL=1.0",
            "/INBOX/;UID=1;JUNK",
            "/IN%ZZBOX/;UID=1",
            "/INBOX/;UID=1 ",
            "imap:///INBOX/;UID=1",
            "http://h/INBOX/;UID=1",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse(&format!("/{}/;UID=1", "a".repeat(MAX_URL_LEN))), None);
    }
}
