//! Token reader over one complete command (RFC 9051 §9 formal syntax). The framing layer
//! has already checked literal sizes; the cursor still bounds-checks every access.

use super::ParseError;
use super::ast::{Date, SeqBound, SequenceSet, days_from_civil};

pub(crate) type PResult<T> = Result<T, ParseError>;

pub(crate) struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

/// RFC 9051 §9 `atom-specials` (plus CTL and 8-bit, handled in [`is_atom_char`]).
fn is_atom_special(c: u8) -> bool {
    matches!(
        c,
        b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' | b']'
    )
}

pub(crate) fn is_atom_char(c: u8) -> bool {
    c > 0x1f && c < 0x7f && !is_atom_special(c)
}

/// `ASTRING-CHAR = ATOM-CHAR / resp-specials`; 8-bit bytes are tolerated for UTF-8
/// mailbox names sent unquoted by lax clients.
fn is_astring_char(c: u8) -> bool {
    is_atom_char(c) || c == b']' || c >= 0x80
}

/// `list-char = ATOM-CHAR / list-wildcards / resp-specials`
fn is_list_char(c: u8) -> bool {
    is_astring_char(c) || c == b'%' || c == b'*'
}

/// `tag = 1*<any ASTRING-CHAR except "+">`
pub(crate) fn is_tag_char(c: u8) -> bool {
    (is_atom_char(c) || c == b']') && c != b'+'
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    pub(crate) fn eof(&self) -> bool {
        self.pos >= self.b.len()
    }

    /// The rest of the command must be empty.
    pub(crate) fn end(&self) -> PResult<()> {
        if self.eof() {
            Ok(())
        } else {
            Err(ParseError::syntax("unexpected text after the command"))
        }
    }

    pub(crate) fn sp(&mut self) -> PResult<()> {
        if self.peek() == Some(b' ') {
            self.pos += 1;
            Ok(())
        } else {
            Err(ParseError::syntax("expected a space"))
        }
    }

    pub(crate) fn try_byte(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, c: u8) -> PResult<()> {
        if self.try_byte(c) {
            Ok(())
        } else {
            Err(ParseError::syntax(&format!("expected \"{}\"", c as char)))
        }
    }

    /// Case-insensitive match of a fixed word; consumes it on success.
    pub(crate) fn try_word(&mut self, word: &str) -> bool {
        let w = word.as_bytes();
        match self.b.get(self.pos..self.pos + w.len()) {
            Some(s) if s.eq_ignore_ascii_case(w) => {
                self.pos += w.len();
                true
            }
            _ => false,
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }

    /// `atom`, returned as written.
    pub(crate) fn atom(&mut self, what: &str) -> PResult<&'a str> {
        let s = self.take_while(is_atom_char);
        if s.is_empty() {
            return Err(ParseError::expected(what));
        }
        // Only ASCII bytes pass `is_atom_char`.
        std::str::from_utf8(s).map_err(|_| ParseError::expected(what))
    }

    /// An atom upper-cased (command names, options, keys).
    pub(crate) fn keyword(&mut self, what: &str) -> PResult<String> {
        Ok(self.atom(what)?.to_ascii_uppercase())
    }

    pub(crate) fn number64(&mut self, what: &str) -> PResult<u64> {
        let s = self.take_while(|c| c.is_ascii_digit());
        if s.is_empty() || s.len() > 20 {
            return Err(ParseError::expected(what));
        }
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| ParseError::expected(what))
    }

    /// A FETCH/STORE item name (`BODY.PEEK`, `RFC822.SIZE`, `FLAGS.SILENT`), upper-cased;
    /// stops at `[`, `<`, space and parentheses. Empty if none.
    pub(crate) fn fetch_att_name(&mut self) -> String {
        let s = self.take_while(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-');
        String::from_utf8_lossy(s).to_ascii_uppercase()
    }

    /// After a section part number: consumes a `.`; returns whether another number follows.
    pub(crate) fn dot_before_part_or_text(&mut self) -> bool {
        if self.peek() != Some(b'.') {
            return false;
        }
        self.pos += 1;
        self.peek().is_some_and(|c| c.is_ascii_digit())
    }

    /// `number` (32-bit, RFC 9051 §9).
    pub(crate) fn number(&mut self, what: &str) -> PResult<u32> {
        let n = self.number64(what)?;
        u32::try_from(n).map_err(|_| ParseError::expected(what))
    }

    pub(crate) fn nz_number(&mut self, what: &str) -> PResult<u32> {
        match self.number(what)? {
            0 => Err(ParseError::expected(what)),
            n => Ok(n),
        }
    }

    /// `quoted`: `"` *QUOTED-CHAR `"` with `\"` and `\\` escapes. 8-bit bytes are
    /// accepted (UTF-8 strings, RFC 9051 §4.3).
    fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => {
                    return Err(ParseError::syntax("unterminated quoted string"));
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return Err(ParseError::syntax("invalid escape in quoted string")),
                    }
                }
                Some(0) => return Err(ParseError::syntax("NUL in quoted string")),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `literal` / `literal8`: `[~]{N[+]}CRLF` followed by N bytes.
    fn literal(&mut self) -> PResult<Vec<u8>> {
        self.try_byte(b'~');
        self.expect(b'{')?;
        let n = self.number64("literal size")?;
        self.try_byte(b'+');
        self.expect(b'}')?;
        self.try_byte(b'\r');
        if !self.try_byte(b'\n') {
            return Err(ParseError::syntax(
                "expected end of line after literal size",
            ));
        }
        let n = usize::try_from(n).map_err(|_| ParseError::syntax("literal too large"))?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(ParseError::syntax("literal shorter than announced"));
        };
        let data = self.b[self.pos..end].to_vec();
        self.pos = end;
        Ok(data)
    }

    pub(crate) fn at_literal(&self) -> bool {
        matches!(self.peek(), Some(b'{'))
            || (self.peek() == Some(b'~') && self.b.get(self.pos + 1) == Some(&b'{'))
    }

    /// `string = quoted / literal`
    pub(crate) fn string(&mut self, what: &str) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            _ if self.at_literal() => self.literal(),
            _ => Err(ParseError::expected(what)),
        }
    }

    /// `astring = 1*ASTRING-CHAR / string`
    pub(crate) fn astring(&mut self, what: &str) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            _ if self.at_literal() => self.literal(),
            _ => {
                let s = self.take_while(is_astring_char);
                if s.is_empty() {
                    Err(ParseError::expected(what))
                } else {
                    Ok(s.to_vec())
                }
            }
        }
    }

    pub(crate) fn astring_utf8(&mut self, what: &str) -> PResult<String> {
        String::from_utf8(self.astring(what)?)
            .map_err(|_| ParseError::syntax(&format!("{what} is not valid UTF-8")))
    }

    /// `list-mailbox = 1*list-char / string` (LIST patterns may contain `*` and `%`).
    pub(crate) fn list_mailbox(&mut self, what: &str) -> PResult<String> {
        let raw = match self.peek() {
            Some(b'"') => self.quoted()?,
            _ if self.at_literal() => self.literal()?,
            _ => {
                let s = self.take_while(is_list_char);
                if s.is_empty() {
                    return Err(ParseError::expected(what));
                }
                s.to_vec()
            }
        };
        String::from_utf8(raw)
            .map_err(|_| ParseError::syntax(&format!("{what} is not valid UTF-8")))
    }

    /// `seq-number` / `*`.
    fn seq_bound(&mut self) -> PResult<SeqBound> {
        if self.try_byte(b'*') {
            return Ok(SeqBound::Star);
        }
        Ok(SeqBound::Value(self.nz_number("sequence set")?))
    }

    /// `sequence-set` or `$` (RFC 5182).
    pub(crate) fn sequence_set(&mut self) -> PResult<SequenceSet> {
        if self.try_byte(b'$') {
            return Ok(SequenceSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            let a = self.seq_bound()?;
            let b = if self.try_byte(b':') {
                self.seq_bound()?
            } else {
                a
            };
            ranges.push((a, b));
            if !self.try_byte(b',') {
                break;
            }
        }
        Ok(SequenceSet::Ranges(ranges))
    }

    /// Can a sequence set start here (used by SEARCH to tell keys from sets)?
    pub(crate) fn at_sequence_set(&self) -> bool {
        matches!(self.peek(), Some(b'0'..=b'9' | b'*' | b'$'))
    }

    /// `flag = "\" atom / keyword` (also `\*` for PERMANENTFLAGS is not allowed here).
    pub(crate) fn flag(&mut self) -> PResult<String> {
        let backslash = self.try_byte(b'\\');
        let a = self.atom("flag")?;
        Ok(if backslash {
            format!("\\{a}")
        } else {
            a.to_string()
        })
    }

    /// `flag-list = "(" [flag *(SP flag)] ")"`
    pub(crate) fn flag_list(&mut self) -> PResult<Vec<String>> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        if self.try_byte(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.try_byte(b')') {
                return Ok(flags);
            }
            self.sp()?;
        }
    }

    /// STORE accepts a flag list with or without parentheses (RFC 9051 §6.4.6).
    pub(crate) fn store_flags(&mut self) -> PResult<Vec<String>> {
        if self.peek() == Some(b'(') {
            return self.flag_list();
        }
        let mut flags = vec![self.flag()?];
        while self.peek() == Some(b' ') {
            self.sp()?;
            flags.push(self.flag()?);
        }
        Ok(flags)
    }

    /// `date = date-text / DQUOTE date-text DQUOTE`, `date-text = date-day "-" date-month "-" date-year`.
    pub(crate) fn date(&mut self) -> PResult<Date> {
        let quoted = self.try_byte(b'"');
        let day = self.number("date")?;
        self.expect(b'-')
            .map_err(|_| ParseError::expected("date"))?;
        let month = self.month()?;
        self.expect(b'-')
            .map_err(|_| ParseError::expected("date"))?;
        let year = self.number("date")?;
        if quoted {
            self.expect(b'"')?;
        }
        make_date(year, month, day)
    }

    fn month(&mut self) -> PResult<u32> {
        let s = self
            .b
            .get(self.pos..self.pos + 3)
            .ok_or_else(|| ParseError::expected("date"))?;
        let m = MONTHS
            .iter()
            .position(|m| m.as_bytes().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseError::expected("date"))?;
        self.pos += 3;
        Ok(m as u32 + 1)
    }

    fn digits(&mut self, n: usize) -> PResult<u32> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or_else(|| ParseError::expected("date-time"))?;
        if !s.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::expected("date-time"));
        }
        self.pos += n;
        Ok(s.iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0')))
    }

    /// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE`,
    /// as unix seconds.
    pub(crate) fn date_time(&mut self) -> PResult<i64> {
        let bad = || ParseError::expected("date-time");
        self.expect(b'"').map_err(|_| bad())?;
        self.try_byte(b' ');
        let day = self.number("date-time")?;
        self.expect(b'-').map_err(|_| bad())?;
        let month = self.month().map_err(|_| bad())?;
        self.expect(b'-').map_err(|_| bad())?;
        let year = self.digits(4)?;
        self.sp().map_err(|_| bad())?;
        let h = self.digits(2)?;
        self.expect(b':').map_err(|_| bad())?;
        let mi = self.digits(2)?;
        self.expect(b':').map_err(|_| bad())?;
        let s = self.digits(2)?;
        self.sp().map_err(|_| bad())?;
        let sign = match self.peek() {
            Some(b'+') => 1i64,
            Some(b'-') => -1i64,
            _ => return Err(bad()),
        };
        self.pos += 1;
        let zh = self.digits(2)?;
        let zm = self.digits(2)?;
        self.expect(b'"').map_err(|_| bad())?;
        if h > 23 || mi > 59 || s > 60 || zm > 59 {
            return Err(bad());
        }
        let date = make_date(year, month, day).map_err(|_| bad())?;
        let offset = sign * (i64::from(zh) * 3600 + i64::from(zm) * 60);
        Ok(days_from_civil(date.year, date.month, date.day) * 86_400
            + i64::from(h) * 3600
            + i64::from(mi) * 60
            + i64::from(s)
            - offset)
    }
}

fn make_date(year: u32, month: u32, day: u32) -> PResult<Date> {
    if !(1..=31).contains(&day) || !(1..=9999).contains(&year) {
        return Err(ParseError::expected("date"));
    }
    Ok(Date {
        year: year as i32,
        month,
        day,
    })
}
