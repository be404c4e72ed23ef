//! A FETCH body section specifier (RFC 9051 §6.4.5 `section-spec`).

/// `BODY[<part>.<text>]<<partial>>`: `part` is the dotted part number (empty = whole message).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// `HEADER`
    Header,
    /// `HEADER.FIELDS (a b)` / `HEADER.FIELDS.NOT (a b)`; field names as given (compare
    /// case-insensitively).
    HeaderFields { not: bool, fields: Vec<String> },
    /// `TEXT`
    Text,
    /// `MIME` (only with a part number)
    Mime,
}
