//! Fuzz target for the JMAP PushSubscription URL reader (RFC 8620 §7.2: the client's
//! `https://` URL the server will connect to): any string is a target or refused, never a
//! panic, and a parsed target always names a host and a port.
#![no_main]

use bulwark_jmap::webpush::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Some(t) = Target::parse(s)
    {
        assert!(!t.host.is_empty() && t.port != 0 && t.path.starts_with('/'));
    }
});
