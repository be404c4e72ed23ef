//! Search folding, written once for IMAP SEARCH and JMAP Email/query text filters.
//!
//! RFC 3501 §6.4.4 / RFC 9051 §6.4.4: SEARCH string keys match "substring,
//! case-insensitive"; RFC 8621 §4.4.1 leaves the text comparison to the server. Both sides
//! are folded the same way: Unicode compatibility decomposition (NFKD), combining marks
//! removed (so `é` matches `e`, full-width `Ｒ` matches `r`), then case folding. Matching is
//! a substring test on the folded text, which also works for scripts without spaces
//! between words (CJK).

use std::ops::Range;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// `s` folded for matching: NFKD, without combining marks, case-folded.
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd().filter(|c| !is_combining_mark(*c)) {
        push_case_folded(&mut out, c);
    }
    out
}

/// [`fold`] with, for each byte of the folded text, the byte range of the character of `s`
/// it came from: a match found in the folded text maps back to `s` (search highlights).
pub fn fold_spans(s: &str) -> (String, Vec<Range<usize>>) {
    let mut out = String::with_capacity(s.len());
    let mut spans = Vec::with_capacity(s.len());
    let mut one = String::new();
    for (at, c) in s.char_indices() {
        one.clear();
        let mut buf = [0u8; 4];
        for d in c
            .encode_utf8(&mut buf)
            .nfkd()
            .filter(|d| !is_combining_mark(*d))
        {
            push_case_folded(&mut one, d);
        }
        out.push_str(&one);
        spans.extend(std::iter::repeat_n(at..at + c.len_utf8(), one.len()));
    }
    (out, spans)
}

/// Unicode full case folding where it differs from lowercasing for letters mail text
/// uses (CaseFolding.txt `F`/`C` entries: `ß`/`ẞ` → `ss`, final sigma → `σ`); every other
/// character is lowercased.
fn push_case_folded(out: &mut String, c: char) {
    match c {
        'ß' | 'ẞ' => out.push_str("ss"),
        'ς' => out.push('σ'),
        _ => out.extend(c.to_lowercase()),
    }
}

/// Whether `haystack` contains `needle` after both are folded. Without allocating when
/// both are ASCII (the common case). An empty needle is contained in everything.
pub fn fold_contains(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() && needle.is_ascii() {
        return ascii_contains(haystack.as_bytes(), needle.as_bytes());
    }
    fold(haystack).contains(&fold(needle))
}

/// [`fold_contains`] where the needle is folded already (fold it once per query).
pub fn folded_contains(haystack: &str, folded_needle: &str) -> bool {
    if haystack.is_ascii() {
        return folded_needle.is_ascii()
            && ascii_contains(haystack.as_bytes(), folded_needle.as_bytes());
    }
    fold(haystack).contains(folded_needle)
}

fn ascii_contains(h: &[u8], n: &[u8]) -> bool {
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_case_and_width_fold_away() {
        assert_eq!(fold("Réunion"), "reunion");
        assert_eq!(fold("ÅNGSTRÖM"), "angstrom");
        assert_eq!(fold("Ｒéｕｎｉｏｎ"), "reunion");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("ΟΔΥΣΣΕΥΣ"), fold("οδυσσευς"));
    }

    #[test]
    fn substring_matching_either_side_accented() {
        assert!(fold_contains("Ordre du jour: Réunion lundi", "reunion"));
        assert!(fold_contains("Ordre du jour: Reunion lundi", "RÉUNION"));
        assert!(fold_contains("会議の議題について", "議題"));
        assert!(!fold_contains("会議の議題について", "議事"));
        assert!(fold_contains("Hello World", "o w"));
        assert!(!fold_contains("Hello", "help"));
        assert!(fold_contains("anything", ""));
        assert!(folded_contains("Café crème", &fold("CAFE CREME")));
        assert!(!folded_contains("plain ascii", &fold("é")));
    }

    #[test]
    fn spans_map_folded_bytes_back_to_the_original() {
        let text = "Ordre: RÉUNION ß";
        let (folded, spans) = fold_spans(text);
        assert_eq!(folded, fold(text));
        assert_eq!(spans.len(), folded.len());
        let at = folded.find("reunion").unwrap();
        let range = spans[at].start..spans[at + "reunion".len() - 1].end;
        assert_eq!(&text[range], "RÉUNION");
        let ss = folded.find("ss").unwrap();
        assert_eq!(&text[spans[ss].start..spans[ss + 1].end], "ß");
    }
}
