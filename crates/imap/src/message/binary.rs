//! BINARY[part] (RFC 3516): part content with its Content-Transfer-Encoding removed, and
//! the lenient transfer decoders SEARCH reuses.

use super::mime::{parse_message, resolve};
use thiserror::Error;

/// Why a BINARY fetch cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BinaryError {
    /// RFC 3516 §4.3: the part uses a transfer encoding we cannot decode; the caller
    /// answers `NO [UNKNOWN-CTE]`.
    #[error("unknown content-transfer-encoding {0:?}")]
    UnknownCte(String),
}

/// A Content-Transfer-Encoding (RFC 2045 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cte {
    Identity,
    Base64,
    QuotedPrintable,
}

/// Map a Content-Transfer-Encoding value; `None` for an unknown token.
pub(crate) fn cte(value: Option<&[u8]>) -> Option<Cte> {
    let v = super::mime::trim(value.unwrap_or(b""));
    let is = |s: &str| v.eq_ignore_ascii_case(s.as_bytes());
    if v.is_empty() || is("7bit") || is("8bit") || is("binary") {
        Some(Cte::Identity)
    } else if is("base64") {
        Some(Cte::Base64)
    } else if is("quoted-printable") {
        Some(Cte::QuotedPrintable)
    } else {
        None
    }
}

pub(crate) fn decode(cte: Cte, data: &[u8]) -> Vec<u8> {
    match cte {
        Cte::Identity => data.to_vec(),
        Cte::Base64 => decode_base64(data),
        Cte::QuotedPrintable => decode_quoted_printable(data),
    }
}

/// `BINARY[part]` content: `Ok(None)` when the part does not exist. An empty `part` is the
/// whole message as stored.
pub fn binary(raw: &[u8], part: &[u32]) -> Result<Option<Vec<u8>>, BinaryError> {
    if part.is_empty() {
        return Ok(Some(raw.to_vec()));
    }
    let root = parse_message(raw);
    let Some(p) = resolve(&root, part) else {
        return Ok(None);
    };
    let body = &raw[p.body.clone()];
    // Multipart and message/rfc822 parts should be identity-encoded (RFC 2045 §6.4); a
    // base64-encoded message/rfc822 seen in the wild is decoded like any other part.
    let value = p.header.value(raw, "content-transfer-encoding");
    match cte(value.as_deref()) {
        Some(c) => Ok(Some(decode(c, body))),
        None => Err(BinaryError::UnknownCte(
            String::from_utf8_lossy(&value.unwrap_or_default()).into_owned(),
        )),
    }
}

/// `BINARY.SIZE[part]` (RFC 3516 §4.2): the decoded size.
pub fn binary_size(raw: &[u8], part: &[u32]) -> Result<Option<usize>, BinaryError> {
    binary(raw, part).map(|b| b.map(|b| b.len()))
}

fn b64_value(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some(u32::from(b - b'A')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(b - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Lenient base64 (RFC 2045 §6.8): characters outside the alphabet are ignored, decoding
/// stops at the first '='.
pub(crate) fn decode_base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        if b == b'=' {
            break;
        }
        let Some(v) = b64_value(b) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Lenient quoted-printable (RFC 2045 §6.7): `=XX` escapes, `=` line ends are soft breaks,
/// trailing whitespace before a line end is dropped, a malformed `=` is kept literally.
pub(crate) fn decode_quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    // Literal (not `=20`-encoded) whitespace at the end of `out`: transport padding.
    let mut padding = 0usize;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            padding = 0;
        }
        match b {
            b'=' => {
                let rest = &data[i + 1..];
                let ws = rest
                    .iter()
                    .take_while(|c| matches!(c, b' ' | b'\t'))
                    .count();
                let after = &rest[ws..];
                if after.starts_with(b"\r\n") {
                    i += 1 + ws + 2;
                } else if after.starts_with(b"\n") {
                    i += 1 + ws + 1;
                } else if after.is_empty() {
                    i = data.len();
                } else if let (Some(h), Some(l)) = (
                    rest.first().and_then(|&c| hex_value(c)),
                    rest.get(1).and_then(|&c| hex_value(c)),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                } else {
                    out.push(b'=');
                    i += 1;
                }
            }
            b'\r' | b'\n' => {
                out.truncate(out.len() - padding);
                padding = 0;
                out.push(b);
                i += 1;
            }
            b' ' | b'\t' => {
                out.push(b);
                padding += 1;
                i += 1;
                continue;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::*;

    #[test]
    fn binary_decodes_base64_and_quoted_printable_parts() {
        type Case<'a> = (&'a [u8], &'a [u32], Result<Option<Vec<u8>>, BinaryError>);
        let cases: Vec<Case> = vec![
            (MIXED.as_bytes(), &[2], Ok(Some(vec![0, 1, 2, 3, 0xff]))),
            (MIXED.as_bytes(), &[1], Ok(Some(b"Plain part.".to_vec()))),
            (MIXED.as_bytes(), &[9], Ok(None)),
            (
                ALTERNATIVE.as_bytes(),
                &[1],
                Ok(Some("Caf\u{e9} time!".as_bytes().to_vec())),
            ),
            (
                LATIN1_LF,
                &[1],
                Ok(Some(
                    b"Voil\xe0 le caf\xe9 cr\xe8me, \nsoftbreak.\n".to_vec(),
                )),
            ),
            (PLAIN.as_bytes(), &[], Ok(Some(PLAIN.as_bytes().to_vec()))),
            (
                b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\n",
                &[1],
                Err(BinaryError::UnknownCte("x-uuencode".into())),
            ),
        ];
        for (raw, part, want) in cases {
            assert_eq!(binary(raw, part), want, "part {part:?}");
        }
        assert_eq!(binary_size(MIXED.as_bytes(), &[2]), Ok(Some(5)));
    }

    #[test]
    fn multipart_and_message_parts_are_not_decoded() {
        let inner = &MIXED.as_bytes()[MIXED.find("Subject: inner").unwrap_or(0)..];
        let got = binary(MIXED.as_bytes(), &[3])
            .ok()
            .flatten()
            .unwrap_or_default();
        assert!(inner.starts_with(&got) && got.ends_with(b"Inner body."));
    }

    #[test]
    fn base64_is_lenient() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"aGVsbG8=", b"hello"),
            (b"aGVs\r\nbG8", b"hello"),
            (b"a G!V*s bG8=ignored", b"hello"),
            (b"", b""),
            (b"=", b""),
            (b"QQ", b"A"),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode_base64(input),
                want.to_vec(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn quoted_printable_is_lenient() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a=3Db", b"a=b"),
            (b"soft=\r\nbreak", b"softbreak"),
            (b"soft= \nbreak", b"softbreak"),
            (b"trail  \r\nx", b"trail\r\nx"),
            (b"bad=ZZ=4", b"bad=ZZ=4"),
            (b"end=", b"end"),
            (b"low=e9", b"low\xe9"),
            (b"kept=20\r\n", b"kept \r\n"),
            (b"mixed =20 \n", b"mixed  \n"),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode_quoted_printable(input),
                want.to_vec(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
