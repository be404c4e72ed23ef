//! FETCH, STORE, COPY and MOVE (RFC 9051 §6.4.5–§6.4.8, RFC 6851, RFC 7162 modifiers).

use super::ParseError;
use super::ast::*;
use super::commands::mailbox_name;
use super::lexer::{Cursor, PResult};
use crate::message::{Section, SectionText};

/// Most header field names in one `HEADER.FIELDS` list.
const MAX_HEADER_FIELDS: usize = 256;
/// Most modifiers after PREVIEW (only `LAZY` is defined; a repeat is allowed).
const MAX_PREVIEW_MODS: usize = 4;
/// Most parts in a section number (`1.2.3...`).
const MAX_SECTION_PARTS: usize = 32;

pub(super) fn fetch(c: &mut Cursor<'_>, uid: bool) -> PResult<FetchCommand> {
    c.sp()?;
    let set = c.sequence_set()?;
    c.sp()?;
    let mut attrs = Vec::new();
    if c.try_byte(b'(') {
        loop {
            attrs.push(fetch_att(c)?);
            if c.try_byte(b')') {
                break;
            }
            c.sp()?;
        }
    } else if c.try_word("ALL") {
        // RFC 9051 §6.4.5 macros
        attrs = vec![
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
            FetchAttr::Envelope,
        ];
    } else if c.try_word("FULL") {
        attrs = vec![
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
            FetchAttr::Envelope,
            FetchAttr::Body,
        ];
    } else if c.try_word("FAST") {
        attrs = vec![
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
        ];
    } else {
        attrs.push(fetch_att(c)?);
    }
    let mut cmd = FetchCommand {
        uid,
        set,
        attrs,
        changed_since: None,
        vanished: false,
    };
    if c.try_byte(b' ') {
        // RFC 7162 §3.1.4 / §3.2.6 fetch modifiers
        c.expect(b'(')?;
        loop {
            let m = c.keyword("fetch modifier")?;
            match m.as_str() {
                "CHANGEDSINCE" => {
                    c.sp()?;
                    cmd.changed_since = Some(c.number64("mod-sequence value")?);
                }
                "VANISHED" if uid => cmd.vanished = true,
                _ => return Err(ParseError::syntax(&format!("unknown fetch modifier {m}"))),
            }
            if c.try_byte(b')') {
                break;
            }
            c.sp()?;
        }
        // RFC 7162 §3.2.6: VANISHED requires CHANGEDSINCE.
        if cmd.vanished && cmd.changed_since.is_none() {
            return Err(ParseError::syntax("VANISHED requires CHANGEDSINCE"));
        }
    }
    Ok(cmd)
}

pub(super) fn fetch_att(c: &mut Cursor<'_>) -> PResult<FetchAttr> {
    let name = c.fetch_att_name();
    Ok(match name.as_str() {
        "ENVELOPE" => FetchAttr::Envelope,
        "FLAGS" => FetchAttr::Flags,
        "INTERNALDATE" => FetchAttr::InternalDate,
        "RFC822" => FetchAttr::Rfc822,
        "RFC822.HEADER" => FetchAttr::Rfc822Header,
        "RFC822.SIZE" => FetchAttr::Rfc822Size,
        "RFC822.TEXT" => FetchAttr::Rfc822Text,
        "BODYSTRUCTURE" => FetchAttr::BodyStructure,
        "UID" => FetchAttr::Uid,
        "MODSEQ" => FetchAttr::ModSeq,
        // RFC 8474 §5
        "EMAILID" => FetchAttr::EmailId,
        "THREADID" => FetchAttr::ThreadId,
        // RFC 8514 §4.3
        "SAVEDATE" => FetchAttr::SaveDate,
        // RFC 8970 §5: `"PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]`, and
        // `preview-mod = "LAZY"`. Looked for as ` (LAZY` so that a FETCH modifier list after a
        // lone PREVIEW (`FETCH 1 PREVIEW (CHANGEDSINCE 5)`) is not taken for it.
        "PREVIEW" => {
            let lazy = c.try_word(" (LAZY");
            if lazy {
                for _ in 0..MAX_PREVIEW_MODS {
                    if !c.try_byte(b' ') {
                        break;
                    }
                    if !c.try_word("LAZY") {
                        return Err(ParseError::expected("preview modifier"));
                    }
                }
                c.expect(b')')?;
            }
            FetchAttr::Preview { lazy }
        }
        "BODY" if c.peek() != Some(b'[') => FetchAttr::Body,
        "BODY" | "BODY.PEEK" => {
            let section = section(c)?;
            let partial = partial(c)?;
            FetchAttr::BodySection {
                section,
                partial,
                peek: name == "BODY.PEEK",
            }
        }
        "BINARY" | "BINARY.PEEK" => {
            let part = section_binary(c)?;
            let partial = partial(c)?;
            FetchAttr::Binary {
                part,
                partial,
                peek: name == "BINARY.PEEK",
            }
        }
        "BINARY.SIZE" => FetchAttr::BinarySize {
            part: section_binary(c)?,
        },
        "" => return Err(ParseError::expected("fetch attribute")),
        _ => {
            return Err(ParseError::syntax(&format!(
                "unknown fetch attribute {name}"
            )));
        }
    })
}

