//! The iCalendar and vCard checks of a CalDAV/CardDAV PUT (crates/dav/src/ical.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bulwark_dav::ical::check_calendar(text);
        let _ = bulwark_dav::ical::check_card(text);
        if let Some(cal) = bulwark_dav::range::parse(text) {
            let _ = bulwark_dav::range::span_of(&cal);
        }
        let _ = bulwark_dav::range::parse_date_time(text);
    }
});
