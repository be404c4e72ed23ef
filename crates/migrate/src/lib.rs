//! Moving mail in and out of Bulwark: `bulwark import` and `bulwark export`.
//!
//! Readers and writers for mbox ([`mbox`]), Maildir ([`maildir`]), single `.eml` files and
//! Bulwark's own archive ([`archive`]), and the two operations over the [`Store`]:
//! [`import`] (resumable: a message whose exact bytes are already in its folder is skipped)
//! and [`export`]; and [`migrate`] from a running IMAP server ([`imap`]).

pub mod archive;
pub mod date;
pub mod flags;
pub mod imap;
pub mod maildir;
pub mod mbox;

mod export;
mod export_tar;
pub mod http;
mod import;

pub use export::{ExportFormat, ExportSummary, export};
pub use export_tar::{archive_tar, archive_tar_name};
pub use imap::copy::{MigrateOptions, MigrateSummary, migrate};
pub use import::import_bytes;
pub use import::{ImportOptions, ImportSummary, SourceKind, detect, import};

/// Bare LF line ends made CRLF (RFC 5322 §2.1); CRLF and lone CR are kept.
pub fn crlf(raw: Vec<u8>) -> Vec<u8> {
    let bare = raw
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
        .count();
    if bare == 0 {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + bare);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn crlf_fixes_bare_line_feeds_only() {
        assert_eq!(super::crlf(b"a\nb\r\nc\n".to_vec()), b"a\r\nb\r\nc\r\n");
        assert_eq!(super::crlf(b"a\r\n".to_vec()), b"a\r\n");
        assert_eq!(super::crlf(b"\n".to_vec()), b"\r\n");
    }
}
