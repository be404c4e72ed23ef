//! Feeds arbitrary bytes, as an uploaded mbox (`POST /migrate/import`, `bulwark import`),
//! through bulwark-migrate's mbox reader and its status-header reader. Must never panic;
//! every message read stays within the size limit and has CRLF line ends only (RFC 5322
//! §2.1), and message numbers count up.
#![no_main]

use bulwark_migrate::flags::take_status_headers;
use bulwark_migrate::mbox::{MboxItem, MboxReader};
use libfuzzer_sys::fuzz_target;

const MAX_SIZE: usize = 4096;

fn crlf_only(raw: &[u8]) -> bool {
    raw.iter()
        .enumerate()
        .all(|(i, &b)| b != b'\n' || (i > 0 && raw[i - 1] == b'\r'))
}

fuzz_target!(|data: &[u8]| {
    let mut last = 0;
    for item in MboxReader::new(data, MAX_SIZE) {
        match item {
            MboxItem::Message { index, raw, .. } => {
                assert!(index > last, "message {index} after {last}");
                last = index;
                assert!(
                    raw.len() <= MAX_SIZE,
                    "{} bytes kept over the limit",
                    raw.len()
                );
                assert!(crlf_only(&raw), "a bare LF in message {index}");
            }
            MboxItem::Failed { index, why, .. } => {
                assert!(index >= last && !why.is_empty());
                last = index;
            }
        }
    }
    let (rest, _) = take_status_headers(data);
    assert!(rest.len() <= data.len());
});
