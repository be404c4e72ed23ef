//! Feeds arbitrary bytes, as a hostile source server would send them to `bulwark migrate`,
//! through the response framer (bulwark-migrate `imap::frame`) in two pieces, and every
//! whole response through the client's `imap-proto` reader. Must never panic; the
//! responses handed out must be exactly the input's first bytes, each ending in LF, and no
//! literal over the limit may be accepted.
#![no_main]

use bulwark_migrate::imap::client::parse;
use bulwark_migrate::imap::frame::{FrameError, Framer};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b) % (data.len().max(1)));
    let mut framer = Framer::new(LIMIT);
    let mut out: Vec<u8> = Vec::new();
    for piece in [&data[..split], &data[split..]] {
        framer.push(piece);
        loop {
            match framer.next_response() {
                Ok(Some(r)) => {
                    assert_eq!(r.last(), Some(&b'\n'));
                    let _ = parse(&r, "fuzz");
                    out.extend_from_slice(&r);
                }
                Ok(None) => break,
                Err(FrameError::LiteralTooLarge { size, limit }) => {
                    assert!(size > limit as u64);
                    return;
                }
                Err(FrameError::LineTooLong { .. }) => return,
            }
        }
    }
    assert_eq!(&data[..out.len()], &out[..]);
});
