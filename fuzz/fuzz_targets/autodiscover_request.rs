//! Fuzz target for the Autodiscover POX request reader: whatever the body, it answers an
//! address or an error, within its limits, and an address it returns has an `@` and no
//! whitespace.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(address) = bulwark_autoconfig::autodiscover_request_email(data) {
        assert!(address.contains('@'));
        assert!(!address.chars().any(char::is_whitespace));
        assert!(address.len() <= 320);
    }
});
