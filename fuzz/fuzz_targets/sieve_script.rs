//! Hostile bytes as a Sieve script (issue 16): the compiler every writer uses
//! (`bulwark_sieve::scripts::check`, with its size and nesting limits) and, when it
//! compiles, one run against a small message under the interpreter's instruction limit.
//! Neither may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bulwark_sieve::fuzz_script(data);
});
