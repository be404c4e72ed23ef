//! Hostile bytes into every parser the inbound checks use (issue 16): mail-auth's message
//! parser (DKIM-Signature fields with huge header lists, …), its DKIM-Signature, SPF, DKIM
//! key and DMARC record parsers, our TXT tag readers, the spam rules, clamd's answers and a
//! recipient domain's MTA-STS TXT record and policy file (outbound). None may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bulwark_trust::fuzz_parsers(data);
    // The spam stage reads the same hostile messages (and results headers).
    let _ = bulwark_spam::score_message(data, &[String::from_utf8_lossy(data).into_owned()]);
    // clamd's answer (a hostile or broken daemon): a verdict or an error, never a panic.
    let _ = bulwark_spam::clamav::parse_reply(data);
    // MTA-STS (RFC 8461): the `_mta-sts` TXT record and the fetched policy, and the MX
    // pattern match the queue applies with it.
    let text = String::from_utf8_lossy(data);
    let _ = bulwark_core::mta_sts::parse_txt(&text);
    if let Ok(policy) = bulwark_core::mta_sts::parse_policy(data) {
        let _ = policy.allows(&text);
        let _ = policy.allows("mx.example.test");
    }
});
