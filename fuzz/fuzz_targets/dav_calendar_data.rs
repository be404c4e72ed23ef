//! The iCalendar and vCard checks of a CalDAV/CardDAV PUT (crates/dav/src/ical.rs), the
//! recurrence expansion of a query (range.rs, expand.rs) and the .ics/.vcf import split
//! (transfer.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bulwark_dav::ical::check_calendar(text);
        let _ = bulwark_dav::ical::check_card(text);
        if let Some(cal) = bulwark_dav::range::parse(text) {
            let _ = bulwark_dav::range::span_of(&cal);
            // One week of 2026.
            let _ = bulwark_dav::range::instances_in(&cal, 1_767_225_600, 1_767_830_400);
            let shape = bulwark_dav::expand::DataShape::Expand(1_767_225_600, 1_767_830_400);
            let _ = bulwark_dav::expand::shape(text, shape);
        }
        let _ = bulwark_dav::transfer::split_calendar(text);
        let _ = bulwark_dav::transfer::split_cards(text);
        let _ = bulwark_dav::range::parse_date_time(text);
    }
});
