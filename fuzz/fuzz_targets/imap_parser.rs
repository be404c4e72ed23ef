//! Fuzz target for the IMAP command parser: framing (lines, literals, limits) and the
//! grammar. Feeds the input in two chunks split at the first byte's value so chunk
//! boundaries are explored too, then parses the whole input as one command.
#![no_main]

use bulwark_imap::parser::{Event, LineEvent, Parser, parse_command};
use libfuzzer_sys::fuzz_target;

/// A small literal limit so the oversize paths are reached often.
const FUZZ_MAX_LITERAL: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut p = Parser::new(FUZZ_MAX_LITERAL);
    for chunk in [&data[..split], &data[split..]] {
        p.feed(chunk);
        for _ in 0..1024 {
            match p.next_event() {
                Event::NeedMoreData => break,
                Event::Error(e) if e.kind == bulwark_imap::parser::ErrorKind::Fatal => return,
                _ => {}
            }
        }
    }
    let _ = matches!(p.next_line(), LineEvent::Line(_));
    let _ = parse_command(data);
});
