//! Fuzz target for the IMAP URL reader (RFC 5092 message URLs, RFC 4467 URLAUTH parts) and
//! the section specs CATENATE and URLFETCH take from URLs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = bulwark_imap::imapurl::parse(s);
        let _ = bulwark_imap::imapurl::split_urlauth(s);
        let _ = bulwark_imap::imapurl::percent_decode(s);
        let _ = bulwark_imap::parser::parse_section(s);
    }
});