/// `section-part = nz-number *("." nz-number)`; stops before a non-number element.
fn section_part(c: &mut Cursor<'_>) -> PResult<Vec<u32>> {
    let mut part = Vec::new();
    while c.peek().is_some_and(|b| b.is_ascii_digit()) {
        if part.len() >= MAX_SECTION_PARTS {
            return Err(ParseError::syntax("section number too deep"));
        }
        part.push(c.nz_number("section part number")?);
        if !c.dot_before_part_or_text() {
            break;
        }
    }
    Ok(part)
}

/// `section = "[" [section-spec] "]"`
/// A section spec without its brackets (`1.2.HEADER`, as in an IMAP URL's `;SECTION=`,
/// RFC 5092 §3.5 `enc-section`): `None` when it is not one.
pub fn parse_section(text: &str) -> Option<Section> {
    let bracketed = format!("[{text}]");
    let mut c = Cursor::new(bracketed.as_bytes());
    let section = section(&mut c).ok()?;
    c.eof().then_some(section)
}

fn section(c: &mut Cursor<'_>) -> PResult<Section> {
    c.expect(b'[')?;
    let part = section_part(c)?;
    let mut text = None;
    if c.peek() != Some(b']') {
        let word = c.fetch_att_name();
        text = Some(match word.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !part.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                c.sp()?;
                SectionText::HeaderFields {
                    not: word.ends_with(".NOT"),
                    fields: header_list(c)?,
                }
            }
            _ => return Err(ParseError::expected("section specifier")),
        });
    }
    c.expect(b']')?;
    Ok(Section { part, text })
}

fn header_list(c: &mut Cursor<'_>) -> PResult<Vec<String>> {
    c.expect(b'(')?;
    let mut fields = Vec::new();
    loop {
        if fields.len() >= MAX_HEADER_FIELDS {
            return Err(ParseError::syntax("too many header fields"));
        }
        let f = c.astring("header field name")?;
        fields.push(String::from_utf8_lossy(&f).into_owned());
        if c.try_byte(b')') {
            return Ok(fields);
        }
        c.sp()?;
    }
}

/// `section-binary = "[" [section-part] "]"`
fn section_binary(c: &mut Cursor<'_>) -> PResult<Vec<u32>> {
    c.expect(b'[')?;
    let part = section_part(c)?;
    c.expect(b']')?;
    Ok(part)
}

/// `partial = "<" number "." nz-number ">"`
fn partial(c: &mut Cursor<'_>) -> PResult<Option<(u32, u32)>> {
    if !c.try_byte(b'<') {
        return Ok(None);
    }
    let start = c.number("partial offset")?;
    c.expect(b'.')?;
    let len = c.nz_number("partial length")?;
    c.expect(b'>')?;
    Ok(Some((start, len)))
}

/// `store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags`
pub(super) fn store(c: &mut Cursor<'_>, uid: bool) -> PResult<StoreCommand> {
    c.sp()?;
    let set = c.sequence_set()?;
    c.sp()?;
    let mut unchanged_since = None;
    if c.try_byte(b'(') {
        // RFC 7162 §3.1.3
        loop {
            let m = c.keyword("store modifier")?;
            match m.as_str() {
                "UNCHANGEDSINCE" => {
                    c.sp()?;
                    unchanged_since = Some(c.number64("mod-sequence value")?);
                }
                _ => return Err(ParseError::syntax(&format!("unknown store modifier {m}"))),
            }
            if c.try_byte(b')') {
                break;
            }
            c.sp()?;
        }
        c.sp()?;
    }
    let op = if c.try_byte(b'+') {
        StoreOp::Add
    } else if c.try_byte(b'-') {
        StoreOp::Remove
    } else {
        StoreOp::Replace
    };
    let item = c.fetch_att_name();
    let silent = match item.as_str() {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        _ => return Err(ParseError::expected("FLAGS or FLAGS.SILENT")),
    };
    c.sp()?;
    let flags = c.store_flags()?;
    Ok(StoreCommand {
        uid,
        set,
        op,
        silent,
        flags,
        unchanged_since,
    })
}

pub(super) fn copy_move(c: &mut Cursor<'_>, uid: bool, is_move: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = c.sequence_set()?;
    c.sp()?;
    let mailbox = mailbox_name(c)?;
    Ok(if is_move {
        CommandBody::Move { uid, set, mailbox }
    } else {
        CommandBody::Copy { uid, set, mailbox }
    })
}
