//! The DAV XML request reader (crates/dav/src/xml.rs) and the report filters built on it:
//! any bytes give an element tree or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = bulwark_dav::xml::parse(data) {
        let _ = bulwark_dav::report::CalendarFilter::parse(&root);
        let _ = bulwark_dav::report::CardFilter::parse(&root);
    }
});
