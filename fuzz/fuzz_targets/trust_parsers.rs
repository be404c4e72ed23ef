//! Hostile bytes into every parser the inbound checks use (issue 16): mail-auth's message
//! parser (DKIM-Signature fields with huge header lists, …), its DKIM-Signature, SPF, DKIM
//! key and DMARC record parsers, our TXT tag readers, the spam rules and clamd's answers. None may panic or
//! hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bulwark_trust::fuzz_parsers(data);
    // The spam stage reads the same hostile messages (and results headers).
    let _ = bulwark_spam::score_message(data, &[String::from_utf8_lossy(data).into_owned()]);
    // clamd's answer (a hostile or broken daemon): a verdict or an error, never a panic.
    let _ = bulwark_spam::clamav::parse_reply(data);
});
