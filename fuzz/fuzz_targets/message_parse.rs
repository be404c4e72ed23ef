//! Fuzz the FETCH/SEARCH message renderers on arbitrary bytes: none may panic, and
//! BODYSTRUCTURE must stay a parenthesized list.
#![no_main]

use bulwark_imap::message::{
    Section, SectionText, binary, body_structure, envelope, partial, search_view, section,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = envelope(data);
    for extensible in [false, true] {
        let bs = body_structure(data, extensible);
        assert!(bs.starts_with(b"(") && bs.ends_with(b")"));
    }
    // The first byte picks a part path so deep numbering gets exercised too.
    let path: Vec<u32> = data.iter().take(3).map(|b| u32::from(b % 4)).collect();
    for part in [&[][..], &[1], &[2, 1], path.as_slice()] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields {
                not: false,
                fields: vec!["subject".into(), "from".into()],
            }),
        ] {
            let s = Section {
                part: part.to_vec(),
                text,
            };
            if let Some(bytes) = section(data, &s) {
                let _ = partial(&bytes, 1, Some(10));
            }
        }
        let _ = binary(data, part);
    }
    let view = search_view(data);
    let _ = (
        view.body_contains("x"),
        view.subject(),
        view.from(),
        view.sent_day(),
    );
});
