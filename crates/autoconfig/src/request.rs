//! The one field of an Autodiscover POX request Bulwark needs: `Request/EMailAddress`.
//!
//! Outlook's request is a small fixed document (the 2006 request schema); a full XML parser
//! for one element would add attack surface for nothing. This reads it with hard limits: at
//! most [`MAX_REQUEST`] bytes, the element's text at most 320 bytes, the five predefined
//! entities only (anything else, CDATA or a DOCTYPE is refused — no entity expansion).

/// Largest request body read (Outlook's are under 1 KB).
pub const MAX_REQUEST: usize = 16 * 1024;
const MAX_ADDRESS: usize = 320;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    TooLarge,
    NotUtf8,
    /// A DOCTYPE or CDATA section: never needed by the schema, refused unread.
    Unsupported,
    NoEmailAddress,
    BadEmailAddress,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RequestError::TooLarge => "the request is too large",
            RequestError::NotUtf8 => "the request is not UTF-8",
            RequestError::Unsupported => "DOCTYPE and CDATA are not accepted",
            RequestError::NoEmailAddress => "the request has no EMailAddress",
            RequestError::BadEmailAddress => "the EMailAddress is not an address",
        })
    }
}

/// The address in `<EMailAddress>…</EMailAddress>` (any namespace prefix), entities decoded.
pub fn autodiscover_request_email(body: &[u8]) -> Result<String, RequestError> {
    if body.len() > MAX_REQUEST {
        return Err(RequestError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| RequestError::NotUtf8)?;
    if text.contains("<!") {
        return Err(RequestError::Unsupported);
    }
    let mut rest = text;
    loop {
        let Some(open) = rest.find('<') else {
            return Err(RequestError::NoEmailAddress);
        };
        rest = &rest[open + 1..];
        let Some(end) = rest.find('>') else {
            return Err(RequestError::NoEmailAddress);
        };
        let tag = &rest[..end];
        let name = tag.split_whitespace().next().unwrap_or("");
        let local = name.rsplit(':').next().unwrap_or(name);
        rest = &rest[end + 1..];
        if local != "EMailAddress" || tag.ends_with('/') {
            continue;
        }
        let close = rest.find('<').ok_or(RequestError::NoEmailAddress)?;
        let raw = rest[..close].trim();
        if raw.len() > MAX_ADDRESS {
            return Err(RequestError::BadEmailAddress);
        }
        let address = decode_entities(raw).ok_or(RequestError::BadEmailAddress)?;
        if address.is_empty()
            || !address.contains('@')
            || address.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(RequestError::BadEmailAddress);
        }
        return Ok(address);
    }
}

fn decode_entities(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let semi = rest.find(';')?;
        out.push(match &rest[..=semi] {
            "&lt;" => '<',
            "&gt;" => '>',
            "&amp;" => '&',
            "&quot;" => '"',
            "&apos;" => '\'',
            _ => return None,
        });
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTLOOK: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>alice@example.test</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#;

    #[test]
    fn reads_outlooks_request() {
        assert_eq!(
            autodiscover_request_email(OUTLOOK.as_bytes()).unwrap(),
            "alice@example.test"
        );
        let prefixed = "<a:Autodiscover xmlns:a=\"x\"><a:Request><a:EMailAddress>b&amp;c@x.test</a:EMailAddress></a:Request></a:Autodiscover>";
        assert_eq!(
            autodiscover_request_email(prefixed.as_bytes()).unwrap(),
            "b&c@x.test"
        );
    }

    #[test]
    fn hostile_requests_get_clear_errors() {
        let cases: [(&[u8], RequestError); 6] = [
            (
                b"<!DOCTYPE x [<!ENTITY a 'b'>]><EMailAddress>&a;</EMailAddress>",
                RequestError::Unsupported,
            ),
            (
                b"<EMailAddress>&bogus;@x</EMailAddress>",
                RequestError::BadEmailAddress,
            ),
            (b"<Request></Request>", RequestError::NoEmailAddress),
            (
                b"<EMailAddress>no-at-sign</EMailAddress>",
                RequestError::BadEmailAddress,
            ),
            (b"\xff\xfe<", RequestError::NotUtf8),
            (b"<EMailAddress/>", RequestError::NoEmailAddress),
        ];
        for (body, want) in cases {
            assert_eq!(autodiscover_request_email(body), Err(want), "{body:?}");
        }
        let big = vec![b'a'; MAX_REQUEST + 1];
        assert_eq!(
            autodiscover_request_email(&big),
            Err(RequestError::TooLarge)
        );
        let long = format!("<EMailAddress>{}@x.test</EMailAddress>", "a".repeat(400));
        assert_eq!(
            autodiscover_request_email(long.as_bytes()),
            Err(RequestError::BadEmailAddress)
        );
    }
}
