//! Fuzzes the JMAP request parser (RFC 8620 §3.3) and result-reference resolution (§3.7):
//! any bytes must yield a request or a request-level error, never a panic.
#![no_main]

use bulwark_jmap::api::{RequestLimits, parse_request, refs};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const LIMITS: RequestLimits = RequestLimits { max_size_request: 1 << 20, max_calls_in_request: 64 };

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_request(data, LIMITS) else { return };
    // A fixed earlier response to resolve references against.
    let responses = vec![(
        "Email/query".to_string(),
        json!({"ids": ["E1", "E2"], "list": [{"emailIds": ["E3"]}, {"emailIds": ["E4", "E5"]}]}),
        "c0".to_string(),
    )];
    for (_, args, _) in request.method_calls {
        let _ = refs::resolve_references(args, &responses, 1 << 20);
    }
});
