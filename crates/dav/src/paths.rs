//! The DAV URL space: `/dav/principals/{user}/`, `/dav/calendars/{user}/{cal}/{obj}.ics`,
//! `/dav/addressbooks/{user}/{book}/{card}.vcf`.

use crate::limits::MAX_NAME_LEN;
use crate::store::Kind;

pub const ROOT: &str = "/dav/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Root,
    Principal,
    Home(Kind),
    Collection(Kind, String),
    Object(Kind, String, String),
}

/// Why a path does not name a resource of this user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    NotFound,
    /// Another user's path: answered like a missing one, so nothing is learned.
    OtherUser,
}

/// Parses a request path (percent-encoded, query already removed) for `username`.
pub fn parse(path: &str, username: &str) -> Result<Target, PathError> {
    let rest = path.strip_prefix("/dav").ok_or(PathError::NotFound)?;
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect::<Option<_>>()
        .ok_or(PathError::NotFound)?;
    if segments.iter().any(|s| !valid_segment(s)) {
        return Err(PathError::NotFound);
    }
    let Some((first, rest)) = segments.split_first() else {
        return Ok(Target::Root);
    };
    let kind = match first.as_str() {
        "principals" => None,
        "calendars" => Some(Kind::Calendar),
        "addressbooks" => Some(Kind::Addressbook),
        _ => return Err(PathError::NotFound),
    };
    let Some((user, rest)) = rest.split_first() else {
        return Err(PathError::NotFound);
    };
    if !user.eq_ignore_ascii_case(username) {
        return Err(PathError::OtherUser);
    }
    match (kind, rest) {
        (None, []) => Ok(Target::Principal),
        (Some(k), []) => Ok(Target::Home(k)),
        (Some(k), [c]) => Ok(Target::Collection(k, c.clone())),
        (Some(k), [c, o]) => Ok(Target::Object(k, c.clone(), o.clone())),
        _ => Err(PathError::NotFound),
    }
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s != "."
        && s != ".."
        && !s.contains('/')
        && !s.chars().any(char::is_control)
}

/// Percent-decoding of one segment (RFC 3986 §2.1); `None` for bad escapes or non-UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encoding of one segment: everything but unreserved characters and `@`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn principal(user: &str) -> String {
    format!("/dav/principals/{}/", encode(user))
}

pub fn home(kind: Kind, user: &str) -> String {
    format!("/dav/{}/{}/", kind.home_segment(), encode(user))
}

pub fn collection(kind: Kind, user: &str, id: &str) -> String {
    format!("{}{}/", home(kind, user), encode(id))
}

pub fn object(kind: Kind, user: &str, id: &str, name: &str) -> String {
    format!("{}{}", collection(kind, user, id), encode(name))
}

/// The path of an href (absolute URL or absolute path).
pub fn href_path(href: &str) -> &str {
    let href = href.trim();
    let path = match href.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => href,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_for_their_owner_only() {
        let u = "ann@example.com";
        assert_eq!(parse("/dav/", u), Ok(Target::Root));
        assert_eq!(
            parse("/dav/principals/ann%40example.com/", u),
            Ok(Target::Principal)
        );
        assert_eq!(
            parse("/dav/calendars/ann@example.com/default/e1.ics", u),
            Ok(Target::Object(
                Kind::Calendar,
                "default".into(),
                "e1.ics".into()
            ))
        );
        assert_eq!(
            parse("/dav/calendars/bob@example.com/", u),
            Err(PathError::OtherUser)
        );
        assert_eq!(
            parse("/dav/calendars/ann@example.com/%2e%2e/x", u),
            Err(PathError::NotFound)
        );
        assert_eq!(
            parse("/dav/calendars/ann@example.com/a%2Fb/", u),
            Err(PathError::NotFound)
        );
        assert_eq!(
            parse("/dav/calendars/ann@example.com/%zz/", u),
            Err(PathError::NotFound)
        );
        assert_eq!(parse("/other", u), Err(PathError::NotFound));
    }

    #[test]
    fn hrefs_lose_scheme_and_host() {
        assert_eq!(href_path("https://h:1/dav/x?y"), "/dav/x");
        assert_eq!(href_path("/dav/x"), "/dav/x");
        assert_eq!(encode("a b@c"), "a%20b@c");
    }
}
